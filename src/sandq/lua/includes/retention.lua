--#include num
--#include job_keys
-- Retention of finished jobs (BullMQ's keepJobs), as three numbers:
--   count  -1 keep all, 0 keep none (the finishing job is deleted), n keep the newest n
--   age    -1 no age limit, else seconds: jobs finished longer ago are deleted
--   limit  at most this many jobs are deleted by age per call (BullMQ's default: 1000)

-- removeFinished(setKey, prefix, ids): ZREM ids from the completed/failed set and delete their keys.
local function removeFinished(setKey, prefix, ids)
  for from = 1, #ids, 1000 do
    redis.call("ZREM", setKey, unpack(ids, from, math.min(from + 999, #ids)))
  end
  for _, jobId in ipairs(ids) do
    removeJobKeys(prefix .. jobId)
  end
end

-- trimFinished(setKey, prefix, now, count, age, limit): apply age, then count, to setKey.
local function trimFinished(setKey, prefix, now, count, age, limit)
  if age >= 0 then
    if limit <= 0 then
      limit = 1000
    end
    local cutoff = now - age * 1000
    removeFinished(setKey, prefix, redis.call("ZRANGEBYSCORE", setKey, "-inf", num(cutoff), "LIMIT", "0", num(limit)))
  end
  if count > 0 then
    removeFinished(setKey, prefix, redis.call("ZRANGE", setKey, "0", num(-(count + 1))))
  end
end
