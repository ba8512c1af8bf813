--[[
  move_stalled_jobs_to_wait: BullMQ's two-phase stalled sweep, run by one worker per interval.

  KEYS[1] stalled         KEYS[4] stalled-check   KEYS[7] events
  KEYS[2] wait            KEYS[5] meta            KEYS[8] repeat
  KEYS[3] active          KEYS[6] marker

  ARGV[1] queue key prefix "P:Q:"
  ARGV[2] now (ms)
  ARGV[3] max stalled count
  ARGV[4] stalled interval (ms)

  If stalled-check exists, another sweep ran within the interval: nothing is done. Otherwise it is SET
  (= now, PX interval) and the events stream trimmed. Sweep: each id of `stalled` (the active jobs
  marked by the previous sweep, minus those whose lock was since renewed or released) that has no lock
  and is still in active is LREMed from active, its "stc" incremented, and RPUSHed to the front of wait
  (priority ignored); past the max stalled count it gets "defa" = "job stalled more than allowable
  limit" (the next worker fails it without running it) unless it is an iteration of a live job
  scheduler ("rjk" in repeat). Events `waiting` {jobId, prev active} and `stalled` {jobId}. Marker "0"
  is added when a job was moved (unless paused or at the global concurrency). Mark: `stalled` is
  replaced by every id now in active.

  Returns the ids moved back to wait.
]]
local rcall = redis.call
local stalledKey, waitKey, activeKey, checkKey = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local metaKey, markerKey, eventsKey, repeatKey = KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local prefix, now = ARGV[1], ARGV[2]
local maxStalled = tonumber(ARGV[3])

--#include num
--#include worker_meta

if rcall("EXISTS", checkKey) == 1 then
  return {}
end
rcall("SET", checkKey, now, "PX", ARGV[4])
local meta = workerMeta(metaKey)
rcall("XTRIM", eventsKey, "MAXLEN", "~", num(meta.maxLen))

local moved = {}
for _, jobId in ipairs(rcall("SMEMBERS", stalledKey)) do
  local jobKey = prefix .. jobId
  if rcall("EXISTS", jobKey .. ":lock") == 0 and rcall("LREM", activeKey, "-1", jobId) > 0
      and rcall("EXISTS", jobKey) == 1 then
    local stalledCount = rcall("HINCRBY", jobKey, "stc", "1")
    if stalledCount > maxStalled then
      local scheduler = rcall("HGET", jobKey, "rjk")
      if not (scheduler and rcall("ZSCORE", repeatKey, scheduler)) then
        rcall("HSET", jobKey, "defa", "job stalled more than allowable limit")
      end
    end
    rcall("RPUSH", waitKey, jobId)
    rcall("XADD", eventsKey, "*", "event", "waiting", "jobId", jobId, "prev", "active")
    rcall("XADD", eventsKey, "*", "event", "stalled", "jobId", jobId)
    moved[#moved + 1] = jobId
  end
end
rcall("DEL", stalledKey)
if #moved > 0 and not isBlocked(meta, activeKey) then
  rcall("ZADD", markerKey, "0", "0")
end

local length = rcall("LLEN", activeKey)
for from = 0, length - 1, 5000 do
  local ids = rcall("LRANGE", activeKey, num(from), num(from + 4999))
  if #ids > 0 then
    rcall("SADD", stalledKey, unpack(ids))
  end
end
return moved
