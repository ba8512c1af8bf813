--[[
  update_data: replace a job's data (BullMQ's updateData).

  KEYS[1] job
  ARGV[1] data JSON

  HSET "data". No events. Returns 0, or -1 if the job does not exist.
]]
if redis.call("EXISTS", KEYS[1]) == 0 then
  return -1
end
redis.call("HSET", KEYS[1], "data", ARGV[1])
return 0
