--[[
  obliterate: delete a paused queue and everything in it (BullMQ's obliterate), a bounded batch per call.

  KEYS[1] meta     KEYS[4] paused (v5)   KEYS[7] waiting-children   KEYS[10] repeat
  KEYS[2] active   KEYS[5] prioritized   KEYS[8] completed          KEYS[11] sandq:cancels
  KEYS[3] wait     KEYS[6] delayed       KEYS[9] failed

  ARGV[1] queue key prefix "P:Q:"
  ARGV[2] "1" to go ahead even when jobs are active (force), "0" not to
  ARGV[3] batch: the most jobs (and scheduler hashes) deleted by this call

  Refusals: the queue is not paused (-12: pause it first, so that nothing is fetched meanwhile); jobs
  are active and not force (-13).
  Deletes, in this order and batch by batch: the active jobs (and their locks), the delayed jobs, the job
  schedulers (the "repeat:<id>" hashes and the repeat set), then the jobs of completed, wait, a v5 paused
  list, prioritized, failed and waiting-children. Each job is detached from its parent as BullMQ's bulk
  removals do (see drain), gives up its dedup key if that still names it, and loses its keys. Once
  nothing is left: the events stream, stalled, stalled-check, id, pc, marker, limiter, the metrics keys,
  a legacy "delay" key, sandq:cancels and finally meta are deleted.

  Returns 1 when there is more to delete (call again), 0 when the queue is gone, or a refusal code.
]]
local rcall = redis.call
local metaKey, activeKey, waitKey, pausedKey = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local prioritizedKey, delayedKey, waitingChildrenKey = KEYS[5], KEYS[6], KEYS[7]
local completedKey, failedKey, repeatKey, cancelsKey = KEYS[8], KEYS[9], KEYS[10], KEYS[11]
local prefix, force = ARGV[1], ARGV[2] == "1"
local budget = tonumber(ARGV[3])

--#include discard_job
--#include batched

if rcall("HEXISTS", metaKey, "paused") == 0 then
  return -12
end
if not force and rcall("LLEN", activeKey) > 0 then
  return -13
end

-- Each step deletes up to `budget` entries from the start of its key; false once the budget is spent.
local function fromList(key, dropLocks)
  local ids = rcall("LRANGE", key, "0", num(budget - 1))
  for _, jobId in ipairs(ids) do
    if dropLocks then
      rcall("DEL", prefix .. jobId .. ":lock")
    end
    discardJob(prefix, jobId)
  end
  if #ids > 0 then
    rcall("LTRIM", key, num(#ids), "-1")
  end
  budget = budget - #ids
  return budget > 0
end

local function fromSet(key)
  local ids = rcall("ZRANGE", key, "0", num(budget - 1))
  for _, jobId in ipairs(ids) do
    discardJob(prefix, jobId)
  end
  inBatches("ZREM", key, ids)
  budget = budget - #ids
  return budget > 0
end

local function schedulers()
  local ids = rcall("ZRANGE", repeatKey, "0", num(budget - 1))
  for _, schedulerId in ipairs(ids) do
    rcall("DEL", repeatKey .. ":" .. schedulerId)
  end
  inBatches("ZREM", repeatKey, ids)
  budget = budget - #ids
  return budget > 0
end

local finished = fromList(activeKey, true) and fromSet(delayedKey) and schedulers()
  and fromSet(completedKey) and fromList(waitKey, false) and fromList(pausedKey, false)
  and fromSet(prioritizedKey) and fromSet(failedKey) and fromSet(waitingChildrenKey)
if not finished then
  return 1
end
rcall("DEL", prefix .. "events", prefix .. "stalled", prefix .. "stalled-check", prefix .. "id",
  prefix .. "pc", prefix .. "marker", prefix .. "limiter", prefix .. "metrics:completed",
  prefix .. "metrics:completed:data", prefix .. "metrics:failed", prefix .. "metrics:failed:data",
  prefix .. "delay", cancelsKey, metaKey)
return 0
