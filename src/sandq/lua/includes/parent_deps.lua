-- restoreDependency(jobKey, fromState): a child job that runs again is again a pending dependency of its
-- parent (if it has one that still exists): moved from the parent's `processed` hash (fromState
-- "completed") or its `failed` hash / `unsuccessful` set ("failed") back to `dependencies`.
local function restoreDependency(jobKey, fromState)
  local parentKey = redis.call("HGET", jobKey, "parentKey")
  if not parentKey or redis.call("EXISTS", parentKey) == 0 then
    return
  end
  local moved
  if fromState == "failed" then
    moved = redis.call("ZREM", parentKey .. ":unsuccessful", jobKey) + redis.call("HDEL", parentKey .. ":failed", jobKey)
  else
    moved = redis.call("HDEL", parentKey .. ":processed", jobKey)
  end
  if moved > 0 then
    redis.call("SADD", parentKey .. ":dependencies", jobKey)
  end
end
