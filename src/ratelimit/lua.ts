/**
 * Rate-limit decisions for a turn's worth of requests, run atomically inside Redis. For each key it
 * is `step()` in algorithm.ts applied `hits` times at one instant: the first hits are admitted while
 * the budget lasts, the rest refused (and not counted). Read the two side by side when changing either.
 *
 *   KEYS[i]       a client's hash: w = window index, c = admitted in it, p = admitted in the one before
 *   ARGV[1]       '1' for sliding-window, '0' for fixed-window
 *   ARGV[3i - 1]  KEYS[i]'s window length (ms)
 *   ARGV[3i]      KEYS[i]'s max requests per window
 *   ARGV[3i + 1]  how many requests for KEYS[i] to decide (≥ 1)
 *
 * Returns four integers per key, in order: admitted (how many of the hits, the first ones),
 * base (the estimate before them, rounded up: the j-th admitted hit's count is base + j, capped
 * at max), remaining (ms to the window's end, the admitted hits' ttl), and the refused hits' ttl (ms;
 * 0 when none is refused). A Lua number becomes a Redis integer by truncation, so every rounding is
 * done here with math.ceil / math.floor.
 */
export const LIMIT_LUA = `
local sliding = ARGV[1] == '1'

-- the server's clock, so every gateway instance counts against the same windows
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local out = {}

for i, key in ipairs(KEYS) do
  local windowMs = tonumber(ARGV[3 * i - 1])
  local max = tonumber(ARGV[3 * i])
  local hits = tonumber(ARGV[3 * i + 1])
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

  -- the j-th hit is admitted while scaled + j x windowMs <= max x windowMs (step()'s overshoot <= 0);
  -- the quotient is checked against the integers on both sides, so a rounded division cannot admit one too many
  local room = max * windowMs - scaled
  local admitted = 0
  if room >= windowMs then
    admitted = math.floor(room / windowMs)
    if admitted * windowMs > room then admitted = admitted - 1 end
    if (admitted + 1) * windowMs <= room then admitted = admitted + 1 end
    if admitted > hits then admitted = hits end
  end

  local ttl = 0
  if admitted < hits then
    -- the refusals: step()'s ttl once the admitted hits are counted
    local counted = count + admitted
    local overshoot = scaled + (admitted + 1 - max) * windowMs
    ttl = remaining
    if sliding and max >= 1 then
      if counted <= max - 1 then
        -- the previous window's weight decays enough within this window (previous > 0 here)
        ttl = math.ceil(overshoot / previous)
      else
        -- wait into the next window, where previous' = counted and count' = 0
        ttl = remaining + math.ceil(windowMs * (counted - max + 1) / counted)
      end
    end
    if ttl < 1 then ttl = 1 end
  end

  if admitted > 0 then
    redis.call('HSET', key, 'w', idx, 'c', count + admitted, 'p', previous)
    -- keep the hash only while it can matter: to the end of this window (fixed) or of the next (sliding)
    if sliding then
      redis.call('PEXPIRE', key, remaining + windowMs)
    else
      redis.call('PEXPIRE', key, remaining)
    end
  end

  out[#out + 1] = admitted
  out[#out + 1] = math.ceil(scaled / windowMs)
  out[#out + 1] = remaining
  out[#out + 1] = ttl
end
return out
`
