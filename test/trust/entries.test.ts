import { describe, expect, it } from 'vitest';
import { ConfigError, createOidcAuth, MemoryIdentityStore, parseIdentityConfig } from '../../src/index.js';
import type { TrustEntryInput } from '../../src/trust/entries.js';
import type { IdentityConfig, IdentityConfigInput, IdentityStore } from '../../src/types.js';
import { FakeClock, Recorder, SIGNING_KEYS } from '../helpers/engine.js';
import { createSigningKey, startTestIdp } from '../helpers/idp-server.js';
import { githubClaims, ISSUER, makeKey, sign, type TestKey } from '../helpers/jwt.js';

const github = (key: TestKey, extra: Partial<TrustEntryInput> = {}): TrustEntryInput => ({
  trustId: 'github',
  issuer: ISSUER,
  publicKeys: [key.publicJwk],
  audiences: 'https://github.com/acme-corp',
  ...extra,
});

const repo = (name: string, extra: Partial<IdentityConfigInput> = {}): IdentityConfigInput => ({
  identityId: `deploy-${name}`,
  trust: 'github',
  boundSubject: `repo:acme-corp/${name}:ref:refs/heads/main`,
  ...extra,
});

function engine(trust: TrustEntryInput[], identities: IdentityConfigInput[] | IdentityStore) {
  const clock = new FakeClock();
  const rec = new Recorder();
  const auth = createOidcAuth({
    identities,
    trust,
    signingKeys: SIGNING_KEYS,
    clock: clock.now,
    onEvent: rec.onEvent,
  });
  return { auth, clock, rec };
}

const token = (key: TestKey, clock: FakeClock, name: string, extra: Record<string, unknown> = {}) =>
  sign(key, githubClaims(clock.ms, { sub: `repo:acme-corp/${name}:ref:refs/heads/main`, ...extra }));

describe('shared trust entries', () => {
  const key = makeKey('RS256', 'gh-1');

  it('many identities reference one entry and add only their own bindings', async () => {
    const e = engine([github(key)], [repo('api'), repo('web'), repo('db')]);
    for (const name of ['api', 'web', 'db']) {
      await expect(
        e.auth.login({ identityId: `deploy-${name}`, jwt: await token(key, e.clock, name) }),
      ).resolves.toMatchObject({ identityId: `deploy-${name}` });
    }
    // Each identity's own subject binding still holds.
    await expect(
      e.auth.login({ identityId: 'deploy-api', jwt: await token(key, e.clock, 'web') }),
    ).rejects.toMatchObject({ code: 'subject_not_allowed' });
  });

  it('the entry’s audiences are the identities’ default; an identity’s own boundAudiences replace them', async () => {
    const e = engine([github(key)], [repo('api'), repo('web', { boundAudiences: 'sts.amazonaws.com' })]);
    await expect(
      e.auth.login({ identityId: 'deploy-api', jwt: await token(key, e.clock, 'api', { aud: 'other' }) }),
    ).rejects.toMatchObject({ code: 'audience_not_allowed' });
    await expect(
      e.auth.login({ identityId: 'deploy-web', jwt: await token(key, e.clock, 'web') }),
    ).rejects.toMatchObject({ code: 'audience_not_allowed' });
    await expect(
      e.auth.login({
        identityId: 'deploy-web',
        jwt: await token(key, e.clock, 'web', { aud: 'sts.amazonaws.com' }),
      }),
    ).resolves.toMatchObject({ identityId: 'deploy-web' });
  });

  it('the entry’s algorithms, skew and lifetime apply to every identity using it', async () => {
    const e = engine([github(key, { allowedAlgorithms: 'ES256' })], [repo('api')]);
    await expect(
      e.auth.login({ identityId: 'deploy-api', jwt: await token(key, e.clock, 'api') }),
    ).rejects.toMatchObject({ code: 'invalid_credentials' });
    expect(e.rec.last('login.failure')?.reasonCode).toBe('algorithm_not_allowed');
    const short = engine([github(key, { maxTokenLifetimeSeconds: 60 })], [repo('api')]);
    await expect(
      short.auth.login({ identityId: 'deploy-api', jwt: await token(key, short.clock, 'api') }),
    ).rejects.toMatchObject({ code: 'token_lifetime_too_long' });
  });

  it('keys are fetched once per trust entry, however many identities use it', async () => {
    const idp = await startTestIdp({ keys: [createSigningKey('ES256', 'shared')] });
    try {
      const names = Array.from({ length: 50 }, (_, i) => `r${i}`);
      const auth = createOidcAuth({
        trust: [
          {
            trustId: 'github',
            issuer: idp.issuer,
            oidcDiscoveryUrl: idp.issuer,
            allowInsecureLoopback: true,
            audiences: 'aud',
          },
        ],
        identities: names.map((name) => repo(name)),
        signingKeys: SIGNING_KEYS,
      });
      for (const name of names) {
        const jwt = await idp.sign({ sub: `repo:acme-corp/${name}:ref:refs/heads/main`, aud: 'aud' });
        await expect(auth.login({ identityId: `deploy-${name}`, jwt })).resolves.toMatchObject({});
      }
      expect(idp.hits('discovery')).toBe(1);
      expect(idp.hits('jwks')).toBe(1);
    } finally {
      await idp.close();
    }
  });

  it('a change that would leave an identity using the entry binding nothing, or allowAnyAudience under audiences, is refused naming it', async () => {
    const e = engine(
      [github(key), { ...github(key), trustId: 'open', audiences: undefined }],
      [
        { identityId: 'aud-only', trust: 'github' },
        { ...repo('any'), trust: 'open', allowAnyAudience: true },
      ],
    );
    await expect(e.auth.trust.put({ ...github(key), audiences: undefined })).rejects.toMatchObject({
      field: 'trust["github"]',
      message: expect.stringContaining('identity "aud-only"') as unknown,
    });
    await expect(
      e.auth.trust.put({ ...github(key), trustId: 'open', audiences: 'vault' }),
    ).rejects.toMatchObject({
      field: 'trust["open"]',
      message: expect.stringContaining('allowAnyAudience') as unknown,
    });
    expect((await e.auth.trust.get('github'))?.audiences).toEqual(['https://github.com/acme-corp']);
    await expect(e.auth.trust.put({ ...github(key), audiences: 'other' })).resolves.toMatchObject({});
  });

  it('changing an entry (auth.trust.put) takes effect for every identity using it', async () => {
    const next = makeKey('ES256', 'gh-2');
    const e = engine([github(key)], [repo('api'), repo('web')]);
    await expect(
      e.auth.login({ identityId: 'deploy-api', jwt: await token(key, e.clock, 'api') }),
    ).resolves.toMatchObject({});
    await e.auth.trust.put(github(next));
    for (const name of ['api', 'web']) {
      await expect(
        e.auth.login({ identityId: `deploy-${name}`, jwt: await token(key, e.clock, name) }),
      ).rejects.toMatchObject({ code: 'invalid_credentials' });
      await expect(
        e.auth.login({ identityId: `deploy-${name}`, jwt: await token(next, e.clock, name) }),
      ).resolves.toMatchObject({ identityId: `deploy-${name}` });
    }
    await expect(e.auth.trust.put({ ...github(next), jwksUrl: 'http://example.com/keys' })).rejects.toThrow(
      /trust\["github"\]\.jwksUrl/,
    );
    expect((await e.auth.trust.get('github'))?.keySources[0]?.publicKeys).toEqual([next.publicJwk]);
    // In use: refused, naming the identities; nothing deleted.
    await expect(e.auth.trust.delete('github')).rejects.toMatchObject({
      status: 409,
      code: 'trust_in_use',
      identityIds: ['deploy-api', 'deploy-web'],
    });
    expect(await e.auth.trust.get('github')).toBeDefined();
    // Gone from the store behind the engine's back (a hand edit): the identities fail closed.
    expect(await e.auth.trust.store.delete('github')).toBe(true);
    e.clock.advance(e.auth.trust.maxAgeSeconds);
    await expect(
      e.auth.login({ identityId: 'deploy-api', jwt: await token(next, e.clock, 'api') }),
    ).rejects.toMatchObject({ code: 'invalid_credentials' });
  });

  it('#13.2 no identity oracle: a token the entry’s keys do not verify reads no identity, known id or not', async () => {
    class CountingStore extends MemoryIdentityStore {
      reads = 0;
      override async get(id: string): Promise<IdentityConfig | undefined> {
        this.reads++;
        return super.get(id);
      }
    }
    const store = new CountingStore([repo('api')]);
    const e = engine([github(key)], store);
    const stranger = makeKey('RS256', 'gh-1');
    for (const identityId of ['deploy-api', 'deploy-none']) {
      await expect(
        e.auth.login({ identityId, jwt: await token(stranger, e.clock, 'api') }),
      ).rejects.toMatchObject({ code: 'invalid_credentials' });
    }
    expect(store.reads).toBe(0);
  });
});

describe('trust entry and trust reference validation', () => {
  const key = makeKey('RS256', 'v-1');
  const fieldOf = (run: () => unknown): string => {
    try {
      run();
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      return (error as ConfigError).field;
    }
    throw new Error('accepted');
  };
  const start =
    (trust: unknown[], identities: IdentityConfigInput[] = []) =>
    () =>
      createOidcAuth({ identities, trust: trust as TrustEntryInput[], signingKeys: SIGNING_KEYS });

  it('errors name the trust entry and the field', () => {
    expect(fieldOf(start([github(key, { jwksUrl: 'ftp://x' })]))).toBe('trust["github"].jwksUrl');
    expect(fieldOf(start([github(key, { audiences: 'https://*.example.com' })]))).toBe(
      'trust["github"].audiences[0]',
    );
    expect(fieldOf(start([{ ...github(key), boundSubject: 'x' }]))).toBe('trust["github"].boundSubject');
    expect(fieldOf(start([github(key, { issuer: undefined })]))).toBe('trust["github"].issuer');
    expect(fieldOf(start([github(key, { clockSkewSeconds: 900 })]))).toBe('trust["github"].clockSkewSeconds');
    expect(
      fieldOf(start([github(key, { keySources: [{ issuer: 'https://a.example.com', jwksUrl: 'x' }] })])),
    ).toBe('trust["github"].issuer');
    expect(
      fieldOf(
        start([
          {
            trustId: 'k8s',
            keySources: [
              { issuer: 'https://a.example.com', jwksUrl: 'https://a.example.com/k', caCert: 'x' },
            ],
          },
        ]),
      ),
    ).toBe('trust["k8s"].keySources[0].caCert');
    expect(fieldOf(start([github(key), github(key)]))).toBe('trust["github"]');
    expect(fieldOf(start([{ ...github(key), trustId: 'bad id' }]))).toBe('trust[].trustId');
  });

  it('an identity naming an unknown entry fails start-up (array) or is refused at login (other stores)', async () => {
    expect(fieldOf(start([github(key)], [{ ...repo('api'), trust: 'gitlab' }]))).toBe('trust');
    const store: IdentityStore = {
      get: async () => parseIdentityConfig({ ...repo('api'), trust: 'gitlab' }),
    };
    const clock = new FakeClock();
    const rec = new Recorder();
    const auth = createOidcAuth({
      identities: store,
      trust: [github(key)],
      signingKeys: SIGNING_KEYS,
      clock: clock.now,
      onEvent: rec.onEvent,
      logger: rec.logger,
    });
    await expect(
      auth.login({ identityId: 'deploy-api', jwt: await token(key, clock, 'api') }),
    ).rejects.toMatchObject({ code: 'invalid_credentials' });
    expect(rec.dump()).toContain('trust_unresolved');
  });

  it('an identity with trust refuses key-source fields and the entry’s token settings', () => {
    const parse = (extra: Record<string, unknown>) => () => parseIdentityConfig({ ...repo('api'), ...extra });
    expect(fieldOf(parse({ oidcDiscoveryUrl: 'https://x.example.com' }))).toBe('oidcDiscoveryUrl');
    expect(fieldOf(parse({ boundIssuer: ISSUER }))).toBe('boundIssuer');
    expect(fieldOf(parse({ allowedAlgorithms: 'ES256' }))).toBe('allowedAlgorithms');
    expect(fieldOf(parse({ clockSkewSeconds: 10 }))).toBe('clockSkewSeconds');
    expect(fieldOf(parse({ trust: 'no spaces' }))).toBe('trust');
    // Parsed, it reads back from its JSON (how the memory and PostgreSQL stores keep it).
    const parsed = parseIdentityConfig(repo('api'));
    expect(parseIdentityConfig(JSON.parse(JSON.stringify(parsed)))).toEqual(parsed);
  });

  it('an identity that binds nothing is refused when its entry binds no audience either', async () => {
    const clock = new FakeClock();
    const rec = new Recorder();
    const bare = { identityId: 'bare', trust: 'github' };
    const auth = createOidcAuth({
      identities: [bare],
      trust: [github(key, { audiences: undefined })],
      signingKeys: SIGNING_KEYS,
      clock: clock.now,
      logger: rec.logger,
    });
    await expect(
      auth.login({ identityId: 'bare', jwt: await token(key, clock, 'api', { aud: undefined }) }),
    ).rejects.toMatchObject({ code: 'invalid_credentials' });
    expect(rec.dump()).toContain('trust_unresolved');
    // With entry audiences it binds something, and logs in.
    const ok = createOidcAuth({
      identities: [bare],
      trust: [github(key)],
      signingKeys: SIGNING_KEYS,
      clock: clock.now,
    });
    await expect(
      ok.login({ identityId: 'bare', jwt: await token(key, clock, 'api') }),
    ).resolves.toMatchObject({});
  });
});
