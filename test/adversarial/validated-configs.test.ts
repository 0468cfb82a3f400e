import { describe, expect, it } from 'vitest';
import { createOidcAuth, parseIdentityConfig, type OidcAuth, type OidcAuthError } from '../../src/index.js';
import type { IdentityConfig, IdentityStore } from '../../src/types.js';
import { FakeClock, Recorder, SIGNING_KEYS, githubIdentity } from '../helpers/engine.js';
import { githubClaims, makeKey, sign } from '../helpers/jwt.js';
import { failOnUnhandled } from './support.js';

failOnUnhandled();

/**
 * #13.8: the engine uses only configs that came through `parseIdentityConfig`. Whatever else a custom
 * `IdentityStore` hands back (JSON read back, a tampered row, a row without bindings: the
 * CVE-2024-5798 shape, where any subject of the IdP logs in) is validated first, cheaply (once per
 * object and content), and never used when it does not validate: the login is refused as for an
 * unknown identity, and the refusal is logged.
 */

const key = makeKey('RS256');
const parsed = parseIdentityConfig(githubIdentity(key));
/** A config as JSON storage gives it back: equal, but not the object the parser returned. */
const roundTripped = (): IdentityConfig => JSON.parse(JSON.stringify(parsed)) as IdentityConfig;

/** A store that hands back whatever `rows` holds for an id, as a careless custom store would. */
class RowStore implements IdentityStore {
  gets = 0;
  constructor(readonly rows: Record<string, unknown>) {}
  async get(identityId: string): Promise<IdentityConfig | undefined> {
    this.gets++;
    return this.rows[identityId] as IdentityConfig | undefined;
  }
}

function engine(rows: Record<string, unknown>): {
  auth: OidcAuth;
  clock: FakeClock;
  rec: Recorder;
  store: RowStore;
} {
  const store = new RowStore(rows);
  const clock = new FakeClock();
  const rec = new Recorder();
  const auth = createOidcAuth({
    identities: store,
    signingKeys: SIGNING_KEYS,
    clock: clock.now,
    onEvent: rec.onEvent,
    logger: rec.logger,
  });
  return { auth, clock, rec, store };
}

/** A genuine token of the identity's IdP for another repository, with no audience. */
const foreignSubject = (now: number) =>
  githubClaims(now, {
    sub: 'repo:attacker/anything:ref:refs/heads/main',
    repository: 'attacker/anything',
    repository_id: '999',
    aud: undefined,
  });

const UNIFORM = { status: 401, code: 'invalid_credentials' };

describe('#13.8 only validated configs are ever used', () => {
  it('#13.8 only validated configs: a row without bindings (CVE-2024-5798 shape) lets nobody in', async () => {
    // Empty bindings, as JSON storage keeps them (the parser refuses such a config), and absent ones.
    const empty = { ...roundTripped(), boundSubject: [], boundAudiences: [], boundClaims: {} };
    const { boundSubject: _s, boundAudiences: _a, boundClaims: _c, ...absent } = roundTripped();
    for (const row of [empty, absent]) {
      const e = engine({ 'gh-deployer': row });
      const jwt = await sign(key, foreignSubject(e.clock.ms));
      await expect(e.auth.login({ identityId: 'gh-deployer', jwt })).rejects.toMatchObject(UNIFORM);
      expect(e.rec.last('login.failure')?.reasonCode).toBe('identity_not_found');
      expect(e.rec.logs.some((l) => (l.obj as { event?: string }).event === 'identity.invalid')).toBe(true);
      // Even the identity's own, rightly bound token: the config is never used.
      await expect(
        e.auth.login({ identityId: 'gh-deployer', jwt: await sign(key, githubClaims(e.clock.ms)) }),
      ).rejects.toMatchObject(UNIFORM);
    }
  });

  it('#13.8 only validated configs: tampered rows (bad values, unknown fields, wildcard bindings, another id) are never used', async () => {
    const base = roundTripped() as unknown as Record<string, unknown>;
    const rows: Record<string, unknown> = {
      'uses-negative': { ...base, identityId: 'uses-negative', accessTokenNumUsesLimit: -1 },
      'unknown-field': { ...base, identityId: 'unknown-field', boundAudience: 'x' },
      'star-subject': {
        ...base,
        identityId: 'star-subject',
        boundSubject: ['**'],
        boundClaims: {},
        boundAudiences: [],
      },
      'no-issuer': { ...base, identityId: 'no-issuer', boundIssuer: [] },
      'alg-none': { ...base, identityId: 'alg-none', allowedAlgorithms: ['none', 'RS256'] },
      'filed-elsewhere': { ...base, identityId: 'gh-deployer' },
      'not-an-object': 'gh-deployer',
      'an-array': [base],
    };
    const e = engine(rows);
    for (const identityId of Object.keys(rows)) {
      const claims = githubClaims(e.clock.ms);
      for (const jwt of [await sign(key, claims), await sign(key, foreignSubject(e.clock.ms))]) {
        await expect(e.auth.login({ identityId, jwt }), identityId).rejects.toMatchObject(UNIFORM);
        expect(e.rec.last('login.failure')?.reasonCode, identityId).toBe('identity_not_found');
      }
    }
    const invalid = e.rec.logs.filter((l) => (l.obj as { event?: string }).event === 'identity.invalid');
    expect(invalid.length).toBeGreaterThanOrEqual(Object.keys(rows).length);
  });

  it('#13.8 only validated configs: a valid config read back from JSON works, validated once per object (and again when it changes)', async () => {
    const row = roundTripped();
    const e = engine({ 'gh-deployer': row });
    for (let i = 0; i < 3; i++) {
      await e.auth.login({ identityId: 'gh-deployer', jwt: await sign(key, githubClaims(e.clock.ms)) });
    }
    // The same object, mutated in place to drop its bindings: validated again, and refused.
    const mutable = row as unknown as Record<string, unknown>;
    mutable.boundSubject = [];
    mutable.boundAudiences = [];
    mutable.boundClaims = {};
    await expect(
      e.auth.login({ identityId: 'gh-deployer', jwt: await sign(key, foreignSubject(e.clock.ms)) }),
    ).rejects.toMatchObject(UNIFORM);
    // A config the parser returned is used as is.
    const direct = engine({ 'gh-deployer': parsed });
    await direct.auth.login({
      identityId: 'gh-deployer',
      jwt: await sign(key, githubClaims(direct.clock.ms)),
    });
  });

  it('#13.8 only validated configs: a store reading rows back as new objects every time is served from the verdict cache, and only plain JSON data is cached', async () => {
    const json = JSON.stringify(parsed);
    const e = engine({});
    e.store.get = async () => JSON.parse(json) as IdentityConfig;
    for (let i = 0; i < 5; i++) {
      await e.auth.login({ identityId: 'gh-deployer', jwt: await sign(key, githubClaims(e.clock.ms)) });
    }
    // NaN and null serialise alike; only null means "absent" to the parser. Either order, each
    // gets its own verdict: NaN is refused, null (the default TTL) is accepted.
    const nan = { ...roundTripped(), accessTokenTTL: Number.NaN };
    const nul = { ...roundTripped(), accessTokenTTL: null };
    for (const order of [
      [nan, nul],
      [nul, nan],
    ]) {
      const f = engine({});
      for (const row of order) {
        f.store.get = async () => row as unknown as IdentityConfig;
        const outcome = await f.auth
          .login({ identityId: 'gh-deployer', jwt: await sign(key, githubClaims(f.clock.ms)) })
          .then(
            (grant) => grant.expiresIn,
            (error: OidcAuthError) => error.code,
          );
        expect(outcome).toBe(row === nan ? 'invalid_credentials' : 7200);
      }
    }
  });

  it('#13.8 only validated configs: explain uses the same configs as login', async () => {
    const {
      boundSubject: _s,
      boundAudiences: _a,
      boundClaims: _c,
      ...unbound
    } = roundTripped() as unknown as Record<string, unknown>;
    const e = engine({ 'gh-deployer': unbound });
    const report = await e.auth.explain({
      identityId: 'gh-deployer',
      jwt: await sign(key, foreignSubject(e.clock.ms)),
    });
    expect(report).toMatchObject({ ok: false, reasonCode: 'identity_not_found' });
  });
});
