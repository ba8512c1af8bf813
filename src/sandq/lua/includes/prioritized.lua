--#include num
-- addPrioritized(prioritizedKey, pcKey, jobId, priority): score = priority * 2^32 + (counter mod 2^32),
-- so that a lower priority number runs first and jobs of equal priority run in insertion order.
local function addPrioritized(prioritizedKey, pcKey, jobId, priority)
  local counter = redis.call("INCR", pcKey)
  local score = priority * 4294967296 + (counter % 4294967296)
  redis.call("ZADD", prioritizedKey, num(score), jobId)
end
