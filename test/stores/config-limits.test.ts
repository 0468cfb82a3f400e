import { describe, expect, it } from 'vitest';
import { PostgresTokenStore } from '../../adapters/postgres/index.js';
import { RedisTokenStore } from '../../adapters/redis/index.js';
import { CONFIG_LIMITS, parseIdentityConfig } from '../../src/trust/config.js';
import { ConfigError, ServiceUnavailableError } from '../../src/errors.js';
import { MemoryTokenStore } from '../../src/index.js';
import type { TokenStore } from '../../src/types.js';
import { githubIdentity, makeEngine } from '../helpers/engine.js';
import { githubClaims, makeKey, sign } from '../helpers/jwt.js';
import { useSharedStores } from '../helpers/shared-stores.js';
import { makeRecord } from '../../src/testing/index.js';

// Issue 13.5: a config a token store cannot hold used to be accepted and then made every login (or
// every guarded request) of the identity answer 503. Each numeric field is now capped at config
// time at the largest value every store holds, and each store is exercised at that maximum.

const shared = useSharedStores('oma_limits');

const INT32_MAX = 2 ** 31 - 1;

/** Every numeric config field: its largest accepted value and why it is the largest. */
const FIELDS = [
  ['accessTokenTTL', CONFIG_LIMITS.maxTtlSeconds],
  ['accessTokenMaxTTL', CONFIG_LIMITS.maxTtlSeconds],
  ['accessTokenNumUsesLimit', CONFIG_LIMITS.maxUsesLimit],
  ['clockSkewSeconds', CONFIG_LIMITS.maxClockSkewSeconds],
  ['maxTokenLifetimeSeconds', CONFIG_LIMITS.maxTokenLifetimeSeconds],
] as const;

const base = {
  identityId: 'limits',
  jwksUrl: 'https://idp.example.com/jwks',
  boundIssuer: 'https://idp.example.com',
  boundSubject: 'repo:acme-corp/payments-api:ref:refs/heads/main',
};

function refusal(overrides: Record<string, unknown>): ConfigError {
  try {
    parseIdentityConfig({ ...base, ...overrides });
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return error as ConfigError;
  }
  throw new Error(`expected ${JSON.stringify(overrides)} to be refused`);
}

describe('#13.5 configs the stores cannot hold are refused at config time', () => {
  it('#13.5 configs the stores cannot hold: the caps fit every store (PostgreSQL integer columns, Redis 15-digit counts, safe-integer epoch ms)', () => {
    // PostgreSQL keeps ttl_seconds and uses_limit as `integer`; the Redis consume script reads a use
    // count or limit of at most 15 digits; the memory store's Float64Array and every epoch-ms time
    // are exact up to 2^53.
    expect(CONFIG_LIMITS.maxUsesLimit).toBe(INT32_MAX);
    expect(CONFIG_LIMITS.maxTtlSeconds).toBeLessThanOrEqual(INT32_MAX);
    expect(String(CONFIG_LIMITS.maxUsesLimit).length).toBeLessThanOrEqual(15);
    const farthest = Date.UTC(2100, 0, 1) + CONFIG_LIMITS.maxTtlSeconds * 1000;
    expect(Number.isSafeInteger(farthest)).toBe(true);
    expect(Number.isSafeInteger(CONFIG_LIMITS.maxTokenLifetimeSeconds * 1000 + farthest)).toBe(true);
  });

  it.each(FIELDS)(
    '#13.5 configs the stores cannot hold: %s above %i is refused naming the field and the maximum',
    (field, max) => {
      const over = [max + 1, String(max + 1), 2 ** 31, 2 ** 53 - 1, '1234567890123456', '9'.repeat(40), 1e21];
      for (const value of over) {
        const error = refusal(
          field === 'accessTokenTTL' ? { [field]: value, accessTokenMaxTTL: value } : { [field]: value },
        );
        expect(error.field, String(value)).toBe(field);
        expect(error.message, String(value)).toContain(`at most ${max}`);
      }
      const atMax =
        field === 'accessTokenTTL' ? { accessTokenTTL: max, accessTokenMaxTTL: max } : { [field]: max };
      expect((parseIdentityConfig({ ...base, ...atMax }) as unknown as Record<string, number>)[field]).toBe(
        max,
      );
      expect(
        (
          parseIdentityConfig({ ...base, ...atMax, [field]: String(max) }) as unknown as Record<
            string,
            number
          >
        )[field],
      ).toBe(max);
    },
  );

  it('#13.5 configs the stores cannot hold: the value past the cap is what breaks the stores (PostgreSQL refuses a uses limit of 2^31, Redis one of 16 digits)', async () => {
    // Each answers 503 store_unavailable: what every login (PostgreSQL) or guarded request (Redis)
    // of such an identity answered before the cap.
    const postgres = new PostgresTokenStore({ pool: shared.pool, schema: shared.schema });
    await expect(postgres.create(makeRecord({ usesLimit: INT32_MAX + 1 }))).rejects.toThrow(
      ServiceUnavailableError,
    );
    const redisStore = new RedisTokenStore({ client: shared.redis, prefix: shared.prefix });
    const record = makeRecord({ usesLimit: 10 ** 15 });
    await redisStore.create(record);
    await expect(redisStore.consume(record.tokenId, Date.now())).rejects.toThrow(ServiceUnavailableError);
    // At the cap both hold it.
    for (const store of [postgres, redisStore]) {
      const atCap = makeRecord({ usesLimit: INT32_MAX, usesCount: INT32_MAX - 1 });
      await store.create(atCap);
      expect(await store.consume(atCap.tokenId, Date.now())).toMatchObject({ ok: true });
      expect(await store.consume(atCap.tokenId, Date.now())).toEqual({ ok: false, reason: 'uses_exhausted' });
    }
  });

  const stores: Array<[string, () => TokenStore]> = [
    ['memory', () => new MemoryTokenStore()],
    ['Redis', () => new RedisTokenStore({ client: shared.redis, prefix: shared.prefix })],
    ['PostgreSQL', () => new PostgresTokenStore({ pool: shared.pool, schema: shared.schema })],
  ];

  it.each(stores)(
    '#13.5 configs the stores cannot hold: on the %s store, a login at every maximum works: uses counted, renewed, revoked',
    async (_name, makeStore) => {
      const key = makeKey('RS256');
      const tokens = makeStore();
      const e = makeEngine({
        key,
        identities: [
          githubIdentity(key, {
            accessTokenTTL: CONFIG_LIMITS.maxTtlSeconds - 3600,
            accessTokenMaxTTL: CONFIG_LIMITS.maxTtlSeconds,
            accessTokenNumUsesLimit: CONFIG_LIMITS.maxUsesLimit,
            clockSkewSeconds: CONFIG_LIMITS.maxClockSkewSeconds,
            maxTokenLifetimeSeconds: CONFIG_LIMITS.maxTokenLifetimeSeconds,
          }),
        ],
        auth: { tokens },
      });
      // A shared server expires keys by its own clock: run the engine on the real one.
      e.clock.ms = Date.now();
      try {
        const iat = Math.floor(e.clock.ms / 1000);
        const jwt = await sign(
          key,
          githubClaims(e.clock.ms, { exp: iat + CONFIG_LIMITS.maxTokenLifetimeSeconds }),
        );
        const grant = await e.auth.login({ identityId: 'gh-deployer', jwt });
        expect(grant.expiresIn).toBe(CONFIG_LIMITS.maxTtlSeconds - 3600);
        expect(grant.accessTokenMaxTTL).toBe(CONFIG_LIMITS.maxTtlSeconds);
        const first = await e.auth.authenticate(grant.accessToken);
        expect(first.usesRemaining).toBe(CONFIG_LIMITS.maxUsesLimit - 1);
        const second = await e.auth.authenticate(grant.accessToken);
        expect(second.usesRemaining).toBe(CONFIG_LIMITS.maxUsesLimit - 2);
        e.clock.ms += 7200_000;
        const renewed = await e.auth.renew(grant.accessToken);
        expect(renewed.expiresIn).toBe(CONFIG_LIMITS.maxTtlSeconds - 7200);
        expect((await e.auth.authenticate(renewed.accessToken)).usesRemaining).toBe(
          CONFIG_LIMITS.maxUsesLimit - 3,
        );
        await e.auth.revoke(renewed.accessToken);
        await expect(e.auth.authenticate(renewed.accessToken)).rejects.toMatchObject({ status: 401 });
      } finally {
        await e.auth.close();
        await tokens.close?.();
      }
    },
  );
});
