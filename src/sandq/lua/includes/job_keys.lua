-- removeJobKeys(jobKey): delete a job's hash and the keys that hang off it (BullMQ's delete set). The
-- ":lock" key is left to expire by itself, as BullMQ does.
local function removeJobKeys(jobKey)
  redis.call("DEL", jobKey, jobKey .. ":logs", jobKey .. ":dependencies", jobKey .. ":processed",
    jobKey .. ":failed", jobKey .. ":unsuccessful")
end
