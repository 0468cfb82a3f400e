/**
 * Issue 16, "Revoke by claim": `auth.revokeWhere({ identityId?, claim, value })` revokes every live
 * token whose login carried the value, logins in flight included, on every store and across
 * processes; tokens of other values are untouched; a login that begins afterwards works.
 */
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createOidcAuth, type OidcAuth } from '../../src/engine/auth.js';
import { MemoryIdentityStore, MemoryTokenStore } from '../../src/stores/memory.js';
import type { IdentityStore, TokenStore } from '../../src/types.js';
import { FakeClock, githubIdentity } from '../helpers/engine.js';
import { githubClaims, makeKey, sign, type TestKey } from '../helpers/jwt.js';
import { AccessTokenCodec } from '../../src/tokens/opaque.js';
import { LoginStorm, outcomes, preciseNow, type StormToken } from './login-storm.js';
import { Worker } from './worker-client.js';
import { raceBackend } from './race-backend.js';
import { runSuite, type CaseResult } from './suite-runner.js';
import { tokenStoreConformance } from '../../src/testing/index.js';

const IDENTITY_ID = 'revoke-where-race';
const SIGNING_KEYS = { k1: 'a-revoke-where-race-test-signing-secret-32b' };
const ROUNDS = 4;
const codec = new AccessTokenCodec(SIGNING_KEYS);

/** Where the storm's logins run. */
interface Fleet {
  start(jwt: string): Promise<void>;
  progress(): Promise<{ successes: number; sample: string | undefined }>;
  stop(): Promise<StormToken[]>;
  /** The answers of authenticate and renew to `tokens`, on every instance that checks them. */
  outcomes(tokens: string[]): Promise<Array<{ authenticate: string[]; renew: string[] }>>;
}

const runJwt = (key: TestKey, runId: string) =>
  sign(key, githubClaims(Date.now(), { jti: randomUUID(), run_id: runId }));

/**
 * `ROUNDS` rounds: storm the identity with logins of one run, revoke that run by `run_id` while
 * they are in flight, stop the storm: every token of a login that began before the revocation
 * (read the claim epoch before it, whenever it ended) is refused as revoked by authenticate and
 * renew on every instance; tokens of another run work, and so do those of logins of the run that
 * read the raised epoch. Returns how many tokens came from logins in flight when it began, and how
 * many of those were stored only after it had returned (refused by the store's create-time check).
 */
async function runRounds(
  auth: OidcAuth,
  fleet: Fleet,
  key: TestKey,
): Promise<{ inFlight: number; lateCreates: number }> {
  let inFlight = 0;
  let lateCreates = 0;
  for (let round = 0; round < ROUNDS; round++) {
    const run = `${900_000 + round}${Math.floor(Math.random() * 1e6)}`;
    const otherRun = `${run}1`;
    const others = await Promise.all(
      [1, 2, 3].map(
        async () =>
          (await auth.login({ identityId: IDENTITY_ID, jwt: await runJwt(key, otherRun) })).accessToken,
      ),
    );
    await fleet.start(await runJwt(key, run));
    await vi.waitFor(async () => expect((await fleet.progress()).successes).toBeGreaterThanOrEqual(20), {
      timeout: 20_000,
      interval: 5,
    });
    const revocationBegan = preciseNow();
    // A number matches the string claim, as the login recorded it.
    const count = await auth.revokeWhere({ claim: 'run_id', value: Number(run) });
    const revocationEnded = preciseNow();
    expect(count).toBeGreaterThanOrEqual(20);
    // The revocation's epoch (nothing else revokes meanwhile): a login that read a lower one began
    // before it, as the store orders things, whenever it ended.
    const { claimEpoch: epoch } = await auth.tokens.revocationStamps!(IDENTITY_ID);
    // Logins keep coming for a moment after the revocation returned: those begun after it work.
    await new Promise((resolve) => setTimeout(resolve, 30));
    const tokens = await fleet.stop();
    const stamps = await Promise.all(
      tokens.map(
        async (t) => (await auth.tokens.get(codec.parse(t.token)!.tokenId, Date.now()))?.claimEpoch ?? 0,
      ),
    );
    const before = tokens.filter((_, i) => stamps[i]! < epoch);
    const after = tokens.filter((_, i) => stamps[i]! >= epoch);
    // Every login that had returned before the revocation began read the epoch before it.
    expect(tokens.filter((t) => t.endedAt < revocationBegan).every((t) => before.includes(t))).toBe(true);
    const strings = before.map((t) => t.token);
    for (const answers of await fleet.outcomes(strings)) {
      const survivors = [...answers.authenticate, ...answers.renew].filter(
        (code) => code !== 'token_revoked',
      );
      expect({ round, tokens: strings.length, survivors }).toEqual({
        round,
        tokens: strings.length,
        survivors: [],
      });
    }
    for (const answers of await fleet.outcomes([...others, ...after.map((t) => t.token)])) {
      expect(
        answers.authenticate.every((code) => code === 'ok'),
        JSON.stringify(answers.authenticate),
      ).toBe(true);
    }
    // Logins in flight across the revocation: stamped before it, their token stored as it ran or after.
    inFlight += before.filter((t) => t.endedAt > revocationBegan).length;
    lateCreates += before.filter((t) => t.endedAt > revocationEnded).length;
    // A login of the revoked run that begins now reads the raised epoch: it works (docs/SECURITY.md).
    const later = await auth.login({ identityId: IDENTITY_ID, jwt: await runJwt(key, run) });
    await expect(auth.authenticate(later.accessToken)).resolves.toMatchObject({ identityId: IDENTITY_ID });
  }
  return { inFlight, lateCreates };
}

/** Reads answer a millisecond later, so logins are between their stamp read and their create. */
class SlowReadIdentityStore extends MemoryIdentityStore {
  override async get(identityId: string) {
    const config = await super.get(identityId);
    await new Promise((resolve) => setTimeout(resolve, 1));
    return config;
  }
}

describe('#16 revoke-by-claim with logins in flight: memory store, this process', () => {
  it(`${ROUNDS} rounds of 24 concurrent login loops of one run while revokeWhere({ claim: 'run_id' }) revokes it: zero survivors, other runs untouched, later logins work`, async () => {
    const key = makeKey('ES256');
    const identities = new SlowReadIdentityStore([githubIdentity(key, { identityId: IDENTITY_ID })]);
    const auth = createOidcAuth({
      identities,
      tokens: new MemoryTokenStore({ sweepIntervalMs: 0 }),
      signingKeys: SIGNING_KEYS,
    });
    let storm: LoginStorm | undefined;
    const fleet: Fleet = {
      async start(jwt) {
        storm = new LoginStorm(auth, IDENTITY_ID, jwt, 24).start();
      },
      async progress() {
        return { successes: storm!.successes, sample: storm!.sample };
      },
      stop: () => storm!.stop(),
      outcomes: async (tokens) => [await outcomes(auth, tokens)],
    };
    const race = await runRounds(auth, fleet, key);
    expect(race.inFlight).toBeGreaterThan(0);
    expect(race.lateCreates).toBeGreaterThan(0);
    await auth.close();
  }, 60_000);
});

interface SharedBackend {
  init: Parameters<Worker['send']>[0];
  auth: OidcAuth;
  identities: IdentityStore & Required<Pick<IdentityStore, 'put'>>;
  cleanup(): Promise<void>;
}

async function sharedBackend(kind: 'redis' | 'postgres'): Promise<SharedBackend> {
  const { init, identities, tokens, cleanup } = await raceBackend(kind, 'oma_rw', SIGNING_KEYS);
  const auth = createOidcAuth({ identities, tokens, signingKeys: SIGNING_KEYS });
  return { init, auth, identities, cleanup };
}

describe.each([['Redis' as const], ['PostgreSQL' as const]])(
  '#16 revoke-by-claim with logins in flight: %s, logins in three worker processes',
  (name) => {
    let backend: SharedBackend;
    let workers: Worker[];

    beforeAll(async () => {
      backend = await sharedBackend(name === 'Redis' ? 'redis' : 'postgres');
      workers = [new Worker(), new Worker(), new Worker()];
      await Promise.all(workers.map((w) => w.send(backend.init)));
    });

    afterAll(async () => {
      await Promise.all((workers ?? []).map((w) => w.stop()));
      await backend?.auth.close();
      await backend?.cleanup();
    });

    it(`${ROUNDS} rounds of 3 × 8 concurrent login loops of one run while another instance revokes it by run_id: zero survivors on either instance, other runs untouched, later logins work`, async () => {
      const key = makeKey('ES256');
      await backend.identities.put(githubIdentity(key, { identityId: IDENTITY_ID }));
      const fleet: Fleet = {
        async start(jwt) {
          await Promise.all(
            workers.map((w) => w.send({ type: 'storm-start', identityId: IDENTITY_ID, jwt, concurrency: 8 })),
          );
        },
        async progress() {
          const replies = await Promise.all(workers.map((w) => w.send({ type: 'storm-stats' })));
          return {
            successes: replies.reduce((sum, r) => sum + (r.successes ?? 0), 0),
            sample: replies.find((r) => r.sample)?.sample,
          };
        },
        async stop() {
          const replies = await Promise.all(workers.map((w) => w.send({ type: 'storm-stop' })));
          return replies.flatMap((r) => r.tokens ?? []);
        },
        async outcomes(tokens) {
          const [own, other] = await Promise.all([
            outcomes(backend.auth, tokens),
            workers[0]!.send({ type: 'outcomes', tokens }),
          ]);
          return [own, { authenticate: other.authenticate ?? [], renew: other.renew ?? [] }];
        },
      };
      const race = await runRounds(backend.auth, fleet, key);
      expect(race.inFlight).toBeGreaterThan(0);
      expect(race.lateCreates).toBeGreaterThan(0);
    }, 120_000);
  },
);

describe('#16 revokeWhere in the engine', () => {
  const key = makeKey('ES256');
  const OUR_ISSUER = 'https://auth.example.com';
  const jwtKey = generateKeyPairSync('ed25519');

  function engine(options: { tokens?: TokenStore; clock?: FakeClock; revocableClaims?: string[] } = {}) {
    const clock = options.clock ?? new FakeClock(Date.now());
    const auth = createOidcAuth({
      identities: [
        githubIdentity(key, { identityId: 'a' }),
        githubIdentity(key, { identityId: 'b' }),
        githubIdentity(key, { identityId: 'jwt', accessTokenFormat: 'jwt' }),
      ],
      tokens: options.tokens ?? new MemoryTokenStore({ clock: clock.now, sweepIntervalMs: 0 }),
      signingKeys: SIGNING_KEYS,
      issuer: OUR_ISSUER,
      accessTokens: {
        revocationCheckSeconds: 10,
        signingKeys: [{ privateKey: jwtKey.privateKey, kid: 'ed-1' }],
      },
      clock: clock.now,
      ...(options.revocableClaims ? { revocableClaims: options.revocableClaims } : {}),
    });
    const login = async (identityId: string, claims: Record<string, unknown>) =>
      (await auth.login({ identityId, jwt: await sign(key, githubClaims(clock.ms, claims)) })).accessToken;
    return { auth, clock, login };
  }

  it('with identityId, only that identity’s tokens of the value go; without, every identity’s', async () => {
    const { auth, login } = engine();
    const a = await login('a', { run_id: '42' });
    const b = await login('b', { run_id: '42' });
    expect(await auth.revokeWhere({ identityId: 'a', claim: 'run_id', value: '42' })).toBe(1);
    await expect(auth.authenticate(a)).rejects.toMatchObject({ code: 'token_revoked' });
    await expect(auth.authenticate(b)).resolves.toMatchObject({ identityId: 'b' });
    expect(await auth.revokeWhere({ claim: 'run_id', value: 42 })).toBe(1);
    await expect(auth.authenticate(b)).rejects.toMatchObject({ code: 'token_revoked' });
    await expect(auth.renew(b)).rejects.toMatchObject({ code: 'token_revoked' });
  });

  it('a dotted claim path reads a nested claim (Kubernetes pod uid)', async () => {
    const { auth, login } = engine();
    const pod = await login('a', { 'kubernetes.io': { pod: { uid: 'pod-1', name: 'x' } } });
    const otherPod = await login('a', { 'kubernetes.io': { pod: { uid: 'pod-2' } } });
    expect(await auth.revokeWhere({ claim: 'kubernetes.io.pod.uid', value: 'pod-1' })).toBe(1);
    await expect(auth.authenticate(pod)).rejects.toMatchObject({ code: 'token_revoked' });
    await expect(auth.authenticate(otherPod)).resolves.toMatchObject({ identityId: 'a' });
  });

  it('JWT access tokens: refused at once on the revoking instance, and by another instance within revocationCheckSeconds', async () => {
    const clock = new FakeClock(Date.now());
    const store = new MemoryTokenStore({ clock: clock.now, sweepIntervalMs: 0 });
    const here = engine({ tokens: store, clock });
    const there = engine({ tokens: store, clock });
    const token = await here.login('jwt', { run_id: '7' });
    // Both instances have checked it against the store (and keep the answer up to 10 s).
    await here.auth.authenticate(token);
    await there.auth.authenticate(token);
    expect(await here.auth.revokeWhere({ claim: 'run_id', value: '7' })).toBe(1);
    await expect(here.auth.authenticate(token)).rejects.toMatchObject({ code: 'token_revoked' });
    // The documented window: another instance asks the store again once its answer is 10 s old.
    clock.advance(10);
    await expect(there.auth.authenticate(token)).rejects.toMatchObject({ code: 'token_revoked' });
    await expect(there.auth.renew(token)).rejects.toMatchObject({ code: 'token_revoked' });
  });

  it('refuses a claim the engine does not record (claim_not_revocable), a malformed filter (invalid_request), and a store without revokeWhere (invalid_config), naming no value', async () => {
    const { auth } = engine({ revocableClaims: ['run_id'] });
    await expect(auth.revokeWhere({ claim: 'sha', value: 'abc' })).rejects.toMatchObject({
      status: 400,
      code: 'claim_not_revocable',
    });
    for (const bad of [
      { claim: 'run_id', value: '' },
      { claim: 'run_id', value: 'x'.repeat(257) },
      { claim: 'run_id', value: Number.NaN },
      { claim: 'run_id', value: { nested: true } },
      { claim: 'run_id', value: 'a\u0000b' },
      { identityId: 'bad id', claim: 'run_id', value: '1' },
      { claim: 'run_id', value: '1', extra: 1 },
    ]) {
      const error = await auth.revokeWhere(bad as never).catch((e: unknown) => e);
      expect(error, JSON.stringify(bad)).toMatchObject({ status: 400, code: 'invalid_request' });
      expect((error as Error).message).not.toContain('xxxx');
    }
    const bare = new MemoryTokenStore({ sweepIntervalMs: 0 });
    const custom: TokenStore = {
      create: (r) => bare.create(r),
      get: (id, now) => bare.get(id, now),
      consume: (id, now) => bare.consume(id, now),
      extend: (id, now) => bare.extend(id, now),
      revoke: (id) => bare.revoke(id),
      generation: (id) => bare.generation(id),
      revokeIdentity: (id) => bare.revokeIdentity(id),
    };
    const { auth: withCustom, login } = engine({ tokens: custom });
    // Still a valid store: logins work and record nothing they could not be revoked by.
    await expect(withCustom.authenticate(await login('a', { run_id: '1' }))).resolves.toBeDefined();
    await expect(withCustom.revokeWhere({ claim: 'run_id', value: '1' })).rejects.toMatchObject({
      code: 'invalid_config',
      field: 'tokens.revokeWhere',
    });
  });

  it('refuses a revocableClaims option that is not a list of at most 32 valid claim paths', () => {
    for (const bad of [['__proto__'], ['a', 'a'], Array.from({ length: 33 }, (_, i) => `c${i}`), 'run_id']) {
      expect(() => engine({ revocableClaims: bad as string[] })).toThrow(/revocableClaims/);
    }
  });
});

/** A memory store with one of its methods replaced by `flaw`, everything else as it is. */
function flawed(flaw: (inner: MemoryTokenStore) => Partial<TokenStore>): TokenStore {
  const inner = new MemoryTokenStore({ sweepIntervalMs: 0 });
  const store: TokenStore = {
    create: (r) => inner.create(r),
    get: (id, now) => inner.get(id, now),
    consume: (id, now) => inner.consume(id, now),
    extend: (id, now) => inner.extend(id, now),
    revoke: (id) => inner.revoke(id),
    generation: (id) => inner.generation(id),
    revokeIdentity: (id) => inner.revokeIdentity(id),
    revokeWhere: (filter, now, limits) => inner.revokeWhere(filter, now, limits),
    revocationStamps: (id) => inner.revocationStamps(id),
  };
  return Object.assign(store, flaw(inner));
}

const revokeWhereCases = async (store: TokenStore): Promise<CaseResult[]> =>
  (await runSuite((test) => tokenStoreConformance({ name: 'under test', test, create: () => store }))).filter(
    (r) => r.path.includes('revokeWhere'),
  );
const failing = (results: CaseResult[]) => results.filter((r) => !r.ok).map((r) => r.name);

describe('#18 the conformance suite’s revokeWhere cases fail when a store is wrong', () => {
  it('pass on the memory store', async () => {
    const results = await revokeWhereCases(new MemoryTokenStore({ sweepIntervalMs: 0 }));
    expect(results.length).toBe(7);
    expect(failing(results)).toEqual([]);
  });

  const BREAKAGES: Array<[string, (inner: MemoryTokenStore) => Partial<TokenStore>, string[]]> = [
    [
      'a create that stamps the record with the epoch of its own time, not the login’s',
      (inner) => ({
        create: async (r) =>
          inner.create({ ...r, claimEpoch: (await inner.revocationStamps(r.identityId)).claimEpoch }),
      }),
      ['#16 revoke-by-claim leaves no survivor', 'with identityId', 'entries go once keepMs old'],
    ],
    [
      'a revokeWhere that ignores identityId',
      (inner) => ({
        revokeWhere: (filter, now, limits) =>
          inner.revokeWhere({ claim: filter.claim, value: filter.value }, now, limits),
      }),
      ['with identityId'],
    ],
    [
      'a revokeWhere without a limit on entries',
      (inner) => ({
        revokeWhere: (filter, now, limits) => inner.revokeWhere(filter, now, { ...limits, maxEntries: 1e9 }),
      }),
      ['past maxEntries'],
    ],
    [
      'stamps that never move',
      (inner) => ({
        revocationStamps: async (id) => ({ generation: await inner.generation(id), claimEpoch: 0 }),
      }),
      ['revocationStamps reads the generation', 'a login that began after the revocation'],
    ],
  ];
  for (const [label, flaw, expected] of BREAKAGES) {
    it(`catches ${label}`, async () => {
      const failures = failing(await revokeWhereCases(flawed(flaw)));
      for (const start of expected) {
        expect(
          failures.some((name) => name.startsWith(start)),
          `${start} in ${JSON.stringify(failures)}`,
        ).toBe(true);
      }
    });
  }
});
