-- One Centrapay credential's token bucket, shared by every worker on every host.
--
-- Reservations take tokens in advance, so the count may go negative: -n means n calls are
-- already promised, one every 1/rate seconds, so concurrent callers that sleep the wait
-- they are given reach the API exactly at the configured rate. A pause (a 429's
-- Retry-After) is the same debt: it pushes the count down to -rate * pause, so the bucket
-- is empty when the pause ends and refills at the steady rate from there.
--
-- KEYS[1]  the bucket, one hash: `tokens`, a decimal string (Redis truncates a Lua float it
--          is handed as a number), and `ts`, the Redis clock in microseconds at the last update
-- ARGV[1]  rate, tokens per second (may be fractional)
-- ARGV[2]  burst, the most tokens the bucket holds
-- ARGV[3]  'reserve', 'pause' or 'peek' (peek writes nothing)
-- ARGV[4]  reserve: the longest wait the caller accepts, ms; pause: its length, ms; peek: 0
--
-- Returns {granted (1 or 0), wait in ms as a decimal string}: for a granted reservation the
-- wait before the call, otherwise the wait until a token could be had, nothing taken.

local key = KEYS[1]
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local op = ARGV[3]
local amount = tonumber(ARGV[4]) / 1000

-- The clock is Redis's, so hosts whose clocks disagree still share one schedule.
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])

local state = redis.call('HMGET', key, 'tokens', 'ts')
local tokens = tonumber(state[1]) or burst
local ts = tonumber(state[2]) or now

-- After a failover to a host whose clock lags, `ts` lies in the future; a negative elapsed
-- time would drain the bucket, so it counts as none.
local elapsed = math.max(0, now - ts) / 1000000
tokens = math.min(burst, tokens + elapsed * rate)

local function wait_for_token()
  return math.max(0, (1 - tokens) / rate)
end

local function ms(seconds)
  return string.format('%.3f', seconds * 1000)
end

local wait = wait_for_token()
if op == 'peek' then
  return {0, ms(wait)}
end

local granted = 0
if op == 'reserve' then
  if wait <= amount then
    tokens = tokens - 1
    granted = 1
  end
elseif op == 'pause' then
  -- min(): a shorter pause never shortens a longer one, and any burst left is dropped.
  tokens = math.min(tokens, -amount * rate)
  wait = wait_for_token()
else
  return redis.error_reply('unknown op ' .. tostring(op))
end

redis.call('HSET', key, 'tokens', string.format('%.17g', tokens), 'ts', string.format('%.17g', now))
-- A missing key reads as a full bucket, so keep it for twice the time to fill from empty
-- plus any debt: promised calls and pauses are never forgotten early.
local refill_seconds = (burst - math.min(tokens, 0)) / rate
redis.call('PEXPIRE', key, math.ceil(2 * refill_seconds * 1000))

return {granted, ms(wait)}
