--#include num
--#include prioritized
-- Fetching jobs for a worker (move_to_active, and finish_jobs' fetch-next). `k` is a table of the queue
-- keys wait, active, prioritized, pc, delayed, limiter, marker, events; `meta` comes from workerMeta.
-- Events are XADDed untrimmed; the calling script trims the stream once.

-- A limiter value this high is a manual rate limit (BullMQ's queue.rateLimit): it blocks even when no
-- max is configured.
local MANUAL_RATE_LIMIT = 9007199254740991

-- promoteDelayed(k, prefix, now): move delayed jobs whose fire time is <= now (at most 1000) to wait
-- (LPUSH, priority 0) or prioritized, with "delay" reset to 0 and event `waiting` prev `delayed`.
local function promoteDelayed(k, prefix, now)
  local due = redis.call("ZRANGEBYSCORE", k.delayed, "0", num((now + 1) * 4096 - 1), "LIMIT", "0", "1000")
  if #due == 0 then
    return
  end
  redis.call("ZREM", k.delayed, unpack(due))
  for _, jobId in ipairs(due) do
    local jobKey = prefix .. jobId
    if redis.call("EXISTS", jobKey) == 1 then
      local priority = tonumber(redis.call("HGET", jobKey, "priority")) or 0
      if priority > 0 then
        addPrioritized(k.prioritized, k.pc, jobId, priority)
      else
        redis.call("LPUSH", k.wait, jobId)
      end
      redis.call("HSET", jobKey, "delay", "0")
      redis.call("XADD", k.events, "*", "event", "waiting", "jobId", jobId, "prev", "delayed")
    end
  end
end

-- nextDelayedTime(delayedKey): the fire time (ms) of the earliest delayed job, or 0.
local function nextDelayedTime(delayedKey)
  local first = redis.call("ZRANGE", delayedKey, "0", "0", "WITHSCORES")
  if #first == 0 then
    return 0
  end
  return math.floor(tonumber(first[2]) / 4096)
end

-- popNext(k): move the next job to active and return its id (nil when none): wait first (from the
-- right, dropping v4 "0:" marker ids), then the lowest score of prioritized (DEL pc once it is empty).
local function popNext(k)
  local jobId = redis.call("RPOPLPUSH", k.wait, k.active)
  while jobId and string.sub(jobId, 1, 2) == "0:" do
    redis.call("LREM", k.active, "1", jobId)
    jobId = redis.call("RPOPLPUSH", k.wait, k.active)
  end
  if jobId then
    return jobId
  end
  local popped = redis.call("ZPOPMIN", k.prioritized)
  if #popped == 0 then
    redis.call("DEL", k.pc)
    return nil
  end
  redis.call("LPUSH", k.active, popped[1])
  return popped[1]
end

-- fetchJobs(k, prefix, now, meta, spec): fetch up to #spec.tokens jobs. spec = {tokens, lockDuration,
-- workerName, limiterMax, limiterDuration} (0 = no worker limiter). Returns {jobs, ttl, nextDelayed}:
-- jobs a list of {id, token, flat HGETALL}; ttl the limiter's PTTL when the rate limit is reached (0
-- otherwise); nextDelayed the earliest delayed fire time in ms (0 if none, or when paused/maxed).
local function fetchJobs(k, prefix, now, meta, spec)
  promoteDelayed(k, prefix, now)
  local jobs = {}
  -- The rate limit: max from meta first, duration from the worker first (BullMQ's precedence).
  local maxJobs = meta.max
  if not maxJobs and spec.limiterMax > 0 then
    maxJobs = spec.limiterMax
  end
  local duration = meta.duration
  if spec.limiterDuration > 0 then
    duration = spec.limiterDuration
  end
  if not duration then
    maxJobs = nil -- a window of no length limits nothing
  end
  local started = tonumber(redis.call("GET", k.limiter))
  if started and started >= (maxJobs or MANUAL_RATE_LIMIT) then
    local ttl = redis.call("PTTL", k.limiter)
    if ttl > 0 then
      return {jobs, ttl, nextDelayedTime(k.delayed)}
    end
    redis.call("DEL", k.limiter)
  end
  if meta.paused then
    return {jobs, 0, 0}
  end
  local wanted = #spec.tokens
  if meta.concurrency then
    wanted = math.min(wanted, meta.concurrency - redis.call("LLEN", k.active))
    if wanted <= 0 then
      return {jobs, 0, 0}
    end
  end
  local ttl = 0
  while #jobs < wanted do
    local jobId = popNext(k)
    if not jobId then
      break
    end
    local jobKey = prefix .. jobId
    if redis.call("EXISTS", jobKey) == 0 then
      redis.call("LREM", k.active, "1", jobId) -- an id whose hash is gone: drop it
    else
      local token = spec.tokens[#jobs + 1]
      if token ~= "" and token ~= "0" then
        redis.call("SET", jobKey .. ":lock", token, "PX", num(spec.lockDuration))
      end
      redis.call("XADD", k.events, "*", "event", "active", "jobId", jobId, "prev", "waiting")
      if spec.workerName ~= "" then
        redis.call("HSET", jobKey, "processedOn", num(now), "pb", spec.workerName)
      else
        redis.call("HSET", jobKey, "processedOn", num(now))
      end
      redis.call("HINCRBY", jobKey, "ats", "1")
      jobs[#jobs + 1] = {jobId, token, redis.call("HGETALL", jobKey)}
      if maxJobs then
        local count = redis.call("INCR", k.limiter)
        if count == 1 then
          redis.call("PEXPIRE", k.limiter, num(math.floor(duration)))
        end
        if count >= maxJobs then
          ttl = math.max(redis.call("PTTL", k.limiter), 0)
          break
        end
      end
    end
  end
  if #jobs > 0 then
    redis.call("ZADD", k.marker, "0", "0")
  end
  return {jobs, ttl, nextDelayedTime(k.delayed)}
end
