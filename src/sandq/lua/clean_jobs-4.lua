--[[
  clean_jobs: remove the jobs of one state that are older than a cutoff (BullMQ's cleanJobsInSet), a
  bounded batch per call, resuming where the previous call stopped.

  KEYS[1] the state's key   KEYS[2] events   KEYS[3] repeat   KEYS[4] meta

  ARGV[1] queue key prefix "P:Q:"
  ARGV[2] state: completed, failed, waiting-children (sets read by score), delayed, prioritized (sets
          read in order), wait, paused, active (lists read from the right end, the oldest)
  ARGV[3] cutoff (ms): jobs at or before it are old enough (now - grace, fixed for the whole clean)
  ARGV[4] limit: the most jobs the whole clean removes (0 = no limit)
  ARGV[5] jobs removed by the previous calls of this clean
  ARGV[6] cursor: entries kept by the previous calls (delayed, prioritized, lists), from the start
  ARGV[7] batch: the most entries this call looks at

  A job is old enough by BullMQ's rules: completed, failed, waiting-children by their score (finishedOn;
  the time it started waiting); delayed by "processedOn", else "timestamp"; prioritized by "timestamp";
  wait, paused, active by "finishedOn", else "processedOn", else "timestamp"; a job without the field is
  old. Never removed: an active job that holds a lock, and (in delayed, prioritized and the lists) the
  iteration a job scheduler currently has scheduled. Removed jobs are detached from their parents as
  BullMQ's bulk removals do (see drain), give up their dedup keys if those still name them, and lose
  their keys; no `removed` events. When the clean is complete (nothing more to look at, or the limit
  reached), event `cleaned` {count = every job this clean removed} (MAXLEN ~ meta "opts.maxLenEvents").

  Returns {removed ids, next cursor}: the cursor to pass to the next call, or -1 when complete.
]]
local rcall = redis.call
local sourceKey, eventsKey, repeatKey, metaKey = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local prefix, state, cutoff = ARGV[1], ARGV[2], tonumber(ARGV[3])
local limit, removedBefore, cursor, batch = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]),
  tonumber(ARGV[7])

--#include discard_job
--#include batched

local wanted = batch
if limit > 0 then
  wanted = math.min(batch, limit - removedBefore)
end

-- isOld(jobKey, fields): whether the first of the fields that is set is at or before the cutoff.
local function isOld(jobKey, fields)
  for _, value in ipairs(rcall("HMGET", jobKey, unpack(fields))) do
    if value then
      local time = tonumber(value)
      return time == nil or time <= cutoff
    end
  end
  return true
end

-- cleanByScore(): every entry scored at or before the cutoff goes. Whether all old ones were seen.
local function cleanByScore()
  local ids = rcall("ZRANGEBYSCORE", sourceKey, "-inf", num(cutoff), "LIMIT", "0", num(wanted))
  local removed = {}
  for _, jobId in ipairs(ids) do
    discardJob(prefix, jobId)
    removed[#removed + 1] = jobId
  end
  inBatches("ZREM", sourceKey, removed)
  return removed, #ids < wanted
end

-- cleanInOrder(fields): look at the batch of entries after the cursor (lowest scores first).
local function cleanInOrder(fields)
  local ids = rcall("ZRANGE", sourceKey, num(cursor), num(cursor + batch - 1))
  local removed = {}
  local seen = 0
  for _, jobId in ipairs(ids) do
    if #removed >= wanted then
      break
    end
    seen = seen + 1
    local jobKey = prefix .. jobId
    if not isSchedulerIteration(jobKey, jobId, repeatKey) and isOld(jobKey, fields) then
      discardJob(prefix, jobId)
      removed[#removed + 1] = jobId
    end
  end
  cursor = cursor + seen - #removed
  inBatches("ZREM", sourceKey, removed)
  return removed, seen == #ids and #ids < batch
end

-- cleanList(): look at the batch of entries before the cursor, from the right end. Removed entries are
-- overwritten with a marker ("" is never a job id), then the markers are removed from the right.
local function cleanList()
  local ids = rcall("LRANGE", sourceKey, num(-(cursor + batch)), num(-(cursor + 1)))
  local removed = {}
  local seen = 0
  local stalledKey = prefix .. "stalled"
  for i = #ids, 1, -1 do
    if #removed >= wanted then
      break
    end
    seen = seen + 1
    local jobId = ids[i]
    local jobKey = prefix .. jobId
    if not (state == "active" and rcall("EXISTS", jobKey .. ":lock") == 1)
        and not isSchedulerIteration(jobKey, jobId, repeatKey)
        and isOld(jobKey, {"finishedOn", "processedOn", "timestamp"}) then
      rcall("LSET", sourceKey, num(-(cursor + seen)), "")
      discardJob(prefix, jobId)
      if state == "active" then
        rcall("SREM", stalledKey, jobId)
      end
      removed[#removed + 1] = jobId
    end
  end
  if #removed > 0 then
    rcall("LREM", sourceKey, num(-#removed), "")
  end
  cursor = cursor + seen - #removed
  return removed, seen == #ids and #ids < batch
end

local removed, complete = {}, true
if wanted > 0 then
  if state == "completed" or state == "failed" or state == "waiting-children" then
    removed, complete = cleanByScore()
  elseif state == "delayed" then
    removed, complete = cleanInOrder({"processedOn", "timestamp"})
  elseif state == "prioritized" then
    removed, complete = cleanInOrder({"timestamp"})
  elseif state == "wait" or state == "paused" or state == "active" then
    removed, complete = cleanList()
  else
    return redis.error_reply("ERR clean_jobs: unknown state " .. state)
  end
end
if limit > 0 and removedBefore + #removed >= limit then
  complete = true
end
if complete then
  rcall("XADD", eventsKey, "MAXLEN", "~", num(maxEvents(metaKey)), "*", "event", "cleaned",
    "count", num(removedBefore + #removed))
  return {removed, -1}
end
return {removed, cursor}
