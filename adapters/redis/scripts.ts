/**
 * Lua scripts of the Redis token store. Each touches exactly one key (`CONSUME_MANY` as the store
 * calls it on Cluster), so each runs on Redis Cluster whatever slot the key hashes to.
 *
 * Token hash fields (short names keep small records in Redis's compact listpack encoding):
 * `i` identityId, `c` createdAt, `e` expiresAt, `m` maxExpiresAt, `t` ttlSeconds, `l` usesLimit,
 * `u` usesCount, `r` revoked (`0`/`1`), `ip` trustedIps (JSON), `md` metadata (JSON), `is` issuer,
 * `sb` subject. Times are epoch ms.
 *
 * @internal
 */

/** KEYS[1] token hash; ARGV[1] expire-at (epoch ms); ARGV[2..] field, value pairs. */
export const CREATE = `
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('PEXPIREAT', KEYS[1], ARGV[1])
return 1
`;

/**
 * KEYS[1] identity index (sorted set: token id → epoch ms its hash expires); ARGV[1] token id,
 * ARGV[2] that expiry, ARGV[3] now. Drops members whose hash is gone and keeps the index alive
 * exactly as long as its longest-lived member.
 */
export const INDEX = `
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[3])
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
local top = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[1], top[2])
return 1
`;

/**
 * Fields a consume returns, in this order (`HMGET`; an absent `is`/`sb` comes back as nil). Positional
 * replies carry half the strings of `HGETALL` and need no field names decoded.
 */
export const RECORD_FIELDS = ['i', 'c', 'e', 'm', 't', 'l', 'u', 'r', 'ip', 'md', 'is', 'sb'] as const;

/**
 * Consume: check and count one use of each key, in KEYS order (two uses of one token in a call count
 * twice). KEYS[n] token hash, ARGV[n] that use's now. Many keys in one call only on a standalone
 * server (the keys hash to many Cluster slots); one key per call on Cluster. Returns one reply per key: a
 * reason string, `'store_error'` when the key is not one of our hashes or its use could not be counted
 * (that key alone fails, closed; nothing in the loop aborts the script, so no other key's counted use
 * goes unanswered), or the `RECORD_FIELDS` values after counting the use.
 */
export const CONSUME_MANY = `
-- A use count or limit as HINCRBY reads it: digits only, small enough not to overflow.
local function count(x)
  if type(x) ~= 'string' or #x > 15 or not string.match(x, '^%d+$') then return nil end
  return tonumber(x)
end
local out = {}
for n = 1, #KEYS do
  local key = KEYS[n]
  local now = tonumber(ARGV[n])
  local v = redis.pcall('HMGET', key, 'r', 'e', 'l', 'u')
  if type(v) ~= 'table' or v.err or not now then
    out[n] = 'store_error'
  elseif not v[2] then
    out[n] = 'not_found'
  elseif not (tonumber(v[2]) and count(v[3]) and count(v[4])) then
    out[n] = 'store_error'
  elseif v[1] == '1' then
    out[n] = 'revoked'
  elseif now >= tonumber(v[2]) then
    out[n] = 'expired'
  elseif count(v[3]) > 0 and count(v[4]) >= count(v[3]) then
    out[n] = 'uses_exhausted'
  else
    -- Nothing below may abort the script: uses already counted for earlier keys must be answered.
    local used = redis.pcall('HINCRBY', key, 'u', 1)
    local fields = type(used) == 'number'
      and redis.pcall('HMGET', key, 'i', 'c', 'e', 'm', 't', 'l', 'u', 'r', 'ip', 'md', 'is', 'sb')
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
 * KEYS[1] token hash; ARGV[1] now. `expiresAt = min(now + ttl, maxExpiresAt)`; a token already
 * renewed up to its max expiry is refused with `max_ttl_reached`. The key's own expiry (max expiry +
 * margin) never moves. Returns `{'ok', field, value, …}` or `{reason}`, checks in the memory store's
 * order.
 */
export const EXTEND = `
local v = redis.call('HMGET', KEYS[1], 'r', 'e', 'm', 'l', 'u', 't')
if not v[2] then return {'not_found'} end
local now = tonumber(ARGV[1])
local expires = tonumber(v[2])
local max = tonumber(v[3])
if v[1] == '1' then return {'revoked'} end
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
