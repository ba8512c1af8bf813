--#include num
--#include prioritized
-- enqueueJob(k, jobKey, jobId, blocked): put a job that is to run (again) where workers take it from:
-- `prioritized` under its hash `priority`, else `wait` (LPUSH; RPUSH when its opts say lifo). Adds the
-- wake-up marker unless the queue is paused or at its global concurrency (`blocked`).
-- k = {wait, prioritized, pc, marker}.
local function enqueueJob(k, jobKey, jobId, blocked)
  local fields = redis.call("HMGET", jobKey, "priority", "opts")
  local priority = tonumber(fields[1]) or 0
  if priority > 0 then
    addPrioritized(k.prioritized, k.pc, jobId, priority)
  else
    local lifo = false
    if fields[2] then
      local ok, opts = pcall(cjson.decode, fields[2])
      lifo = ok and type(opts) == "table" and opts["lifo"] == true
    end
    redis.call(lifo and "RPUSH" or "LPUSH", k.wait, jobId)
  end
  if not blocked then
    redis.call("ZADD", k.marker, "0", "0")
  end
end
