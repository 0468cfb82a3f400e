/**
 * Lua scripts of the Redis token store. Each touches exactly one key, so each runs on Redis
 * Cluster whatever slot the key hashes to.
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

/** KEYS[1] token hash; ARGV[1] now. Returns `{'ok', field, value, …}` or `{reason}`. */
export const CONSUME = `
local v = redis.call('HMGET', KEYS[1], 'r', 'e', 'l', 'u')
if not v[2] then return {'not_found'} end
if v[1] == '1' then return {'revoked'} end
if tonumber(ARGV[1]) >= tonumber(v[2]) then return {'expired'} end
local limit = tonumber(v[3])
if limit > 0 and tonumber(v[4]) >= limit then return {'uses_exhausted'} end
redis.call('HINCRBY', KEYS[1], 'u', 1)
local all = redis.call('HGETALL', KEYS[1])
table.insert(all, 1, 'ok')
return all
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
