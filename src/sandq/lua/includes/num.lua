-- num(n): a Lua number as an exact decimal string. Redis 7.2+ may render numbers passed straight to
-- commands in shortest form ("3e+08"), which BullMQ clients cannot parse; integers go out as digits.
local function num(n)
  if n == math.floor(n) and math.abs(n) < 9007199254740992 then
    return string.format("%d", n)
  end
  return string.format("%.17g", n)
end
