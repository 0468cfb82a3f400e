import { createPublicKey, generateKeyPairSync, randomUUID } from 'node:crypto';
import { jwtVerify } from 'jose';
import { afterEach, describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/errors.js';
import { httpGet } from '../../src/trust/fetch.js';
import { KeyError, KeyManager, MemoryKeyCache, type KeyManagerOptions } from '../../src/trust/keys.js';
import type { AsymmetricAlgorithm, IdentityConfig } from '../../src/types.js';
import { createTestCertificates } from '../helpers/certs.js';
import { createSigningKey, startTestIdp, type TestIdp, type TestIdpOptions } from '../helpers/idp-server.js';

const ALL_ALGORITHMS: AsymmetricAlgorithm[] = [
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
  'Ed25519',
];
const MINUTE = 60_000;

function identity(overrides: Partial<IdentityConfig> = {}): IdentityConfig {
  return {
    identityId: randomUUID(),
    oidcDiscoveryUrl: undefined,
    jwksUrl: undefined,
    publicKeys: undefined,
    caCert: undefined,
    boundIssuer: ['https://issuer.example'],
    boundSubject: [],
    boundAudiences: ['my-app'],
    allowAnyAudience: false,
    boundClaims: {},
    claimMetadataMapping: {},
    accessTokenTTL: 7200,
    accessTokenMaxTTL: 86400,
    accessTokenNumUsesLimit: 0,
    accessTokenTrustedIps: ['0.0.0.0/0', '::/0'],
    allowedAlgorithms: ALL_ALGORITHMS,
    clockSkewSeconds: 60,
    maxTokenLifetimeSeconds: 86400,
    discoveryIssuer: undefined,
    allowPrivateNetwork: false,
    allowInsecureLoopback: true,
    metadata: {},
    ...overrides,
  };
}

const idps: TestIdp[] = [];
afterEach(async () => {
  await Promise.all(idps.splice(0).map((idp) => idp.close()));
});

/** A test IdP, a KeyManager on a fake clock, and an identity using the IdP's discovery. */
async function setup(options: { idp?: TestIdpOptions; manager?: KeyManagerOptions } = {}) {
  const idp = await startTestIdp(options.idp);
  idps.push(idp);
  const clock = { now: 1_700_000_000_000 };
  const fetches: Array<{ kind: string; ok: boolean; error?: string }> = [];
  const manager = new KeyManager({
    clock: () => clock.now,
    onFetch: (info) => fetches.push(info),
    ...options.manager,
  });
  const config = identity({ oidcDiscoveryUrl: idp.issuer });
  return { idp, clock, manager, config, fetches };
}

async function keyError(promise: Promise<unknown>): Promise<KeyError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(KeyError);
    return error as KeyError;
  }
  throw new Error('expected a KeyError');
}

describe('KeyManager: sources', () => {
  it('finds the key by kid through discovery, and it verifies a real token', async () => {
    const { idp, manager, config } = await setup();
    const key = idp.keys[0]!;
    const keys = await manager.getKeys(config, { alg: 'RS256', kid: key.kid });
    expect(keys.map((k) => k.kid)).toEqual([key.kid]);
    expect(keys[0]).toMatchObject({ kty: 'RSA', alg: 'RS256' });
    const jwt = await idp.sign({ sub: 'x' });
    const { payload } = await jwtVerify(jwt, keys[0]!.key, { algorithms: ['RS256'] });
    expect(payload.sub).toBe('x');
  });

  it('uses jwksUrl without discovery', async () => {
    const { idp, manager } = await setup();
    const config = identity({ jwksUrl: idp.jwksUrl });
    expect(await manager.getKeys(config, { alg: 'RS256', kid: 'key-1' })).toHaveLength(1);
    expect(idp.hits('discovery')).toBe(0);
    expect(idp.hits('jwks')).toBe(1);
  });

  it('imports static publicKeys (PEM and JWK) once and never fetches', async () => {
    let fetched = 0;
    const manager = new KeyManager({
      httpGet: async () => {
        fetched++;
        throw new Error('no fetch expected');
      },
    });
    const rsa = createSigningKey('RS256', 'static-rsa');
    const ec = createSigningKey('ES256', 'static-ec');
    const pem = createPublicKey(rsa.privateKey).export({ type: 'spki', format: 'pem' }).toString();
    const config = identity({ publicKeys: [pem, ec.publicJwk] });
    // A PEM has no kid: it matches any kid (the admin pinned it); a JWK with a kid matches that kid only.
    expect((await manager.getKeys(config, { alg: 'RS256', kid: 'whatever' })).map((k) => k.kty)).toEqual([
      'RSA',
    ]);
    expect((await manager.getKeys(config, { alg: 'ES256', kid: 'static-ec' }))[0]?.crv).toBe('P-256');
    expect((await keyError(manager.getKeys(config, { alg: 'ES256', kid: 'other' }))).code).toBe(
      'key_not_found',
    );
    expect(fetched).toBe(0);
  });

  it('refuses a private key PEM given as a static key', async () => {
    const rsa = createSigningKey('RS256');
    const pem = rsa.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    const manager = new KeyManager();
    const error = await keyError(manager.getKeys(identity({ publicKeys: [pem] }), { alg: 'RS256' }));
    expect(error.code).toBe('key_not_found');
  });

  it('an algorithm the identity does not allow, or HMAC, is refused before any fetch', async () => {
    const { idp, manager } = await setup();
    const config = identity({ oidcDiscoveryUrl: idp.issuer, allowedAlgorithms: ['RS256'] });
    for (const alg of ['ES256', 'HS256', 'none', 'rs256', 'RS256 ']) {
      expect((await keyError(manager.getKeys(config, { alg, kid: 'key-1' }))).code).toBe(
        'algorithm_not_allowed',
      );
    }
    expect(idp.requests).toHaveLength(0);
  });

  it('stats count fetches, hits and misses; the warm path returns the same array', async () => {
    const { manager, config } = await setup();
    const first = await manager.getKeys(config, { alg: 'RS256', kid: 'key-1' });
    const second = await manager.getKeys(config, { alg: 'RS256', kid: 'key-1' });
    expect(second).toBe(first);
    expect(Object.isFrozen(second)).toBe(true);
    expect(manager.stats()).toEqual({ fetches: 2, failures: 0, hits: 1, misses: 1 });
  });

  it('KeyError messages carry no kid, URL or upstream text', async () => {
    const { idp, manager, config } = await setup();
    const kid = `CANARY-${randomUUID()}`;
    const notFound = await keyError(manager.getKeys(config, { alg: 'RS256', kid }));
    expect(notFound.message).not.toContain('CANARY');
    idp.setBehavior('discovery', { kind: 'status', status: 500, body: 'UPSTREAM-TEXT' });
    const down = await keyError(
      manager.getKeys(identity({ oidcDiscoveryUrl: `${idp.issuer}/x` }), { alg: 'RS256' }),
    );
    expect(down.message).not.toMatch(/UPSTREAM|127\.0\.0\.1|CANARY/);
  });

  it('bad options throw at construction', () => {
    expect(() => new KeyManager({ cooldownMs: 20 * MINUTE })).toThrow(ConfigError);
    expect(() => new KeyManager({ maxStaleMs: MINUTE })).toThrow(ConfigError);
    expect(() => new KeyManager({ maxKeys: 0 })).toThrow(ConfigError);
    expect(() => new KeyManager({ timeoutMs: Number.NaN })).toThrow(ConfigError);
  });
});

describe('KeyManager: discovery document', () => {
  it('ISS-05: a discovery document naming another issuer is refused, and no JWKS is fetched', async () => {
    const { idp, manager, config } = await setup();
    idp.setDiscovery({ issuer: 'https://token.actions.githubusercontent.com' });
    const error = await keyError(manager.getKeys(config, { alg: 'RS256', kid: 'key-1' }));
    expect(error.code).toBe('issuer_mismatch');
    expect(error.retryAfterSeconds).toBeGreaterThan(0);
    expect(idp.hits('jwks')).toBe(0);
  });

  it('ISS-05: a trailing-slash difference is tolerated, nothing more', async () => {
    const { idp, manager, config } = await setup();
    idp.setDiscovery({ issuer: `${idp.issuer}/` });
    expect(await manager.getKeys(config, { alg: 'RS256', kid: 'key-1' })).toHaveLength(1);
    for (const issuer of [`${idp.issuer}//`, idp.issuer.toUpperCase(), `${idp.issuer}/other`]) {
      const other = await setup();
      other.idp.setDiscovery({ issuer });
      expect((await keyError(other.manager.getKeys(other.config, { alg: 'RS256' }))).code).toBe(
        'issuer_mismatch',
      );
    }
  });

  it('ISS-05: discoveryIssuer names the issuer the document must carry (Azure v1)', async () => {
    const { idp, manager } = await setup();
    const v1 = 'https://sts.windows.net/tenant-id/';
    idp.setDiscovery({ issuer: v1 });
    const config = identity({ oidcDiscoveryUrl: idp.issuer, discoveryIssuer: v1 });
    expect(await manager.getKeys(config, { alg: 'RS256', kid: 'key-1' })).toHaveLength(1);
    const plain = identity({ oidcDiscoveryUrl: idp.issuer });
    expect((await keyError(manager.getKeys(plain, { alg: 'RS256', kid: 'key-1' }))).code).toBe(
      'issuer_mismatch',
    );
  });

  it('ALG-03: an alg outside id_token_signing_alg_values_supported is refused without a JWKS fetch', async () => {
    const { idp, manager, config } = await setup();
    idp.setDiscovery({ id_token_signing_alg_values_supported: ['RS256'] });
    for (const alg of ['PS256', 'ES256', 'EdDSA']) {
      expect((await keyError(manager.getKeys(config, { alg, kid: 'key-1' }))).code).toBe(
        'algorithm_not_allowed',
      );
    }
    expect(idp.hits('jwks')).toBe(0);
    expect(await manager.getKeys(config, { alg: 'RS256', kid: 'key-1' })).toHaveLength(1);
  });

  it('ALG-03: an untagged RSA JWK is not handed out for an EC algorithm', async () => {
    const { idp, manager, config } = await setup();
    const { alg: _alg, ...untagged } = idp.keys[0]!.publicJwk;
    idp.setJwks({ keys: [untagged] });
    idp.setDiscovery({ id_token_signing_alg_values_supported: undefined });
    expect((await keyError(manager.getKeys(config, { alg: 'ES256', kid: 'key-1' }))).code).toBe(
      'key_not_found',
    );
    expect(await manager.getKeys(config, { alg: 'PS256', kid: 'key-1' })).toHaveLength(1);
  });

  it('SSRF-06: a jwks_uri that fails the URL rules is never fetched', async () => {
    for (const jwksUri of [
      'http://169.254.169.254/latest/meta-data/',
      'https://10.0.0.1/jwks',
      'http://idp.example.com/jwks',
      'file:///etc/passwd',
      'https://user:pw@idp.example.com/jwks',
    ]) {
      const { idp, manager, config, fetches } = await setup();
      idp.setDiscovery({ jwks_uri: jwksUri });
      expect((await keyError(manager.getKeys(config, { alg: 'RS256', kid: 'key-1' }))).code).toBe(
        'idp_unavailable',
      );
      expect(fetches.map((f) => f.kind)).toEqual(['discovery']);
      expect(fetches[0]?.error).toBe('jwks_uri_rejected');
    }
  });

  it('SSRF-06: a jwks_uri on another host is allowed', async () => {
    const { idp, manager, config } = await setup();
    const keysHost = await startTestIdp({ keys: idp.keys as never });
    idps.push(keysHost);
    idp.setDiscovery({ jwks_uri: keysHost.jwksUrl.replace('127.0.0.1', 'localhost') });
    expect(await manager.getKeys(config, { alg: 'RS256', kid: 'key-1' })).toHaveLength(1);
    expect(keysHost.hits('jwks')).toBe(1);
    expect(idp.hits('jwks')).toBe(0);
  });

  it('SSRF-01: a discovery URL on a private or metadata address is refused without a connection', async () => {
    const manager = new KeyManager();
    for (const base of [
      'https://169.254.169.254',
      'https://10.0.0.1',
      'https://[fd00::1]',
      'https://0x7f.1',
    ]) {
      const config = identity({ oidcDiscoveryUrl: base, allowInsecureLoopback: false });
      expect((await keyError(manager.getKeys(config, { alg: 'RS256' }))).code).toBe('idp_unavailable');
    }
    expect(manager.stats().failures).toBe(4);
  });
});

describe('KeyManager: malformed documents (FETCH-03)', () => {
  const discoveryCases: Array<[string, Parameters<TestIdp['setDiscovery']>[0] | string]> = [
    ['non-JSON', 'this is not json {'],
    ['a JSON array', '[{"issuer":"x"}]'],
    ['JSON null', 'null'],
    ['missing jwks_uri', { jwks_uri: undefined }],
    ['jwks_uri not a string', { jwks_uri: ['https://a/'] }],
    ['missing issuer', { issuer: undefined }],
  ];
  it.each(discoveryCases)(
    'FETCH-03: a discovery document that is %s gives idp_unavailable',
    async (_name, change) => {
      const { idp, manager, config } = await setup();
      if (typeof change === 'string') idp.setBehavior('discovery', { kind: 'body', body: change });
      else idp.setDiscovery(change);
      const error = await keyError(manager.getKeys(config, { alg: 'RS256', kid: 'key-1' }));
      expect(['idp_unavailable', 'issuer_mismatch']).toContain(error.code);
      // Nothing in hand and the last attempt failed: the next one is a probe, 1 s later (#13.19).
      expect(error.retryAfterSeconds).toBe(1);
      expect(idp.hits('jwks')).toBe(0);
    },
  );

  const jwksCases: Array<[string, string]> = [
    ['non-JSON', '<html>oops</html>'],
    ['an array', '[]'],
    ['an object without keys', '{"kty":"RSA"}'],
    ['keys not an array', '{"keys":{"0":{}}}'],
    ['keys null', '{"keys":null}'],
  ];
  it.each(jwksCases)('FETCH-03: a JWKS that is %s gives idp_unavailable', async (_name, body) => {
    const { idp, manager, config } = await setup();
    idp.setBehavior('jwks', { kind: 'body', body });
    expect((await keyError(manager.getKeys(config, { alg: 'RS256', kid: 'key-1' }))).code).toBe(
      'idp_unavailable',
    );
  });

  it('FETCH-03: a JWKS holding private members is rejected as a whole', async () => {
    const { idp, manager, config, fetches } = await setup();
    const leaked = createSigningKey('RS256', 'leaked');
    idp.setJwks({
      keys: [idp.keys[0]!.publicJwk, { ...leaked.privateKey.export({ format: 'jwk' }), kid: 'leaked' }],
    });
    expect((await keyError(manager.getKeys(config, { alg: 'RS256', kid: 'key-1' }))).code).toBe(
      'idp_unavailable',
    );
    expect(fetches.at(-1)?.error).toBe('private_key_material');
  });

  it('FETCH-03: 10,000 keys: only the first maxKeys (100) usable keys are kept', async () => {
    const { idp, manager, config } = await setup({ manager: { maxJwksBytes: 8 * 1024 * 1024 } });
    const ec = createSigningKey('ES256').publicJwk;
    idp.setJwks({ keys: Array.from({ length: 10_000 }, (_, i) => ({ ...ec, kid: `k${i}` })) });
    expect(await manager.getKeys(config, { alg: 'ES256', kid: 'k99' })).toHaveLength(1);
    expect((await keyError(manager.getKeys(config, { alg: 'ES256', kid: 'k100' }))).code).toBe(
      'key_not_found',
    );
    expect((await keyError(manager.getKeys(config, { alg: 'ES256', kid: 'k9999' }))).code).toBe(
      'key_not_found',
    );
  });

  it('FETCH-03: a JWKS over maxJwksBytes is refused', async () => {
    const { idp, manager, config, fetches } = await setup({ manager: { maxJwksBytes: 1024 } });
    const ec = createSigningKey('ES256').publicJwk;
    idp.setJwks({ keys: Array.from({ length: 50 }, (_, i) => ({ ...ec, kid: `k${i}` })) });
    expect((await keyError(manager.getKeys(config, { alg: 'ES256', kid: 'k1' }))).code).toBe(
      'idp_unavailable',
    );
    expect(fetches.at(-1)).toMatchObject({ kind: 'jwks', ok: false, error: 'too_large' });
  });
});

describe('KeyManager: which keys are usable', () => {
  it('FETCH-04: oct, use:enc, key_ops without verify, unknown kty and broken keys are ignored', async () => {
    const { idp, manager, config } = await setup();
    const good = createSigningKey('ES256', 'good').publicJwk;
    const rsa = createSigningKey('RS256', 'rsa').publicJwk;
    idp.setJwks({
      keys: [
        { kty: 'oct', k: undefined, kid: 'sym', alg: 'HS256' },
        { ...rsa, kid: 'enc', use: 'enc' },
        { ...rsa, kid: 'encrypt-only', key_ops: ['encrypt'] },
        { ...rsa, kid: 'ops-not-array', key_ops: 'verify' },
        { ...rsa, kid: 'oaep', alg: 'RSA-OAEP' },
        { kty: 'DSA', kid: 'dsa' },
        { ...good, kid: 'broken', x: 'AAAA' },
        { ...good, kid: 123 },
        'not an object',
        null,
        { ...rsa, kid: 'verify-ok', key_ops: ['verify'] },
        good,
      ],
    });
    for (const [alg, kid] of [
      ['HS256', 'sym'],
      ['RS256', 'enc'],
      ['RS256', 'encrypt-only'],
      ['RS256', 'ops-not-array'],
      ['RS256', 'oaep'],
      ['RS256', 'dsa'],
      ['ES256', 'broken'],
    ] as const) {
      const error = await keyError(manager.getKeys(config, { alg, kid }));
      expect([alg, kid, error.code]).toEqual([
        alg,
        kid,
        alg === 'HS256' ? 'algorithm_not_allowed' : 'key_not_found',
      ]);
    }
    expect(await manager.getKeys(config, { alg: 'RS256', kid: 'verify-ok' })).toHaveLength(1);
    expect(await manager.getKeys(config, { alg: 'ES256', kid: 'good' })).toHaveLength(1);
  });

  it('FETCH-04: a JWK alg differing from the header alg does not match', async () => {
    const { idp, manager, config } = await setup();
    idp.setDiscovery({ id_token_signing_alg_values_supported: undefined });
    expect((await keyError(manager.getKeys(config, { alg: 'PS256', kid: 'key-1' }))).code).toBe(
      'key_not_found',
    );
    expect((await keyError(manager.getKeys(config, { alg: 'RS512', kid: 'key-1' }))).code).toBe(
      'key_not_found',
    );
    expect(await manager.getKeys(config, { alg: 'RS256', kid: 'key-1' })).toHaveLength(1);
  });

  it('FETCH-04: duplicate kids are handed out together, up to maxCandidates', async () => {
    const { idp, manager, config } = await setup();
    const a = createSigningKey('RS256', 'dup');
    const b = createSigningKey('RS256', 'dup');
    idp.setKeys([a, b]);
    expect(await manager.getKeys(config, { alg: 'RS256', kid: 'dup' })).toHaveLength(2);
    const other = await setup({ manager: { maxCandidates: 1 } });
    other.idp.setKeys([a, b]);
    expect((await keyError(other.manager.getKeys(other.config, { alg: 'RS256', kid: 'dup' }))).code).toBe(
      'key_not_found',
    );
  });

  it('ALG-05: an RSA key under 2048 bits is ignored', async () => {
    const { idp, manager, config } = await setup();
    idp.setKeys([createSigningKey('RS256', 'weak', 1024), createSigningKey('RS256', 'strong', 2048)]);
    expect((await keyError(manager.getKeys(config, { alg: 'RS256', kid: 'weak' }))).code).toBe(
      'key_not_found',
    );
    expect(await manager.getKeys(config, { alg: 'RS256', kid: 'strong' })).toHaveLength(1);
  });

  it('ALG-05: an EC key on the wrong curve for the alg does not match', async () => {
    const { idp, manager, config } = await setup();
    const p384 = createSigningKey('ES384', 'p384');
    idp.setKeys([p384]);
    idp.setJwks({ keys: [{ ...p384.publicJwk, alg: undefined }] });
    idp.setDiscovery({ id_token_signing_alg_values_supported: undefined });
    expect((await keyError(manager.getKeys(config, { alg: 'ES256', kid: 'p384' }))).code).toBe(
      'key_not_found',
    );
    expect((await keyError(manager.getKeys(config, { alg: 'ES512', kid: 'p384' }))).code).toBe(
      'key_not_found',
    );
    expect(await manager.getKeys(config, { alg: 'ES384', kid: 'p384' })).toHaveLength(1);
  });

  it('EdDSA and Ed25519 headers both match an Ed25519 OKP key', async () => {
    const { idp, manager, config } = await setup();
    idp.setKeys([createSigningKey('EdDSA', 'ed')]);
    expect((await manager.getKeys(config, { alg: 'EdDSA', kid: 'ed' }))[0]?.crv).toBe('Ed25519');
    expect(await manager.getKeys(config, { alg: 'Ed25519', kid: 'ed' })).toHaveLength(1);
  });

  it('KID-04: without a kid, every fitting key is handed out, refused above maxCandidates', async () => {
    const { idp, manager, config } = await setup();
    const rsa = Array.from({ length: 5 }, (_, i) => createSigningKey('RS256', `r${i}`));
    idp.setKeys([...rsa, createSigningKey('ES256', 'e0')]);
    expect((await manager.getKeys(config, { alg: 'RS256' })).map((k) => k.kid)).toEqual([
      'r0',
      'r1',
      'r2',
      'r3',
      'r4',
    ]);
    expect((await manager.getKeys(config, { alg: 'ES256' })).map((k) => k.kid)).toEqual(['e0']);

    const six = await setup();
    six.idp.setKeys([...rsa, createSigningKey('RS256', 'r5')]);
    expect((await keyError(six.manager.getKeys(six.config, { alg: 'RS256' }))).code).toBe('key_not_found');
  });

  it('KID-01: a hostile kid is only a lookup key', async () => {
    const { manager, config } = await setup();
    for (const kid of [
      "' OR '1'='1",
      '../../../dev/null',
      '/proc/self/environ',
      'a\r\nb\u001b[31m',
      '__proto__',
    ]) {
      expect((await keyError(manager.getKeys(config, { alg: 'RS256', kid }))).code).toBe('key_not_found');
    }
    expect((await keyError(manager.getKeys(config, { alg: 'RS256', kid: 'k'.repeat(10_000) }))).code).toBe(
      'key_not_found',
    );
  });
});

describe('KeyManager: caching', () => {
  it('FETCH-08: 200 parallel cold calls cause exactly 1 discovery and 1 JWKS fetch', async () => {
    const { idp, manager, config } = await setup();
    idp.setBehavior('discovery', { kind: 'delay', ms: 50 });
    const results = await Promise.all(
      Array.from({ length: 200 }, () => manager.getKeys(config, { alg: 'RS256', kid: 'key-1' })),
    );
    expect(results.every((keys) => keys.length === 1)).toBe(true);
    expect(idp.hits('discovery')).toBe(1);
    expect(idp.hits('jwks')).toBe(1);
  });

  it('FETCH-07: 1,000 identities pointing at one IdP share one cache entry', async () => {
    const { idp, manager } = await setup();
    const configs = Array.from({ length: 1000 }, () => identity({ oidcDiscoveryUrl: idp.issuer }));
    await Promise.all(configs.map((config) => manager.getKeys(config, { alg: 'RS256', kid: 'key-1' })));
    await Promise.all(configs.map((config) => manager.getKeys(config, { alg: 'RS256', kid: 'key-1' })));
    expect(idp.hits('discovery')).toBe(1);
    expect(idp.hits('jwks')).toBe(1);
    // Re-parsed config objects (a store that builds a new object per read) share it too.
    await manager.getKeys({ ...configs[0]! }, { alg: 'RS256', kid: 'key-1' });
    expect(idp.requests).toHaveLength(2);
  });

  it('FETCH-07: a jwksUrl identity and a discovery identity with the same jwks_uri share the key set', async () => {
    const { idp, manager, config } = await setup();
    await manager.getKeys(config, { alg: 'RS256', kid: 'key-1' });
    await manager.getKeys(identity({ jwksUrl: idp.jwksUrl }), { alg: 'RS256', kid: 'key-1' });
    expect(idp.hits('jwks')).toBe(1);
  });

  it('entries are separate per CA and network flags', async () => {
    const { idp, manager, config } = await setup();
    await manager.getKeys(config, { alg: 'RS256', kid: 'key-1' });
    await manager.getKeys({ ...config, allowPrivateNetwork: true }, { alg: 'RS256', kid: 'key-1' });
    expect(idp.hits('jwks')).toBe(2);
  });

  it('KID-03: 500 random kids cause at most one JWKS refetch per cooldown window', async () => {
    const { idp, clock, manager, config } = await setup();
    await manager.getKeys(config, { alg: 'RS256', kid: 'key-1' });
    clock.now += 31_000;
    const errors = await Promise.all(
      Array.from({ length: 500 }, () =>
        keyError(manager.getKeys(config, { alg: 'RS256', kid: randomUUID() })),
      ),
    );
    expect(errors.every((e) => e.code === 'key_not_found')).toBe(true);
    expect(idp.hits('jwks')).toBe(2);
    for (let i = 0; i < 20; i++) {
      clock.now += 1_000;
      await keyError(manager.getKeys(config, { alg: 'RS256', kid: randomUUID() }));
    }
    expect(idp.hits('jwks')).toBe(2);
    clock.now += 11_000;
    await keyError(manager.getKeys(config, { alg: 'RS256', kid: randomUUID() }));
    expect(idp.hits('jwks')).toBe(3);
  });

  it('FETCH-06: a rotated-in kid is found after one refetch; a removed kid stops matching after refresh', async () => {
    const { idp, clock, manager, config } = await setup();
    await manager.getKeys(config, { alg: 'RS256', kid: 'key-1' });
    const next = idp.addKey('RS256', 'key-2');
    clock.now += 31_000;
    expect((await manager.getKeys(config, { alg: 'RS256', kid: next.kid }))[0]?.kid).toBe('key-2');
    expect(idp.hits('jwks')).toBe(2);

    idp.removeKey('key-1');
    expect(await manager.getKeys(config, { alg: 'RS256', kid: 'key-1' })).toHaveLength(1);
    clock.now += 10 * MINUTE;
    expect((await keyError(manager.getKeys(config, { alg: 'RS256', kid: 'key-1' }))).code).toBe(
      'key_not_found',
    );
    expect(await manager.getKeys(config, { alg: 'RS256', kid: 'key-2' })).toHaveLength(1);
  });

  it('FETCH-06: a new kid right after a fetch waits for the cooldown (jose semantics)', async () => {
    const { idp, clock, manager, config } = await setup();
    await manager.getKeys(config, { alg: 'RS256', kid: 'key-1' });
    idp.addKey('RS256', 'key-2');
    expect((await keyError(manager.getKeys(config, { alg: 'RS256', kid: 'key-2' }))).code).toBe(
      'key_not_found',
    );
    clock.now += 30_000;
    expect(await manager.getKeys(config, { alg: 'RS256', kid: 'key-2' })).toHaveLength(1);
  });

  it('refreshes discovery and JWKS after cacheMaxAgeMs', async () => {
    const { idp, clock, manager, config } = await setup();
    await manager.getKeys(config, { alg: 'RS256', kid: 'key-1' });
    clock.now += 10 * MINUTE - 1;
    await manager.getKeys(config, { alg: 'RS256', kid: 'key-1' });
    expect(idp.requests).toHaveLength(2);
    clock.now += 1;
    await manager.getKeys(config, { alg: 'RS256', kid: 'key-1' });
    expect(idp.hits('discovery')).toBe(2);
    expect(idp.hits('jwks')).toBe(2);
  });

  it('FETCH-05: after the IdP goes down, cached keys serve until maxStaleMs, without hammering it', async () => {
    const { idp, clock, manager, config } = await setup();
    await manager.getKeys(config, { alg: 'RS256', kid: 'key-1' });
    idp.setBehavior('discovery', { kind: 'status', status: 503 });
    idp.setBehavior('jwks', { kind: 'down' });
    idp.resetHits();

    clock.now += 11 * MINUTE;
    for (let i = 0; i < 50; i++) {
      expect(await manager.getKeys(config, { alg: 'RS256', kid: 'key-1' })).toHaveLength(1);
    }
    expect(idp.hits('discovery')).toBe(1);
    expect(idp.hits('jwks')).toBe(1);

    const newKid = await keyError(manager.getKeys(config, { alg: 'RS256', kid: 'key-new' }));
    expect(newKid.code).toBe('idp_unavailable');
    expect(newKid.retryAfterSeconds).toBe(1);

    clock.now += 23 * 60 * MINUTE;
    expect(await manager.getKeys(config, { alg: 'RS256', kid: 'key-1' })).toHaveLength(1);
    expect(idp.hits('jwks')).toBe(2);

    clock.now += 60 * MINUTE;
    const tooStale = await keyError(manager.getKeys(config, { alg: 'RS256', kid: 'key-1' }));
    expect(tooStale.code).toBe('idp_unavailable');
    expect(tooStale.retryAfterSeconds).toBeGreaterThan(0);
    expect(manager.stats().failures).toBeGreaterThan(0);
  });

  it('FETCH-05: a new kid while the IdP is down gives idp_unavailable, even with fresh keys in hand', async () => {
    const { idp, clock, manager, config } = await setup();
    await manager.getKeys(config, { alg: 'RS256', kid: 'key-1' });
    clock.now += 31_000;
    idp.setBehavior('jwks', { kind: 'status', status: 503 });
    expect((await keyError(manager.getKeys(config, { alg: 'RS256', kid: 'key-2' }))).code).toBe(
      'idp_unavailable',
    );
    expect((await keyError(manager.getKeys(config, { alg: 'RS256', kid: 'key-3' }))).code).toBe(
      'idp_unavailable',
    );
    expect(await manager.getKeys(config, { alg: 'RS256', kid: 'key-1' })).toHaveLength(1);
    expect(idp.hits('jwks')).toBe(2);
  });

  it('FETCH-05, #13.19 IdP recovery from a cold cache: idp_unavailable, one probe per probeIntervalMs, keys as soon as the IdP answers', async () => {
    const { idp, clock, manager, config } = await setup();
    idp.setBehavior('discovery', { kind: 'down' });
    const first = await keyError(manager.getKeys(config, { alg: 'RS256', kid: 'key-1' }));
    expect(first).toMatchObject({ code: 'idp_unavailable', retryAfterSeconds: 1 });
    clock.now += 500;
    const second = await keyError(manager.getKeys(config, { alg: 'RS256', kid: 'key-1' }));
    expect(second).toMatchObject({ code: 'idp_unavailable', retryAfterSeconds: 1 });
    expect(idp.hits('discovery')).toBe(1);
    clock.now += 500;
    await keyError(manager.getKeys(config, { alg: 'RS256', kid: 'key-1' }));
    expect(idp.hits('discovery'), 'one probe after 1 s').toBe(2);
    idp.reset();
    clock.now += 1_000;
    expect(await manager.getKeys(config, { alg: 'RS256', kid: 'key-1' })).toHaveLength(1);
  });

  it('#13.19 IdP recovery: probes apply only while the last attempt failed and nothing usable is in hand', async () => {
    const { idp, clock, manager, config } = await setup();
    await manager.getKeys(config, { alg: 'RS256', kid: 'key-1' });
    // Healthy IdP: unknown kids refetch once per 30 s cooldown, never per probe interval.
    clock.now += 31_000;
    const unknown = (kid: string) => keyError(manager.getKeys(config, { alg: 'RS256', kid }));
    expect((await unknown('a')).code).toBe('key_not_found');
    for (let i = 0; i < 20; i++) {
      clock.now += 1_000;
      expect((await unknown(`b${i}`)).code).toBe('key_not_found');
    }
    expect(idp.hits('jwks')).toBe(2);
    // Failing IdP with stale keys that still serve: the cached kid keeps the full cooldown.
    idp.setBehavior('jwks', { kind: 'down' });
    idp.setBehavior('discovery', { kind: 'down' });
    idp.resetHits();
    clock.now += 11 * MINUTE;
    for (let i = 0; i < 20; i++) {
      expect(await manager.getKeys(config, { alg: 'RS256', kid: 'key-1' })).toHaveLength(1);
      clock.now += 1_000;
    }
    expect(idp.hits('discovery') + idp.hits('jwks')).toBe(2);
    // A kid not in hand while the IdP fails: one probe per second at most, however many ask.
    idp.resetHits();
    for (let i = 0; i < 100; i++) {
      clock.now += 100;
      await Promise.all([unknown(`c${i}`), unknown(`d${i}`)]);
    }
    expect(idp.hits('jwks')).toBeGreaterThanOrEqual(9);
    expect(idp.hits('jwks')).toBeLessThanOrEqual(11);
  });

  it('#13.19 probeIntervalMs is validated and defaults to at most the cooldown', () => {
    expect(() => new KeyManager({ probeIntervalMs: 0 })).toThrow(/probeIntervalMs/);
    expect(() => new KeyManager({ probeIntervalMs: 40_000 })).toThrow(/probeIntervalMs/);
    expect(() => new KeyManager({ cooldownMs: 500 })).not.toThrow();
  });

  it('FETCH-01: a hanging IdP makes a cold call fail in bounded time', async () => {
    const { idp, manager, config } = await setup({ manager: { timeoutMs: 300 } });
    idp.setBehavior('discovery', { kind: 'hang' });
    const started = Date.now();
    const calls = Array.from({ length: 20 }, () =>
      keyError(manager.getKeys(config, { alg: 'RS256', kid: 'key-1' })),
    );
    const errors = await Promise.all(calls);
    expect(errors.every((e) => e.code === 'idp_unavailable')).toBe(true);
    expect(Date.now() - started).toBeLessThan(3_000);
    expect(idp.hits('discovery')).toBe(1);
  });

  it('FETCH-01: a custom httpGet that ignores its timeout cannot hold the single flight', async () => {
    const manager = new KeyManager({ httpGet: () => new Promise(() => {}), timeoutMs: 100 });
    const config = identity({ oidcDiscoveryUrl: 'https://idp.example.com' });
    const started = Date.now();
    expect((await keyError(manager.getKeys(config, { alg: 'RS256' }))).code).toBe('idp_unavailable');
    expect(Date.now() - started).toBeLessThan(3_000);
  });

  it('a KeyCache warms a second manager: no JWKS fetch', async () => {
    const { idp, manager, config } = await setup();
    const keyCache = new MemoryKeyCache();
    const first = new KeyManager({ keyCache });
    await first.getKeys(config, { alg: 'RS256', kid: 'key-1' });
    await new Promise((resolve) => setImmediate(resolve));
    idp.resetHits();
    const second = new KeyManager({ keyCache });
    expect(await second.getKeys(config, { alg: 'RS256', kid: 'key-1' })).toHaveLength(1);
    expect(idp.hits('jwks')).toBe(0);
    expect(manager.stats().fetches).toBe(0);
  });

  it('a KeyCache entry with private material is not trusted', async () => {
    const { idp, config } = await setup();
    const leaked = createSigningKey('RS256', 'key-1');
    const keyCache = {
      get: async () => ({ keys: [leaked.privateKey.export({ format: 'jwk' })], fetchedAt: Date.now() }),
      set: async () => {},
    };
    const manager = new KeyManager({ keyCache });
    const keys = await manager.getKeys(config, { alg: 'RS256', kid: 'key-1' });
    expect(keys[0]?.key.export({ format: 'jwk' }).n).toBe(idp.keys[0]!.publicJwk.n);
    expect(idp.hits('jwks')).toBe(1);
  });

  it('a failing KeyCache does not break fetching', async () => {
    const { idp, config } = await setup();
    const manager = new KeyManager({
      keyCache: {
        get: () => Promise.reject(new Error('redis down')),
        set: () => Promise.reject(new Error('x')),
      },
    });
    expect(await manager.getKeys(config, { alg: 'RS256', kid: 'key-1' })).toHaveLength(1);
    expect(idp.hits('jwks')).toBe(1);
  });

  it('onFetch reports each fetch with a stable error code', async () => {
    const { idp, manager, config, fetches } = await setup();
    idp.setBehavior('jwks', { kind: 'status', status: 503, body: 'secret upstream text' });
    await keyError(manager.getKeys(config, { alg: 'RS256', kid: 'key-1' }));
    expect(fetches.map(({ kind, ok, error }) => ({ kind, ok, error }))).toEqual([
      { kind: 'discovery', ok: true, error: undefined },
      { kind: 'jwks', ok: false, error: 'http_status' },
    ]);
    expect(JSON.stringify(fetches)).not.toContain('secret upstream text');
  });
});

describe('KeyManager over https (SSRF-08)', () => {
  it('SSRF-08: discovery and JWKS over https with the identity CA; without it, idp_unavailable', async () => {
    const certs = await createTestCertificates();
    const idp = await startTestIdp({ tls: certs });
    idps.push(idp);
    const manager = new KeyManager({ httpGet });
    const trusted = identity({ oidcDiscoveryUrl: idp.issuer, caCert: certs.caCert });
    expect(await manager.getKeys(trusted, { alg: 'RS256', kid: 'key-1' })).toHaveLength(1);
    const untrusted = identity({ oidcDiscoveryUrl: idp.issuer });
    expect((await keyError(manager.getKeys(untrusted, { alg: 'RS256', kid: 'key-1' }))).code).toBe(
      'idp_unavailable',
    );
  });
});

describe('KeyManager: issuer registry (#13.2)', () => {
  const ISSUER = 'https://issuer.example';
  const staticKey = (kid: string) => ({ ...createSigningKey('ES256', kid).publicJwk });

  it('#13.2 no identity oracle: up to 8 distinct key sources per issuer, in registration order, each once; a ninth marks the issuer full', () => {
    const manager = new KeyManager();
    const configs = Array.from({ length: 10 }, (_, i) => identity({ publicKeys: [staticKey(`k${i}`)] }));
    for (const config of configs) expect(manager.registerIssuers(config)).toBe(true);
    // The same source again (another identity, another object) adds nothing.
    expect(manager.registerIssuers(identity({ publicKeys: configs[0]!.publicKeys }))).toBe(true);
    const registered = manager.keySourcesFor(ISSUER)!;
    expect(registered.full).toBe(true);
    expect(registered.sources).toHaveLength(8);
    expect(manager.sizes()).toMatchObject({ issuers: 1, issuerSources: 8 });
    for (let i = 0; i < 10; i++) {
      const own = manager.registeredSource(ISSUER, configs[i]!);
      expect(own, `source ${i}`).toBe(i < 8 ? registered.sources[i] : undefined);
    }
    // A registered source binds nothing and grants nothing: only where the keys are.
    expect(registered.sources[0]).toMatchObject({
      identityId: '',
      boundIssuer: [],
      boundSubject: [],
      boundClaims: {},
      metadata: {},
      publicKeys: configs[0]!.publicKeys,
    });
    expect(Object.isFrozen(registered.sources[0])).toBe(true);
    expect(manager.keySourcesFor('https://other.example')).toBeUndefined();
  });

  it('#13.2 no identity oracle: registerIssuers says false once the 10,000 issuers are taken', () => {
    const manager = new KeyManager();
    const config = identity({
      jwksUrl: 'https://idp.example/jwks',
      boundIssuer: Array.from({ length: 10_001 }, (_, i) => `https://issuer-${i}.example`),
    });
    expect(manager.registerIssuers(config)).toBe(false);
    expect(manager.sizes().issuers).toBe(10_000);
    expect(manager.registerIssuers(identity({ jwksUrl: 'https://idp.example/jwks' }))).toBe(false);
  });

  it('#13.2 no identity oracle: keysInHand hands out only what getKeys would at once, and never fetches', async () => {
    const { idp, clock, manager, config } = await setup();
    const header = { alg: 'RS256', kid: 'key-1' };
    expect(manager.keysInHand(config, header)).toBeUndefined();
    expect(idp.hits('discovery') + idp.hits('jwks')).toBe(0);
    const fetched = await manager.getKeys(config, header);
    expect(manager.keysInHand(config, header)).toBe(fetched);
    expect(manager.keysInHand(config, { alg: 'RS256', kid: 'other' })).toBeUndefined();
    expect(manager.keysInHand(config, { alg: 'HS256', kid: 'key-1' })).toBeUndefined();
    expect(manager.keysInHand({ ...config, allowedAlgorithms: ['ES256'] }, header)).toBeUndefined();
    // Past the cache age, getKeys would refresh: not in hand.
    clock.now += 11 * MINUTE;
    expect(manager.keysInHand(config, header)).toBeUndefined();
    expect(idp.hits('discovery') + idp.hits('jwks')).toBe(2);
    // Static keys are always in hand.
    const pinned = identity({ publicKeys: [staticKey('pinned')] });
    expect(manager.keysInHand(pinned, { alg: 'ES256', kid: 'pinned' })).toHaveLength(1);
    expect(manager.keysInHand(pinned, { alg: 'ES256', kid: 'nope' })).toBeUndefined();
  });
});

describe('KeyManager: static key sources are told apart (#13.2)', () => {
  it('#13.2 no identity oracle: two PEMs in one string and the same PEMs as two entries are different sources', async () => {
    const pem = () =>
      generateKeyPairSync('ec', { namedCurve: 'P-256' })
        .publicKey.export({ format: 'pem', type: 'spki' })
        .toString();
    const [a, b] = [pem(), pem()];
    const joined = identity({ publicKeys: [`${a.trimEnd()}\n${b}`] });
    const separate = identity({ publicKeys: [a.trimEnd(), b] });
    const manager = new KeyManager();
    // The two-entry list first: the one-string list must not share its source (and its key B).
    const header = { alg: 'ES256', kid: undefined };
    expect(await manager.getKeys(separate, header)).toHaveLength(2);
    expect((await manager.getKeys(joined, header)).length).toBeLessThan(2);
    manager.registerIssuers(separate);
    expect(manager.registeredSource('https://issuer.example', joined)).toBeUndefined();
  });
});
