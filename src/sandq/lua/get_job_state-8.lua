--[[
  get_job_state: the state of one job, from the sets and lists that hold it.

  KEYS[1] completed   KEYS[3] delayed       KEYS[5] active   KEYS[7] paused (a v5 leftover)
  KEYS[2] failed      KEYS[4] prioritized   KEYS[6] wait     KEYS[8] waiting-children
  ARGV[1] job id

  Returns "completed", "failed", "delayed", "prioritized", "active", "waiting" (in wait, or in a v5
  paused list), "waiting-children" or "unknown". Needs LPOS (Redis 6.0.6+).
]]
local rcall = redis.call
local jobId = ARGV[1]
if rcall("ZSCORE", KEYS[1], jobId) then
  return "completed"
end
if rcall("ZSCORE", KEYS[2], jobId) then
  return "failed"
end
if rcall("ZSCORE", KEYS[3], jobId) then
  return "delayed"
end
if rcall("ZSCORE", KEYS[4], jobId) then
  return "prioritized"
end
if rcall("LPOS", KEYS[5], jobId) then
  return "active"
end
if rcall("LPOS", KEYS[6], jobId) or rcall("LPOS", KEYS[7], jobId) then
  return "waiting"
end
if rcall("ZSCORE", KEYS[8], jobId) then
  return "waiting-children"
end
return "unknown"
