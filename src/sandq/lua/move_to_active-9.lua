--[[
  move_to_active: fetch up to N jobs for a worker in one call (BullMQ's moveToActive, batched).

  KEYS[1] wait          KEYS[4] pc            KEYS[7] meta
  KEYS[2] active        KEYS[5] delayed       KEYS[8] marker
  KEYS[3] prioritized   KEYS[6] limiter       KEYS[9] events

  ARGV[1] queue key prefix "P:Q:"
  ARGV[2] now (ms)
  ARGV[3] lock duration (ms)
  ARGV[4] worker name ("" = none; written to the job's "pb")
  ARGV[5] msgpack array of N lock tokens: job i gets token i ("0" or "" = take no lock)
  ARGV[6] worker rate limiter max jobs ("0" = none; meta "max" wins when set)
  ARGV[7] worker rate limiter duration (ms; wins over meta "duration")

  Due delayed jobs are promoted first (event `waiting` prev `delayed`). Nothing is fetched while the
  rate limit is reached, the queue is paused, or the global concurrency is reached. Each job is taken
  from wait (right end), else from prioritized (lowest score); its lock is SET with PX, "processedOn"
  (and "pb") written, "ats" incremented, event `active` prev `waiting`. After any fetch marker "0"
  is re-added, so that other idle workers wake up and look too.

  Returns {jobs, rateLimitTtl, nextDelayed}: jobs a list of {id, token, flat HGETALL}; rateLimitTtl the
  limiter's PTTL (ms) when the limit is reached, else 0; nextDelayed the fire time (ms) of the earliest
  delayed job, else 0 (also 0 when paused or at the global concurrency).
]]
local rcall = redis.call
local k = {
  wait = KEYS[1], active = KEYS[2], prioritized = KEYS[3], pc = KEYS[4], delayed = KEYS[5],
  limiter = KEYS[6], meta = KEYS[7], marker = KEYS[8], events = KEYS[9],
}
local prefix, now = ARGV[1], tonumber(ARGV[2])
local spec = {
  lockDuration = tonumber(ARGV[3]),
  workerName = ARGV[4],
  tokens = cmsgpack.unpack(ARGV[5]),
  limiterMax = tonumber(ARGV[6]) or 0,
  limiterDuration = tonumber(ARGV[7]) or 0,
}

--#include num
--#include worker_meta
--#include fetch

local meta = workerMeta(k.meta)
local result = fetchJobs(k, prefix, now, meta, spec)
rcall("XTRIM", k.events, "MAXLEN", "~", num(meta.maxLen))
return result
