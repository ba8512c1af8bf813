-- queueMeta(metaKey, activeKey): one read of the queue's meta for scripts that add or move jobs.
-- Returns maxLen (the events stream cap, "opts.maxLenEvents", seeded with BullMQ's default 10000 when
-- absent) and whether the queue is paused or at its global concurrency, in which case no wake-up
-- marker is written.
local function queueMeta(metaKey, activeKey)
  local meta = redis.call("HMGET", metaKey, "opts.maxLenEvents", "paused", "concurrency")
  local maxLen = tonumber(meta[1])
  if not maxLen then
    maxLen = 10000
    if not meta[1] then
      redis.call("HSET", metaKey, "opts.maxLenEvents", maxLen)
    end
  end
  local blocked = meta[2] ~= false
  local concurrency = tonumber(meta[3])
  if not blocked and concurrency ~= nil then
    blocked = redis.call("LLEN", activeKey) >= concurrency
  end
  return maxLen, blocked
end
