-- inBatches(command, key, items): `command key item...` for every item, 5000 per call (Lua's unpack
-- and Redis's argument handling both stay far from their limits). For ZREM, SREM, LPUSH, RPUSH, ...
local function inBatches(command, key, items)
  for from = 1, #items, 5000 do
    redis.call(command, key, unpack(items, from, math.min(from + 4999, #items)))
  end
end
