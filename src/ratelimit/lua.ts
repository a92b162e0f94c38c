/**
 * One atomic rate-limit decision, run inside Redis. It mirrors `step()` in algorithm.ts line by
 * line; read the two side by side when changing either.
 *
 *   KEYS[1]  the client's hash: w = window index, c = admitted in it, p = admitted in the one before
 *   ARGV[1]  window length (ms)
 *   ARGV[2]  max requests per window
 *   ARGV[3]  '1' for sliding-window, '0' for fixed-window
 *
 * Returns { allowed (1 or 0), current, ttl (ms) }, integers only: a Lua number becomes a Redis
 * integer by truncation, so every rounding is done here with math.ceil / math.floor.
 */
export const LIMIT_LUA = `
local key = KEYS[1]
local windowMs = tonumber(ARGV[1])
local max = tonumber(ARGV[2])
local sliding = ARGV[3] == '1'

-- the server's clock, so every gateway instance counts against the same windows
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local idx = math.floor(now / windowMs)

-- missing fields come back as false, which tonumber turns into nil
local state = redis.call('HMGET', key, 'w', 'c', 'p')
local window = tonumber(state[1]) or idx
local count = tonumber(state[2]) or 0
local previous = tonumber(state[3]) or 0

-- roll: the count of the window just before becomes previous; anything older is forgotten
if window ~= idx then
  if window == idx - 1 then previous = count else previous = 0 end
  count = 0
end

local elapsed = now - idx * windowMs
local remaining = windowMs - elapsed
-- estimate x windowMs, where estimate = previous * (windowMs - elapsed) / windowMs + count
local scaled = count * windowMs
if sliding then scaled = previous * remaining + scaled end
-- (estimate + 1 - max) x windowMs: positive when this request would exceed the budget
local overshoot = scaled + windowMs - max * windowMs

if overshoot > 0 then
  -- denied, and not counted: nothing is written
  local ttl = remaining
  if sliding and max >= 1 then
    if count <= max - 1 then
      -- the previous window's weight decays enough within this window (previous > 0 here)
      ttl = math.ceil(overshoot / previous)
    else
      -- wait into the next window, where previous' = count and count' = 0
      ttl = remaining + math.ceil(windowMs * (count - max + 1) / count)
    end
  end
  if ttl < 1 then ttl = 1 end
  return { 0, max + 1, ttl }
end

redis.call('HSET', key, 'w', idx, 'c', count + 1, 'p', previous)
-- keep the hash only while it can matter: to the end of this window (fixed) or of the next (sliding)
if sliding then
  redis.call('PEXPIRE', key, remaining + windowMs)
else
  redis.call('PEXPIRE', key, remaining)
end

local current = math.ceil((scaled + windowMs) / windowMs)
if current > max then current = max end
return { 1, current, remaining }
`
