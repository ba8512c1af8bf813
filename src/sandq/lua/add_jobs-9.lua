--[[
  add_jobs: add a batch of jobs (one or many) atomically, each as a standard (FIFO or LIFO), delayed
  or prioritized job, with an automatic or a custom id.

  KEYS[1] wait          KEYS[4] delayed       KEYS[7] active
  KEYS[2] meta          KEYS[5] prioritized   KEYS[8] events
  KEYS[3] id            KEYS[6] pc            KEYS[9] marker

  ARGV[1] queue key prefix "P:Q:"
  ARGV[2] msgpack array of jobs, each {customId or "", name, timestamp, delay, priority, lifo (0/1),
          data JSON, opts JSON}; timestamp, delay and priority as decimal strings

  Every job takes a value of the id counter, even with a custom id. A custom id whose hash exists is
  a duplicate: nothing is written for it, `duplicated` is emitted, and its entry in the reply carries
  the existing hash. Otherwise the hash is stored and `added` emitted, then:
    delay > 0     ZADD delayed (fireAt = timestamp + delay), event `delayed` (delay = fireAt)
    priority > 0  ZADD prioritized, event `waiting`
    otherwise     LPUSH wait (RPUSH when lifo), event `waiting`
  Jobs stay in wait while the queue is paused (v6); the marker is then withheld. Marker "0" is written
  when a job became ready and the queue is neither paused nor maxed; marker "1" after delayed jobs.

  Returns one entry per job, in order: the new job's id, or {id, flat HGETALL} for a duplicate.
]]
local rcall = redis.call
local waitKey, metaKey, idKey = KEYS[1], KEYS[2], KEYS[3]
local delayedKey, prioritizedKey, pcKey = KEYS[4], KEYS[5], KEYS[6]
local activeKey, eventsKey, markerKey = KEYS[7], KEYS[8], KEYS[9]
local prefix = ARGV[1]
local jobs = cmsgpack.unpack(ARGV[2])

--#include num
--#include queue_meta
--#include delayed
--#include prioritized
--#include batched

local maxLen, blocked = queueMeta(metaKey, activeKey)
local ready = false
local delayed = false
local results = {}
local fifo, lifo = {}, {}

-- One INCRBY for the batch: job i takes the i-th value, as if each job had INCRed.
local counter = rcall("INCRBY", idKey, #jobs) - #jobs

for i, job in ipairs(jobs) do
  local customId, name, timestamp, delay, priority = job[1], job[2], job[3], job[4], job[5]
  local jobId = customId
  if jobId == "" then
    jobId = num(counter + i)
  end
  local jobKey = prefix .. jobId
  if customId ~= "" and rcall("EXISTS", jobKey) == 1 then
    rcall("XADD", eventsKey, "*", "event", "duplicated", "jobId", jobId)
    results[i] = {jobId, rcall("HGETALL", jobKey)}
  else
    rcall("HSET", jobKey, "name", name, "data", job[7], "opts", job[8], "timestamp", timestamp,
      "delay", delay, "priority", priority)
    rcall("XADD", eventsKey, "*", "event", "added", "jobId", jobId, "name", name)
    if delay ~= "0" then
      local fireAt = tonumber(timestamp) + tonumber(delay)
      addDelayed(delayedKey, jobId, fireAt)
      rcall("XADD", eventsKey, "*", "event", "delayed", "jobId", jobId, "delay", num(fireAt))
      delayed = true
    else
      if priority ~= "0" then
        addPrioritized(prioritizedKey, pcKey, jobId, tonumber(priority))
      elseif job[6] == 1 then
        lifo[#lifo + 1] = jobId
      else
        fifo[#fifo + 1] = jobId
      end
      rcall("XADD", eventsKey, "*", "event", "waiting", "jobId", jobId)
      ready = true
    end
    results[i] = jobId
  end
end

-- LPUSH touches only the left end of wait and RPUSH only the right, so pushing each kind in one
-- call per chunk gives the same list as pushing job by job.
inBatches("LPUSH", waitKey, fifo)
inBatches("RPUSH", waitKey, lifo)
-- One approximate trim for the batch (whole stream nodes only, so it is cheap).
rcall("XTRIM", eventsKey, "MAXLEN", "~", maxLen)
if ready and not blocked then
  rcall("ZADD", markerKey, 0, "0")
end
if delayed then
  setDelayMarker(markerKey, delayedKey)
end
return results
