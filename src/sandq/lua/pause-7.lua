--[[
  pause: pause or resume a queue, with BullMQ v6 semantics.

  KEYS[1] meta   KEYS[2] wait   KEYS[3] paused (v5 leftover)   KEYS[4] prioritized
  KEYS[5] delayed   KEYS[6] marker   KEYS[7] events
  ARGV[1] "paused" or "resumed"
  ARGV[2] "1" to emit the `paused` / `resumed` event, "0" not to (for follow-up resume calls)

  Pausing sets meta "paused" and deletes the marker, so idle workers stop fetching; jobs stay in wait.
  Resuming deletes the flag, moves a v5 `paused` list back into wait (all of it with RENAME when wait
  is empty, else its 5000 newest jobs per call, keeping its oldest jobs first in line), and restores
  marker "0" when jobs are ready, or marker "1" for the next delayed job.

  Returns how many v5 paused jobs are still to move (call again with ARGV[2] = "0" until 0).
]]
local rcall = redis.call
local metaKey, waitKey, pausedKey, prioritizedKey = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local delayedKey, markerKey, eventsKey = KEYS[5], KEYS[6], KEYS[7]

--#include max_events
--#include delayed

local remaining = 0
if ARGV[1] == "paused" then
  rcall("HSET", metaKey, "paused", 1)
  rcall("DEL", markerKey)
else
  rcall("HDEL", metaKey, "paused")
  if rcall("EXISTS", pausedKey) == 1 then
    if rcall("EXISTS", waitKey) == 0 then
      rcall("RENAME", pausedKey, waitKey)
    else
      -- The paused list's right end holds its oldest jobs; consumers pop wait from the right. Taking
      -- the newest chunk first and RPUSHing each chunk keeps the oldest paused jobs nearest the right.
      local chunk = rcall("LRANGE", pausedKey, 0, 4999)
      rcall("RPUSH", waitKey, unpack(chunk))
      rcall("LTRIM", pausedKey, #chunk, -1)
      remaining = rcall("LLEN", pausedKey)
    end
  end
  if rcall("LLEN", waitKey) + rcall("ZCARD", prioritizedKey) > 0 then
    rcall("ZADD", markerKey, 0, "0")
  else
    setDelayMarker(markerKey, delayedKey)
  end
end
if ARGV[2] == "1" then
  rcall("XADD", eventsKey, "MAXLEN", "~", maxEvents(metaKey), "*", "event", ARGV[1])
end
return remaining
