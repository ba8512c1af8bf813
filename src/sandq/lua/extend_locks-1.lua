--[[
  extend_locks: renew the locks of many active jobs in one call (BullMQ's extendLocks).

  KEYS[1] stalled

  ARGV[1] queue key prefix "P:Q:"
  ARGV[2] lock duration (ms)
  ARGV[3] msgpack array of {jobId, token}

  A lock that holds the token is SET again with PX duration, and the job is SREMed from stalled (so
  the next stalled sweep leaves it alone). A missing lock, or one holding another token, is not
  touched. No events.

  Returns the ids whose renewal failed, in the order given.
]]
local rcall = redis.call
local stalledKey = KEYS[1]
local prefix, duration = ARGV[1], ARGV[2]
local locks = cmsgpack.unpack(ARGV[3])

local failed = {}
for _, lock in ipairs(locks) do
  local jobId, token = lock[1], lock[2]
  local lockKey = prefix .. jobId .. ":lock"
  if rcall("GET", lockKey) == token then
    rcall("SET", lockKey, token, "PX", duration)
    rcall("SREM", stalledKey, jobId)
  else
    failed[#failed + 1] = jobId
  end
end
return failed
