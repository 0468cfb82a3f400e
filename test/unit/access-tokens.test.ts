import { createHmac, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  AccessTokenCodec,
  ConfigError,
  MemoryTokenStore,
  OidcAuthError,
  createOidcAuth,
} from '../../src/index.js';
import { SIGNING_KEYS, makeEngine } from '../helpers/engine.js';
import { githubClaims, sign } from '../helpers/jwt.js';

async function failure(promise: Promise<unknown>): Promise<OidcAuthError> {
  const error = await promise.then(
    () => {
      throw new Error('unexpectedly succeeded');
    },
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(OidcAuthError);
  return error as OidcAuthError;
}

async function loggedIn(options: Parameters<typeof makeEngine>[0] = {}) {
  const e = makeEngine(options);
  const grant = await e.auth.login({
    identityId: 'gh-deployer',
    jwt: await sign(e.key, githubClaims(e.clock.ms)),
    clientIp: '10.1.2.3',
  });
  return { ...e, grant };
}

describe('access token format', () => {
  const codec = new AccessTokenCodec({ a: 'x'.repeat(32), b: 'y'.repeat(32) });

  it('TOK-01: tokens carry a recognisable prefix, a 128-bit id and a MAC; the store never holds the string', async () => {
    const { auth, grant } = await loggedIn();
    expect(grant.accessToken.startsWith('omat_')).toBe(true);
    const record = await auth.tokens.get(grant.tokenId, Date.UTC(2026, 0, 1));
    expect(JSON.stringify(record)).not.toContain(grant.accessToken.split('.').at(-1));
    expect(JSON.stringify(record)).not.toContain(grant.accessToken);
  });

  it('refuses altered strings: MAC, id, expiry, kid, prefix, padding, trailing bytes', () => {
    const token = codec.mint('AAAAAAAAAAAAAAAAAAAAAA', Date.UTC(2030, 0, 1));
    expect(codec.parse(token)).toMatchObject({ tokenId: 'AAAAAAAAAAAAAAAAAAAAAA', kid: 'a' });
    const [head, id, exp, nonce, mac] = token.split('.') as [string, string, string, string, string];
    const flip = (s: string) => (s.at(-1) === 'A' ? s.slice(0, -1) + 'B' : s.slice(0, -1) + 'A');
    const altered = [
      `${head}.${id}.${exp}.${nonce}.${flip(mac)}`,
      `${head}.${flip(id)}.${exp}.${nonce}.${mac}`,
      `${head}.${id}.${(parseInt(exp, 36) + 1).toString(36)}.${nonce}.${mac}`,
      `${head}.${id}.${exp}.${flip(nonce)}.${mac}`,
      `${head}.${id}.${exp}.${mac}`,
      `${head}.${id}.${exp}.${nonce}x.${mac}`,
      `${head}.${id}.${exp}..${mac}`,
      `omat_b.${id}.${exp}.${nonce}.${mac}`,
      `omat_zz.${id}.${exp}.${nonce}.${mac}`,
      `xmat_a.${id}.${exp}.${nonce}.${mac}`,
      `${token}=`,
      `${token} `,
      `${token}.x`,
      token.slice(0, -1) + 'é',
      '',
    ];
    for (const t of altered) expect(codec.parse(t)).toBeUndefined();
  });

  it('a remembered genuine token does not make altered MACs of it pass, with or without the cache', () => {
    for (const verifiedCacheSize of [10, 0]) {
      const cached = new AccessTokenCodec({ a: 'x'.repeat(32) }, { verifiedCacheSize });
      const token = cached.mint('BBBBBBBBBBBBBBBBBBBBBB', Date.UTC(2030, 0, 1));
      expect(cached.parse(token)?.tokenId).toBe('BBBBBBBBBBBBBBBBBBBBBB');
      expect(cached.parse(token)?.tokenId).toBe('BBBBBBBBBBBBBBBBBBBBBB');
      const mac = token.slice(-43);
      for (let i = 0; i < 43; i += 7) {
        const flipped = mac.slice(0, i) + (mac[i] === 'A' ? 'B' : 'A') + mac.slice(i + 1);
        expect(cached.parse(token.slice(0, -43) + flipped)).toBeUndefined();
      }
      expect(cached.parse(token.slice(0, -1) + 'é')).toBeUndefined();
      // forged strings never evict or replace the genuine entry
      for (let i = 0; i < 50; i++) cached.parse(`omat_a.${'C'.repeat(21)}${i % 10}.zz.${'A'.repeat(43)}`);
      expect(cached.parse(token)?.expiresAt).toBe(Date.UTC(2030, 0, 1));
    }
  });

  it('rotation: a token minted with the old first key still verifies after a new key is put first', () => {
    const oldToken = codec.mint('AAAAAAAAAAAAAAAAAAAAAA', Date.UTC(2030, 0, 1));
    const rotated = new AccessTokenCodec([
      { kid: 'b', secret: 'y'.repeat(32) },
      { kid: 'a', secret: 'x'.repeat(32) },
    ]);
    expect(rotated.parse(oldToken)?.kid).toBe('a');
    expect(rotated.mint('AAAAAAAAAAAAAAAAAAAAAA', Date.UTC(2030, 0, 1)).startsWith('omat_b.')).toBe(true);
    const dropped = new AccessTokenCodec([{ kid: 'b', secret: 'y'.repeat(32) }]);
    expect(dropped.parse(oldToken)).toBeUndefined();
  });

  it('refuses weak or malformed signing keys at construction', () => {
    expect(() => new AccessTokenCodec({ a: 'short' })).toThrow(/at least 32/);
    expect(() => new AccessTokenCodec({ 'bad kid!': 'x'.repeat(32) })).toThrow(/kid/);
    expect(() => new AccessTokenCodec([])).toThrow(/at least one/);
  });
});

describe('#13.12 a missing or short signing secret is a ConfigError that helps', () => {
  const cases: Array<[string, () => unknown, RegExp]> = [
    [
      'unset environment variable',
      () => ({ k1: process.env.OMA_TEST_SURELY_UNSET_VARIABLE! }),
      /is missing \(undefined/,
    ],
    ['null', () => ({ k1: null }), /is missing \(null/],
    ['empty string', () => ({ k1: '' }), /is empty/],
    ['short string', () => ({ k1: 'hunter2-not-long-enough' }), /is 23 bytes; it must be at least 32/],
    ['short bytes', () => ({ k1: new Uint8Array(16) }), /is 16 bytes; it must be at least 32/],
    ['a number', () => ({ k1: 12345 }), /must be a string or a Uint8Array, not number/],
    ['an object', () => ({ k1: { secret: 'x'.repeat(40) } }), /must be a string or a Uint8Array, not object/],
  ];
  for (const [name, input, problem] of cases) {
    it(`#13.12 a missing or short signing secret is a ConfigError that helps: ${name} names key id "k1", the field, and how to make one`, () => {
      let error: unknown;
      try {
        createOidcAuth({ identities: [], signingKeys: input() as never });
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(ConfigError);
      const config = error as ConfigError;
      expect(config.field).toBe('signingKeys.k1');
      expect(config.message).toMatch(problem);
      expect(config.message).toContain('signing key "k1"');
      expect(config.message).toContain('openssl rand -base64 32');
      expect(config.message).not.toContain('hunter2');
      expect(config.message).not.toContain('TypeError');
    });
  }

  it('#13.12 a missing or short signing secret is a ConfigError that helps: in the list form it names the position and the key id', () => {
    const list = [
      { kid: 'current', secret: 'x'.repeat(32) },
      { kid: 'previous', secret: undefined as unknown as string },
    ];
    expect(() => new AccessTokenCodec(list)).toThrow(ConfigError);
    expect(() => new AccessTokenCodec(list)).toThrow(
      /^signingKeys\[1\]\.secret: the secret of signing key "previous" is missing .*openssl rand -base64 32/,
    );
  });

  it('#13.12 a missing or short signing secret is a ConfigError that helps: 32 bytes and more are taken, as strings or bytes', () => {
    expect(() => new AccessTokenCodec({ k1: 'x'.repeat(32) })).not.toThrow();
    expect(() => new AccessTokenCodec({ k1: new Uint8Array(32) })).not.toThrow();
    expect(() => new AccessTokenCodec({ k1: randomBytes(32).toString('base64') })).not.toThrow();
  });
});

describe('#13.14 renew gives a new token string', () => {
  it('#13.14 renew gives a new token string: renewals in the same second as the login and as each other all differ, and every one is valid', async () => {
    const { auth, grant } = await loggedIn();
    const strings = [grant.accessToken];
    for (let i = 0; i < 5; i++) strings.push((await auth.renew(strings.at(-1)!)).accessToken); // the clock never moves
    expect(new Set(strings).size).toBe(strings.length);
    for (const token of strings) {
      expect((await auth.authenticate(token, { clientIp: '10.1.2.3' })).tokenId).toBe(grant.tokenId);
    }
    await auth.revoke(strings[2]!);
    for (const token of strings) expect((await failure(auth.authenticate(token))).code).toBe('token_revoked');
  });

  it('#13.14 renew gives a new token string: the codec never mints the same string twice for the same id and expiry', () => {
    const codec = new AccessTokenCodec({ a: 'x'.repeat(32) });
    const minted = new Set(
      Array.from({ length: 1000 }, () => codec.mint('AAAAAAAAAAAAAAAAAAAAAA', Date.UTC(2030, 0, 1))),
    );
    expect(minted.size).toBe(1000);
    for (const token of minted) {
      expect(token.length).toBeLessThanOrEqual(5 + 16 + 1 + 22 + 1 + 10 + 1 + 8 + 1 + 43);
      expect(codec.parse(token)).toEqual({
        tokenId: 'AAAAAAAAAAAAAAAAAAAAAA',
        expiresAt: Date.UTC(2030, 0, 1),
        kid: 'a',
      });
    }
  });

  it('#13.14 renew gives a new token string: strings minted before the nonce (omat_<kid>.<id>.<exp>.<mac>) still verify until they expire', async () => {
    const { auth, grant } = await loggedIn();
    const [head, id, exp] = grant.accessToken.split('.') as [string, string, string];
    const unsigned = `${head}.${id}.${exp}`;
    const legacy = `${unsigned}.${createHmac('sha256', SIGNING_KEYS.k1).update(unsigned).digest('base64url')}`;
    expect((await auth.authenticate(legacy, { clientIp: '10.1.2.3' })).tokenId).toBe(grant.tokenId);
    const renewed = await auth.renew(legacy, { clientIp: '10.1.2.3' });
    expect(renewed.accessToken).not.toBe(legacy);
    expect(renewed.accessToken.split('.')).toHaveLength(5);
    const forged = `${unsigned}.${'A'.repeat(43)}`;
    expect((await failure(auth.authenticate(forged))).code).toBe('invalid_token');
  });
});

describe('guard, renew, revoke', () => {
  it('TOK-02/TOK-11: forged tokens, random strings and IdP JWTs are invalid_token with a challenge', async () => {
    const { auth, key, clock } = await loggedIn();
    const idpJwt = await sign(key, githubClaims(clock.ms));
    for (const bad of ['omat_k1.AAAAAAAAAAAAAAAAAAAAAA.zzzzzz.' + 'A'.repeat(43), 'random', idpJwt]) {
      const error = await failure(auth.authenticate(bad));
      expect(error.status).toBe(401);
      expect(error.code).toBe('invalid_token');
      expect(error.headers['www-authenticate']).toBe(
        'Bearer realm="oidc-machine-auth", error="invalid_token"',
      );
    }
  });

  it('TOK-11: an access token sent as the jwt of a login is invalid_credentials', async () => {
    const { auth, grant } = await loggedIn();
    const error = await failure(auth.login({ identityId: 'gh-deployer', jwt: grant.accessToken }));
    expect(error.code).toBe('invalid_credentials');
  });

  it('TOK-04: 50 parallel uses of a 1-use token give exactly one success', async () => {
    const { auth, grant } = await loggedIn({ identity: { accessTokenNumUsesLimit: 1 } });
    const results = await Promise.allSettled(
      Array.from({ length: 50 }, () => auth.authenticate(grant.accessToken, { clientIp: '10.1.2.3' })),
    );
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    const reasons = results.flatMap((r) =>
      r.status === 'rejected' ? [(r.reason as OidcAuthError).code] : [],
    );
    expect(new Set(reasons)).toEqual(new Set(['uses_exhausted']));
  });

  it('TOK-05: uses are counted by the guard, renew keeps the remaining uses and is not a use', async () => {
    const { auth, grant, clock } = await loggedIn({ identity: { accessTokenNumUsesLimit: 3 } });
    expect((await auth.authenticate(grant.accessToken)).usesRemaining).toBe(2);
    clock.advance(60);
    const renewed = await auth.renew(grant.accessToken);
    expect(renewed.tokenId).toBe(grant.tokenId);
    expect((await auth.authenticate(renewed.accessToken)).usesRemaining).toBe(1);
    expect((await auth.authenticate(grant.accessToken)).usesRemaining).toBe(0);
    expect((await failure(auth.authenticate(renewed.accessToken))).code).toBe('uses_exhausted');
  });

  it('TOK-06: a token used after its TTL is token_expired, refused before the store', async () => {
    const { auth, grant, clock } = await loggedIn({
      identity: { accessTokenTTL: 60, accessTokenMaxTTL: 600 },
    });
    clock.advance(59);
    await auth.authenticate(grant.accessToken);
    clock.advance(2);
    const consume = auth.tokens.consume.bind(auth.tokens);
    let storeCalls = 0;
    (auth.tokens as MemoryTokenStore).consume = async (...args) => {
      storeCalls++;
      return consume(...args);
    };
    expect((await failure(auth.authenticate(grant.accessToken))).code).toBe('token_expired');
    expect(storeCalls).toBe(0);
  });

  it('TOK-07: renewals extend to min(now + TTL, created + max TTL) and never past it', async () => {
    const { auth, grant, clock } = await loggedIn({
      identity: { accessTokenTTL: 100, accessTokenMaxTTL: 250 },
    });
    const created = clock.ms;
    clock.advance(90);
    const r1 = await auth.renew(grant.accessToken);
    expect(r1.expiresAt).toBe(clock.ms + 100_000);
    expect(r1.expiresIn).toBe(100);
    expect(r1.accessTokenMaxTTL).toBe(250);
    clock.advance(90);
    const r2 = await auth.renew(r1.accessToken);
    expect(r2.expiresAt).toBe(created + 250_000);
    expect(r2.expiresIn).toBe(70);
    const error = await failure(auth.renew(r2.accessToken));
    expect(error.code).toBe('max_ttl_reached');
    expect(error.status).toBe(401);
    clock.advance(70);
    expect((await failure(auth.renew(r2.accessToken))).code).toBe('token_expired');
    expect((await failure(auth.authenticate(r2.accessToken))).code).toBe('token_expired');
  });

  it('TOK-07: renewing a live token that already reaches its max TTL is max_ttl_reached', async () => {
    const { auth, grant, clock } = await loggedIn({
      identity: { accessTokenTTL: 100, accessTokenMaxTTL: 100 },
    });
    clock.advance(50);
    const error = await failure(auth.renew(grant.accessToken));
    expect(error.code).toBe('max_ttl_reached');
    expect(error.message).toMatch(/max TTL/);
    await auth.authenticate(grant.accessToken);
  });

  it('TOK-08: revoking one token string revokes every string of its id, and is idempotent', async () => {
    const { auth, grant, clock } = await loggedIn();
    clock.advance(10);
    const renewed = await auth.renew(grant.accessToken);
    await auth.revoke(grant.accessToken);
    await auth.revoke(grant.accessToken);
    for (const t of [grant.accessToken, renewed.accessToken]) {
      expect((await failure(auth.authenticate(t))).code).toBe('token_revoked');
    }
    expect((await failure(auth.renew(renewed.accessToken))).code).toBe('token_revoked');
  });

  it('TOK-10: revokeIdentity revokes every live token of the identity and counts them', async () => {
    const e = makeEngine();
    const jwt = await sign(e.key, githubClaims(e.clock.ms));
    const grants = await Promise.all([1, 2, 3].map(() => e.auth.login({ identityId: 'gh-deployer', jwt })));
    await e.auth.revoke(grants[0]!.accessToken);
    expect(await e.auth.revokeIdentity('gh-deployer')).toBe(2);
    for (const g of grants)
      expect((await failure(e.auth.authenticate(g.accessToken))).code).toBe('token_revoked');
    expect(e.rec.last('identity.revoke')?.detail).toEqual({ revoked: 2 });
  });

  it('a revoke of a forged token is refused; an expired genuine one may be revoked', async () => {
    const { auth, grant, clock } = await loggedIn();
    expect((await failure(auth.revoke('omat_k1.x.y.z'))).code).toBe('invalid_token');
    clock.advance(7300);
    await expect(auth.revoke(grant.accessToken)).resolves.toBeUndefined();
  });

  it('a store that throws fails closed with 503 store_unavailable and Retry-After', async () => {
    const { auth, grant } = await loggedIn();
    auth.tokens.consume = async () => {
      throw new Error('ECONNREFUSED 10.0.0.1:6379');
    };
    const error = await failure(auth.authenticate(grant.accessToken));
    expect(error.status).toBe(503);
    expect(error.code).toBe('store_unavailable');
    expect(error.headers['retry-after']).toMatch(/^\d+$/);
    expect(JSON.stringify(error.toBody())).not.toContain('ECONNREFUSED');
  });

  it('an identity store that throws makes login 503, not 401 and not 500', async () => {
    const e = makeEngine();
    e.auth.identities.get = async () => {
      throw new Error('connection reset');
    };
    const error = await failure(
      e.auth.login({ identityId: 'gh-deployer', jwt: await sign(e.key, githubClaims(e.clock.ms)) }),
    );
    expect(error.status).toBe(503);
    expect(error.code).toBe('store_unavailable');
  });
});

describe('A10 trusted IPs', () => {
  const ips = { accessTokenTrustedIps: ['10.0.0.0/8', '2001:db8::/32'] };

  it('IP-01: login from outside the trusted ranges is 403 ip_not_allowed (after the signature verified)', async () => {
    const e = makeEngine({ identity: ips });
    const jwt = await sign(e.key, githubClaims(e.clock.ms));
    const error = await failure(e.auth.login({ identityId: 'gh-deployer', jwt, clientIp: '203.0.113.9' }));
    expect(error.status).toBe(403);
    expect(error.code).toBe('ip_not_allowed');
    expect(error.message).not.toContain('10.0.0.0');
    await e.auth.login({ identityId: 'gh-deployer', jwt, clientIp: '10.9.9.9' });
  });

  it('IP-01: the trusted ranges are checked on every use and on renew', async () => {
    const { auth, grant } = await loggedIn({ identity: ips });
    await auth.authenticate(grant.accessToken, { clientIp: '10.200.0.1' });
    await auth.authenticate(grant.accessToken, { clientIp: '2001:db8::5' });
    for (const clientIp of ['203.0.113.9', undefined, 'not-an-ip']) {
      expect((await failure(auth.authenticate(grant.accessToken, { clientIp }))).code).toBe('ip_not_allowed');
    }
    expect((await failure(auth.renew(grant.accessToken, { clientIp: '8.8.8.8' }))).status).toBe(403);
  });

  it('IP-04/05: IPv4-mapped IPv6 matches IPv4 ranges; NAT64 does not; mixed families deny without throwing', async () => {
    const { auth, grant } = await loggedIn({ identity: { accessTokenTrustedIps: ['10.0.0.0/8'] } });
    await auth.authenticate(grant.accessToken, { clientIp: '::ffff:10.0.0.1' });
    await auth.authenticate(grant.accessToken, { clientIp: '::ffff:a00:1' });
    expect((await failure(auth.authenticate(grant.accessToken, { clientIp: '64:ff9b::a00:1' }))).code).toBe(
      'ip_not_allowed',
    );
    expect((await failure(auth.authenticate(grant.accessToken, { clientIp: '2001:db8::1' }))).code).toBe(
      'ip_not_allowed',
    );
  });

  it('the default trusted ranges allow any client, even with no address', async () => {
    const { auth, grant } = await loggedIn();
    await auth.authenticate(grant.accessToken, {});
    await auth.authenticate(grant.accessToken, { clientIp: '2001:db8::1' });
  });
});
