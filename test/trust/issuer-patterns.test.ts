import { describe, expect, it } from 'vitest';
import { ConfigError, createOidcAuth, parseIdentityConfig } from '../../src/index.js';
import { createHttpGet } from '../../src/trust/fetch.js';
import { compileIssuerPattern } from '../../src/trust/pattern.js';
import type { IdentityConfigInput } from '../../src/types.js';
import { FakeClock, Recorder, SIGNING_KEYS } from '../helpers/engine.js';
import { TenantIdp } from './tenant-idp.js';

const EKS = 'https://oidc.eks.*.amazonaws.com/id/*';

describe('issuer patterns: what config time refuses', () => {
  const refused: Array<[string, string, RegExp]> = [
    ['scheme wildcard', '*://oidc.example.com/id/*', /absolute URL|https/],
    ['http scheme', 'http://oidc.example.com/id/*', /https/],
    ['any host', 'https://*/id/x', /registrable domain/],
    ['a TLD', 'https://*.com/id', /registrable domain/],
    ['a label of the TLD itself', 'https://oidc.example.*/id', /registrable domain/],
    ['the registrable domain', 'https://oidc.*.com/id', /registrable domain/],
    ['a two-level public suffix', 'https://*.co.uk/id', /registrable domain/],
    ['two host labels', 'https://oidc.*.*.amazonaws.com/id', /one DNS label/],
    ['part of a label', 'https://oidc-*.example.com/id', /whole label/],
    ['part of a path segment (could run past it)', 'https://oidc.example.com/id*', /whole segment/],
    ['a globstar segment', 'https://oidc.example.com/**', /whole segment/],
    ['userinfo before the host', 'https://user@*.example.com/id', /userinfo/],
    ['userinfo trick after the host', 'https://*.example.com@evil.example/id', /userinfo/],
    ['port wildcard', 'https://oidc.example.com:*/id/*', /port/],
    ['port out of range', 'https://oidc.example.com:70000/id/*', /port/],
    ['uppercase host', 'https://OIDC.*.example.com/id', /lowercase/],
    ['IDN host', 'https://oidc.*.exämple.com/id', /ASCII/],
    ['query', 'https://oidc.example.com/id/*?x=1', /query/],
    ['fragment', 'https://oidc.example.com/id/*#x', /fragment/],
    ['dot segment', 'https://oidc.example.com/../*', /"\."/],
    ['no wildcard at all', 'https://oidc.example.com/id', /exact issuer/],
    ['too many path wildcards', 'https://oidc.example.com/*/*/*/*/*', /more than 4/],
    ['whitespace', 'https://oidc.example.com/id/ *', /ASCII/],
  ];
  for (const [name, pattern, problem] of refused) {
    it(`refuses ${name}: ${pattern}`, () => {
      expect(() => compileIssuerPattern(pattern, 'issuerPattern', 'id')).toThrow(problem);
    });
  }

  it('accepts one label under a fixed domain and whole path segments', () => {
    for (const pattern of [
      EKS,
      'https://*.example.com',
      'https://*.example.co.uk/tenant',
      'https://container.googleapis.com/v1/projects/*/locations/*/clusters/*',
    ]) {
      expect(compileIssuerPattern(pattern, 'issuerPattern', 'id').pattern).toBe(pattern);
    }
  });

  it('names the key source and field in an identity config', () => {
    try {
      parseIdentityConfig({
        identityId: 'fleet',
        keySources: [{ issuerPattern: 'https://*.com/id/*' }],
        boundSubject: 'system:serviceaccount:*:*',
      });
      expect.unreachable();
    } catch (error) {
      expect((error as ConfigError).field).toBe('keySources[0].issuerPattern');
    }
    expect(() =>
      parseIdentityConfig({
        identityId: 'fleet',
        keySources: [{ issuerPattern: EKS, oidcDiscoveryUrl: 'https://oidc.eks.x.amazonaws.com/id/1' }],
        boundSubject: 's',
      }),
    ).toThrow(/keySources\[0\]\.oidcDiscoveryUrl: is given with issuerPattern/);
  });
});

describe('issuer patterns: what a pattern matches', () => {
  const eks = compileIssuerPattern(EKS, 'issuerPattern', 'id');
  it('matches one label and one whole segment, nothing wider', () => {
    expect(eks.matches('https://oidc.eks.us-east-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE')).toBe(
      true,
    );
    for (const issuer of [
      'https://oidc.eks.us-east-1.amazonaws.com.evil.example/id/X',
      'https://oidc.eks.a.b.amazonaws.com/id/X',
      'https://oidc.eks..amazonaws.com/id/X',
      'https://oidc.eks.US-EAST-1.amazonaws.com/id/X',
      'https://oidc.eks.us-east-1.amazonaws.com/id/X/extra',
      'https://oidc.eks.us-east-1.amazonaws.com/id/',
      'https://oidc.eks.us-east-1.amazonaws.com/id/..',
      'https://oidc.eks.us-east-1.amazonaws.com/id/X?y',
      'https://oidc.eks.us-east-1.amazonaws.com:443/id/X',
      'https://user@oidc.eks.us-east-1.amazonaws.com/id/X',
      'http://oidc.eks.us-east-1.amazonaws.com/id/X',
      'https://oidc.eks.us-east-1.amazonaws.com/id/X%2F..',
      'https://oidc.eks.evil.example/amazonaws.com/id/X',
    ]) {
      expect(eks.matches(issuer), issuer).toBe(false);
    }
  });
});

function fleet(): IdentityConfigInput {
  return {
    identityId: 'eks-fleet',
    keySources: [{ issuerPattern: EKS }],
    boundSubject: 'system:serviceaccount:payments:*',
    boundAudiences: 'sts.amazonaws.com',
  };
}

describe('issuer patterns at login', () => {
  const claims = { sub: 'system:serviceaccount:payments:api', aud: 'sts.amazonaws.com' };

  it("discovers from the token's own issuer and verifies with that issuer's keys only", async () => {
    const idp = new TenantIdp((issuer) => eks.matches(issuer));
    const eks = compileIssuerPattern(EKS, 'p', 'id');
    const clock = new FakeClock(Date.now());
    const rec = new Recorder();
    const auth = createOidcAuth({
      identities: [fleet()],
      signingKeys: SIGNING_KEYS,
      httpGet: idp.httpGet,
      clock: clock.now,
      onEvent: rec.onEvent,
    });
    const east = 'https://oidc.eks.us-east-1.amazonaws.com/id/AAA';
    const west = 'https://oidc.eks.eu-west-1.amazonaws.com/id/BBB';
    for (const issuer of [east, west, east]) {
      await expect(
        auth.login({ identityId: 'eks-fleet', jwt: await idp.token(issuer, clock.ms, claims) }),
      ).resolves.toMatchObject({ identityId: 'eks-fleet' });
    }
    expect(idp.fetches.filter((url) => url.startsWith(east))).toEqual([
      `${east}/.well-known/openid-configuration`,
      `${east}/keys`,
    ]);
    // A token naming `east` but signed with `west`'s key: never verified with west's keys.
    const forged = await idp.token(east, clock.ms, claims);
    const westKey = idp.keyOf(west);
    const { sign } = await import('../helpers/jwt.js');
    const payload = JSON.parse(Buffer.from(forged.split('.')[1]!, 'base64url').toString());
    await expect(
      auth.login({ identityId: 'eks-fleet', jwt: await sign({ ...westKey, kid: 'k-0' }, payload) }),
    ).rejects.toMatchObject({ code: 'invalid_credentials' });
    // An issuer outside the pattern: refused with no fetch.
    const before = idp.fetches.length;
    await expect(
      auth.login({
        identityId: 'eks-fleet',
        jwt: await idp.token(
          'https://oidc.eks.us-east-1.amazonaws.com.evil.example/id/AAA',
          clock.ms,
          claims,
        ),
      }),
    ).rejects.toMatchObject({ code: 'invalid_credentials' });
    expect(idp.fetches.length).toBe(before);
  });

  it('keeps the SSRF guard: a matching issuer whose host resolves to a private address is never fetched', async () => {
    const rec = new Recorder();
    const clock = new FakeClock(Date.now());
    const auth = createOidcAuth({
      identities: [fleet()],
      signingKeys: SIGNING_KEYS,
      httpGet: createHttpGet({ resolve: async () => [{ address: '10.0.0.7', family: 4 }] }),
      clock: clock.now,
      onEvent: rec.onEvent,
    });
    const idp = new TenantIdp(() => true);
    await expect(
      auth.login({
        identityId: 'eks-fleet',
        jwt: await idp.token('https://oidc.eks.us-east-1.amazonaws.com/id/AAA', clock.ms, claims),
      }),
    ).rejects.toMatchObject({ status: 503, code: 'idp_unavailable' });
    expect(rec.last('keys.fetch.failure')?.detail).toMatchObject({ error: 'blocked_address' });
  });

  it('a flood of distinct matching issuers grows neither memory nor fetches without bound', async () => {
    const idp = new TenantIdp(() => false); // every issuer of the flood is fake: nothing to discover
    const clock = new FakeClock(Date.now());
    const auth = createOidcAuth({
      identities: [fleet()],
      signingKeys: SIGNING_KEYS,
      httpGet: idp.httpGet,
      clock: clock.now,
      keys: { patternIssuers: { maxIssuers: 50, newIssuersPerMinute: 20 } },
    });
    const attacker = await import('../helpers/jwt.js');
    const key = attacker.makeKey('ES256', 'evil');
    let unavailable = 0;
    for (let i = 0; i < 300; i++) {
      const issuer = `https://oidc.eks.r${i % 7}.amazonaws.com/id/C${i}`;
      const iat = Math.floor(clock.ms / 1000);
      const jwt = await attacker.sign(key, { iss: issuer, iat, exp: iat + 60, ...claims });
      const error = await auth.login({ identityId: 'eks-fleet', jwt }).catch((e: unknown) => e);
      if ((error as { code?: string }).code === 'idp_unavailable') unavailable++;
    }
    // 300 distinct issuers in one minute: 20 admitted, each one discovery attempt; the rest refused unfetched.
    expect(idp.count('discovery')).toBe(20);
    expect(unavailable).toBe(300);
    expect(auth.keys.sizes().patternIssuers).toBeLessThanOrEqual(50);
    // A minute later, 20 more; the LRU never holds more than 50.
    for (let round = 0; round < 5; round++) {
      clock.advance(60);
      for (let i = 0; i < 40; i++) {
        const issuer = `https://oidc.eks.x.amazonaws.com/id/R${round}N${i}`;
        const iat = Math.floor(clock.ms / 1000);
        const jwt = await attacker.sign(key, { iss: issuer, iat, exp: iat + 60, ...claims });
        await auth.login({ identityId: 'eks-fleet', jwt }).catch(() => undefined);
      }
    }
    expect(idp.count('discovery')).toBe(20 + 5 * 20);
    expect(auth.keys.sizes().patternIssuers).toBe(50);
  });

  it('an issuer both registered exactly (one identity) and matched by a pattern (another): each verifies with its own source only', async () => {
    const issuer = 'https://oidc.eks.us-east-1.amazonaws.com/id/AAA';
    const idp = new TenantIdp((iss) => iss === issuer);
    const pinned = (await import('../helpers/jwt.js')).makeKey('ES256', 'pinned');
    const clock = new FakeClock(Date.now());
    const auth = createOidcAuth({
      identities: [
        fleet(),
        {
          identityId: 'pinned',
          publicKeys: [pinned.publicJwk],
          boundIssuer: issuer,
          boundSubject: 'system:serviceaccount:payments:*',
          boundAudiences: 'sts.amazonaws.com',
        },
      ],
      signingKeys: SIGNING_KEYS,
      httpGet: idp.httpGet,
      clock: clock.now,
    });
    const { sign } = await import('../helpers/jwt.js');
    const iat = Math.floor(clock.ms / 1000);
    const byPinned = await sign(pinned, { iss: issuer, iat, exp: iat + 60, ...claims });
    const byIdp = await idp.token(issuer, clock.ms, claims);
    await expect(auth.login({ identityId: 'pinned', jwt: byPinned })).resolves.toMatchObject({});
    await expect(auth.login({ identityId: 'eks-fleet', jwt: byIdp })).resolves.toMatchObject({});
    await expect(auth.login({ identityId: 'eks-fleet', jwt: byPinned })).rejects.toMatchObject({
      code: 'invalid_credentials',
    });
    await expect(auth.login({ identityId: 'pinned', jwt: byIdp })).rejects.toMatchObject({
      code: 'invalid_credentials',
    });
  });
});
