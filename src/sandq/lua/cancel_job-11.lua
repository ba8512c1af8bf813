--[[
  cancel_job: cancel a job from any process (sandq's Queue.cancel).

  KEYS[1] completed   KEYS[4] prioritized   KEYS[7] paused (a v5 leftover)   KEYS[10] sandq:cancels
  KEYS[2] failed      KEYS[5] active        KEYS[8] waiting-children         KEYS[11] meta
  KEYS[3] delayed     KEYS[6] wait          KEYS[9] events

  ARGV[1] queue key prefix "P:Q:"
  ARGV[2] job id
  ARGV[3] reason
  ARGV[4] now (ms)

  active            XADD sandq:cancels (MAXLEN ~ 1000) {jobId, reason}; the worker holding the job
                    reads that stream and stops it. Nothing else changes here.
  waiting, prioritized, delayed, waiting-children
                    the job is taken out of its list or set and failed: HSET failedReason
                    "cancelled: <reason>", finishedOn; ZADD failed (score now); dedup slot released;
                    event `failed` {jobId, failedReason, prev = the old state}.
  completed, failed nothing changes.

  Returns the state the job was in ("active", "waiting", "prioritized", "delayed",
  "waiting-children", "completed", "failed", or "unknown" when its hash is in no list or set, which is
  left alone), or -1 if the job does not exist.
]]
local rcall = redis.call
local completedKey, failedKey, delayedKey, prioritizedKey = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local activeKey, waitKey, pausedKey, waitingChildrenKey = KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local eventsKey, cancelsKey, metaKey = KEYS[9], KEYS[10], KEYS[11]
local prefix, jobId, reason, now = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local jobKey = prefix .. jobId

--#include num
--#include max_events
--#include dedup

if rcall("EXISTS", jobKey) == 0 then
  return -1
end
if rcall("ZSCORE", completedKey, jobId) then
  return "completed"
end
if rcall("ZSCORE", failedKey, jobId) then
  return "failed"
end
if rcall("LPOS", activeKey, jobId) then
  rcall("XADD", cancelsKey, "MAXLEN", "~", "1000", "*", "jobId", jobId, "reason", reason)
  return "active"
end

local state = "unknown"
if rcall("ZREM", delayedKey, jobId) == 1 then
  state = "delayed"
elseif rcall("ZREM", prioritizedKey, jobId) == 1 then
  state = "prioritized"
elseif rcall("LREM", waitKey, "0", jobId) + rcall("LREM", pausedKey, "0", jobId) > 0 then
  state = "waiting"
elseif rcall("ZREM", waitingChildrenKey, jobId) == 1 then
  state = "waiting-children"
else
  return state
end

local failedReason = "cancelled: " .. reason
rcall("HSET", jobKey, "failedReason", failedReason, "finishedOn", now)
rcall("ZADD", failedKey, now, jobId)
releaseDedup(prefix, jobKey, jobId)
rcall("XADD", eventsKey, "MAXLEN", "~", num(maxEvents(metaKey)), "*", "event", "failed", "jobId", jobId,
  "failedReason", failedReason, "prev", state)
return state
