import { createHmac, generateKeyPairSync, sign as nodeSign } from 'node:crypto';
import { SignJWT, decodeJwt, decodeProtectedHeader, jwtVerify, createLocalJWKSet } from 'jose';
import { describe, expect, it } from 'vitest';
import {
  MemoryTokenStore,
  createOidcAuth,
  type AccessTokenSigningKeyInput,
  type OidcAuth,
  type OidcAuthOptions,
  type TokenStore,
} from '../../src/index.js';
import type { IdentityConfigInput } from '../../src/types.js';
import { FakeClock, Recorder, SIGNING_KEYS, githubIdentity } from '../helpers/engine.js';
import { b64, githubClaims, makeKey, sign, type TestKey } from '../helpers/jwt.js';

const OUR_ISSUER = 'https://app.example/api/v1/auth';
const idp = makeKey('RS256');
const edKey = generateKeyPairSync('ed25519');

interface Setup {
  auth: OidcAuth;
  clock: FakeClock;
  rec: Recorder;
  store: TokenStore;
  consumes: () => number;
  creates: () => number;
  idToken: () => Promise<string>;
}

/** A store that counts consume calls (the guard's store round trips). */
function countingStore(inner: TokenStore): {
  store: TokenStore;
  consumes: () => number;
  creates: () => number;
} {
  let count = 0;
  let created = 0;
  const store: TokenStore = {
    create: (r) => {
      created++;
      return inner.create(r);
    },
    get: (id, now) => inner.get(id, now),
    consume: (id, now) => {
      count++;
      return inner.consume(id, now);
    },
    extend: (id, now) => inner.extend(id, now),
    revoke: (id) => inner.revoke(id),
    generation: (id) => inner.generation(id),
    revokeIdentity: (id) => inner.revokeIdentity(id),
  };
  return { store, consumes: () => count, creates: () => created };
}

function setup(
  identity: Partial<IdentityConfigInput> = {},
  options: Partial<OidcAuthOptions> = {},
  shared?: { clock: FakeClock; store: MemoryTokenStore },
): Setup {
  const clock = shared?.clock ?? new FakeClock();
  const rec = new Recorder();
  const inner = shared?.store ?? new MemoryTokenStore({ clock: clock.now });
  const { store, consumes, creates } = countingStore(inner);
  const auth = createOidcAuth({
    identities: [githubIdentity(idp, { accessTokenFormat: 'jwt', ...identity })],
    tokens: store,
    signingKeys: SIGNING_KEYS,
    issuer: OUR_ISSUER,
    accessTokens: { signingKeys: [{ privateKey: edKey.privateKey, kid: 'ed-1' }] },
    clock: clock.now,
    onEvent: rec.onEvent,
    logger: rec.logger,
    ...options,
  });
  return { auth, clock, rec, store, consumes, creates, idToken: () => sign(idp, githubClaims(clock.ms)) };
}

async function loginJwt(s: Setup, extra: Record<string, unknown> = {}) {
  return s.auth.login({ identityId: 'gh-deployer', jwt: await s.idToken(), ...extra });
}

describe('JWT access tokens (RFC 9068)', () => {
  it('RFC 9068 §2.1: the header carries typ "at+jwt", our alg (EdDSA) and the signing kid', async () => {
    const s = setup();
    const grant = await loginJwt(s);
    expect(grant.format).toBe('jwt');
    expect(decodeProtectedHeader(grant.accessToken)).toEqual({ alg: 'EdDSA', typ: 'at+jwt', kid: 'ed-1' });
  });

  it('RFC 9068 §2.2: iss, sub, aud, exp, iat, jti (the record id), client_id; metadata in one claim', async () => {
    const s = setup({ claimMetadataMapping: { repository: 'repository', iss: 'ref' } });
    const grant = await loginJwt(s);
    const claims = decodeJwt(grant.accessToken);
    const now = Math.floor(s.clock.ms / 1000);
    expect(claims).toEqual({
      iss: OUR_ISSUER,
      sub: 'gh-deployer',
      aud: OUR_ISSUER,
      exp: now + 7200,
      iat: now,
      jti: grant.tokenId,
      client_id: 'gh-deployer',
      // A mapped claim named like a registered one stays inside `metadata`: it cannot overwrite `iss`.
      metadata: { role: 'deployer', repository: 'acme-corp/payments-api', iss: 'refs/heads/main' },
    });
    expect(grant.expiresIn).toBe(7200);
  });

  it('RFC 9068 §2.2.3: scope is written only when granted, as a space-separated list', async () => {
    const s = setup();
    expect(decodeJwt((await loginJwt(s)).accessToken).scope).toBeUndefined();
  });

  it('opaque stays the default: an identity without accessTokenFormat gets an omat_ token', async () => {
    const s = setup({ accessTokenFormat: undefined });
    const grant = await loginJwt(s);
    expect(grant.format).toBe('opaque');
    expect(grant.accessToken.startsWith('omat_')).toBe(true);
    await expect(s.auth.authenticate(grant.accessToken)).resolves.toMatchObject({
      identityId: 'gh-deployer',
    });
  });

  it('the global default accessTokens.format "jwt" applies to identities that set none', async () => {
    const s = setup(
      { accessTokenFormat: undefined },
      { accessTokens: { format: 'jwt', signingKeys: [{ privateKey: edKey.privateKey }] } },
    );
    expect((await loginJwt(s)).format).toBe('jwt');
  });

  it('the kid defaults to the RFC 7638 thumbprint of the public key', async () => {
    const s = setup({}, { accessTokens: { signingKeys: [{ privateKey: edKey.privateKey }] } });
    const header = decodeProtectedHeader((await loginJwt(s)).accessToken);
    const jwk = s.auth.jwks().keys[0]!;
    expect(header.kid).toBe(jwk.kid);
    const { calculateJwkThumbprint } = await import('jose');
    expect(jwk.kid).toBe(await calculateJwkThumbprint(jwk));
  });

  it.each([
    ['ES256', () => generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey],
    ['RS256', () => generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey],
  ] as const)('%s keys sign tokens our guard and jose accept', async (alg, make) => {
    const privateKey = make();
    const pem = privateKey.export({ format: 'pem', type: 'pkcs8' }) as string;
    const s = setup({}, { accessTokens: { signingKeys: [{ privateKey: pem }] } });
    const grant = await loginJwt(s);
    expect(decodeProtectedHeader(grant.accessToken).alg).toBe(alg);
    await expect(s.auth.authenticate(grant.accessToken)).resolves.toMatchObject({ tokenId: grant.tokenId });
    const { payload } = await jwtVerify(grant.accessToken, createLocalJWKSet(s.auth.jwks()), {
      issuer: OUR_ISSUER,
      audience: OUR_ISSUER,
      typ: 'at+jwt',
      currentDate: new Date(s.clock.ms),
    });
    expect(payload.jti).toBe(grant.tokenId);
  });

  it('refuses unusable keys at start-up, without echoing key material', () => {
    const weak = generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey;
    const make = (signingKeys: AccessTokenSigningKeyInput[]) => () =>
      createOidcAuth({ identities: [], issuer: OUR_ISSUER, accessTokens: { signingKeys } });
    expect(make([{ privateKey: weak }])).toThrow(/P-256/);
    expect(make([{ privateKey: 'not a key' }])).toThrow(/PKCS#8/);
    expect(make([{ publicKey: edKey.publicKey }])).toThrow(/first key signs/);
    expect(make([{ privateKey: edKey.privateKey, alg: 'RS256' }])).toThrow(/must be EdDSA/);
    expect(make([])).toThrow(/non-empty/);
    expect(() => createOidcAuth({ identities: [], accessTokens: { format: 'jwt' } })).toThrow(
      /issuer: is required/,
    );
    expect(() => createOidcAuth({ identities: [], issuer: 'https://app.example/auth/' })).toThrow(
      /must not end/,
    );
    expect(() => createOidcAuth({ identities: [], issuer: 'http://app.example/auth' })).toThrow(/https/);
    expect(() => createOidcAuth({ identities: [], issuer: 'https://app.example/a?x=1' })).toThrow(/query/);
  });
});

describe('narrowing grant (auth.login({ grant }))', () => {
  it('ttlSeconds shortens the token and caps its renewals (it never outlives what was asked); a longer one changes nothing', async () => {
    const s = setup();
    const short = await loginJwt(s, { grant: { ttlSeconds: 60 } });
    expect(short.expiresIn).toBe(60);
    expect(decodeJwt(short.accessToken).exp).toBe(Math.floor(s.clock.ms / 1000) + 60);
    s.clock.advance(30);
    // Its max TTL is the asked 60 s too, which it already reaches: no renewal extends it.
    await expect(s.auth.renew(short.accessToken)).rejects.toMatchObject({ code: 'max_ttl_reached' });
    expect((await loginJwt(s, { grant: { ttlSeconds: 999_999 } })).expiresIn).toBe(7200);
  });

  it('audience must be among accessTokenAudiences (default: the issuer)', async () => {
    const s = setup({ accessTokenAudiences: ['https://api.one.example', 'https://api.two.example'] });
    const all = decodeJwt((await loginJwt(s)).accessToken);
    expect(all.aud).toEqual(['https://api.one.example', 'https://api.two.example']);
    const one = decodeJwt(
      (await loginJwt(s, { grant: { audience: 'https://api.two.example' } })).accessToken,
    );
    expect(one.aud).toBe('https://api.two.example');
    await expect(loginJwt(s, { grant: { audience: 'https://evil.example' } })).rejects.toMatchObject({
      code: 'target_not_allowed',
    });
    const d = setup();
    await expect(loginJwt(d, { grant: { audience: 'https://api.one.example' } })).rejects.toMatchObject({
      code: 'target_not_allowed',
    });
  });

  it('format only narrows: opaque from a JWT identity, never a JWT from an opaque one', async () => {
    const s = setup();
    expect((await loginJwt(s, { grant: { format: 'opaque' } })).format).toBe('opaque');
    const o = setup({ accessTokenFormat: 'opaque' });
    await expect(loginJwt(o, { grant: { format: 'jwt' } })).rejects.toMatchObject({
      code: 'grant_format_not_allowed',
    });
  });

  it('scopes the identity does not declare are refused; malformed grants are a 400', async () => {
    const s = setup();
    await expect(loginJwt(s, { grant: { scopes: ['admin'] } })).rejects.toMatchObject({
      code: 'scope_not_allowed',
    });
    await expect(loginJwt(s, { grant: { ttlSeconds: -1 } })).rejects.toMatchObject({
      status: 400,
      code: 'invalid_request',
    });
    await expect(loginJwt(s, { grant: { ttl: 5 } })).rejects.toMatchObject({ status: 400 });
  });
});

describe('our guard with JWT access tokens', () => {
  it('accepts a JWT without a store round trip while its state is fresh (no uses limit)', async () => {
    const s = setup();
    const grant = await loginJwt(s);
    const context = await s.auth.authenticate(grant.accessToken, { clientIp: '10.0.0.1' });
    expect(context).toMatchObject({
      identityId: 'gh-deployer',
      tokenId: grant.tokenId,
      metadata: { role: 'deployer', repository: 'acme-corp/payments-api' },
      usesRemaining: undefined,
    });
    const before = s.consumes();
    for (let i = 0; i < 5; i++) await s.auth.authenticate(grant.accessToken);
    expect(s.consumes()).toBe(before);
    s.clock.advance(10); // revocationCheckSeconds (default 10) later, the store is asked again
    await s.auth.authenticate(grant.accessToken);
    expect(s.consumes()).toBe(before + 1);
  });

  it('a token with a uses limit goes to the store on every use', async () => {
    const s = setup({ accessTokenNumUsesLimit: 2 });
    const grant = await loginJwt(s);
    await expect(s.auth.authenticate(grant.accessToken)).resolves.toMatchObject({ usesRemaining: 1 });
    await expect(s.auth.authenticate(grant.accessToken)).resolves.toMatchObject({ usesRemaining: 0 });
    await expect(s.auth.authenticate(grant.accessToken)).rejects.toMatchObject({ code: 'uses_exhausted' });
    expect(s.consumes()).toBe(3);
  });

  it('trusted IPs are enforced on every use, cached state or not', async () => {
    const s = setup({ accessTokenTrustedIps: '10.0.0.0/8' });
    const grant = await loginJwt(s, { clientIp: '10.1.2.3' });
    await s.auth.authenticate(grant.accessToken, { clientIp: '10.1.2.3' });
    await expect(s.auth.authenticate(grant.accessToken, { clientIp: '192.0.2.1' })).rejects.toMatchObject({
      status: 403,
      code: 'ip_not_allowed',
    });
  });

  it('an expired JWT is refused (token_expired); a token for another audience is refused', async () => {
    const s = setup({ accessTokenAudiences: [OUR_ISSUER, 'https://other.example'] });
    const other = await loginJwt(s, { grant: { audience: 'https://other.example' } });
    await expect(s.auth.authenticate(other.accessToken)).rejects.toMatchObject({ code: 'invalid_token' });
    const grant = await loginJwt(s, { grant: { ttlSeconds: 60 } });
    s.clock.advance(60);
    await expect(s.auth.authenticate(grant.accessToken)).rejects.toMatchObject({ code: 'token_expired' });
  });

  it('renew mints a new JWT with the same jti, audience and scope, and a later exp', async () => {
    const s = setup({ accessTokenTTL: 600 });
    const first = await loginJwt(s);
    s.clock.advance(300);
    const renewed = await s.auth.renew(first.accessToken);
    expect(renewed.format).toBe('jwt');
    expect(renewed.accessToken).not.toBe(first.accessToken);
    const a = decodeJwt(first.accessToken);
    const b = decodeJwt(renewed.accessToken);
    expect(b.jti).toBe(a.jti);
    expect(b.aud).toEqual(a.aud);
    expect(b.exp).toBe(a.exp! + 300);
    expect(b.iat).toBe(a.iat! + 300);
    await expect(s.auth.authenticate(renewed.accessToken)).resolves.toMatchObject({ tokenId: first.tokenId });
  });
});

describe('revocation of JWT access tokens (docs/SECURITY.md window)', () => {
  it('revoke on the same instance refuses the token at once, even with its state cached', async () => {
    const s = setup();
    const grant = await loginJwt(s);
    await s.auth.authenticate(grant.accessToken);
    await s.auth.revoke(grant.accessToken);
    await expect(s.auth.authenticate(grant.accessToken)).rejects.toMatchObject({ code: 'token_revoked' });
  });

  it('revokeIdentity (and so identity DELETE) on the same instance refuses at once', async () => {
    const s = setup();
    const grant = await loginJwt(s);
    await s.auth.authenticate(grant.accessToken);
    await s.auth.revokeIdentity('gh-deployer');
    await expect(s.auth.authenticate(grant.accessToken)).rejects.toMatchObject({ code: 'token_revoked' });
  });

  it('another instance sharing the store sees a revocation within revocationCheckSeconds', async () => {
    const clock = new FakeClock();
    const store = new MemoryTokenStore({ clock: clock.now });
    const a = setup({}, {}, { clock, store });
    const b = setup(
      {},
      {
        accessTokens: {
          signingKeys: [{ privateKey: edKey.privateKey, kid: 'ed-1' }],
          revocationCheckSeconds: 5,
        },
      },
      { clock, store },
    );
    const grant = await loginJwt(a);
    await b.auth.authenticate(grant.accessToken);
    await a.auth.revoke(grant.accessToken);
    clock.advance(4);
    // Inside the window instance B still answers from its cached state (the documented bound)…
    await expect(b.auth.authenticate(grant.accessToken)).resolves.toMatchObject({ tokenId: grant.tokenId });
    clock.advance(1);
    // …and from revocationCheckSeconds on, it asks the store and refuses.
    await expect(b.auth.authenticate(grant.accessToken)).rejects.toMatchObject({ code: 'token_revoked' });
  });

  it('a store answer that was in flight while revoke ran is not cached (no stale window on this instance)', async () => {
    const clock = new FakeClock();
    const inner = new MemoryTokenStore({ clock: clock.now });
    let gate: (() => void) | undefined;
    const slow: TokenStore = {
      create: (r) => inner.create(r),
      get: (id, now) => inner.get(id, now),
      consume: async (id, now) => {
        const result = await inner.consume(id, now);
        if (gate === undefined) await new Promise<void>((resolve) => (gate = resolve));
        return result;
      },
      extend: (id, now) => inner.extend(id, now),
      revoke: (id) => inner.revoke(id),
      generation: (id) => inner.generation(id),
      revokeIdentity: (id) => inner.revokeIdentity(id),
    };
    const s = setup({}, { tokens: slow }, { clock, store: inner });
    const grant = await loginJwt(s);
    const inFlight = s.auth.authenticate(grant.accessToken); // the store read the record before revoke
    while (gate === undefined) await new Promise((resolve) => setImmediate(resolve));
    await s.auth.revoke(grant.accessToken);
    gate();
    await expect(inFlight).resolves.toMatchObject({ tokenId: grant.tokenId });
    await expect(s.auth.authenticate(grant.accessToken)).rejects.toMatchObject({ code: 'token_revoked' });
  });

  it('revocationCheckSeconds 0 asks the store on every request', async () => {
    const s = setup(
      {},
      { accessTokens: { signingKeys: [{ privateKey: edKey.privateKey }], revocationCheckSeconds: 0 } },
    );
    const grant = await loginJwt(s);
    await s.auth.authenticate(grant.accessToken);
    await s.auth.authenticate(grant.accessToken);
    expect(s.consumes()).toBe(2);
  });

  it('an expired but genuine JWT can be revoked; a forged one cannot', async () => {
    const s = setup();
    const grant = await loginJwt(s);
    s.clock.advance(7200);
    await expect(s.auth.revoke(grant.accessToken)).resolves.toBeUndefined();
    const [h, p] = grant.accessToken.split('.');
    await expect(s.auth.revoke(`${h}.${p}.${'A'.repeat(86)}`)).rejects.toMatchObject({
      code: 'invalid_token',
    });
  });
});

describe('key rotation', () => {
  it('tokens minted under the old key verify until they expire after the new key signs', async () => {
    const clock = new FakeClock();
    const store = new MemoryTokenStore({ clock: clock.now });
    const oldKey = generateKeyPairSync('ed25519');
    const newKey = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const before = setup(
      {},
      { accessTokens: { signingKeys: [{ privateKey: oldKey.privateKey, kid: 'old' }] } },
      { clock, store },
    );
    const oldToken = (await loginJwt(before)).accessToken;
    // Step 1 of the rotation: the new key is published beside the old one, the old one still signs.
    const publish = setup(
      {},
      {
        accessTokens: {
          signingKeys: [
            { privateKey: oldKey.privateKey, kid: 'old' },
            { privateKey: newKey.privateKey, kid: 'new' },
          ],
        },
      },
      { clock, store },
    );
    expect(publish.auth.jwks().keys.map((k) => k.kid)).toEqual(['old', 'new']);
    // Step 2: the new key signs; the old one stays, public only, until its last token expired.
    const after = setup(
      {},
      {
        accessTokens: {
          signingKeys: [
            { privateKey: newKey.privateKey, kid: 'new' },
            { publicKey: oldKey.publicKey, kid: 'old' },
          ],
        },
      },
      { clock, store },
    );
    const newToken = (await loginJwt(after)).accessToken;
    expect(decodeProtectedHeader(newToken)).toMatchObject({ kid: 'new', alg: 'ES256' });
    await expect(after.auth.authenticate(oldToken)).resolves.toMatchObject({ identityId: 'gh-deployer' });
    await expect(after.auth.authenticate(newToken)).resolves.toMatchObject({ identityId: 'gh-deployer' });
    clock.advance(7200);
    await expect(after.auth.authenticate(oldToken)).rejects.toMatchObject({ code: 'token_expired' });
    // Step 3: the old key is dropped: its tokens (all expired by now) are no longer ours at all.
    const dropped = setup(
      {},
      { accessTokens: { signingKeys: [{ privateKey: newKey.privateKey, kid: 'new' }] } },
      { clock, store },
    );
    await expect(dropped.auth.authenticate(oldToken)).rejects.toMatchObject({ code: 'invalid_token' });
  });
});

describe('signer callback (a KMS holds the private key)', () => {
  it('signs through the callback with only the public key configured', async () => {
    const kms = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const inputs: string[] = [];
    const s = setup(
      {},
      {
        accessTokens: {
          signingKeys: [
            {
              kid: 'kms-1',
              publicKey: kms.publicKey.export({ format: 'pem', type: 'spki' }) as string,
              sign: async (input) => {
                inputs.push(Buffer.from(input).toString());
                return nodeSign('sha256', input, { key: kms.privateKey, dsaEncoding: 'ieee-p1363' });
              },
            },
          ],
        },
      },
    );
    const grant = await loginJwt(s);
    expect(inputs).toEqual([grant.accessToken.split('.').slice(0, 2).join('.')]);
    expect(decodeProtectedHeader(grant.accessToken)).toMatchObject({ alg: 'ES256', kid: 'kms-1' });
    await expect(s.auth.authenticate(grant.accessToken)).resolves.toMatchObject({ tokenId: grant.tokenId });
  });

  it('a signer that fails or returns a wrong signature fails closed (503), never a bad token', async () => {
    const kms = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const der = setup(
      {},
      {
        accessTokens: {
          signingKeys: [
            { publicKey: kms.publicKey, sign: (input) => nodeSign('sha256', input, kms.privateKey) },
          ],
        },
      },
    );
    await expect(loginJwt(der)).rejects.toMatchObject({ status: 503 });
    const down = setup(
      {},
      {
        accessTokens: {
          signingKeys: [{ publicKey: kms.publicKey, sign: () => Promise.reject(new Error('kms down')) }],
        },
      },
    );
    await expect(loginJwt(down)).rejects.toMatchObject({ status: 503 });
    // The token is signed before its record is stored: a failed signature leaves no record.
    expect(der.creates()).toBe(0);
    expect(down.creates()).toBe(0);
  });
});

describe('algorithm and type confusion against our guard', () => {
  const forge = async (
    s: Setup,
    header: Record<string, unknown>,
    claims: Record<string, unknown>,
    key: Parameters<SignJWT['sign']>[0],
  ) => new SignJWT(claims).setProtectedHeader(header as { alg: string }).sign(key);

  async function genuineClaims(s: Setup) {
    const grant = await loginJwt(s);
    return { grant, claims: decodeJwt(grant.accessToken) as Record<string, unknown> };
  }

  it('HS256 keyed with our public key (JWK x, PEM) is refused', async () => {
    const s = setup();
    const { claims } = await genuineClaims(s);
    const pem = edKey.publicKey.export({ format: 'pem', type: 'spki' }) as string;
    const jwk = s.auth.jwks().keys[0]!;
    for (const secret of [
      Buffer.from(pem),
      Buffer.from(jwk.x!, 'base64url'),
      Buffer.from(JSON.stringify(jwk)),
    ]) {
      const header = { alg: 'HS256', typ: 'at+jwt', kid: 'ed-1' };
      const input = `${b64(header)}.${b64(claims)}`;
      const token = `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
      await expect(s.auth.authenticate(token)).rejects.toMatchObject({ status: 401, code: 'invalid_token' });
    }
  });

  it('alg "none" is refused', async () => {
    const s = setup();
    const { claims } = await genuineClaims(s);
    for (const alg of ['none', 'None', 'NONE']) {
      const token = `${b64({ alg, typ: 'at+jwt', kid: 'ed-1' })}.${b64(claims)}.`;
      await expect(s.auth.authenticate(token)).rejects.toMatchObject({ code: 'invalid_token' });
      const signed = `${b64({ alg, typ: 'at+jwt', kid: 'ed-1' })}.${b64(claims)}.c2ln`;
      await expect(s.auth.authenticate(signed)).rejects.toMatchObject({ code: 'invalid_token' });
    }
  });

  it("an IdP's ID token (typ JWT, the IdP's key) is refused, even one signed with our own key", async () => {
    const s = setup();
    await expect(s.auth.authenticate(await s.idToken())).rejects.toMatchObject({ code: 'invalid_token' });
    const { claims } = await genuineClaims(s);
    const asIdToken = await forge(s, { alg: 'EdDSA', typ: 'JWT', kid: 'ed-1' }, claims, edKey.privateKey);
    await expect(s.auth.authenticate(asIdToken)).rejects.toMatchObject({ code: 'invalid_token' });
    const noTyp = await forge(s, { alg: 'EdDSA', kid: 'ed-1' }, claims, edKey.privateKey);
    await expect(s.auth.authenticate(noTyp)).rejects.toMatchObject({ code: 'invalid_token' });
  });

  it('an at+jwt of another issuer is refused: its own key, or ours with another iss', async () => {
    const s = setup();
    const { claims } = await genuineClaims(s);
    const theirs: TestKey = makeKey('EdDSA', 'ed-1');
    const foreign = await forge(s, { alg: 'EdDSA', typ: 'at+jwt', kid: 'ed-1' }, claims, theirs.privateKey);
    await expect(s.auth.authenticate(foreign)).rejects.toMatchObject({ code: 'invalid_token' });
    const otherIss = await forge(
      s,
      { alg: 'EdDSA', typ: 'at+jwt', kid: 'ed-1' },
      { ...claims, iss: 'https://other.example/api/v1/auth' },
      edKey.privateKey,
    );
    await expect(s.auth.authenticate(otherIss)).rejects.toMatchObject({ code: 'invalid_token' });
  });

  it("an algorithm other than the key's own (RS256 header on our Ed25519 kid) is refused", async () => {
    const s = setup();
    const { claims } = await genuineClaims(s);
    const rsa = makeKey('RS256', 'ed-1');
    const token = await forge(s, { alg: 'RS256', typ: 'at+jwt', kid: 'ed-1' }, claims, rsa.privateKey);
    await expect(s.auth.authenticate(token)).rejects.toMatchObject({ code: 'invalid_token' });
  });

  it('refusals never echo the token', async () => {
    const s = setup();
    const { grant } = await genuineClaims(s);
    const tampered = grant.accessToken.slice(0, -4) + 'AAAA';
    const error = await s.auth.authenticate(tampered).catch((e: unknown) => e);
    expect(JSON.stringify(error)).not.toContain(tampered.slice(0, 40));
    expect(s.rec.dump()).not.toContain(grant.accessToken.split('.')[2]);
  });
});

describe('introspection of JWT access tokens (RFC 7662 section 2.2, through auth.introspect)', () => {
  it('a live JWT is active with its record; revoked, expired, foreign-key and tampered JWTs are not', async () => {
    const s = setup({ scopes: ['read'] });
    const grant = await loginJwt(s);
    const live = await s.auth.introspect(grant.accessToken);
    expect(live).toMatchObject({ identityId: 'gh-deployer', tokenId: grant.tokenId, scope: 'read' });

    const other = setup(
      {},
      {
        accessTokens: {
          signingKeys: [{ privateKey: generateKeyPairSync('ed25519').privateKey, kid: 'ed-1' }],
        },
      },
    );
    const foreign = await loginJwt(other);
    expect(await s.auth.introspect(foreign.accessToken)).toBeUndefined();

    const [h, p, sig] = grant.accessToken.split('.') as [string, string, string];
    const tampered = `${h}.${b64({ ...decodeJwt(grant.accessToken), sub: 'someone-else' })}.${sig}`;
    expect(await s.auth.introspect(tampered)).toBeUndefined();
    expect(p).not.toBe('');

    await s.auth.revoke(grant.accessToken);
    expect(await s.auth.introspect(grant.accessToken)).toBeUndefined();

    const later = await loginJwt(s);
    s.clock.advance(7201);
    expect(await s.auth.introspect(later.accessToken)).toBeUndefined();
  });
});
