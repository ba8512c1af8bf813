-- workerMeta(metaKey): one read of the queue's meta for the worker scripts, as a table:
--   maxLen       the events stream cap ("opts.maxLenEvents"; BullMQ's 10000 is seeded when absent)
--   paused       true when the field "paused" exists
--   concurrency  the global concurrency (a number) or nil
--   max          the global rate limit's max jobs (a number > 0) or nil
--   duration     the global rate limit's window in ms (a number > 0) or nil
local function workerMeta(metaKey)
  local meta = redis.call("HMGET", metaKey, "opts.maxLenEvents", "paused", "concurrency", "max", "duration")
  local maxLen = tonumber(meta[1])
  if not maxLen then
    maxLen = 10000
    if not meta[1] then
      redis.call("HSET", metaKey, "opts.maxLenEvents", "10000")
    end
  end
  local function positive(value)
    local n = tonumber(value)
    if n and n > 0 then
      return n
    end
    return nil
  end
  return {
    maxLen = maxLen,
    paused = meta[2] ~= false,
    concurrency = tonumber(meta[3]),
    max = positive(meta[4]),
    duration = positive(meta[5]),
  }
end

-- isBlocked(meta, activeKey): paused, or at the global concurrency; no wake-up marker is written then.
local function isBlocked(meta, activeKey)
  if meta.paused then
    return true
  end
  return meta.concurrency ~= nil and redis.call("LLEN", activeKey) >= meta.concurrency
end
