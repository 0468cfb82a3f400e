/**
 * Lua scripts of the Redis token store. Each touches one slot (`CONSUME_MANY` as the store calls it
 * on Cluster), so each runs on Redis Cluster whatever slot its keys hash to: a token's hash alone,
 * or an identity's index and generation (both tagged `{<identityId>}`).
 *
 * Token hash fields (short names keep small records in Redis's compact listpack encoding):
 * `i` identityId, `c` createdAt, `e` expiresAt, `m` maxExpiresAt, `t` ttlSeconds, `l` usesLimit,
 * `u` usesCount, `r` revoked (`0`/`1`), `ip` trustedIps (JSON), `md` metadata (JSON), `is` issuer,
 * `sb` subject, `g` generation (absent = 0), `cl` revocable claim values (JSON) and `ce` claim epoch
 * (absent: none, 0; see `revoke-where.ts`). Times are epoch ms.
 *
 * On a single server, `CONSUME_MANY` and `EXTEND` also read the identity's generation key
 * (`<prefix>g:{<identityId>}`, built from the prefix they are given and the hash's `i`), which Redis
 * allows outside Cluster; on Cluster they are told (a `'0'` flag argument, separate from the prefix,
 * which may be empty) to skip it (see `RedisTokenStore`).
 *
 * `INDEX` and `REVOKE_IDENTITY` tell which index members' hashes are gone by Redis's own clock
 * (`TIME`), the clock that expires the hashes, never by an app instance's: app clocks may disagree
 * with each other and with Redis. Scripts that call `TIME` and then write are replicated by their
 * effects (always, from Redis 7; from Redis 3.2 once they call `redis.replicate_commands()`).
 *
 * @internal
 */

/**
 * Lua: `redis_now()`: Redis's clock, epoch ms. Turns on effects replication first where it is not
 * the only mode (before Redis 7; a no-op after), so the script may write after reading the time.
 */
const REDIS_NOW = `
if redis.replicate_commands then redis.replicate_commands() end
local function redis_now()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
`;

/** KEYS[1] token hash; ARGV[1] expire-at (epoch ms); ARGV[2..] field, value pairs. */
export const CREATE = `
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('PEXPIREAT', KEYS[1], ARGV[1])
return 1
`;

/**
 * KEYS[1] identity index (sorted set: token id → epoch ms its hash expires, the hash's `PEXPIREAT`),
 * KEYS[2] the identity's generation; ARGV[1] token id, ARGV[2] that expiry. Drops the members whose
 * hash Redis has expired (score before Redis's `TIME`: a hash exists until its expiry has passed)
 * and keeps the index alive exactly as long as its longest-lived member. Returns the identity's
 * generation as this script saw it, atomically with the `ZADD` (0 when never revoked).
 */
export const INDEX = `${REDIS_NOW}
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. redis_now())
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
local top = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[1], top[2])
return tonumber(redis.call('GET', KEYS[2]) or '0')
`;

/**
 * KEYS[1] identity index, KEYS[2] the identity's generation (no expiry: it must outlive every token
 * stamped below it). Raises the generation and, in the same atomic step, lists every index member
 * whose hash may still exist (score not before Redis's `TIME`; the others' hashes are gone for every
 * command after this one): a login's `INDEX` runs either before (its token is listed) or after (it
 * sees the raised generation).
 */
export const REVOKE_IDENTITY = `${REDIS_NOW}
redis.call('INCR', KEYS[2])
return redis.call('ZRANGEBYSCORE', KEYS[1], redis_now(), '+inf')
`;

/**
 * Fields a consume returns, in this order (`HMGET`; an absent `is`/`sb` comes back as nil). Positional
 * replies carry half the strings of `HGETALL` and need no field names decoded.
 */
export const RECORD_FIELDS = [
  'i',
  'c',
  'e',
  'm',
  't',
  'l',
  'u',
  'r',
  'ip',
  'md',
  'is',
  'sb',
  'g',
  'sc',
  'au',
  'cl',
  'ce',
  'jk',
] as const;

/**
 * Lua: `stale(id, stamp, check, prefix)`: is a token hash whose `i` and `g` fields are `id` and
 * `stamp` (as the caller's own `HMGET` of the hash read them) stamped below its identity's generation
 * (key `prefix .. 'g:{' .. id .. '}'`)? `nil` when the hash or the generation key is not one of
 * ours. `check` `'0'` skips it (Cluster); anything else, absent included, checks, so the prefix
 * (empty is a valid one) never turns the check off.
 */
const STALE = `
local function stale(id, stamp, check, prefix)
  if check == '0' then return false end
  if type(id) ~= 'string' then return nil end
  local current = redis.pcall('GET', prefix .. 'g:{' .. id .. '}')
  if type(current) == 'table' then return nil end
  current = tonumber(current or '0')
  local stamped = tonumber(stamp or '0')
  if not current or not stamped then return nil end
  return stamped < current
end
`;

/**
 * Consume: check and count one use of each key, in KEYS order (two uses of one token in a call count
 * twice). KEYS[n] token hash, ARGV[n] that use's now, ARGV[#KEYS + 1] `'1'` to check each hash's
 * generation or `'0'` not to (Cluster), ARGV[#KEYS + 2] the key prefix. Many keys in one call only on a standalone server (the keys hash to many
 * Cluster slots); one key per call on Cluster. Returns one reply per key: a reason string,
 * `'store_error'` when the key is not one of our hashes or its use could not be counted (that key
 * alone fails, closed; nothing in the loop aborts the script, so no other key's counted use goes
 * unanswered), or the `RECORD_FIELDS` values after counting the use.
 */
export const CONSUME_MANY = `${STALE}
local check = ARGV[#KEYS + 1]
local prefix = ARGV[#KEYS + 2] or ''
-- A use count or limit as HINCRBY reads it: digits only, small enough not to overflow.
local function count(x)
  if type(x) ~= 'string' or #x > 15 or not string.match(x, '^%d+$') then return nil end
  return tonumber(x)
end
local out = {}
for n = 1, #KEYS do
  local key = KEYS[n]
  local now = tonumber(ARGV[n])
  local v = redis.pcall('HMGET', key, 'r', 'e', 'l', 'u', 'i', 'g')
  local old = v and not v.err and v[2] and stale(v[5], v[6], check, prefix)
  if type(v) ~= 'table' or v.err or not now then
    out[n] = 'store_error'
  elseif not v[2] then
    out[n] = 'not_found'
  elseif old == nil or not (tonumber(v[2]) and count(v[3]) and count(v[4])) then
    out[n] = 'store_error'
  elseif v[1] == '1' or old then
    out[n] = 'revoked'
  elseif now >= tonumber(v[2]) then
    out[n] = 'expired'
  elseif count(v[3]) > 0 and count(v[4]) >= count(v[3]) then
    out[n] = 'uses_exhausted'
  else
    -- Nothing below may abort the script: uses already counted for earlier keys must be answered.
    local used = redis.pcall('HINCRBY', key, 'u', 1)
    local fields = type(used) == 'number'
      and redis.pcall('HMGET', key, 'i', 'c', 'e', 'm', 't', 'l', 'u', 'r', 'ip', 'md', 'is', 'sb', 'g', 'sc', 'au', 'cl', 'ce', 'jk')
    if type(fields) ~= 'table' or fields.err then
      out[n] = 'store_error'
    else
      out[n] = fields
    end
  end
end
return out
`;

/**
 * KEYS[1] token hash; ARGV[1] now, ARGV[2] `'1'` to check the hash's generation or `'0'` not to
 * (Cluster), ARGV[3] the key prefix.
 * `expiresAt = min(now + ttl, maxExpiresAt)`; a token already renewed up to its max expiry is
 * refused with `max_ttl_reached`. The key's own expiry (max expiry + margin) never moves. Returns
 * `{'ok', field, value, …}` or `{reason}`, checks in the memory store's order.
 */
export const EXTEND = `${STALE}
local v = redis.call('HMGET', KEYS[1], 'r', 'e', 'm', 'l', 'u', 't', 'i', 'g')
if not v[2] then return {'not_found'} end
local now = tonumber(ARGV[1])
local expires = tonumber(v[2])
local max = tonumber(v[3])
local old = stale(v[7], v[8], ARGV[2], ARGV[3] or '')
if old == nil then return redis.error_reply('token hash is not one of ours') end
if v[1] == '1' or old then return {'revoked'} end
if now >= expires then return {'expired'} end
if expires >= max then return {'max_ttl_reached'} end
local limit = tonumber(v[4])
if limit > 0 and tonumber(v[5]) >= limit then return {'uses_exhausted'} end
redis.call('HSET', KEYS[1], 'e', string.format('%.17g', math.min(now + tonumber(v[6]) * 1000, max)))
local all = redis.call('HGETALL', KEYS[1])
table.insert(all, 1, 'ok')
return all
`;

/** KEYS[1] token hash; ARGV[1] now. Returns -1 unknown, 1 was live, 0 already revoked or expired. */
export const REVOKE = `
local v = redis.call('HMGET', KEYS[1], 'r', 'e')
if not v[2] then return -1 end
redis.call('HSET', KEYS[1], 'r', '1')
if v[1] ~= '1' and tonumber(ARGV[1]) < tonumber(v[2]) then return 1 end
return 0
`;
