--[[
  update_progress: store a job's progress and announce it (BullMQ's updateProgress).

  KEYS[1] job   KEYS[2] events   KEYS[3] meta
  ARGV[1] job id
  ARGV[2] progress JSON (a number or any JSON value)

  HSET "progress"; event `progress` {jobId, data = the JSON} (MAXLEN ~ meta "opts.maxLenEvents").
  Returns 0, or -1 if the job does not exist.
]]
local rcall = redis.call
local jobKey, eventsKey, metaKey = KEYS[1], KEYS[2], KEYS[3]

--#include num
--#include max_events

if rcall("EXISTS", jobKey) == 0 then
  return -1
end
rcall("HSET", jobKey, "progress", ARGV[2])
rcall("XADD", eventsKey, "MAXLEN", "~", num(maxEvents(metaKey)), "*", "event", "progress",
  "jobId", ARGV[1], "data", ARGV[2])
return 0
