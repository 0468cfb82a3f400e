import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createIdentityAdmin, createOidcAuth, OidcAuthError, type OidcAuth } from '../../src/index.js';
import { MemoryIdentityStore } from '../../src/stores/memory.js';
import type { IdentityConfig, IdentityConfigInput, IdentityStore } from '../../src/types.js';
import { FakeClock, Recorder, SIGNING_KEYS, githubIdentity } from '../helpers/engine.js';
import { postJson, type RawResponse } from '../helpers/http.js';
import { createSigningKey, loopbackIdentity, startTestIdp, type TestIdp } from '../helpers/idp-server.js';
import { ISSUER, b64, githubClaims, makeKey, rawToken, seconds, sign, type TestKey } from '../helpers/jwt.js';
import { LOGIN, failOnUnhandled, mountExpress, type MountedApp } from './support.js';

failOnUnhandled();

/**
 * #13.2: until a token's signature has verified against the identity's own keys, neither the answer
 * nor the work done (and so the time taken) may depend on whether the identity id exists. The answer
 * may depend on the token: on whether its issuer is one an identity trusts, and whether that
 * issuer's keys can be had.
 */

const SUBJECT = 'repo:acme-corp/payments-api:ref:refs/heads/main';
const AUDIENCE = 'oidc-machine-auth-tests';
const MULTI_ISSUER = 'https://multi-key.example.com';
const UNKNOWN = 'no-such-identity';

const ghKey = makeKey('RS256', 'gh-key-1');
/** Five RSA-4096 keys of one issuer: a kid-less token is tried against each of them. */
const multiKeys = Array.from({ length: 5 }, (_, i) => createSigningKey('RS256', `m-${i}`, 4096));

const cleanups: Array<() => Promise<unknown>> = [];
afterAll(async () => {
  for (const close of cleanups.splice(0).reverse()) await close();
});

interface World {
  auth: OidcAuth;
  clock: FakeClock;
  rec: Recorder;
  /** IdP reached by discovery (identity `ci`), and one reached by `jwksUrl` (identity `jw`). */
  discovery: TestIdp;
  jwks: TestIdp;
}

async function world(): Promise<World> {
  const discovery = await startTestIdp();
  const jwks = await startTestIdp({ keys: [createSigningKey('ES256', 'jw-key-1')] });
  cleanups.push(
    () => discovery.close(),
    () => jwks.close(),
  );
  const clock = new FakeClock(Math.floor(Date.now() / 1000) * 1000);
  const rec = new Recorder();
  const identities: IdentityConfigInput[] = [
    githubIdentity(ghKey),
    {
      identityId: 'multi',
      publicKeys: multiKeys.map((k) => k.publicJwk),
      boundIssuer: MULTI_ISSUER,
      boundSubject: SUBJECT,
    },
    loopbackIdentity(discovery, SUBJECT, AUDIENCE),
    {
      identityId: 'jw',
      jwksUrl: jwks.jwksUrl,
      allowInsecureLoopback: true,
      boundIssuer: jwks.issuer,
      boundSubject: SUBJECT,
      boundAudiences: AUDIENCE,
      allowedAlgorithms: ['ES256'],
    },
  ];
  const auth = createOidcAuth({
    identities,
    signingKeys: SIGNING_KEYS,
    clock: clock.now,
    onEvent: rec.onEvent,
    logger: rec.logger,
    keys: { timeoutMs: 300 },
  });
  cleanups.push(() => auth.close());
  return { auth, clock, rec, discovery, jwks };
}

/** A token with this header and claims and a signature of random bytes (never verifies). */
function badSignature(header: Record<string, unknown>, claims: Record<string, unknown>, bytes = 256): string {
  return rawToken(header, claims, randomBytes(bytes).toString('base64url'));
}

function idpClaims(clock: FakeClock, iss: string): Record<string, unknown> {
  const now = seconds(clock.ms);
  return { iss, sub: SUBJECT, aud: AUDIENCE, iat: now, exp: now + 300 };
}

/** What a client sees of a login: status, headers and body (the request id aside). */
async function answer(auth: OidcAuth, identityId: string, jwt: string): Promise<unknown> {
  try {
    await auth.login({ identityId, jwt });
    return 'ok';
  } catch (error) {
    if (!(error instanceof OidcAuthError)) throw error;
    return { status: error.status, headers: error.headers, body: error.toBody() };
  }
}

function httpView(res: RawResponse): unknown {
  // The etag hashes the body, request id included.
  const { date: _date, etag: _etag, 'content-length': _length, ...headers } = res.headers;
  const { reqId: _reqId, ...body } = (res.json ?? {}) as Record<string, unknown>;
  return { status: res.status, headers, body };
}

/** The uniform refusal as {@link answer} gives it, whole. */
const UNIFORM_ANSWER = {
  status: 401,
  headers: { 'www-authenticate': 'Bearer realm="oidc-machine-auth", error="invalid_token"' },
  body: {
    statusCode: 401,
    error: 'UnauthorizedError',
    message: 'Invalid credentials',
    reasonCode: 'invalid_credentials',
  },
};

const UNIFORM = {
  status: 401,
  body: {
    statusCode: 401,
    error: 'UnauthorizedError',
    message: 'Invalid credentials',
    reasonCode: 'invalid_credentials',
  },
};

describe('#13.2 no identity oracle: the same answer for a known and an unknown identity until the signature verified', () => {
  let w: World;
  let app: MountedApp;
  beforeAll(async () => {
    w = await world();
    app = await mountExpress(w.auth);
    cleanups.push(() => app.close());
  });

  /** Token kinds that never verify, per known identity, built on the world's clock. */
  async function unverifiedKinds(): Promise<Array<[kind: string, known: string, jwt: string]>> {
    const gh = githubClaims(w.clock.ms);
    return [
      ['garbage', 'gh-deployer', 'not-a-token'],
      ['garbage JSON header', 'gh-deployer', `${b64('x')}.${b64(gh)}.c2ln`],
      [
        'real kid, bad signature (static key)',
        'gh-deployer',
        badSignature({ alg: 'RS256', kid: ghKey.kid }, gh),
      ],
      [
        'no kid, bad signature, five RSA-4096 keys',
        'multi',
        badSignature({ alg: 'RS256' }, { ...gh, iss: MULTI_ISSUER }, 512),
      ],
      [
        'real kid, bad signature (discovery)',
        'ci',
        badSignature({ alg: 'RS256', kid: 'key-1' }, idpClaims(w.clock, w.discovery.issuer)),
      ],
      [
        'real kid, bad signature (jwksUrl)',
        'jw',
        badSignature({ alg: 'ES256', kid: 'jw-key-1' }, idpClaims(w.clock, w.jwks.issuer), 64),
      ],
      [
        'untrusted issuer, real kid',
        'gh-deployer',
        badSignature({ alg: 'RS256', kid: ghKey.kid }, { ...gh, iss: 'https://evil.example.com' }),
      ],
      [
        'no issuer, real kid',
        'gh-deployer',
        badSignature({ alg: 'RS256', kid: ghKey.kid }, { ...gh, iss: undefined }),
      ],
      ['unknown kid of a trusted issuer', 'gh-deployer', badSignature({ alg: 'RS256', kid: 'nope' }, gh)],
      [
        'algorithm the identity does not allow',
        'jw',
        badSignature({ alg: 'RS256', kid: 'jw-key-1' }, idpClaims(w.clock, w.jwks.issuer)),
      ],
      [
        'genuine token of another trusted issuer',
        'gh-deployer',
        await w.discovery.sign({
          sub: SUBJECT,
          aud: AUDIENCE,
          iat: seconds(w.clock.ms),
          exp: seconds(w.clock.ms) + 300,
        }),
      ],
    ];
  }

  it('#13.2 no identity oracle: every token kind that does not verify gets the same answer, in process and over HTTP', async () => {
    for (const [kind, known, jwt] of await unverifiedKinds()) {
      for (const [a, b] of [
        [known, UNKNOWN],
        [UNKNOWN, known],
      ] as const) {
        const first = await answer(w.auth, a, jwt);
        const second = await answer(w.auth, b, jwt);
        expect({ kind, answer: second }, `${b} after ${a}`).toEqual({ kind, answer: first });
        expect(first, kind).toMatchObject(UNIFORM);
      }
      const known_ = await postJson(app.url, LOGIN, { identityId: known, jwt });
      const unknown = await postJson(app.url, LOGIN, { identityId: UNKNOWN, jwt });
      expect({ kind, http: httpView(unknown) }).toEqual({ kind, http: httpView(known_) });
    }
  });

  it('#13.2 no identity oracle: a trusted issuer whose IdP cannot be reached is 503 for known and unknown ids alike (cold cache, either first)', async () => {
    for (const order of [
      ['ci', UNKNOWN],
      [UNKNOWN, 'ci'],
      ['gh-deployer', 'ci'],
    ] as const) {
      const fresh = await world();
      fresh.discovery.setBehavior('discovery', { kind: 'down' });
      const jwt = await fresh.discovery.sign(idpClaims(fresh.clock, fresh.discovery.issuer));
      const answers = [];
      for (const id of [...order, ...order]) answers.push(await answer(fresh.auth, id, jwt));
      for (const one of answers) {
        expect(one, `order ${order.join(', ')}`).toMatchObject({
          status: 503,
          headers: { 'retry-after': expect.stringMatching(/^[1-9][0-9]*$/) },
          body: { reasonCode: 'idp_unavailable' },
        });
        expect(one).toEqual(answers[0]);
      }
      expect(fresh.discovery.hits('discovery'), 'one fetch, shared').toBe(1);
    }
  });

  it('#13.2 no identity oracle: after verification the answers may differ (expired, valid), and an unknown id is still the uniform 401', async () => {
    const now = w.clock.ms;
    const expired = await sign(ghKey, githubClaims(now - 3_600_000));
    expect(await answer(w.auth, 'gh-deployer', expired)).toMatchObject({
      status: 401,
      body: { reasonCode: 'token_expired' },
    });
    expect(await answer(w.auth, UNKNOWN, expired)).toMatchObject(UNIFORM);
    const valid = await sign(ghKey, githubClaims(now));
    expect(await answer(w.auth, 'gh-deployer', valid)).toBe('ok');
    expect(await answer(w.auth, UNKNOWN, valid)).toMatchObject(UNIFORM);
    expect(w.rec.last('login.failure')?.reasonCode).toBe('identity_not_found');
    // A genuine token of an issuer some other identity trusts says nothing about this identity either.
    const ci = await w.discovery.sign(idpClaims(w.clock, w.discovery.issuer));
    expect(await answer(w.auth, 'ci', ci)).toBe('ok');
    expect(await answer(w.auth, 'gh-deployer', ci)).toMatchObject(UNIFORM);
    expect(await answer(w.auth, UNKNOWN, ci)).toMatchObject(UNIFORM);
  });
});

describe('#13.2 no identity oracle: the work done before verification does not depend on the identity id', () => {
  let w: World;
  beforeAll(async () => {
    w = await world();
  });

  /** Key lookups (cache hits and misses) one login makes: a signature check needs one. */
  async function keyLookups(identityId: string, jwt: string): Promise<number> {
    const before = w.auth.keys.stats();
    await answer(w.auth, identityId, jwt);
    const after = w.auth.keys.stats();
    return after.hits + after.misses - (before.hits + before.misses);
  }

  it('#13.2 no identity oracle: known and unknown ids make the same key lookups for every token kind', async () => {
    const gh = githubClaims(w.clock.ms);
    const kinds: Array<[string, string, string]> = [
      ['real kid, bad signature', 'gh-deployer', badSignature({ alg: 'RS256', kid: ghKey.kid }, gh)],
      [
        'no kid, five RSA-4096 keys',
        'multi',
        badSignature({ alg: 'RS256' }, { ...gh, iss: MULTI_ISSUER }, 512),
      ],
      [
        'untrusted issuer',
        'gh-deployer',
        badSignature({ alg: 'RS256', kid: ghKey.kid }, { ...gh, iss: 'https://evil.example.com' }),
      ],
      ['garbage', 'gh-deployer', 'a.b.c'],
    ];
    for (const [kind, known, jwt] of kinds) {
      await keyLookups(known, jwt); // warm
      expect({ kind, unknown: await keyLookups(UNKNOWN, jwt) }).toEqual({
        kind,
        unknown: await keyLookups(known, jwt),
      });
    }
  });

  /**
   * Latency of `login` for the known and the unknown id, in interleaved pairs (which one goes first
   * alternates), so drift and noise of a shared machine hit both alike. Fails on a visible gap: the
   * known id slower in most pairs AND by a margin an attacker could see (a ratio of the medians,
   * plus an absolute floor so microsecond-level noise on cheap paths does not count).
   */
  async function compare(known: string, jwt: string, pairs: number) {
    const time = async (id: string) => {
      const started = process.hrtime.bigint();
      await answer(w.auth, id, jwt);
      return Number(process.hrtime.bigint() - started) / 1000;
    };
    for (let i = 0; i < 20; i++) await time(i % 2 ? known : UNKNOWN);
    const knownUs: number[] = [];
    const unknownUs: number[] = [];
    let knownSlower = 0;
    for (let i = 0; i < pairs; i++) {
      let k: number;
      let u: number;
      if (i % 2 === 0) {
        k = await time(known);
        u = await time(UNKNOWN);
      } else {
        u = await time(UNKNOWN);
        k = await time(known);
      }
      knownUs.push(k);
      unknownUs.push(u);
      if (k > u) knownSlower++;
    }
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    return {
      knownMedianUs: Math.round(median(knownUs)),
      unknownMedianUs: Math.round(median(unknownUs)),
      ratio: median(knownUs) / median(unknownUs),
      knownSlowerFraction: knownSlower / pairs,
    };
  }

  it('#13.2 no identity oracle: latency distributions of known and unknown ids show no visible gap (interleaved pairs)', async () => {
    const gh = githubClaims(w.clock.ms);
    const kinds: Array<[string, string, string, number]> = [
      ['real kid, bad signature', 'gh-deployer', badSignature({ alg: 'RS256', kid: ghKey.kid }, gh), 400],
      [
        'no kid, five RSA-4096 keys',
        'multi',
        badSignature({ alg: 'RS256' }, { ...gh, iss: MULTI_ISSUER }, 512),
        150,
      ],
      [
        'real kid, bad signature, discovery',
        'ci',
        badSignature({ alg: 'RS256', kid: 'key-1' }, idpClaims(w.clock, w.discovery.issuer)),
        400,
      ],
      [
        'untrusted issuer',
        'gh-deployer',
        badSignature({ alg: 'RS256', kid: ghKey.kid }, { ...gh, iss: 'https://evil.example.com' }),
        400,
      ],
    ];
    const results = [];
    for (const [kind, known, jwt, pairs] of kinds) {
      const r = { kind, ...(await compare(known, jwt, pairs)) };
      results.push(r);
    }
    console.info(JSON.stringify(results, null, 1));
    for (const r of results) {
      const gapUs = r.knownMedianUs - r.unknownMedianUs;
      const visible =
        (r.knownSlowerFraction > 0.8 || r.knownSlowerFraction < 0.2) &&
        (r.ratio > 1.5 || r.ratio < 1 / 1.5) &&
        Math.abs(gapUs) > 25;
      expect({ ...r, visible }).toMatchObject({ visible: false });
    }
  });
});

/**
 * `get` calls a store received, and how many of them had been made when each login answered: the
 * store must not be read before the token verified, so a refused login's count at its answer is 0.
 */
interface Spy {
  gets: number;
}

/** A memory store that counts its reads: the engine registers its issuers at creation. */
class CountingMemoryStore extends MemoryIdentityStore {
  readonly spy: Spy = { gets: 0 };
  override async get(identityId: string): Promise<IdentityConfig | undefined> {
    this.spy.gets++;
    return super.get(identityId);
  }
}

/**
 * A custom store (not a MemoryIdentityStore) that counts its reads, over a map of configs; with
 * `issuerKeySources` (counted in `spy.listings`) when `withKeySources`.
 */
function countingCustomStore(
  configs: IdentityConfigInput[] = [],
  withKeySources = false,
): IdentityStore & { spy: Spy & { listings: number }; put: NonNullable<IdentityStore['put']> } {
  const inner = new MemoryIdentityStore(configs);
  const spy = { gets: 0, listings: 0 };
  const store: IdentityStore & { spy: typeof spy; put: NonNullable<IdentityStore['put']> } = {
    spy,
    get: async (id) => {
      spy.gets++;
      return inner.get(id);
    },
    put: (config) => inner.put(config),
    delete: (id) => inner.delete(id),
    list: () => inner.list(),
  };
  if (withKeySources) {
    store.issuerKeySources = async (issuer) => {
      spy.listings++;
      // What a database would hand back: the whole configs, as JSON read back.
      const all = await inner.list();
      return all.filter((c) => c.boundIssuer.includes(issuer)).map((c) => JSON.parse(JSON.stringify(c)));
    };
  }
  return store;
}

/** Every macrotask queued so far has run (a late load, see below, runs in one). */
const settle = () => new Promise((resolve) => setTimeout(resolve, 20));

/**
 * The answer of a login, and the store reads made by the time it answered. Earlier logins' late
 * loads (a custom store's, after a refusal) are let run first, so none falls in this one's count.
 */
async function answerAndReads(auth: OidcAuth, spy: Spy, identityId: string, jwt: string) {
  await settle();
  const before = spy.gets;
  const result = await answer(auth, identityId, jwt);
  return { result, readsBeforeAnswer: spy.gets - before };
}

describe('#13.2 no identity oracle: the identity store is not read before the signature verified', () => {
  /** Tokens that never verify, for `ci` (discovery, down) and `gh-deployer` (static key). */
  async function refusedKinds(clock: FakeClock, idp: TestIdp): Promise<Array<[string, string, string]>> {
    const gh = githubClaims(clock.ms);
    return [
      ['garbage', 'gh-deployer', 'not-a-token'],
      ['real kid, bad signature', 'gh-deployer', badSignature({ alg: 'RS256', kid: ghKey.kid }, gh)],
      ['unknown kid of a registered issuer', 'gh-deployer', badSignature({ alg: 'RS256', kid: 'nope' }, gh)],
      ['genuine token, unreachable IdP', 'ci', await idp.sign(idpClaims(clock, idp.issuer))],
      [
        'untrusted issuer',
        'gh-deployer',
        badSignature({ alg: 'RS256', kid: ghKey.kid }, { ...gh, iss: 'https://evil.example.com' }),
      ],
    ];
  }

  async function downIdp(): Promise<TestIdp> {
    const idp = await startTestIdp();
    cleanups.push(() => idp.close());
    idp.setBehavior('discovery', { kind: 'down' });
    return idp;
  }

  it('#13.2 no identity oracle: a MemoryIdentityStore is never read for a token that does not verify, known id or not (garbage, bad signature, unreachable IdP)', async () => {
    const idp = await downIdp();
    const clock = new FakeClock(Math.floor(Date.now() / 1000) * 1000);
    const store = new CountingMemoryStore([githubIdentity(ghKey), loopbackIdentity(idp, SUBJECT, AUDIENCE)]);
    const auth = createOidcAuth({
      identities: store,
      signingKeys: SIGNING_KEYS,
      clock: clock.now,
      keys: { timeoutMs: 300 },
    });
    cleanups.push(() => auth.close());
    for (const [kind, known, jwt] of await refusedKinds(clock, idp)) {
      const knownAnswer = await answerAndReads(auth, store.spy, known, jwt);
      const unknownAnswer = await answerAndReads(auth, store.spy, UNKNOWN, jwt);
      expect({ kind, ...unknownAnswer }).toEqual({ kind, ...knownAnswer });
      expect({ kind, reads: knownAnswer.readsBeforeAnswer }).toEqual({ kind, reads: 0 });
      expect(knownAnswer.result, kind).toMatchObject(
        kind.includes('unreachable') ? { status: 503 } : UNIFORM,
      );
    }
    await settle();
    expect(store.spy.gets, 'no read at all, not even after the answers').toBe(0);
    // A token that verifies is the first thing that reads the store.
    expect(await answer(auth, 'gh-deployer', await sign(ghKey, githubClaims(clock.ms)))).toBe('ok');
    expect(store.spy.gets).toBe(1);
  });

  it('#13.2 no identity oracle: a custom store, its issuers registered by the admin API, is not read before a login is answered (an issuer none of them binds is the documented cold path)', async () => {
    const idp = await downIdp();
    const clock = new FakeClock(Math.floor(Date.now() / 1000) * 1000);
    const store = countingCustomStore();
    const auth = createOidcAuth({
      identities: store,
      signingKeys: SIGNING_KEYS,
      clock: clock.now,
      keys: { timeoutMs: 300 },
    });
    cleanups.push(() => auth.close());
    const admin = createIdentityAdmin(auth);
    for (const config of [githubIdentity(ghKey), loopbackIdentity(idp, SUBJECT, AUDIENCE)]) {
      const { identityId, ...body } = config;
      expect((await admin.attach(identityId, body)).status).toBe(200);
    }
    await settle();
    store.spy.gets = 0;
    for (const [kind, known, jwt] of await refusedKinds(clock, idp)) {
      const knownAnswer = await answerAndReads(auth, store.spy, known, jwt);
      const unknownAnswer = await answerAndReads(auth, store.spy, UNKNOWN, jwt);
      // The untrusted issuer is the documented cold path: no identity registered it on this
      // instance, and the store cannot say none binds it, so the identity is read first.
      const reads = kind === 'untrusted issuer' ? 1 : 0;
      expect({ kind, ...unknownAnswer }).toEqual({ kind, ...knownAnswer, readsBeforeAnswer: reads });
      expect({ kind, reads: knownAnswer.readsBeforeAnswer }).toEqual({ kind, reads });
    }
  });
});

describe('#13.2 no identity oracle: a MemoryIdentityStore larger than its parsed-config cache', () => {
  const COUNT = 30_000;
  let auth: OidcAuth;
  let clock: FakeClock;
  beforeAll(async () => {
    clock = new FakeClock(Math.floor(Date.now() / 1000) * 1000);
    const identities = Array.from({ length: COUNT }, (_, i) =>
      githubIdentity(ghKey, { identityId: `id-${i}` }),
    );
    // 30,000 configs, 10,000 parsed ones kept (the default cacheSize): ids 0-19,999 start cold.
    auth = createOidcAuth({ identities, signingKeys: SIGNING_KEYS, clock: clock.now });
    cleanups.push(() => auth.close());
  }, 60_000);

  /**
   * Interleaved pairs (order alternating) of a known id and an unknown one; each pair takes a
   * fresh id of its kind (`known(i)`, `unknown-<i>`), so a cold id is cold when it is timed.
   */
  async function compare(known: (i: number) => string, jwt: string, pairs: number) {
    const time = async (id: string) => {
      const started = process.hrtime.bigint();
      await answer(auth, id, jwt);
      return Number(process.hrtime.bigint() - started) / 1000;
    };
    for (let i = 0; i < 20; i++) await time(i % 2 ? 'id-29999' : `warm-unknown-${i}`);
    const knownUs: number[] = [];
    const unknownUs: number[] = [];
    let knownSlower = 0;
    for (let i = 0; i < pairs; i++) {
      const [k, u] =
        i % 2 === 0
          ? [await time(known(i)), await time(`unknown-${i}`)]
          : [await time(`unknown-${i}`), await time(known(i))].reverse();
      knownUs.push(k!);
      unknownUs.push(u!);
      if (k! > u!) knownSlower++;
    }
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    return {
      knownMedianUs: +median(knownUs).toFixed(1),
      unknownMedianUs: +median(unknownUs).toFixed(1),
      knownSlowerFraction: knownSlower / pairs,
    };
  }

  it('#13.2 no identity oracle: known ids, recently used or cold (a config to parse), answer a token that does not verify as fast as unknown ids (interleaved pairs)', async () => {
    const gh = githubClaims(clock.ms);
    // Recently used: ids 29,950-29,999 just logged in (their parsed configs are in the cache).
    const valid = await sign(ghKey, gh);
    for (let i = COUNT - 50; i < COUNT; i++) expect(await answer(auth, `id-${i}`, valid)).toBe('ok');
    const recent = (i: number) => `id-${COUNT - 50 + (i % 50)}`;
    // Cold: ids 0-19,999, each used once (a read would parse it and put it in the cache).
    let next = 0;
    const cold = () => `id-${next++}`;
    const tokens: Array<[string, string]> = [
      ['real kid, bad signature', badSignature({ alg: 'RS256', kid: ghKey.kid }, gh)],
      ['unknown kid', badSignature({ alg: 'RS256', kid: 'nope' }, gh)],
      [
        'untrusted issuer',
        badSignature({ alg: 'RS256', kid: ghKey.kid }, { ...gh, iss: 'https://evil.example.com' }),
      ],
    ];
    const results = [];
    for (const [kind, jwt] of tokens) {
      results.push({ kind, known: 'recent', ...(await compare(recent, jwt, 400)) });
      results.push({ kind, known: 'cold', ...(await compare(cold, jwt, 400)) });
    }
    console.info(JSON.stringify(results, null, 1));
    for (const r of results) {
      // Visible: the known id slower (or faster) in most pairs AND by more than noise. Equal work
      // gives a fraction near 0.5 (±0.025 for 400 pairs); a parse (~30 µs) or a cache hit shows.
      const gapUs = r.knownMedianUs - r.unknownMedianUs;
      const visible = (r.knownSlowerFraction > 0.75 || r.knownSlowerFraction < 0.25) && Math.abs(gapUs) > 5;
      expect({ ...r, visible }).toMatchObject({ visible: false });
    }
  }, 120_000);
});

describe('#13.2 no identity oracle: a token verifies only against its own identity’s key source', () => {
  /** Identities of one issuer (the GitHub-like `ISSUER`), each pinning its own key. */
  function engineOf(keys: TestKey[], identities?: IdentityStore) {
    const clock = new FakeClock(Math.floor(Date.now() / 1000) * 1000);
    const rec = new Recorder();
    const auth = createOidcAuth({
      identities: identities ?? keys.map((key, i) => githubIdentity(key, { identityId: `own-${i}` })),
      signingKeys: SIGNING_KEYS,
      clock: clock.now,
      onEvent: rec.onEvent,
    });
    cleanups.push(() => auth.close());
    return { auth, clock, rec };
  }

  it('#13.2 no identity oracle: a token signed by another registered source of the same issuer is refused; each source’s own identity logs in', async () => {
    const keys = [makeKey('RS256', 'own-a'), makeKey('RS256', 'own-b')];
    for (const order of [keys, [...keys].reverse()]) {
      const { auth, clock, rec } = engineOf(order);
      expect(auth.keys.keySourcesFor(ISSUER)?.sources).toHaveLength(2);
      const tokens = await Promise.all(order.map((key) => sign(key, githubClaims(clock.ms))));
      for (let i = 0; i < order.length; i++) {
        for (let j = 0; j < order.length; j++) {
          const result = await answer(auth, `own-${i}`, tokens[j]!);
          if (i === j) expect(result, `own-${i} with its own token`).toBe('ok');
          else {
            expect(result, `own-${i} with own-${j}'s token`).toMatchObject(UNIFORM);
            // Its own source has no key of that kid (key_not_found), or none that verifies.
            expect(['key_not_found', 'signature_invalid']).toContain(rec.last('login.failure')?.reasonCode);
          }
        }
        expect(await answer(auth, UNKNOWN, tokens[i]!)).toMatchObject(UNIFORM);
        expect(rec.last('login.failure')?.reasonCode).toBe('identity_not_found');
      }
    }
  });

  it('#13.2 no identity oracle: identities reaching one IdP’s keys by different sources (discovery, jwksUrl) both log in', async () => {
    const idp = await startTestIdp();
    cleanups.push(() => idp.close());
    const common = {
      allowInsecureLoopback: true,
      boundIssuer: idp.issuer,
      boundSubject: SUBJECT,
      boundAudiences: AUDIENCE,
    };
    const auth = createOidcAuth({
      identities: [
        { identityId: 'by-discovery', oidcDiscoveryUrl: idp.issuer, ...common },
        { identityId: 'by-jwks', jwksUrl: idp.jwksUrl, ...common },
      ],
      signingKeys: SIGNING_KEYS,
    });
    cleanups.push(() => auth.close());
    const jwt = await idp.sign({ sub: SUBJECT, aud: AUDIENCE });
    for (const id of ['by-jwks', 'by-discovery', 'by-jwks', 'by-discovery']) {
      expect(await answer(auth, id, jwt), id).toBe('ok');
    }
  });

  it('#13.2 no identity oracle: ten identities of one issuer with ten keys (past the 8 sources kept per issuer) each log in with their own token only', async () => {
    const keys = Array.from({ length: 10 }, (_, i) => makeKey('ES256', `ten-${i}`));
    const { auth, clock } = engineOf(keys);
    expect(auth.keys.keySourcesFor(ISSUER)).toMatchObject({ full: true });
    expect(auth.keys.keySourcesFor(ISSUER)?.sources).toHaveLength(8);
    const tokens = await Promise.all(keys.map((key) => sign(key, githubClaims(clock.ms))));
    for (const i of [0, 7, 8, 9]) {
      for (const j of [0, 7, 8, 9]) {
        const result = await answer(auth, `own-${i}`, tokens[j]!);
        expect(result, `own-${i} with own-${j}'s token`).toEqual(
          i === j ? 'ok' : expect.objectContaining(UNIFORM),
        );
      }
    }
  });
});

describe('#13.2 no identity oracle: issuers registered late (stores other than memory)', () => {
  /** Key lookups a login made, the store reads it made before its answer, and its answer. */
  async function observe(auth: OidcAuth, spy: Spy, identityId: string, jwt: string) {
    const before = auth.keys.stats();
    const { result, readsBeforeAnswer } = await answerAndReads(auth, spy, identityId, jwt);
    const after = auth.keys.stats();
    return { result, readsBeforeAnswer, keyLookups: after.hits + after.misses - before.hits - before.misses };
  }

  it('#13.2 no identity oracle: a cold issuer (a custom store not read yet) reads the identity first, as documented; once read, its issuer is warm and the store is read only after verification', async () => {
    const store = countingCustomStore([githubIdentity(ghKey)]);
    const clock = new FakeClock(Math.floor(Date.now() / 1000) * 1000);
    const auth = createOidcAuth({ identities: store, signingKeys: SIGNING_KEYS, clock: clock.now });
    cleanups.push(() => auth.close());
    const bad = badSignature({ alg: 'RS256', kid: ghKey.kid }, githubClaims(clock.ms));
    expect(auth.keys.keySourcesFor(ISSUER)).toBeUndefined();
    // Cold: both ids are read; only the known one, which binds the issuer, looks its keys up.
    expect(await observe(auth, store.spy, UNKNOWN, bad)).toEqual({
      result: UNIFORM_ANSWER,
      readsBeforeAnswer: 1,
      keyLookups: 0,
    });
    expect(auth.keys.keySourcesFor(ISSUER)).toBeUndefined();
    expect(await observe(auth, store.spy, 'gh-deployer', bad)).toEqual({
      result: UNIFORM_ANSWER,
      readsBeforeAnswer: 1,
      keyLookups: 1,
    });
    // Warm from now on: the same work, and no read before the answer, for either id.
    expect(auth.keys.keySourcesFor(ISSUER)?.sources).toHaveLength(1);
    for (const id of [UNKNOWN, 'gh-deployer']) {
      expect(await observe(auth, store.spy, id, bad), id).toEqual({
        result: UNIFORM_ANSWER,
        readsBeforeAnswer: 0,
        keyLookups: 1,
      });
    }
    expect(await answer(auth, 'gh-deployer', await sign(ghKey, githubClaims(clock.ms)))).toBe('ok');
  });

  it('#13.2 no identity oracle: an identity whose key source this instance has not seen (written by another instance) logs in on its next attempt (a store with issuerKeySources)', async () => {
    const store = countingCustomStore([githubIdentity(ghKey)], true);
    const clock = new FakeClock(Math.floor(Date.now() / 1000) * 1000);
    const auth = createOidcAuth({ identities: store, signingKeys: SIGNING_KEYS, clock: clock.now });
    cleanups.push(() => auth.close());
    expect(await answer(auth, 'gh-deployer', await sign(ghKey, githubClaims(clock.ms)))).toBe('ok');
    // Another instance attaches an identity of the same issuer with its own key.
    const other = makeKey('ES256', 'elsewhere');
    await store.put(githubIdentity(other, { identityId: 'elsewhere' }));
    const jwt = await sign(other, githubClaims(clock.ms));
    // Its first login: no source of this instance verifies the token, so it is refused without a
    // read; the issuer's key sources are listed afterwards (no identity read) and registered.
    expect(await answerAndReads(auth, store.spy, 'elsewhere', jwt)).toEqual({
      result: UNIFORM_ANSWER,
      readsBeforeAnswer: 0,
    });
    const gets = store.spy.gets;
    await settle();
    expect({ gets: store.spy.gets, listings: store.spy.listings }).toEqual({ gets, listings: 1 });
    expect(await answer(auth, 'elsewhere', jwt)).toBe('ok');
    // Once per 30 s per issuer: another refusal on it does not list again.
    const bad = badSignature({ alg: 'RS256', kid: ghKey.kid }, githubClaims(clock.ms));
    await answer(auth, UNKNOWN, bad);
    await settle();
    expect(store.spy.listings).toBe(1);
    clock.advance(30);
    await answer(auth, UNKNOWN, bad);
    await settle();
    expect(store.spy.listings).toBe(2);
  });

  /**
   * A fresh engine over a store holding `tenant-a` (static key, logged in once) and `tenant-b` (same
   * issuer, its own JWKS URL, unreachable): probe `probe` with an attacker's token, let anything
   * queued after the answer run, then log in once more as a third id. Everything observable after
   * the probe: the issuer's registered sources, store reads, fetches, and the next login's answer.
   */
  async function probeThenNext(probe: string, withKeySources: boolean) {
    const clock = new FakeClock(Math.floor(Date.now() / 1000) * 1000);
    const a = makeKey('RS256', 'tenant-a');
    const store = countingCustomStore(
      [
        githubIdentity(a, { identityId: 'tenant-a' }),
        {
          identityId: 'tenant-b',
          jwksUrl: 'https://jwks.tenant-b.example/keys',
          boundIssuer: ISSUER,
          boundSubject: SUBJECT,
          boundAudiences: AUDIENCE,
        },
      ],
      withKeySources,
    );
    let fetches = 0;
    const auth = createOidcAuth({
      identities: store,
      signingKeys: SIGNING_KEYS,
      clock: clock.now,
      httpGet: async () => {
        fetches++;
        throw Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
      },
    });
    cleanups.push(() => auth.close());
    expect(await answer(auth, 'tenant-a', await sign(a, githubClaims(clock.ms)))).toBe('ok');
    const attacker = makeKey('RS256', 'attacker');
    const forged = await sign(attacker, githubClaims(clock.ms));
    await settle();
    const gets = store.spy.gets;
    const probed = await answer(auth, probe, forged);
    await settle();
    const afterProbe = {
      sources: auth.keys.keySourcesFor(ISSUER)?.sources.length,
      storeReads: store.spy.gets - gets,
      listings: store.spy.listings,
      fetches,
    };
    const next = await answer(auth, 'someone-else', forged);
    await settle();
    return {
      probed,
      afterProbe,
      next,
      fetchesAfterNext: fetches,
      sourcesAfterNext: auth.keys.keySourcesFor(ISSUER)?.sources.length,
    };
  }

  it('#13.2 no identity oracle: probing an existing id and an unknown one leaves the same key registry and the same work for the next login (custom store with and without issuerKeySources)', async () => {
    for (const withKeySources of [false, true]) {
      const existing = await probeThenNext('tenant-b', withKeySources);
      const unknown = await probeThenNext(UNKNOWN, withKeySources);
      expect({ withKeySources, ...unknown }).toEqual({ withKeySources, ...existing });
      // Nothing reads the identity the client named, before or after the answer.
      expect(existing.afterProbe.storeReads, `withKeySources ${withKeySources}`).toBe(0);
      if (withKeySources) {
        // The refresh is the issuer's: tenant-b's source is registered whichever id was probed.
        expect(existing.afterProbe).toMatchObject({ listings: 1, sources: 2 });
      } else {
        expect(existing.afterProbe).toMatchObject({ listings: 0, sources: 1, fetches: 0 });
      }
    }
  });

  it('#13.2 no identity oracle: a config put straight into a MemoryIdentityStore is registered before the next login', async () => {
    const store = new CountingMemoryStore([githubIdentity(ghKey)]);
    const clock = new FakeClock(Math.floor(Date.now() / 1000) * 1000);
    const auth = createOidcAuth({ identities: store, signingKeys: SIGNING_KEYS, clock: clock.now });
    cleanups.push(() => auth.close());
    const other = makeKey('ES256', 'put-later');
    await store.put(
      githubIdentity(other, { identityId: 'put-later', boundIssuer: 'https://later.example.com' }),
    );
    const jwt = await sign(other, githubClaims(clock.ms, { iss: 'https://later.example.com' }));
    expect(await answer(auth, 'put-later', jwt)).toBe('ok');
    // And an issuer no config binds is refused with no read at all (every issuer is registered).
    const evil = badSignature(
      { alg: 'ES256', kid: other.kid },
      githubClaims(clock.ms, { iss: 'https://evil.example.com' }),
      64,
    );
    expect(await answerAndReads(auth, store.spy, 'put-later', evil)).toEqual({
      result: UNIFORM_ANSWER,
      readsBeforeAnswer: 0,
    });
  });
});

describe('#13.2 no identity oracle: a MemoryIdentityStore past the key manager’s 10,000 registered issuers', () => {
  it('#13.2 no identity oracle: with 10,001 distinct issuers, a token of an issuer no identity binds is refused with no store read, known id or not; each bound issuer still logs in', async () => {
    const key = makeKey('ES256', 'many-issuers');
    const configs = Array.from({ length: 10_001 }, (_, i) =>
      githubIdentity(key, { identityId: `id-${i}`, boundIssuer: `https://iss-${i}.example.com` }),
    );
    const store = new CountingMemoryStore(configs);
    const clock = new FakeClock(Math.floor(Date.now() / 1000) * 1000);
    const auth = createOidcAuth({ identities: store, signingKeys: SIGNING_KEYS, clock: clock.now });
    cleanups.push(() => auth.close());
    expect(auth.keys.sizes().issuers).toBe(10_000);
    const unbound = await sign(key, githubClaims(clock.ms, { iss: 'https://bound-by-nobody.example.com' }));
    for (const id of ['id-5', 'id-10000', UNKNOWN]) {
      expect(await answerAndReads(auth, store.spy, id, unbound), id).toEqual({
        result: UNIFORM_ANSWER,
        readsBeforeAnswer: 0,
      });
    }
    // The last issuer, past the registry's bound, is bound: its identity reads the store (the cold
    // path, as documented) and logs in.
    const last = await sign(key, githubClaims(clock.ms, { iss: 'https://iss-10000.example.com' }));
    expect(await answer(auth, 'id-10000', last)).toBe('ok');
    expect(
      await answer(
        auth,
        'id-3',
        await sign(key, githubClaims(clock.ms, { iss: 'https://iss-3.example.com' })),
      ),
    ).toBe('ok');
  }, 60_000);
});
