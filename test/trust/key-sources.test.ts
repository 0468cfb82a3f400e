import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, MemoryIdentityStore, parseIdentityConfig } from '../../src/index.js';
import type { IdentityConfigInput } from '../../src/types.js';
import { makeEngine, SIGNING_KEYS, FakeClock, Recorder } from '../helpers/engine.js';
import { createSigningKey, startTestIdp, type TestIdp } from '../helpers/idp-server.js';
import { makeKey, seconds, sign, type TestKey } from '../helpers/jwt.js';
import { createOidcAuth } from '../../src/index.js';

const A = 'https://oidc.cluster-a.example.com';
const B = 'https://oidc.cluster-b.example.com';
const C = 'https://oidc.cluster-c.example.com';

function claims(clock: FakeClock, iss: string, overrides: Record<string, unknown> = {}) {
  const iat = seconds(clock.ms);
  return { iss, sub: 'system:serviceaccount:apps:deployer', aud: 'vault', iat, exp: iat + 300, ...overrides };
}

function twoSources(
  ka: TestKey,
  kb: TestKey,
  overrides: Partial<IdentityConfigInput> = {},
): IdentityConfigInput {
  return {
    identityId: 'k8s',
    keySources: [
      { issuer: A, publicKeys: [ka.publicJwk] },
      { issuer: B, publicKeys: [kb.publicJwk] },
    ],
    boundSubject: 'system:serviceaccount:apps:*',
    boundAudiences: 'vault',
    ...overrides,
  };
}

describe('several key sources per identity', () => {
  const ka = makeKey('RS256', 'a');
  const kb = makeKey('ES256', 'b');

  it('a token verifies against the source naming its issuer, for each source', async () => {
    const e = makeEngine({ identities: [twoSources(ka, kb)] });
    await expect(
      e.auth.login({ identityId: 'k8s', jwt: await sign(ka, claims(e.clock, A)) }),
    ).resolves.toMatchObject({
      identityId: 'k8s',
    });
    await expect(
      e.auth.login({ identityId: 'k8s', jwt: await sign(kb, claims(e.clock, B)) }),
    ).resolves.toMatchObject({
      identityId: 'k8s',
    });
  });

  it('a token naming one source is never verified with another source’s keys (both directions, same kid too)', async () => {
    const e = makeEngine({ identities: [twoSources(ka, kb)] });
    for (const [key, iss] of [
      [kb, A],
      [ka, B],
    ] as const) {
      await expect(
        e.auth.login({ identityId: 'k8s', jwt: await sign(key, claims(e.clock, iss)) }),
      ).rejects.toMatchObject({
        code: 'invalid_credentials',
      });
      expect(e.rec.last('login.failure')?.reasonCode).not.toBe(undefined);
      expect(['signature_invalid', 'key_not_found', 'algorithm_not_allowed']).toContain(
        e.rec.last('login.failure')?.reasonCode,
      );
    }
    // Same kid in both sources: still only the named source's key.
    const kb2 = makeKey('RS256', 'a');
    const same = makeEngine({ identities: [twoSources(ka, kb2)] });
    await expect(
      same.auth.login({ identityId: 'k8s', jwt: await sign(kb2, claims(same.clock, A)) }),
    ).rejects.toMatchObject({ code: 'invalid_credentials' });
    expect(same.rec.last('login.failure')?.reasonCode).toBe('signature_invalid');
    await expect(
      same.auth.login({ identityId: 'k8s', jwt: await sign(kb2, claims(same.clock, B)) }),
    ).resolves.toMatchObject({ identityId: 'k8s' });
  });

  it('an issuer no source names is refused (issuer_mismatch), even signed by a source’s key', async () => {
    const e = makeEngine({ identities: [twoSources(ka, kb)] });
    await expect(
      e.auth.login({ identityId: 'k8s', jwt: await sign(ka, claims(e.clock, C)) }),
    ).rejects.toMatchObject({
      code: 'invalid_credentials',
    });
    expect(e.rec.last('login.failure')?.reasonCode).toBe('issuer_mismatch');
  });

  it('a token another identity’s source of the same issuer verifies is refused for this identity', async () => {
    // `other` trusts issuer B with key A; `k8s` trusts issuer B with key B only.
    const other: IdentityConfigInput = {
      identityId: 'other',
      keySources: [{ issuer: B, publicKeys: [ka.publicJwk] }],
      boundSubject: 'system:*',
      boundAudiences: 'vault',
    };
    const e = makeEngine({ identities: [twoSources(ka, kb), other] });
    const jwt = await sign(ka, claims(e.clock, B));
    await expect(e.auth.login({ identityId: 'other', jwt })).resolves.toMatchObject({ identityId: 'other' });
    await expect(e.auth.login({ identityId: 'k8s', jwt })).rejects.toMatchObject({
      code: 'invalid_credentials',
    });
    // k8s's own source of B has no key with that kid: refused, never verified with other's key.
    expect(e.rec.last('login.failure')?.reasonCode).toBe('key_not_found');
  });

  it('#13.2 no identity oracle: a token no registered source verifies reads no identity, known id or not', async () => {
    class CountingStore extends MemoryIdentityStore {
      reads = 0;
      override async get(id: string) {
        this.reads++;
        return super.get(id);
      }
    }
    const store = new CountingStore([twoSources(ka, kb)]);
    const clock = new FakeClock();
    const auth = createOidcAuth({ identities: store, signingKeys: SIGNING_KEYS, clock: clock.now });
    const stranger = makeKey('RS256', 'a');
    for (const id of ['k8s', 'nobody']) {
      for (const iss of [A, B]) {
        await expect(
          auth.login({ identityId: id, jwt: await sign(stranger, claims(clock, iss)) }),
        ).rejects.toMatchObject({
          code: 'invalid_credentials',
        });
      }
    }
    expect(store.reads).toBe(0);
  });

  it('keys are fetched per key source, not per identity: two identities on two IdPs make one JWKS fetch per IdP', async () => {
    const one = await startTestIdp({ keys: [createSigningKey('RS256', 'one')] });
    const two = await startTestIdp({ keys: [createSigningKey('ES256', 'two')] });
    try {
      const sources = [
        { issuer: one.issuer, oidcDiscoveryUrl: one.issuer, allowInsecureLoopback: true },
        { issuer: two.issuer, jwksUrl: two.jwksUrl, allowInsecureLoopback: true },
      ];
      const identities: IdentityConfigInput[] = ['x', 'y'].map((identityId) => ({
        identityId,
        keySources: sources,
        boundSubject: 'sub',
        boundAudiences: 'vault',
      }));
      const auth = createOidcAuth({ identities, signingKeys: SIGNING_KEYS });
      for (const identityId of ['x', 'y', 'x', 'y']) {
        for (const idp of [one, two]) {
          const jwt = await idp.sign({ sub: 'sub', aud: 'vault' });
          await expect(auth.login({ identityId, jwt })).resolves.toMatchObject({ identityId });
        }
      }
      expect(one.hits('discovery')).toBe(1);
      expect(one.hits('jwks')).toBe(1);
      expect(two.hits('discovery')).toBe(0);
      expect(two.hits('jwks')).toBe(1);
    } finally {
      await one.close();
      await two.close();
    }
  });
});

describe('keySources validation', () => {
  const key = makeKey('RS256', 'v');
  const base = (keySources: unknown, extra: Record<string, unknown> = {}) => ({
    identityId: 'id1',
    keySources,
    boundSubject: 's',
    ...extra,
  });
  const fieldOf = (input: unknown): string => {
    try {
      parseIdentityConfig(input);
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      return (error as ConfigError).field;
    }
    throw new Error('accepted');
  };

  it('names the source and field at fault', () => {
    expect(
      fieldOf(
        base([
          { issuer: A, publicKeys: [key.publicJwk] },
          { issuer: B, jwksUrl: 'ftp://x' },
        ]),
      ),
    ).toBe('keySources[1].jwksUrl');
    expect(fieldOf(base([{ issuer: A }]))).toBe('keySources[0].oidcDiscoveryUrl');
    expect(fieldOf(base([{ publicKeys: [key.publicJwk] }]))).toBe('keySources[0].issuer');
    expect(fieldOf(base([{ issuer: 'https://x/*', publicKeys: [key.publicJwk] }]))).toBe(
      'keySources[0].issuer[0]',
    );
    expect(fieldOf(base([{ issuer: A, publicKeys: [key.publicJwk], boundSubject: 'x' }]))).toBe(
      'keySources[0].boundSubject',
    );
    expect(fieldOf(base([]))).toBe('keySources');
    expect(
      fieldOf(
        base(Array.from({ length: 9 }, (_, i) => ({ issuer: `${A}/${i}`, publicKeys: [key.publicJwk] }))),
      ),
    ).toBe('keySources');
  });

  it('refuses an issuer named by two sources, and flat key fields beside keySources', () => {
    expect(
      fieldOf(
        base([
          { issuer: A, publicKeys: [key.publicJwk] },
          { issuer: [B, A], jwksUrl: `${A}/jwks` },
        ]),
      ),
    ).toBe('keySources[1].issuer');
    expect(fieldOf(base([{ issuer: A, publicKeys: [key.publicJwk] }], { jwksUrl: `${A}/jwks` }))).toBe(
      'jwksUrl',
    );
    expect(fieldOf(base([{ issuer: A, publicKeys: [key.publicJwk] }], { boundIssuer: A }))).toBe(
      'boundIssuer',
    );
    expect(fieldOf(base([{ issuer: A, publicKeys: [key.publicJwk] }], { trust: 'gh' }))).toBe('keySources');
  });

  it('a flat config is exactly one key source, with no keySources field (unchanged shape)', () => {
    const flat = parseIdentityConfig({
      identityId: 'f',
      publicKeys: [key.publicJwk],
      boundIssuer: A,
      boundSubject: 's',
    });
    expect(Object.hasOwn(flat, 'keySources')).toBe(false);
    expect(flat.boundIssuer).toEqual([A]);
  });

  it('a parsed keySources config parses back from its JSON to an equal config', () => {
    const parsed = parseIdentityConfig(
      base([
        { issuer: [A, `${A}/v2`], publicKeys: [key.publicJwk] },
        { issuer: B, jwksUrl: `${B}/keys`, caCert: undefined },
        { issuerPattern: 'https://oidc.eks.*.amazonaws.com/id/*' },
      ]),
    );
    const again = parseIdentityConfig(JSON.parse(JSON.stringify(parsed)));
    expect(again).toEqual(parsed);
    expect(parsed.boundIssuer).toEqual([]);
  });
});

describe('SPIFFE bundles', () => {
  let idp: TestIdp;
  const jwtKey = createSigningKey('ES256', 'spire-jwt-1');
  const x509Key = createSigningKey('ES256', 'spire-x509-1');
  beforeAll(async () => {
    idp = await startTestIdp({ keys: [jwtKey, x509Key] });
    // A SPIFFE trust bundle (SPIFFE Trust Domain and Bundle §4): a JWKS with spiffe_ members.
    idp.setJwks({
      spiffe_sequence: 7,
      spiffe_refresh_hint: 300,
      keys: [
        { ...jwtKey.publicJwk, use: 'jwt-svid' },
        { ...x509Key.publicJwk, use: 'x509-svid', x5c: ['MIIB'] },
      ],
    });
  });
  afterAll(() => idp.close());

  const spiffe = (): IdentityConfigInput => ({
    identityId: 'payments',
    jwksUrl: idp.jwksUrl,
    allowInsecureLoopback: true,
    boundIssuer: idp.issuer,
    boundSubject: 'spiffe://prod.example.org/ns/payments/sa/*',
    boundAudiences: 'vault',
  });

  it('SPIFFE Trust Domain and Bundle §4.2.2: a use "jwt-svid" key verifies a JWT-SVID', async () => {
    const auth = createOidcAuth({ identities: [spiffe()], signingKeys: SIGNING_KEYS });
    const jwt = await idp.sign(
      { sub: 'spiffe://prod.example.org/ns/payments/sa/api', aud: ['vault'] },
      { key: jwtKey },
    );
    await expect(auth.login({ identityId: 'payments', jwt })).resolves.toMatchObject({
      identityId: 'payments',
    });
  });

  it('SPIFFE Trust Domain and Bundle §4.2.1: a use "x509-svid" key never verifies a JWT', async () => {
    const rec = new Recorder();
    const auth = createOidcAuth({ identities: [spiffe()], signingKeys: SIGNING_KEYS, onEvent: rec.onEvent });
    const jwt = await idp.sign(
      { sub: 'spiffe://prod.example.org/ns/payments/sa/api', aud: ['vault'] },
      { key: x509Key },
    );
    await expect(auth.login({ identityId: 'payments', jwt })).rejects.toMatchObject({
      code: 'invalid_credentials',
    });
    expect(rec.last('login.failure')?.reasonCode).toBe('key_not_found');
  });

  it('static publicKeys accept a jwt-svid JWK and refuse an x509-svid one', () => {
    const input = (use: string) => ({
      ...spiffe(),
      jwksUrl: undefined,
      publicKeys: [{ ...jwtKey.publicJwk, use }],
    });
    expect(parseIdentityConfig(input('jwt-svid')).publicKeys).toHaveLength(1);
    expect(() => parseIdentityConfig(input('x509-svid'))).toThrow(/publicKeys\[0\]\.use/);
  });
});
