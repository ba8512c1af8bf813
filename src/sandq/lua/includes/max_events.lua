-- maxEvents(metaKey): the events stream cap from meta "opts.maxLenEvents", seeding BullMQ's default.
local function maxEvents(metaKey)
  local value = redis.call("HGET", metaKey, "opts.maxLenEvents")
  if value then
    return tonumber(value) or 10000
  end
  redis.call("HSET", metaKey, "opts.maxLenEvents", 10000)
  return 10000
end
