import { base64url, decodeProtectedHeader, SignJWT } from 'jose';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { createVerifier, VerifyError, type VerifierOptions } from '../../src/verify/index.js';
import { startJoseIssuer, type AccessTokenIssuer } from '../helpers/access-token-issuer.js';

const AUDIENCE = 'https://api.example';
const PATH = '/api/v1/auth';
const INSERTED = `/.well-known/oauth-authorization-server${PATH}`;
const APPENDED = `${PATH}/.well-known/oauth-authorization-server`;
const JWKS = `${PATH}/.well-known/jwks.json`;

function verifierFor(issuer: AccessTokenIssuer, extra: Partial<VerifierOptions> = {}) {
  return createVerifier({ issuer: issuer.issuer, audience: AUDIENCE, allowInsecureLoopback: true, ...extra });
}

/** The code a refused verification carries (and that the error never echoes the token). */
async function refusal(promise: Promise<unknown>, token?: string): Promise<string> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(VerifyError);
  if (token) expect((error as Error).message).not.toContain(token);
  return (error as VerifyError).code;
}

const encode = (value: object) => base64url.encode(JSON.stringify(value));

let ours: AccessTokenIssuer;
let other: AccessTokenIssuer;
beforeAll(async () => {
  ours = await startJoseIssuer({ path: PATH });
  other = await startJoseIssuer({ path: PATH });
});
afterAll(async () => {
  await ours.close();
  await other.close();
});
afterEach(() => {
  vi.useRealTimers();
});

describe('oidc-machine-auth/verify: happy path', () => {
  for (const alg of ['EdDSA', 'ES256', 'RS256'] as const) {
    it(`RFC 9068 section 4: an ${alg} access token of our issuer verifies and its claims come back`, async () => {
      const issuer = alg === 'EdDSA' ? ours : await startJoseIssuer({ path: PATH, alg });
      try {
        const token = await issuer.mint({ sub: 'svc-a' });
        const claims = await verifierFor(issuer).verify(token);
        expect(claims).toMatchObject({
          iss: issuer.issuer,
          sub: 'svc-a',
          aud: AUDIENCE,
          client_id: 'ci-deployer',
          scope: 'secrets:read',
        });
        expect(Object.isFrozen(claims)).toBe(true);
      } finally {
        if (issuer !== ours) await issuer.close();
      }
    });
  }

  it('RFC 9068 section 4: typ "application/at+jwt" is accepted as "at+jwt"', async () => {
    const token = await ours.mint({}, { typ: 'application/at+jwt' });
    await expect(verifierFor(ours).verify(token)).resolves.toMatchObject({ iss: ours.issuer });
  });

  it('RFC 9068 section 4: aud may be a list that contains the configured audience; the verifier may accept several audiences', async () => {
    const token = await ours.mint({ aud: ['https://other.example', AUDIENCE] });
    await expect(verifierFor(ours).verify(token)).resolves.toMatchObject({ sub: expect.any(String) });
    const list = await ours.mint({ aud: 'https://b.example' });
    await expect(
      verifierFor(ours, { audience: ['https://a.example', 'https://b.example'] }).verify(list),
    ).resolves.toBeTruthy();
  });

  it('RFC 8414 section 3.1: metadata is read from the path-inserted location first, once, then the JWKS once, for 100 concurrent first verifications', async () => {
    const issuer = await startJoseIssuer({ path: PATH });
    try {
      const tokens = await Promise.all(Array.from({ length: 100 }, () => issuer.mint()));
      const verifier = verifierFor(issuer);
      const results = await Promise.all(tokens.map((t) => verifier.verify(t)));
      expect(results).toHaveLength(100);
      expect(issuer.hits(INSERTED)).toBe(1);
      expect(issuer.hits(APPENDED)).toBe(0);
      expect(issuer.hits(JWKS)).toBe(1);
      expect((await verifier.metadata()).issuer).toBe(issuer.issuer);
    } finally {
      await issuer.close();
    }
  });

  it('RFC 8414 section 3.1: an issuer that answers only the appended form is found there after the inserted form 404s', async () => {
    const issuer = await startJoseIssuer({ path: PATH, metadataAt: 'appended' });
    try {
      await expect(verifierFor(issuer).verify(await issuer.mint())).resolves.toBeTruthy();
      expect(issuer.hits(INSERTED)).toBe(1);
      expect(issuer.hits(APPENDED)).toBe(1);
    } finally {
      await issuer.close();
    }
  });

  it('a token verified before is served from the bounded cache, and refused once it expires (exp checked on every hit)', async () => {
    vi.useFakeTimers({ toFake: ['Date'], now: Date.now() });
    const token = await ours.mint({ exp: Math.floor(Date.now() / 1000) + 10 });
    const verifier = verifierFor(ours, { clockToleranceSeconds: 0 });
    await expect(verifier.verify(token)).resolves.toBeTruthy();
    await expect(verifier.verify(token)).resolves.toBeTruthy();
    vi.setSystemTime(Date.now() + 11_000);
    expect(await refusal(verifier.verify(token), token)).toBe('token_expired');
  });
});

describe('oidc-machine-auth/verify: RFC 8414 section 3.3 metadata issuer', () => {
  it('RFC 8414 section 3.3: metadata whose issuer differs from the configured issuer is refused (503 metadata_issuer_mismatch) and its jwks_uri never fetched', async () => {
    const issuer = await startJoseIssuer({ path: PATH, metadataIssuer: (real) => `${real}/` });
    try {
      const token = await issuer.mint();
      const error = await verifierFor(issuer)
        .verify(token)
        .catch((e: unknown) => e);
      expect(error).toMatchObject({ code: 'metadata_issuer_mismatch', status: 503 });
      expect(issuer.hits(JWKS)).toBe(0);
    } finally {
      await issuer.close();
    }
  });

  it('an issuer that cannot be reached fails closed with 503 metadata_unavailable', async () => {
    const issuer = await startJoseIssuer({ path: PATH });
    const url = issuer.issuer;
    await issuer.close();
    const error = await createVerifier({ issuer: url, audience: AUDIENCE, allowInsecureLoopback: true })
      .verify(await ours.mint({ iss: url }))
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'metadata_unavailable', status: 503 });
  });
});

describe('oidc-machine-auth/verify: JWKS failures', () => {
  it('a JWKS that cannot be fetched fails closed with 503 jwks_unavailable; the host fetch option carries every request', async () => {
    const seen: string[] = [];
    const verifier = verifierFor(ours, {
      fetch: async (input, init) => {
        const url = input instanceof Request ? input.url : String(input);
        seen.push(new URL(url).pathname);
        return url.endsWith('/jwks.json') ? new Response('oops', { status: 500 }) : fetch(input, init);
      },
    });
    const error = await verifier.verify(await ours.mint()).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'jwks_unavailable', status: 503 });
    expect(seen).toEqual([INSERTED, JWKS]);
  });
});

describe('oidc-machine-auth/verify: alg / typ confusion and claim checks (RFC 9068 section 4, RFC 8725)', () => {
  it('RFC 9068 section 4: an IdP ID token (typ JWT) is refused with token_type_invalid, even signed with our own key and carrying our iss', async () => {
    const idToken = await ours.mint({ nonce: 'n' }, { typ: 'JWT' });
    expect(await refusal(verifierFor(ours).verify(idToken), idToken)).toBe('token_type_invalid');
    const untyped = await ours.mint({}, { typ: undefined });
    expect(await refusal(verifierFor(ours).verify(untyped))).toBe('token_type_invalid');
  });

  it('RFC 9068 section 4: an at+jwt of another issuer is refused with issuer_mismatch before any fetch', async () => {
    const issuer = await startJoseIssuer({ path: PATH });
    try {
      const foreign = await other.mint({ aud: AUDIENCE });
      expect(await refusal(verifierFor(issuer).verify(foreign), foreign)).toBe('issuer_mismatch');
      expect(issuer.hits(INSERTED) + issuer.hits(JWKS)).toBe(0);
    } finally {
      await issuer.close();
    }
  });

  it("RFC 9068 section 4: an at+jwt claiming our iss but signed by another issuer's key is refused (key_not_found for an unknown kid, signature_invalid for a kid that collides)", async () => {
    const [, payload, signature] = (await other.mint({ iss: ours.issuer })).split('.');
    const ourKid = decodeProtectedHeader(await ours.mint()).kid;
    const unknownKid = `${encode({ alg: 'EdDSA', typ: 'at+jwt', kid: 'k-unknown' })}.${payload}.${signature}`;
    expect(await refusal(verifierFor(ours).verify(unknownKid), unknownKid)).toBe('key_not_found');
    const sameKid = `${encode({ alg: 'EdDSA', typ: 'at+jwt', kid: ourKid })}.${payload}.${signature}`;
    expect(await refusal(verifierFor(ours).verify(sameKid), sameKid)).toBe('signature_invalid');
  });

  it('RFC 8725 section 3.1: alg "none" is refused with algorithm_not_allowed (empty or junk signature)', async () => {
    const payload = (await ours.mint()).split('.')[1]!;
    const header = encode({ alg: 'none', typ: 'at+jwt' });
    expect(await refusal(verifierFor(ours).verify(`${header}.${payload}.`))).toBe('algorithm_not_allowed');
    expect(await refusal(verifierFor(ours).verify(`${header}.${payload}.AAAA`))).toBe(
      'algorithm_not_allowed',
    );
  });

  it('RFC 8725 section 2.1: HS256 keyed with our public key is refused with algorithm_not_allowed, without fetching anything', async () => {
    const issuer = await startJoseIssuer({ path: PATH });
    try {
      const jwks = (await fetch(`${issuer.issuer}/.well-known/jwks.json`).then((r) => r.json())) as {
        keys: object[];
      };
      const before = issuer.hits(JWKS);
      const publicKeyBytes = new TextEncoder().encode(JSON.stringify(jwks.keys[0]));
      const now = Math.floor(Date.now() / 1000);
      const hs = await new SignJWT({
        iss: issuer.issuer,
        sub: 's',
        aud: AUDIENCE,
        iat: now,
        exp: now + 60,
        jti: 'j',
        client_id: 'c',
      })
        .setProtectedHeader({ alg: 'HS256', typ: 'at+jwt', kid: 'k1' })
        .sign(publicKeyBytes);
      expect(await refusal(verifierFor(issuer).verify(hs), hs)).toBe('algorithm_not_allowed');
      expect(issuer.hits(JWKS)).toBe(before);
      expect(issuer.hits(INSERTED)).toBe(0);
    } finally {
      await issuer.close();
    }
  });

  it('an algorithm outside the configured allowlist is refused even when the key would verify it', async () => {
    const es = await startJoseIssuer({ path: PATH, alg: 'ES256' });
    try {
      const token = await es.mint();
      expect(await refusal(verifierFor(es, { algorithms: ['EdDSA'] }).verify(token))).toBe(
        'algorithm_not_allowed',
      );
    } finally {
      await es.close();
    }
  });

  it('createVerifier refuses symmetric and "none" algorithms, a non-https issuer and a missing audience (invalid_config at start-up)', () => {
    const base = { issuer: 'https://app.example/api/v1/auth', audience: AUDIENCE };
    for (const algorithms of [['HS256'], ['none'], []]) {
      expect(() => createVerifier({ ...base, algorithms: algorithms as never })).toThrow(
        expect.objectContaining({ code: 'invalid_config' }),
      );
    }
    expect(() => createVerifier({ ...base, issuer: 'http://app.example/api' })).toThrow(
      expect.objectContaining({ code: 'invalid_config' }),
    );
    expect(() => createVerifier({ ...base, issuer: 'http://127.0.0.1:1/x' })).toThrow(
      expect.objectContaining({ code: 'invalid_config' }),
    );
    expect(() => createVerifier({ ...base, audience: '' })).toThrow(
      expect.objectContaining({ code: 'invalid_config' }),
    );
    expect(() => createVerifier({ ...base, issuer: 'https://app.example/x?q=1' })).toThrow(
      expect.objectContaining({ code: 'invalid_config' }),
    );
  });

  it('RFC 9068 section 4: a wrong aud is refused with audience_mismatch (401, RFC 6750 challenge)', async () => {
    const token = await ours.mint({ aud: 'https://someone-else.example' });
    const error = await verifierFor(ours)
      .verify(token)
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'audience_mismatch', status: 401 });
    expect((error as VerifyError).headers['www-authenticate']).toBe(
      'Bearer error="invalid_token", error_description="audience_mismatch"',
    );
  });

  it('RFC 9068 section 4: an expired token is refused with token_expired (beyond the clock tolerance)', async () => {
    const now = Math.floor(Date.now() / 1000);
    const token = await ours.mint({ iat: now - 600, exp: now - 61 });
    expect(await refusal(verifierFor(ours).verify(token), token)).toBe('token_expired');
    const withinSkew = await ours.mint({ iat: now - 600, exp: now - 30 });
    await expect(verifierFor(ours).verify(withinSkew)).resolves.toBeTruthy();
  });

  it('RFC 7519 section 4.1.5: nbf in the future is refused with token_not_yet_valid', async () => {
    const token = await ours.mint({ nbf: Math.floor(Date.now() / 1000) + 600 });
    expect(await refusal(verifierFor(ours).verify(token), token)).toBe('token_not_yet_valid');
  });

  it('iat in the future beyond the tolerance is refused with claim_invalid', async () => {
    const token = await ours.mint({ iat: Math.floor(Date.now() / 1000) + 600 });
    expect(await refusal(verifierFor(ours).verify(token), token)).toBe('claim_invalid');
  });

  for (const claim of ['sub', 'aud', 'exp', 'iat', 'jti', 'client_id'] as const) {
    it(`RFC 9068 section 2.2: a token without "${claim}" is refused with claim_missing`, async () => {
      const token = await ours.mint({ [claim]: undefined });
      expect(await refusal(verifierFor(ours).verify(token), token)).toBe('claim_missing');
    });
  }

  it('RFC 9068 section 2.2: a non-string client_id or scope is refused with claim_invalid', async () => {
    for (const claims of [{ client_id: 42 }, { scope: ['a', 'b'] }, { sub: '' }]) {
      const token = await ours.mint(claims);
      expect(await refusal(verifierFor(ours).verify(token), token)).toBe('claim_invalid');
    }
  });

  it('a payload changed after signing is refused with signature_invalid', async () => {
    const [header, , signature] = (await ours.mint()).split('.');
    const now = Math.floor(Date.now() / 1000);
    const payload = encode({
      iss: ours.issuer,
      sub: 'admin',
      aud: AUDIENCE,
      iat: now,
      exp: now + 60,
      jti: 'j',
      client_id: 'c',
    });
    expect(await refusal(verifierFor(ours).verify(`${header}.${payload}.${signature}`))).toBe(
      'signature_invalid',
    );
  });

  it('garbage, an empty string and an oversized token are refused (token_malformed, token_too_large)', async () => {
    const v = verifierFor(ours);
    expect(await refusal(v.verify('not a jwt'))).toBe('token_malformed');
    expect(await refusal(v.verify(''))).toBe('token_malformed');
    expect(await refusal(v.verify('e30.e30.e30'))).toBe('algorithm_not_allowed');
    expect(await refusal(v.verify('%%%.e30.e30'))).toBe('token_malformed');
    expect(await refusal(v.verify(`${'a'.repeat(16 * 1024)}.b.c`))).toBe('token_too_large');
  });
});

describe('oidc-machine-auth/verify: key rotation (RFC 7517 kid lookup, jose createRemoteJWKSet semantics)', () => {
  it('a verifier that fetched keys before a rotation picks up the new key with exactly one JWKS fetch under 100 concurrent verifications', async () => {
    vi.useFakeTimers({ toFake: ['Date'], now: Date.now() });
    const issuer = await startJoseIssuer({ path: PATH });
    try {
      const verifier = verifierFor(issuer);
      await verifier.verify(await issuer.mint());
      expect(issuer.hits(JWKS)).toBe(1);

      await issuer.rotate();
      const fresh = await Promise.all(Array.from({ length: 100 }, () => issuer.mint()));
      // Within the 30 s cooldown an unknown kid is refused without a fetch: no storm from forged kids.
      const refused = await Promise.all(fresh.map((t) => refusal(verifier.verify(t))));
      expect(new Set(refused)).toEqual(new Set(['key_not_found']));
      expect(issuer.hits(JWKS)).toBe(1);

      vi.setSystemTime(Date.now() + 31_000);
      const again = await Promise.all(Array.from({ length: 100 }, () => issuer.mint()));
      const claims = await Promise.all([...fresh, ...again].map((t) => verifier.verify(t)));
      expect(claims).toHaveLength(200);
      expect(issuer.hits(JWKS)).toBe(2);
      expect(issuer.hits(INSERTED)).toBe(1);
    } finally {
      await issuer.close();
    }
  });
});

describe('oidc-machine-auth/verify: RFC 7662 introspection fallback', () => {
  const introspection = { clientId: 'verifier', clientSecret: 's3cret' };
  const INTROSPECT = `${PATH}/oauth/introspect`;

  it('RFC 7662 section 2.2: verify(token, { introspect: true }) passes while the issuer answers active: true, and refuses with token_inactive once it answers active: false', async () => {
    const issuer = await startJoseIssuer({ path: PATH });
    try {
      const verifier = verifierFor(issuer, { introspection });
      const jti = crypto.randomUUID();
      const token = await issuer.mint({ jti });
      await expect(verifier.verify(token, { introspect: true })).resolves.toMatchObject({ jti });
      issuer.revoke(jti);
      // Local verification alone still accepts it: only introspection knows about revocation.
      await expect(verifier.verify(token)).resolves.toMatchObject({ jti });
      expect(await refusal(verifier.verify(token, { introspect: true }), token)).toBe('token_inactive');
      expect(issuer.hits(INTROSPECT)).toBe(2);
    } finally {
      await issuer.close();
    }
  });

  it('RFC 7662 section 2.1: the verifier authenticates with client_secret_basic; bad credentials fail closed (503 introspection_unavailable)', async () => {
    const issuer = await startJoseIssuer({ path: PATH });
    try {
      const token = await issuer.mint();
      const bad = verifierFor(issuer, { introspection: { clientId: 'verifier', clientSecret: 'wrong' } });
      const error = await bad.verify(token, { introspect: true }).catch((e: unknown) => e);
      expect(error).toMatchObject({ code: 'introspection_unavailable', status: 503 });
    } finally {
      await issuer.close();
    }
  });

  it('RFC 7662: an invalid token never reaches the introspection endpoint (local checks run first)', async () => {
    const issuer = await startJoseIssuer({ path: PATH });
    try {
      const token = await issuer.mint({ aud: 'https://nope.example' });
      expect(await refusal(verifierFor(issuer, { introspection }).verify(token, { introspect: true }))).toBe(
        'audience_mismatch',
      );
      expect(issuer.hits(INTROSPECT)).toBe(0);
    } finally {
      await issuer.close();
    }
  });

  it('answers are not cached by default; with cacheSeconds they are reused for at most that long (a revocation is seen after it)', async () => {
    vi.useFakeTimers({ toFake: ['Date'], now: Date.now() });
    const issuer = await startJoseIssuer({ path: PATH });
    try {
      const jti = crypto.randomUUID();
      const token = await issuer.mint({ jti });
      const cached = verifierFor(issuer, { introspection: { ...introspection, cacheSeconds: 10 } });
      await cached.verify(token, { introspect: true });
      issuer.revoke(jti);
      await expect(cached.verify(token, { introspect: true })).resolves.toBeTruthy();
      expect(issuer.hits(INTROSPECT)).toBe(1);
      vi.setSystemTime(Date.now() + 10_001);
      expect(await refusal(cached.verify(token, { introspect: true }))).toBe('token_inactive');
      expect(issuer.hits(INTROSPECT)).toBe(2);
      // A negative answer is not kept longer than asked either: the default (0) asks every time.
      const uncached = verifierFor(issuer, { introspection });
      expect(await refusal(uncached.verify(token, { introspect: true }))).toBe('token_inactive');
      expect(await refusal(uncached.verify(token, { introspect: true }))).toBe('token_inactive');
      expect(issuer.hits(INTROSPECT)).toBe(4);
    } finally {
      await issuer.close();
    }
  });

  it('introspect: true without introspection credentials is a configuration error, not a pass', async () => {
    const token = await ours.mint();
    const error = await verifierFor(ours)
      .verify(token, { introspect: true })
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'invalid_config', status: 500 });
    expect(() => verifierFor(ours, { introspection: { clientId: 'x' } })).toThrow(
      expect.objectContaining({ code: 'invalid_config' }),
    );
  });
});
