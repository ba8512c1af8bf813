--[[
  finish_jobs: a batch of finishes of active jobs in one call, each written as BullMQ's moveToFinished,
  retryJob, moveToDelayed or moveJobFromActiveToWait would write it; then, optionally, fetch-next.

  KEYS[1] wait          KEYS[4] pc        KEYS[7] meta      KEYS[10] stalled
  KEYS[2] active        KEYS[5] delayed   KEYS[8] marker    KEYS[11] completed
  KEYS[3] prioritized   KEYS[6] limiter   KEYS[9] events    KEYS[12] failed

  ARGV[1] queue key prefix "P:Q:"
  ARGV[2] now (ms)
  ARGV[3] msgpack array of entries (numbers as msgpack integers; keep = count, age, limit as in the
          retention include):
            {"complete", jobId, token, returnvalue JSON, keepCount, keepAge, keepLimit}
            {"fail", jobId, token, failedReason, stacktrace JSON or "", keepCount, keepAge, keepLimit,
             attempts}
            {"retry", jobId, token, delay ms, failedReason, stacktrace JSON or "", lifo 0/1}
            {"delay", jobId, token, delay ms}
            {"requeue", jobId, token}
  ARGV[4] "" for no fetch, or msgpack {tokens, lockDuration, workerName, limiterMax, limiterDuration}
          (as move_to_active's ARGV[5], ARGV[3], ARGV[4], ARGV[6], ARGV[7])

  Per entry: the job hash must exist (-1); unless the token is "" or "0", its lock must exist (-2) and
  hold the token (-6); it must be in active (-3, LREM count -1). A refused entry changes nothing. Then
  the lock is deleted and the job SREMed from stalled, and:
    complete  atm+1; dedup slot released; keep count 0: job keys deleted; else ZADD completed (score
              now), HSET returnvalue, finishedOn, trim by age and count. Event `completed`
              {jobId, returnvalue, prev active}.
    fail      HSET failedReason (and stacktrace), atm+1, dedup slot released; retention as above into
              failed, with HDEL defa. Events `failed` {jobId, failedReason, prev active}, then
              `retries-exhausted` {jobId, attemptsMade} when atm >= attempts.
    retry     HSET failedReason (and stacktrace), atm+1; delay > 0: ZADD delayed (now + delay), HSET
              delay, event `delayed` {jobId, delay = fire time}; delay 0: LPUSH wait (RPUSH when lifo)
              or prioritized (fresh counter), event `waiting` {jobId, prev active}.
    delay     as retry with a delay, but no attempt is spent and no fields are written.
    requeue   back to the front: RPUSH wait, or prioritized with the push-back score priority * 2^32;
              no attempt spent; event `waiting` {jobId, prev active}.
  Afterwards marker "0" is added if a job became ready (unless paused or at the global concurrency),
  marker "1" is refreshed if a job was delayed, the fetch runs (see fetch.lua), and if a job was
  completed or failed and wait, active and prioritized are all empty, event `drained` (as
  moveToFinished; moving a job to delayed or back to wait announces no drain). The events stream is trimmed
  once (MAXLEN ~ meta "opts.maxLenEvents").

  Returns {codes, fetch}: one code per entry (0 = done, else -1/-2/-3/-6), and the fetch result
  {jobs, rateLimitTtl, nextDelayed} (as move_to_active's), or 0 when no fetch was asked for.
]]
local rcall = redis.call
local k = {
  wait = KEYS[1], active = KEYS[2], prioritized = KEYS[3], pc = KEYS[4], delayed = KEYS[5],
  limiter = KEYS[6], meta = KEYS[7], marker = KEYS[8], events = KEYS[9], stalled = KEYS[10],
  completed = KEYS[11], failed = KEYS[12],
}
local prefix, now = ARGV[1], tonumber(ARGV[2])
local entries = cmsgpack.unpack(ARGV[3])

--#include num
--#include worker_meta
--#include delayed
--#include prioritized
--#include retention
--#include dedup
--#include fetch

local kinds = {complete = true, fail = true, retry = true, delay = true, requeue = true}
for i, entry in ipairs(entries) do
  if not kinds[entry[1]] then -- checked before any write: a script error does not roll back
    return redis.error_reply("ERR finish_jobs: entry " .. i .. " has the unknown kind " .. tostring(entry[1]))
  end
end

local meta = workerMeta(k.meta)
local ready, delayed, finished = false, false, false

-- takeFromActive(jobId, token): check the entry and take the job out of active; 0 or a refusal code.
local function takeFromActive(jobId, token)
  local jobKey = prefix .. jobId
  if rcall("EXISTS", jobKey) == 0 then
    return -1
  end
  if token ~= "" and token ~= "0" then
    local lock = rcall("GET", jobKey .. ":lock")
    if not lock then
      return -2
    end
    if lock ~= token then
      return -6
    end
  end
  if rcall("LREM", k.active, "-1", jobId) == 0 then
    return -3
  end
  rcall("DEL", jobKey .. ":lock")
  rcall("SREM", k.stalled, jobId)
  return 0
end

local function writeFailure(jobKey, reason, stacktrace)
  if stacktrace ~= "" then
    rcall("HSET", jobKey, "failedReason", reason, "stacktrace", stacktrace)
  else
    rcall("HSET", jobKey, "failedReason", reason)
  end
end

-- finish(setKey, jobKey, jobId, count, age, limit, field, value): retention; when kept, ZADD the
-- finished set and HSET field = value (returnvalue or failedReason) and finishedOn.
local function finish(setKey, jobKey, jobId, count, age, limit, field, value)
  if count == 0 then
    removeJobKeys(jobKey)
    return
  end
  rcall("ZADD", setKey, num(now), jobId)
  rcall("HSET", jobKey, field, value, "finishedOn", num(now))
  if setKey == k.failed then
    rcall("HDEL", jobKey, "defa")
  end
  trimFinished(setKey, prefix, now, count, age, limit)
end

local function toDelayed(jobKey, jobId, delay)
  local fireAt = now + delay
  addDelayed(k.delayed, jobId, fireAt)
  rcall("HSET", jobKey, "delay", num(delay))
  rcall("XADD", k.events, "*", "event", "delayed", "jobId", jobId, "delay", num(fireAt))
  delayed = true
end

local function toWaiting(jobId)
  rcall("XADD", k.events, "*", "event", "waiting", "jobId", jobId, "prev", "active")
  ready = true
end

local handlers = {}

function handlers.complete(jobKey, jobId, e)
  rcall("HINCRBY", jobKey, "atm", "1")
  releaseDedup(prefix, jobKey, jobId)
  finish(k.completed, jobKey, jobId, e[5], e[6], e[7], "returnvalue", e[4])
  rcall("XADD", k.events, "*", "event", "completed", "jobId", jobId, "returnvalue", e[4], "prev", "active")
  finished = true
end

function handlers.fail(jobKey, jobId, e)
  writeFailure(jobKey, e[4], e[5])
  local attemptsMade = rcall("HINCRBY", jobKey, "atm", "1")
  releaseDedup(prefix, jobKey, jobId)
  finish(k.failed, jobKey, jobId, e[6], e[7], e[8], "failedReason", e[4])
  rcall("XADD", k.events, "*", "event", "failed", "jobId", jobId, "failedReason", e[4], "prev", "active")
  if attemptsMade >= e[9] then
    rcall("XADD", k.events, "*", "event", "retries-exhausted", "jobId", jobId,
      "attemptsMade", num(attemptsMade))
  end
  finished = true
end

function handlers.retry(jobKey, jobId, e)
  writeFailure(jobKey, e[5], e[6])
  rcall("HINCRBY", jobKey, "atm", "1")
  if e[4] > 0 then
    toDelayed(jobKey, jobId, e[4])
    return
  end
  local priority = tonumber(rcall("HGET", jobKey, "priority")) or 0
  if priority > 0 then
    addPrioritized(k.prioritized, k.pc, jobId, priority)
  elseif e[7] == 1 then
    rcall("RPUSH", k.wait, jobId)
  else
    rcall("LPUSH", k.wait, jobId)
  end
  toWaiting(jobId)
end

function handlers.delay(jobKey, jobId, e)
  toDelayed(jobKey, jobId, e[4])
end

function handlers.requeue(jobKey, jobId, e)
  local priority = tonumber(rcall("HGET", jobKey, "priority")) or 0
  if priority > 0 then
    rcall("ZADD", k.prioritized, num(priority * 4294967296), jobId)
  else
    rcall("RPUSH", k.wait, jobId)
  end
  toWaiting(jobId)
end

local codes = {}
for i, e in ipairs(entries) do
  local jobId = e[2]
  local code = takeFromActive(jobId, e[3])
  if code == 0 then
    handlers[e[1]](prefix .. jobId, jobId, e)
  end
  codes[i] = code
end

if ready and not isBlocked(meta, k.active) then
  rcall("ZADD", k.marker, "0", "0")
end
if delayed then
  setDelayMarker(k.marker, k.delayed)
end
local fetched = 0
if ARGV[4] ~= "" then
  local f = cmsgpack.unpack(ARGV[4])
  local spec = {
    tokens = f[1], lockDuration = f[2], workerName = f[3], limiterMax = f[4], limiterDuration = f[5],
  }
  fetched = fetchJobs(k, prefix, now, meta, spec)
end
-- `drained` as BullMQ writes it: when a job finished and nothing is left to run. A fetch that was
-- held back (paused, at the global concurrency, rate limited) or that found a delayed job pending
-- says nothing.
local quiet = fetched ~= 0 and (#fetched[1] > 0 or fetched[2] > 0 or fetched[3] > 0 or isBlocked(meta, k.active))
if finished and not quiet and rcall("LLEN", k.wait) == 0 and rcall("LLEN", k.active) == 0
    and rcall("ZCARD", k.prioritized) == 0 then
  rcall("XADD", k.events, "*", "event", "drained")
end
rcall("XTRIM", k.events, "MAXLEN", "~", num(meta.maxLen))
return {codes, fetched}
