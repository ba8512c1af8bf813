--#include num
--#include max_events
--#include prioritized
--#include job_keys
--#include drop_dedup
-- A flow child's link to its parent. The child names the parent by its full key "parentKey" (and by
-- {id, queueKey} in its "parent" JSON); while pending it is listed, by its own full key, in the parent's
-- ":dependencies" set, and the parent waits in its own queue's waiting-children set. Every key of the
-- parent's queue is built from the parent's prefix, which may belong to another queue.

-- splitJobKey(jobKey): the queue key prefix "P:Q:" and the id of a full job key (split at the last
-- ':'), or nil when the key has no ':'.
local function splitJobKey(jobKey)
  local jobId = string.match(jobKey, ".*:(.*)")
  if not jobId or jobId == "" then
    return nil
  end
  return string.sub(jobKey, 1, #jobKey - #jobId), jobId
end

-- parentOf(jobKey): the parent's full key, queue prefix and id; nil when the job has no parent. The
-- "parent" JSON splits the key exactly (ids may hold ':'); the last ':' of "parentKey" otherwise.
local function parentOf(jobKey)
  local fields = redis.call("HMGET", jobKey, "parentKey", "parent")
  local parentKey = fields[1]
  if fields[2] then
    local ok, link = pcall(cjson.decode, fields[2])
    if ok and type(link) == "table" and type(link.queueKey) == "string" and link.id ~= nil then
      local prefix, parentId = link.queueKey .. ":", tostring(link.id)
      if not parentKey or parentKey == "" or parentKey == prefix .. parentId then
        return prefix .. parentId, prefix, parentId
      end
    end
  end
  if not parentKey or parentKey == "" then
    return nil
  end
  local prefix, parentId = splitJobKey(parentKey)
  if not prefix then
    return nil
  end
  return parentKey, prefix, parentId
end

-- requeueParent(prefix, parentId, announce): a parent whose last pending child went away runs next: to
-- the front of its queue's wait (RPUSH), or to prioritized under its priority; marker "0" unless that
-- queue is paused or at its global concurrency; event `waiting` prev `waiting-children` if announce.
local function requeueParent(prefix, parentId, announce)
  local meta = redis.call("HMGET", prefix .. "meta", "paused", "concurrency")
  local blocked = meta[1] ~= false
  if not blocked and tonumber(meta[2]) then
    blocked = redis.call("LLEN", prefix .. "active") >= tonumber(meta[2])
  end
  local priority = tonumber(redis.call("HGET", prefix .. parentId, "priority")) or 0
  if priority > 0 then
    addPrioritized(prefix .. "prioritized", prefix .. "pc", parentId, priority)
  else
    redis.call("RPUSH", prefix .. "wait", parentId)
  end
  if not blocked then
    redis.call("ZADD", prefix .. "marker", "0", "0")
  end
  if announce then
    redis.call("XADD", prefix .. "events", "MAXLEN", "~", num(maxEvents(prefix .. "meta")), "*",
      "event", "waiting", "jobId", parentId, "prev", "waiting-children")
  end
end

-- detachFromParent(jobKey, hard, basePrefix): take a job that is going away off its parent's pending
-- dependencies. When it was the last one and the parent is in waiting-children, the parent leaves that
-- set: it is re-queued with event `waiting` (hard = false, a user's removal); or, when the removal is a
-- bulk one (hard = true: drain, clean, obliterate of the queue basePrefix), a parent in that same queue
-- is deleted as well (and so on upwards), and a parent in another queue is re-queued without event.
local function detachFromParent(jobKey, hard, basePrefix)
  local parentKey, prefix, parentId = parentOf(jobKey)
  if not parentKey or redis.call("EXISTS", parentKey) == 0 then
    return
  end
  local dependencies = parentKey .. ":dependencies"
  if redis.call("SREM", dependencies, jobKey) == 0 or redis.call("SCARD", dependencies) > 0 then
    return
  end
  if redis.call("ZREM", prefix .. "waiting-children", parentId) == 0 then
    return
  end
  if hard and prefix == basePrefix then
    detachFromParent(parentKey, true, basePrefix)
    dropDedup(prefix, parentKey, parentId)
    removeJobKeys(parentKey)
  else
    requeueParent(prefix, parentId, not hard)
  end
end
