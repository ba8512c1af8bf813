-- dropDedup(prefix, jobKey, jobId): a removed job gives up its deduplication slot "<prefix>de:<deid>",
-- whatever its TTL, but only while the key still names this job; the pending "<prefix>dn:<deid>"
-- payload (keepLastIfActive) goes with it.
local function dropDedup(prefix, jobKey, jobId)
  local deid = redis.call("HGET", jobKey, "deid")
  if deid and redis.call("GET", prefix .. "de:" .. deid) == jobId then
    redis.call("DEL", prefix .. "de:" .. deid, prefix .. "dn:" .. deid)
  end
end
