import { describe, expect, it } from 'vitest';
import { PostgresTokenStore } from '../../adapters/postgres/index.js';
import { RedisTokenStore } from '../../adapters/redis/index.js';
import { createOidcAuth, MemoryTokenStore, OidcAuthError, type OidcAuth } from '../../src/index.js';
import type { TokenStore } from '../../src/types.js';
import { FakeClock, Recorder, SIGNING_KEYS, githubIdentity } from '../helpers/engine.js';
import { githubClaims, makeKey, sign } from '../helpers/jwt.js';
import { useSharedStores } from '../helpers/shared-stores.js';

/**
 * #13.6: a verified token whose `sub` or a mapped claim carries a value a store cannot hold as sent
 * (U+0000, which PostgreSQL `text` refuses; a lone surrogate, which UTF-8 cannot encode and Redis
 * and PostgreSQL would store as U+FFFD) is a 401 `claim_value_unsupported` at login, on every
 * store, and nothing is stored: never a 503 `store_unavailable`, never a mangled record.
 */

const key = makeKey('RS256');
const shared = useSharedStores('oma_claims');

interface StoreCase {
  name: string;
  make(): TokenStore;
  /** Records the store holds now. */
  count(): Promise<number>;
}

const memory = new MemoryTokenStore({ sweepIntervalMs: 0 });
const STORES: StoreCase[] = [
  {
    name: 'memory',
    make: () => memory,
    count: async () => memory.size,
  },
  {
    name: 'Redis',
    make: () => new RedisTokenStore({ client: shared.redis, prefix: shared.prefix }),
    count: async () => (await shared.redis.keys(`${shared.prefix}t:*`)).length,
  },
  {
    name: 'PostgreSQL',
    make: () => new PostgresTokenStore({ pool: shared.pool, schema: shared.schema }),
    count: async () =>
      Number(
        (await shared.pool.query(`SELECT count(*)::int AS n FROM "${shared.schema}".oma_access_tokens`))
          .rows[0].n,
      ),
  },
];

/** Claims with one value replaced, a token the identity's key really signed. */
const BAD: Array<[what: string, claims: (now: number) => Record<string, unknown>]> = [
  ['sub with U+0000', (now) => githubClaims(now, { sub: 'repo:acme-corp/app\u0000x' })],
  ['sub with a lone high surrogate', (now) => githubClaims(now, { sub: 'repo:acme-corp/app\ud800' })],
  ['sub with a lone low surrogate', (now) => githubClaims(now, { sub: 'repo:acme-corp/\udc00app' })],
  ['mapped claim with U+0000', (now) => githubClaims(now, { ref: 'refs/heads/main\u0000' })],
  ['mapped claim with a lone surrogate', (now) => githubClaims(now, { repository: 'acme-corp/\udfff' })],
  [
    'mapped array claim with U+0000 in one element',
    (now) => githubClaims(now, { ref: ['refs/heads/main', 'a\u0000b'] }),
  ],
];

function engine(tokens: TokenStore): { auth: OidcAuth; clock: FakeClock; rec: Recorder } {
  // Real time: the Redis store expires keys by its own clock.
  const clock = new FakeClock(Date.now());
  const rec = new Recorder();
  const auth = createOidcAuth({
    // sub bound by a glob that admits the values above; ref and repository mapped to metadata
    identities: [
      githubIdentity(key, {
        boundSubject: ['repo:acme-corp/*', 'repo:acme-corp/payments-api:ref:refs/heads/main'],
        boundAudiences: 'https://github.com/acme-corp',
      }),
    ],
    tokens,
    signingKeys: SIGNING_KEYS,
    clock: clock.now,
    onEvent: rec.onEvent,
    logger: rec.logger,
  });
  return { auth, clock, rec };
}

describe('#13.6 claim values a store cannot hold are a 4xx, never a store outage', () => {
  for (const store of STORES) {
    it(`#13.6 claim values a store cannot hold: ${store.name}: refused with 401 claim_value_unsupported, nothing stored`, async () => {
      const e = engine(store.make());
      const stored = await store.count();
      for (const [what, claims] of BAD) {
        const jwt = await sign(key, claims(e.clock.ms));
        const error = await e.auth.login({ identityId: 'gh-deployer', jwt }).then(
          () => expect.unreachable(`${what}: logged in`),
          (err: unknown) => err as OidcAuthError,
        );
        expect(error, what).toBeInstanceOf(OidcAuthError);
        expect({ what, status: error.status, code: error.code }).toEqual({
          what,
          status: 401,
          code: 'claim_value_unsupported',
        });
        expect(e.rec.last('login.failure')?.reasonCode).toBe('claim_value_unsupported');
        // explain agrees with login
        const report = await e.auth.explain({ identityId: 'gh-deployer', jwt });
        expect(report, what).toMatchObject({ ok: false, reasonCode: 'claim_value_unsupported' });
        expect(await store.count(), `${what}: nothing stored`).toBe(stored);
      }
      // Not revealed when reasons are hidden: the uniform answer.
      const hidden = createOidcAuth({
        identities: [
          githubIdentity(key, {
            boundSubject: ['repo:acme-corp/*', 'repo:acme-corp/payments-api:ref:refs/heads/main'],
          }),
        ],
        tokens: store.make(),
        signingKeys: SIGNING_KEYS,
        clock: e.clock.now,
        revealLoginFailureReasons: false,
      });
      const jwt = await sign(key, BAD[0]![1](e.clock.ms));
      await expect(hidden.login({ identityId: 'gh-deployer', jwt })).rejects.toMatchObject({
        status: 401,
        code: 'invalid_credentials',
      });
      expect(await store.count()).toBe(stored);
      // Control: control characters other than U+0000 and well-formed astral characters are stored as sent.
      const ok = githubClaims(e.clock.ms, {
        sub: 'repo:acme-corp/a\nb\u001b😀',
        ref: 'refs/heads/\r\u007f😀',
      });
      const grant = await e.auth.login({ identityId: 'gh-deployer', jwt: await sign(key, ok) });
      const ctx = await e.auth.authenticate(grant.accessToken);
      expect(ctx.subject).toBe(ok.sub);
      expect(ctx.metadata.ref).toBe(ok.ref);
      expect(await store.count()).toBe(stored + 1);
      await e.auth.close();
    });
  }
});
