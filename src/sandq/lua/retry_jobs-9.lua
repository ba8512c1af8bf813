--[[
  retry_jobs: run finished jobs again (BullMQ's reprocessJob and moveJobsToWait in one script).

  KEYS[1] completed   KEYS[4] meta     KEYS[7] prioritized
  KEYS[2] failed      KEYS[5] active   KEYS[8] pc
  KEYS[3] wait        KEYS[6] marker   KEYS[9] events

  ARGV[1] queue key prefix "P:Q:"
  ARGV[2] state: "completed", "failed", or "" (by ids only: whichever holds the job)
  ARGV[3] "1" to reset attemptsMade (atm)
  ARGV[4] "1" to reset attemptsStarted (ats)
  ARGV[5] now (ms)
  ARGV[6] limit: "0" to retry the ids that follow; N > 0 to retry up to N jobs of the state that
          finished at or before now, oldest first
  ARGV[7..] job ids

  Each job leaves its finished set; finishedOn, processedOn, the result field (returnvalue or
  failedReason) and defa are deleted; it is queued as a new job would be (prioritized by its priority,
  else wait, RPUSH when lifo); a flow child becomes a pending dependency of its parent again. Event
  `waiting` {jobId, prev = the state it left}.

  Returns, with ids: per id, the state it left ("completed"/"failed"), -1 (no such job) or -3 (not in the
  state asked, or not finished). With a limit: the ids retried.
]]
local rcall = redis.call
local completedKey, failedKey, waitKey = KEYS[1], KEYS[2], KEYS[3]
local metaKey, activeKey, markerKey = KEYS[4], KEYS[5], KEYS[6]
local prioritizedKey, pcKey, eventsKey = KEYS[7], KEYS[8], KEYS[9]
local prefix, state, resetAtm, resetAts = ARGV[1], ARGV[2], ARGV[3] == "1", ARGV[4] == "1"
local now, limit = ARGV[5], tonumber(ARGV[6])

--#include num
--#include queue_meta
--#include enqueue
--#include parent_deps

local maxLen, blocked = queueMeta(metaKey, activeKey)
local k = {wait = waitKey, prioritized = prioritizedKey, pc = pcKey, marker = markerKey}
local setOf = {completed = completedKey, failed = failedKey}
local resultField = {completed = "returnvalue", failed = "failedReason"}

local function retry(jobId, from)
  local jobKey = prefix .. jobId
  local fields = {"finishedOn", "processedOn", resultField[from], "defa"}
  if resetAtm then
    fields[#fields + 1] = "atm"
    fields[#fields + 1] = "attemptsMade"
  end
  if resetAts then
    fields[#fields + 1] = "ats"
  end
  rcall("HDEL", jobKey, unpack(fields))
  enqueueJob(k, jobKey, jobId, blocked)
  restoreDependency(jobKey, from)
  rcall("XADD", eventsKey, "MAXLEN", "~", num(maxLen), "*", "event", "waiting", "jobId", jobId, "prev", from)
end

if limit > 0 then
  local ids = rcall("ZRANGEBYSCORE", setOf[state], "-inf", now, "LIMIT", 0, limit)
  for _, jobId in ipairs(ids) do
    rcall("ZREM", setOf[state], jobId)
    if rcall("EXISTS", prefix .. jobId) == 1 then
      retry(jobId, state)
    end
  end
  return ids
end

local results = {}
for i = 7, #ARGV do
  local jobId = ARGV[i]
  local result = -3
  if rcall("EXISTS", prefix .. jobId) == 0 then
    result = -1
  else
    for _, from in ipairs({"failed", "completed"}) do
      if (state == "" or state == from) and rcall("ZREM", setOf[from], jobId) == 1 then
        retry(jobId, from)
        result = from
        break
      end
    end
  end
  results[#results + 1] = result
end
return results
