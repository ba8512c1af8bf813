--[[
  promote_jobs: run delayed jobs now (BullMQ's promote, and promoteJobs).

  KEYS[1] delayed   KEYS[3] active        KEYS[5] pc       KEYS[7] events
  KEYS[2] wait      KEYS[4] prioritized   KEYS[6] marker   KEYS[8] meta

  ARGV[1] queue key prefix "P:Q:"
  ARGV[2] limit: "0" to promote the ids that follow; N > 0 to promote the N delayed jobs due first
  ARGV[3..] job ids

  Each job leaves `delayed`, gets `delay` = 0, and is queued as a new job would be (prioritized by its
  priority, else wait); the delayed marker is moved to the next delayed job. Event `waiting`
  {jobId, prev = "delayed"}.

  Returns, with ids: per id, 0 (promoted), -1 (no such job) or -3 (not delayed). With a limit: the ids
  promoted.
]]
local rcall = redis.call
local delayedKey, waitKey, activeKey, prioritizedKey = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local pcKey, markerKey, eventsKey, metaKey = KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local prefix, limit = ARGV[1], tonumber(ARGV[2])

--#include num
--#include queue_meta
--#include enqueue
--#include delayed

local maxLen, blocked = queueMeta(metaKey, activeKey)
local k = {wait = waitKey, prioritized = prioritizedKey, pc = pcKey, marker = markerKey}

local function promote(jobId)
  local jobKey = prefix .. jobId
  rcall("HSET", jobKey, "delay", "0")
  enqueueJob(k, jobKey, jobId, blocked)
  rcall("XADD", eventsKey, "MAXLEN", "~", num(maxLen), "*", "event", "waiting", "jobId", jobId, "prev", "delayed")
end

local function settleMarker()
  if rcall("ZCARD", delayedKey) == 0 then
    rcall("ZREM", markerKey, "1")
  else
    setDelayMarker(markerKey, delayedKey)
  end
end

if limit > 0 then
  local ids = rcall("ZRANGE", delayedKey, 0, limit - 1)
  for _, jobId in ipairs(ids) do
    rcall("ZREM", delayedKey, jobId)
    if rcall("EXISTS", prefix .. jobId) == 1 then
      promote(jobId)
    end
  end
  settleMarker()
  return ids
end

local results = {}
for i = 3, #ARGV do
  local jobId = ARGV[i]
  if rcall("EXISTS", prefix .. jobId) == 0 then
    results[#results + 1] = -1
  elseif rcall("ZREM", delayedKey, jobId) == 0 then
    results[#results + 1] = -3
  else
    promote(jobId)
    results[#results + 1] = 0
  end
end
settleMarker()
return results
