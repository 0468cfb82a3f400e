import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createOidcAuth, OidcAuthError, type OidcAuth } from '../../src/index.js';
import type { IdentityConfigInput } from '../../src/types.js';
import { FakeClock, Recorder, SIGNING_KEYS, githubIdentity } from '../helpers/engine.js';
import { postJson, type RawResponse } from '../helpers/http.js';
import { createSigningKey, startTestIdp, type TestIdp } from '../helpers/idp-server.js';
import { b64, githubClaims, makeKey, rawToken, seconds, sign } from '../helpers/jwt.js';
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
    {
      identityId: 'ci',
      oidcDiscoveryUrl: discovery.issuer,
      allowInsecureLoopback: true,
      boundIssuer: discovery.issuer,
      boundSubject: SUBJECT,
      boundAudiences: AUDIENCE,
    },
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
