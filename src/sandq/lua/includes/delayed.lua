--#include num
-- Delayed jobs: score = fireAt * 4096 + s, where s orders jobs due in the same millisecond (FIFO,
-- up to 4096 per ms). The marker member "1" carries the next fire time for sleeping workers.

-- addDelayed(delayedKey, jobId, fireAt): ZADD the job with the next free score for fireAt.
local function addDelayed(delayedKey, jobId, fireAt)
  local low = fireAt * 4096
  local high = low + 4095
  local score = low
  local last = redis.call("ZREVRANGEBYSCORE", delayedKey, num(high), num(low), "WITHSCORES", "LIMIT", 0, 1)
  if #last > 0 then
    score = math.min(tonumber(last[2]) + 1, high)
  end
  redis.call("ZADD", delayedKey, num(score), jobId)
  return score
end

-- setDelayMarker(markerKey, delayedKey): point marker "1" at the earliest delayed job, if any.
local function setDelayMarker(markerKey, delayedKey)
  local first = redis.call("ZRANGE", delayedKey, 0, 0, "WITHSCORES")
  if #first > 0 then
    redis.call("ZADD", markerKey, num(math.floor(tonumber(first[2]) / 4096)), "1")
  end
end
