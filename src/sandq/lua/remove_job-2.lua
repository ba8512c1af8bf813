--[[
  remove_job: remove one job, and optionally its children, from whatever state it is in (BullMQ's
  removeJob).

  KEYS[1] job   KEYS[2] repeat

  ARGV[1] queue key prefix "P:Q:"
  ARGV[2] job id
  ARGV[3] "1" to remove the job's children too (recursively, in whatever queue they are), "0" not to

  Refusals, checked before anything is written: the job does not exist (-1); it is the iteration its
  job scheduler currently has scheduled (-8); it holds a lock, or (with children) a descendant does
  (-6, naming that job).
  Otherwise the job is detached from its parent: it leaves the parent's ":dependencies", and if it was
  the last one there, the parent (in its own queue's keys) leaves waiting-children for the front of
  wait (or prioritized, under its priority), marker "0" unless that queue is paused or maxed, event
  `waiting` {jobId, prev waiting-children} in the parent's queue. With children, each child listed in
  ":processed", ":failed", ":unsuccessful" and ":dependencies" is removed the same way first (not
  re-queueing the parent that is going away). Each removed job leaves its state (completed,
  waiting-children, delayed, failed, prioritized, wait, a v5 paused list, active), gives up its dedup
  key if that still names it, loses its hash, logs, lock, dependencies, processed, failed and
  unsuccessful keys, and its queue gets event `removed` {jobId, prev = the state, as BullMQ names it:
  "wait", "paused", "active", ..., "unknown"} (MAXLEN ~ meta "opts.maxLenEvents").

  Returns {1, prev state of the job} when removed, else {code, id of the job refused}.
]]
local rcall = redis.call
local jobKey, repeatKey = KEYS[1], KEYS[2]
local prefix, jobId, withChildren = ARGV[1], ARGV[2], ARGV[3] == "1"

--#include discard_job

-- childKeysOf(key): the full keys of a job's children: finished (":processed", ":failed",
-- ":unsuccessful") and pending (":dependencies").
local function childKeysOf(key)
  local children = rcall("HKEYS", key .. ":processed")
  for _, list in ipairs({
    rcall("HKEYS", key .. ":failed"),
    rcall("ZRANGE", key .. ":unsuccessful", "0", "-1"),
    rcall("SMEMBERS", key .. ":dependencies"),
  }) do
    for _, childKey in ipairs(list) do
      children[#children + 1] = childKey
    end
  end
  return children
end

-- lockedJob(jobPrefix, id, seen): the id of the first locked job among those the removal would delete
-- (the job, and with children every descendant), or nil.
local function lockedJob(jobPrefix, id, seen)
  local key = jobPrefix .. id
  if seen[key] then
    return nil
  end
  seen[key] = true
  if rcall("EXISTS", key .. ":lock") == 1 then
    return id
  end
  if withChildren then
    for _, childKey in ipairs(childKeysOf(key)) do
      local childPrefix, childId = splitJobKey(childKey)
      if childPrefix then
        local locked = lockedJob(childPrefix, childId, seen)
        if locked then
          return locked
        end
      end
    end
  end
  return nil
end

-- leaveState(jobPrefix, id): take the job out of the list or set that holds it; the state's name.
local function leaveState(jobPrefix, id)
  for _, state in ipairs({"completed", "waiting-children", "delayed", "failed", "prioritized"}) do
    if rcall("ZREM", jobPrefix .. state, id) == 1 then
      return state
    end
  end
  for _, state in ipairs({"wait", "paused", "active"}) do
    if rcall("LREM", jobPrefix .. state, "1", id) == 1 then
      if state == "active" then
        rcall("SREM", jobPrefix .. "stalled", id)
      end
      return state
    end
  end
  return "unknown"
end

-- removeTree(jobPrefix, id, seen): remove the job (after its children, when asked); its old state.
local function removeTree(jobPrefix, id, seen)
  local key = jobPrefix .. id
  seen[key] = true
  if withChildren then
    for _, childKey in ipairs(childKeysOf(key)) do
      local childPrefix, childId = splitJobKey(childKey)
      if childPrefix and not seen[childKey] and rcall("EXISTS", childKey) == 1 then
        removeTree(childPrefix, childId, seen)
      end
    end
  end
  local prev = leaveState(jobPrefix, id)
  dropDedup(jobPrefix, key, id)
  removeJobKeys(key)
  rcall("DEL", key .. ":lock")
  rcall("XADD", jobPrefix .. "events", "MAXLEN", "~", num(maxEvents(jobPrefix .. "meta")), "*",
    "event", "removed", "jobId", id, "prev", prev)
  return prev
end

if rcall("EXISTS", jobKey) == 0 then
  return {-1, jobId}
end
if isSchedulerIteration(jobKey, jobId, repeatKey) then
  return {-8, jobId}
end
local locked = lockedJob(prefix, jobId, {})
if locked then
  return {-6, locked}
end
detachFromParent(jobKey, false, prefix)
return {1, removeTree(prefix, jobId, {})}
