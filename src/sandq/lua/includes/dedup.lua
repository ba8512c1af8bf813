-- releaseDedup(prefix, jobKey, jobId): a finished job gives up its deduplication slot
-- "<prefix>de:<deid>" when the key still names it and has no TTL (a TTL key is a throttle: it lives on).
local function releaseDedup(prefix, jobKey, jobId)
  local deid = redis.call("HGET", jobKey, "deid")
  if deid then
    local dedupKey = prefix .. "de:" .. deid
    if redis.call("GET", dedupKey) == jobId and redis.call("PTTL", dedupKey) == -1 then
      redis.call("DEL", dedupKey)
    end
  end
end
