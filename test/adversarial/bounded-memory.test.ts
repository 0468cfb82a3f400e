import { randomUUID } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { createOidcAuth, type OidcAuth } from '../../src/index.js';
import { FakeClock, SIGNING_KEYS, githubIdentity } from '../helpers/engine.js';
import { loopbackIdentity, startTestIdp, type TestIdp } from '../helpers/idp-server.js';
import { ISSUER, githubClaims, makeKey, rawToken, seconds } from '../helpers/jwt.js';
import { failOnUnhandled } from './support.js';

failOnUnhandled();

/**
 * #13.3: every cache keyed by what a client sends stays at its bound, whatever it sends. Sizes are
 * read from the KeyManager's `@internal` accessor (a deterministic count, not a heap estimate).
 */

const N = 100_000;
const SUBJECT = 'repo:acme-corp/payments-api:ref:refs/heads/main';
const AUDIENCE = 'oidc-machine-auth-tests';

const cleanups: Array<() => Promise<unknown>> = [];
afterAll(async () => {
  for (const close of cleanups.splice(0)) await close();
});

/** A static key without a kid (a pinned PEM or kid-less JWK matches every kid), a JWKS identity and a discovery one. */
async function engine(): Promise<{ auth: OidcAuth; clock: FakeClock; idp: TestIdp }> {
  const rsa = makeKey('RS256', 'unused');
  const { kid: _kid, ...kidless } = rsa.publicJwk;
  const pem = makeKey('ES256').publicKey.export({ format: 'pem', type: 'spki' }) as string;
  const idp = await startTestIdp();
  cleanups.push(() => idp.close());
  const clock = new FakeClock(Math.floor(Date.now() / 1000) * 1000);
  const auth = createOidcAuth({
    identities: [
      githubIdentity(rsa, { identityId: 'kidless', publicKeys: [kidless, pem] }),
      {
        identityId: 'jw',
        jwksUrl: idp.jwksUrl,
        allowInsecureLoopback: true,
        boundIssuer: `${idp.issuer}/jw`,
        boundSubject: SUBJECT,
      },
      loopbackIdentity(idp, SUBJECT, AUDIENCE),
    ],
    signingKeys: SIGNING_KEYS,
    clock: clock.now,
  });
  cleanups.push(() => auth.close());
  return { auth, clock, idp };
}

const sizes = (auth: OidcAuth) => auth.keys.sizes();

describe('#13.3 bounded memory whatever the attacker sends', () => {
  it('#13.3 bounded memory: 100k random kids against a kid-less static key keep the key-match memo at its bound', async () => {
    const { auth } = await engine();
    const config = (await auth.identities.get('kidless'))!;
    // Through login first (the way an attacker reaches it), then straight at the key lookup.
    for (let i = 0; i < 200; i++) {
      const jwt = rawToken(
        { alg: i % 2 ? 'RS256' : 'ES256', kid: randomUUID() },
        githubClaims(Date.now()),
        'c2ln',
      );
      await auth.login({ identityId: 'kidless', jwt }).catch(() => undefined);
    }
    const before = sizes(auth);
    for (let i = 0; i < N; i++) {
      await auth.keys.getKeys(config, { alg: i % 3 ? 'RS256' : 'ES256', kid: `${i}-${randomUUID()}` });
    }
    const after = sizes(auth);
    expect(after.matches, 'memoised matches').toBeLessThanOrEqual(64);
    expect(after).toEqual(before);
  });

  it('#13.3 bounded memory: 100k random kids, issuers and identity ids through login change no cache size, and the IdP is fetched a bounded number of times', async () => {
    const { auth, clock, idp } = await engine();
    const now = seconds(clock.ms);
    // Warm every source once, so the sizes below are the steady state.
    await auth.login({
      identityId: 'ci',
      jwt: await idp.sign({ sub: SUBJECT, aud: AUDIENCE, iat: now, exp: now + 300 }),
    });
    const claims = (iss: string) => ({ iss, sub: SUBJECT, aud: AUDIENCE, iat: now, exp: now + 300 });
    await auth
      .login({ identityId: 'ci', jwt: rawToken({ alg: 'RS256', kid: 'k' }, claims(idp.issuer)) })
      .catch(() => 0);
    const warm = sizes(auth);
    const hits = () => idp.hits('discovery') + idp.hits('jwks');
    const fetchedBefore = hits();
    const kinds: Array<(i: number) => { identityId: string; jwt: string }> = [
      // a random kid at a trusted issuer, known id
      (i) => ({ identityId: 'ci', jwt: rawToken({ alg: 'RS256', kid: `k${i}` }, claims(idp.issuer)) }),
      // a random kid at a trusted issuer, unknown random id
      (i) => ({ identityId: `id-${i}`, jwt: rawToken({ alg: 'RS256', kid: `k${i}` }, claims(idp.issuer)) }),
      // a random issuer, known and unknown ids
      (i) => ({
        identityId: 'ci',
        jwt: rawToken({ alg: 'RS256', kid: 'key-1' }, claims(`https://${i}.example.com`)),
      }),
      (i) => ({ identityId: `id-${i}`, jwt: rawToken({ alg: 'ES256' }, claims(`https://${i}.example.com`)) }),
    ];
    for (let i = 0; i < N; i++) {
      const attempt = kinds[i % kinds.length]!(i);
      await auth.login(attempt).then(
        () => expect.unreachable('a forged token logged in'),
        () => undefined,
      );
      if (i % 10_000 === 0) clock.advance(1);
    }
    expect(sizes(auth)).toEqual(warm);
    // Unknown kids refetch at most once per 30 s cooldown while the IdP is healthy.
    expect(hits() - fetchedBefore).toBeLessThanOrEqual(1);
  });

  it('#13.3 bounded memory: the issuer registry keeps at most 10,000 issuers, however many identities bind', async () => {
    const identities = Array.from({ length: 24_000 }, (_, i) => ({
      identityId: `id-${i}`,
      jwksUrl: `https://idp-${i % 12_000}.example.com/jwks`,
      boundIssuer: [`https://idp-${i % 12_000}.example.com`, ISSUER],
      boundSubject: SUBJECT,
    }));
    const auth = createOidcAuth({ identities, signingKeys: SIGNING_KEYS });
    cleanups.push(() => auth.close());
    expect(sizes(auth).issuers).toBe(10_000);
    // Logins of identities past the bound register nothing more.
    for (let i = 11_000; i < 11_100; i++) {
      // An issuer the identity does not bind: no key lookup, so nothing is fetched from the network.
      const jwt = rawToken({ alg: 'RS256' }, { iss: 'https://unbound.example.com' });
      await auth.login({ identityId: `id-${i}`, jwt }).catch(() => undefined);
    }
    expect(sizes(auth).issuers).toBe(10_000);
  });
});
