import { createHash } from 'node:crypto';
import type { AccessTokenRecord, RevokeWhereFilter } from '../../src/types.js';

/**
 * Revocation by claim on Redis (`RedisTokenStore.revokeWhere`). All of its state shares one hash tag,
 * `{rw}`, so each script below touches one slot, on Redis Cluster too:
 *
 * - `<prefix>rw:{rw}`: a hash, `epoch` (what logins read with their identity's generation) and
 *   `floor` (the highest epoch of an entry dropped);
 * - `<prefix>rwe:{rw}`: a hash, entry → epoch; an entry is `<identityId or empty>\0<claim>\0<value>`;
 * - `<prefix>rwt:{rw}`: a sorted set, entry → epoch ms it was made (the oldest go first);
 * - `<prefix>rwx:{rw}:<claim length>:<claim>=<value>`: a sorted set per claim value, of the ids of
 *   tokens whose login carried it (score: when the token's hash expires), trimmed like an identity's
 *   index and expiring with its longest-lived member.
 *
 * A login's `create` stores the hash, then (with the identity index, at once) runs `CLAIM_INDEX`:
 * it adds the token to the index of each of its claim values and, in the same atomic step, reads
 * the epoch, floor and entries; when one refuses the record (stamped below a matching entry, or
 * with claims and below the floor) the store revokes the hash before `create` returns. `revokeWhere`
 * runs `REVOKE_WHERE`: drop old entries (raising the floor), refuse past the cap, raise the epoch,
 * write the entry and list the value's index, all atomically; then revokes each listed token (of
 * the identity only, when one is named). A login's `CLAIM_INDEX` runs either before (its token is
 * listed) or after (it sees the entry): no survivor.
 *
 * @internal
 */

/** Lua: Redis's clock in ms (see scripts.ts). */
const REDIS_NOW = `
if redis.replicate_commands then redis.replicate_commands() end
local function redis_now()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
`;

/**
 * KEYS[1] state hash, KEYS[2] entries hash, KEYS[3..] the index of each of the record's claim
 * values. ARGV[1] token id, ARGV[2] its hash's expire-at, ARGV[3] the record's claim epoch,
 * ARGV[4..] for each index, two entries to look up (every identity's, the record identity's).
 * Returns 1 when the record must be revoked, else 0.
 */
export const CLAIM_INDEX = `${REDIS_NOW}
local now = redis_now()
for n = 3, #KEYS do
  redis.call('ZREMRANGEBYSCORE', KEYS[n], '-inf', '(' .. now)
  redis.call('ZADD', KEYS[n], ARGV[2], ARGV[1])
  local top = redis.call('ZRANGE', KEYS[n], -1, -1, 'WITHSCORES')
  redis.call('PEXPIREAT', KEYS[n], top[2])
end
local stamp = tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'epoch', 'floor')
if stamp >= tonumber(state[1] or '0') then return 0 end
if stamp < tonumber(state[2] or '0') then return 1 end
for n = 4, #ARGV do
  local epoch = redis.call('HGET', KEYS[2], ARGV[n])
  if epoch and tonumber(epoch) > stamp then return 1 end
end
return 0
`;

/**
 * KEYS[1] state hash, KEYS[2] entries hash, KEYS[3] entries by age, KEYS[4] the value's index.
 * ARGV[1] entry, ARGV[2] now (epoch ms, the engine's), ARGV[3] keepMs, ARGV[4] maxEntries.
 * Returns `{'limit', oldest}` (nothing changed but old entries dropped) or `{'ok', id, …}`: the
 * tokens whose hash may still exist (score not before Redis's `TIME`).
 */
export const REVOKE_WHERE = `${REDIS_NOW}
local now = tonumber(ARGV[2])
local old = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now - tonumber(ARGV[3]))
if #old > 0 then
  local floor = tonumber(redis.call('HGET', KEYS[1], 'floor') or '0')
  for _, entry in ipairs(old) do
    local epoch = tonumber(redis.call('HGET', KEYS[2], entry) or '0')
    if epoch > floor then floor = epoch end
    redis.call('HDEL', KEYS[2], entry)
    redis.call('ZREM', KEYS[3], entry)
  end
  redis.call('HSET', KEYS[1], 'floor', floor)
end
if redis.call('ZSCORE', KEYS[3], ARGV[1]) == false and redis.call('ZCARD', KEYS[3]) >= tonumber(ARGV[4]) then
  local oldest = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
  return {'limit', oldest[2] or ARGV[2]}
end
local epoch = redis.call('HINCRBY', KEYS[1], 'epoch', 1)
redis.call('HSET', KEYS[2], ARGV[1], epoch)
redis.call('ZADD', KEYS[3], now, ARGV[1])
local ids = redis.call('ZRANGEBYSCORE', KEYS[4], redis_now(), '+inf')
table.insert(ids, 1, 'ok')
return ids
`;

/**
 * KEYS[1] token hash; ARGV[1] now, ARGV[2] the identity the revocation names (empty: any). Revokes
 * the hash unless it belongs to another identity. Returns -1 unknown or another identity's, 1 was
 * live, 0 already revoked or expired.
 */
export const REVOKE_IF_IDENTITY = `
local v = redis.call('HMGET', KEYS[1], 'r', 'e', 'i')
if not v[2] then return -1 end
if ARGV[2] ~= '' and v[3] ~= ARGV[2] then return -1 end
redis.call('HSET', KEYS[1], 'r', '1')
if v[1] ~= '1' and tonumber(ARGV[1]) < tonumber(v[2]) then return 1 end
return 0
`;

/** KEYS[1] the identity's generation, KEYS[2] the state hash (single server only). */
export const STAMPS = `
return {redis.call('GET', KEYS[1]) or '0', redis.call('HGET', KEYS[2], 'epoch') or '0'}
`;

/** Key names of the claim-revocation state for a key prefix. @internal */
export function claimKeys(prefix: string) {
  return {
    state: `${prefix}rw:{rw}`,
    entries: `${prefix}rwe:{rw}`,
    ages: `${prefix}rwt:{rw}`,
    index: (claim: string, value: string) => `${prefix}rwx:{rw}:${claim.length}:${claim}=${value}`,
  };
}

/** An entry's name: identity (empty for every one), claim and value, NUL-separated. @internal */
export function entryName(identityId: string | undefined, claim: string, value: string): string {
  return `${identityId ?? ''}\0${claim}\0${value}`;
}

/** `CLAIM_INDEX`'s keys and arguments for a record with claims. @internal */
export function claimIndexCall(
  keys: ReturnType<typeof claimKeys>,
  record: AccessTokenRecord,
  expireAt: string,
): { keys: string[]; args: string[] } {
  const claims = Object.entries(record.claims ?? {});
  return {
    keys: [keys.state, keys.entries, ...claims.map(([claim, value]) => keys.index(claim, value))],
    args: [
      record.tokenId,
      expireAt,
      String(record.claimEpoch ?? 0),
      ...claims.flatMap(([claim, value]) => [
        entryName(undefined, claim, value),
        entryName(record.identityId, claim, value),
      ]),
    ],
  };
}

/** The filter's `REVOKE_WHERE` keys and entry. @internal */
export function revokeWhereCall(keys: ReturnType<typeof claimKeys>, filter: RevokeWhereFilter) {
  return {
    keys: [keys.state, keys.entries, keys.ages, keys.index(filter.claim, filter.value)],
    entry: entryName(filter.identityId, filter.claim, filter.value),
  };
}

/** A script with its SHA. @internal */
export function claimScript(lua: string): { lua: string; sha: string } {
  return { lua, sha: createHash('sha1').update(lua).digest('hex') };
}
