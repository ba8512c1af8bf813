--#include parent_link
-- Removing jobs in bulk (drain, clean, obliterate): no `removed` events, as BullMQ's bulk removals.

-- isSchedulerIteration(jobKey, jobId, repeatKey): whether the job is the iteration its job scheduler
-- ("rjk") currently has scheduled, i.e. its id is "repeat:<scheduler id>:<score in repeat>".
local function isSchedulerIteration(jobKey, jobId, repeatKey)
  local scheduler = redis.call("HGET", jobKey, "rjk")
  if not scheduler then
    return false
  end
  local millis = redis.call("ZSCORE", repeatKey, scheduler)
  return millis ~= false and jobId == "repeat:" .. scheduler .. ":" .. millis
end

-- discardJob(prefix, jobId): delete a job of the queue `prefix` that the caller takes out of its list
-- or set: detach it from its parent (hard: see detachFromParent), give up its dedup slot, delete its
-- keys and its lock.
local function discardJob(prefix, jobId)
  local jobKey = prefix .. jobId
  detachFromParent(jobKey, true, prefix)
  dropDedup(prefix, jobKey, jobId)
  removeJobKeys(jobKey)
  redis.call("DEL", jobKey .. ":lock")
end
