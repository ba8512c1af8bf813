--[[
  change_delay: move a delayed job's run time to now + delay (BullMQ's changeDelay).

  KEYS[1] delayed   KEYS[2] marker   KEYS[3] events   KEYS[4] meta

  ARGV[1] queue key prefix "P:Q:"
  ARGV[2] job id
  ARGV[3] delay (ms, from now)
  ARGV[4] now (ms)

  The job gets a new delayed score (FIFO among jobs due in the same ms) and `delay` = the new delay; the
  delayed marker points at the earliest delayed job. Event `delayed` {jobId, delay = the absolute time
  it is due}. Returns 0, -1 if the job does not exist, -3 if it is not delayed.
]]
local rcall = redis.call
local delayedKey, markerKey, eventsKey, metaKey = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local prefix, jobId, delay, now = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local jobKey = prefix .. jobId

--#include num
--#include max_events
--#include delayed

if rcall("EXISTS", jobKey) == 0 then
  return -1
end
if rcall("ZREM", delayedKey, jobId) == 0 then
  return -3
end
local fireAt = now + delay
addDelayed(delayedKey, jobId, fireAt)
rcall("HSET", jobKey, "delay", num(delay))
setDelayMarker(markerKey, delayedKey)
rcall("XADD", eventsKey, "MAXLEN", "~", num(maxEvents(metaKey)), "*", "event", "delayed", "jobId", jobId,
  "delay", num(fireAt))
return 0
