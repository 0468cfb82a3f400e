import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisTokenStore } from '../../adapters/redis/index.js';
import { makeRecord } from '../../src/testing/index.js';
import { sharedRedisOptions, uniqueName } from '../helpers/servers.js';

// Revoking an identity must not depend on the app instances' clocks (which may disagree with each
// other and with Redis by more than `expiryMarginMs`), nor on the key prefix.

const prefix = `${uniqueName('oma_clock')}:`;
/** Ids used with the empty prefix, so this file's un-prefixed keys can be found and removed. */
const bare = uniqueName('oma_bare');
/** The clock of an instance running 6 minutes ahead: more than the 5-minute default margin. */
const AHEAD_MS = 6 * 60_000;
let client: Redis;

beforeAll(async () => {
  client = new Redis({ ...sharedRedisOptions(), lazyConnect: true, maxRetriesPerRequest: 1 });
  client.on('error', () => {});
  await client.connect();
});

afterAll(async () => {
  for (const pattern of [`${prefix}*`, `*${bare}*`]) {
    let cursor = '0';
    do {
      const [next, keys] = await client.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
      if (keys.length > 0) await client.del(...keys);
      cursor = next;
    } while (cursor !== '0');
  }
  await client.quit();
});

/**
 * The client as a `Cluster` looks to the store (`isCluster: true`), on the shared server: the store
 * takes its Cluster path (no generation read in consume and renew, no batching) with the same
 * scripts. The real three-master Cluster runs these scripts in test/stores/redis.test.ts and
 * test/stores/revocation.test.ts.
 */
function asCluster(redis: Redis): Redis {
  return new Proxy(redis, {
    get(target, property) {
      if (property === 'isCluster') return true;
      const value: unknown = Reflect.get(target, property);
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
}

/** A token whose max expiry is a minute away, as a login on `store` would store it. */
async function login(store: RedisTokenStore, identityId: string, now: number, tokenId?: string) {
  const record = makeRecord({
    identityId,
    createdAt: now,
    expiresAt: now + 60_000,
    maxExpiresAt: now + 60_000,
    generation: await store.generation(identityId),
    ...(tokenId ? { tokenId } : {}),
  });
  await store.create(record);
  return record;
}

async function expectRefused(stores: RedisTokenStore[], tokenId: string): Promise<void> {
  for (const store of stores) {
    expect(await store.consume(tokenId, Date.now())).toEqual({ ok: false, reason: 'revoked' });
    expect(await store.extend(tokenId, Date.now())).toEqual({ ok: false, reason: 'revoked' });
  }
}

describe('#13.1 identity revocation leaves no survivor: Redis, app clocks that disagree by more than expiryMarginMs', () => {
  it('#13.1 identity revocation leaves no survivor: Cluster path, an instance 6 minutes ahead revokes: consume and extend refuse once revokeIdentity returned', async () => {
    const cluster = asCluster(client);
    const onTime = new RedisTokenStore({ client: cluster, prefix });
    const ahead = new RedisTokenStore({ client: cluster, prefix, clock: () => Date.now() + AHEAD_MS });
    const identityId = uniqueName('skew_revoke');
    const token = await login(onTime, identityId, Date.now());
    expect((await onTime.consume(token.tokenId, Date.now())).ok).toBe(true);

    await ahead.revokeIdentity(identityId);

    await expectRefused([onTime, ahead], token.tokenId);
  });

  it("#13.1 identity revocation leaves no survivor: Cluster path, a login on an instance 6 minutes ahead does not drop the others' live tokens from the index", async () => {
    const cluster = asCluster(client);
    const onTime = new RedisTokenStore({ client: cluster, prefix });
    const ahead = new RedisTokenStore({ client: cluster, prefix, clock: () => Date.now() + AHEAD_MS });
    const identityId = uniqueName('skew_trim');
    const token = await login(onTime, identityId, Date.now());
    // The instance ahead stamps its own clock on its record; its login trims the index.
    const other = await login(ahead, identityId, Date.now() + AHEAD_MS);
    expect(await client.zscore(onTime.identityKey(identityId), token.tokenId)).not.toBeNull();

    await onTime.revokeIdentity(identityId);

    await expectRefused([onTime, ahead], token.tokenId);
    expect(await onTime.consume(other.tokenId, Date.now())).toEqual({ ok: false, reason: 'revoked' });
  });

  it('#13.1 identity revocation leaves no survivor: Cluster path, an instance 6 minutes behind revokes: consume and extend refuse once revokeIdentity returned', async () => {
    const cluster = asCluster(client);
    const onTime = new RedisTokenStore({ client: cluster, prefix });
    const behind = new RedisTokenStore({ client: cluster, prefix, clock: () => Date.now() - AHEAD_MS });
    const identityId = uniqueName('skew_behind');
    const token = await login(onTime, identityId, Date.now());

    await behind.revokeIdentity(identityId);

    await expectRefused([onTime, behind], token.tokenId);
  });
});

describe('#13.1 identity revocation leaves no survivor: Redis standalone with an empty prefix', () => {
  it("#13.1 identity revocation leaves no survivor: prefix '' still checks the generation: a token missing from the index is refused after revokeIdentity", async () => {
    const store = new RedisTokenStore({ client, prefix: '' });
    const identityId = `${bare}_identity`;
    const token = await login(store, identityId, Date.now(), `${bare}_token`);
    expect(store.generationKey(identityId)).toBe(`g:{${identityId}}`);
    // The index lost the member (an eviction, or a login whose indexing raced the revocation's read):
    // only the generation check in consume and extend can refuse the token now.
    await client.del(store.identityKey(identityId));

    await store.revokeIdentity(identityId);

    await expectRefused([store], token.tokenId);
  });
});
