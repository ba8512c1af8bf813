--[[
  drain: remove the jobs that are waiting to run (BullMQ's drain), a bounded batch per call.

  KEYS[1] wait     KEYS[3] prioritized   KEYS[5] repeat
  KEYS[2] paused   KEYS[4] delayed       KEYS[6] pc

  ARGV[1] queue key prefix "P:Q:"
  ARGV[2] "1" to remove delayed jobs too, "0" not to
  ARGV[3] batch: the most jobs removed by this call

  Removes the jobs of wait, of a v5 paused list, of prioritized and (ARGV[2]) of delayed, in that
  order, except the iteration each job scheduler currently has scheduled, which keeps its place. Each
  job is detached from its parent as BullMQ's bulk removals do (a parent left without pending children
  is deleted if it is in this queue, re-queued if in another), gives up its dedup key if that still
  names it, and loses its keys. "pc" is deleted once prioritized is empty. No events (as BullMQ).
  Lists are taken from their right end (the next to run) and sets from their lowest score; a window of
  batch + (number of schedulers) entries always holds a batch of removable jobs when there are that many.

  Returns 1 when jobs may remain (call again), 0 when the drain is complete.
]]
local rcall = redis.call
local waitKey, pausedKey, prioritizedKey, delayedKey = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local repeatKey, pcKey = KEYS[5], KEYS[6]
local prefix = ARGV[1]
local budget = tonumber(ARGV[3])

--#include discard_job
--#include batched

local window = budget + rcall("ZCARD", repeatKey)

-- drainList(key): remove from the right end; scheduler iterations met are put back where they were.
-- Returns whether the whole list was seen.
local function drainList(key)
  local length = rcall("LLEN", key)
  local ids = rcall("LRANGE", key, num(-window), "-1")
  local kept = {}
  local i = #ids
  while i >= 1 and budget > 0 do
    local jobId = ids[i]
    if isSchedulerIteration(prefix .. jobId, jobId, repeatKey) then
      table.insert(kept, 1, jobId)
    else
      discardJob(prefix, jobId)
      budget = budget - 1
    end
    i = i - 1
  end
  local taken = #ids - i
  if taken > 0 then
    rcall("LTRIM", key, "0", num(-(taken + 1)))
    if #kept > 0 then
      rcall("RPUSH", key, unpack(kept))
    end
  end
  return i == 0 and #ids == length
end

-- drainSet(key): remove from the lowest score; scheduler iterations stay. Whether all was seen.
local function drainSet(key)
  local size = rcall("ZCARD", key)
  local ids = rcall("ZRANGE", key, "0", num(window - 1))
  local removed = {}
  local i = 0
  while i < #ids and budget > 0 do
    i = i + 1
    local jobId = ids[i]
    if not isSchedulerIteration(prefix .. jobId, jobId, repeatKey) then
      discardJob(prefix, jobId)
      removed[#removed + 1] = jobId
      budget = budget - 1
    end
  end
  inBatches("ZREM", key, removed)
  return i == #ids and #ids == size
end

local done = drainList(waitKey) and drainList(pausedKey)
if done then
  done = drainSet(prioritizedKey)
  if rcall("EXISTS", prioritizedKey) == 0 then
    rcall("DEL", pcKey)
  end
end
if done and ARGV[2] == "1" then
  done = drainSet(delayedKey)
end
if done then
  return 0
end
return 1
