--[[
  change_priority: give a job a new priority (BullMQ's changePriority).

  KEYS[1] wait     KEYS[3] prioritized   KEYS[5] marker   KEYS[7] paused (a v5 leftover)
  KEYS[2] active   KEYS[4] pc            KEYS[6] meta

  ARGV[1] queue key prefix "P:Q:"
  ARGV[2] job id
  ARGV[3] priority (0 = none, 1 = most urgent)
  ARGV[4] "1" to put the job ahead of the jobs of its new priority (lifo)

  HSET `priority`. A job waiting (in wait, a v5 paused list, or prioritized) is queued again under the
  new priority: priority 0 in wait (LPUSH, RPUSH with lifo); otherwise prioritized, after the jobs of
  that priority (ahead of them with lifo). A job in any other state keeps its place; the new priority
  applies when it is next queued. Returns 0, or -1 if the job does not exist.
]]
local rcall = redis.call
local waitKey, activeKey, prioritizedKey, pcKey = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local markerKey, metaKey, pausedKey = KEYS[5], KEYS[6], KEYS[7]
local prefix, jobId, priority, lifo = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4] == "1"
local jobKey = prefix .. jobId

--#include num
--#include queue_meta
--#include prioritized

if rcall("EXISTS", jobKey) == 0 then
  return -1
end
rcall("HSET", jobKey, "priority", num(priority))
local waiting = rcall("ZREM", prioritizedKey, jobId) + rcall("LREM", waitKey, "0", jobId)
  + rcall("LREM", pausedKey, "0", jobId) > 0
if not waiting then
  return 0
end
if priority == 0 then
  rcall(lifo and "RPUSH" or "LPUSH", waitKey, jobId)
elseif lifo then
  rcall("ZADD", prioritizedKey, num(priority * 4294967296), jobId)
else
  addPrioritized(prioritizedKey, pcKey, jobId, priority)
end
local _, blocked = queueMeta(metaKey, activeKey)
if not blocked then
  rcall("ZADD", markerKey, "0", "0")
end
return 0
