--[[
  add_log: append a line to a job's log (BullMQ's addLog).

  KEYS[1] job   KEYS[2] job:logs
  ARGV[1] job id
  ARGV[2] the line
  ARGV[3] keep logs: keep only the newest N lines ("" = keep all)

  RPUSH the line, then LTRIM to the newest N (N = 0 deletes the log). No events.
  Returns the number of lines kept, or -1 if the job does not exist.
]]
local rcall = redis.call
local jobKey, logsKey = KEYS[1], KEYS[2]

--#include num

if rcall("EXISTS", jobKey) == 0 then
  return -1
end
local count = rcall("RPUSH", logsKey, ARGV[2])
local keep = tonumber(ARGV[3])
if keep then
  if keep <= 0 then
    rcall("DEL", logsKey)
    return 0
  end
  if count > keep then
    rcall("LTRIM", logsKey, num(-keep), "-1")
    return keep
  end
end
return count
