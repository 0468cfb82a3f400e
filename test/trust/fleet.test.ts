/**
 * Issue 14, shared trust: "Changing a trust entry takes effect for all of them, validated like
 * identities are." Two engines (two instances of a fleet) share a PostgresTrustStore and a
 * PostgresIdentityStore; each has its own clock, moved past `trustMaxAgeSeconds` instead of sleeping.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrate, PostgresIdentityStore, PostgresTrustStore } from '../../adapters/postgres/index.js';
import { createIdentityAdmin } from '../../src/http/identity-admin.js';
import {
  ConfigError,
  createOidcAuth,
  MemoryTrustStore,
  TrustInUseError,
  type OidcAuth,
  type TrustStore,
} from '../../src/index.js';
import type { TrustEntryInput } from '../../src/trust/entries.js';
import type { IdentityConfigInput, IdentityStore } from '../../src/types.js';
import { FakeClock, Recorder, SIGNING_KEYS } from '../helpers/engine.js';
import { createSigningKey, startTestIdp } from '../helpers/idp-server.js';
import { githubClaims, ISSUER, makeKey, sign, type TestKey } from '../helpers/jwt.js';
import { sharedPgConfig, uniqueName } from '../helpers/servers.js';

const schema = uniqueName('oma_trustfleet');
let pool: pg.Pool;

beforeAll(async () => {
  pool = new pg.Pool({ ...sharedPgConfig(), max: 6 });
  pool.on('error', () => {});
  await migrate(pool, { schema });
});

afterAll(async () => {
  await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await pool.end();
});

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

/** No trust entry: the identity's own key source and bindings. */
const plain = (key: TestKey): Partial<IdentityConfigInput> => ({
  trust: undefined,
  publicKeys: [key.publicJwk],
  boundIssuer: ISSUER,
  boundAudiences: 'https://github.com/acme-corp',
});

const token = (key: TestKey, clock: FakeClock, name: string) =>
  sign(key, githubClaims(clock.ms, { sub: `repo:acme-corp/${name}:ref:refs/heads/main` }));

interface Instance {
  auth: OidcAuth;
  clock: FakeClock;
  rec: Recorder;
}

/** One instance of the fleet: its own engine and clock over the shared tables of `prefix`. */
function instance(
  tablePrefix: string,
  options: { trust?: TrustStore; identities?: IdentityStore; now?: number } = {},
) {
  const clock = new FakeClock(options.now);
  const rec = new Recorder();
  const auth = createOidcAuth({
    identities: options.identities ?? new PostgresIdentityStore({ pool, schema, tablePrefix }),
    trust: options.trust ?? new PostgresTrustStore({ pool, schema, tablePrefix }),
    signingKeys: SIGNING_KEYS,
    clock: clock.now,
    logger: rec.logger,
    onEvent: rec.onEvent,
  });
  return { auth, clock, rec } satisfies Instance;
}

async function fleet(tablePrefix: string): Promise<[Instance, Instance]> {
  await migrate(pool, { schema, tablePrefix });
  return [instance(tablePrefix), instance(tablePrefix)];
}

const login = (i: Instance, name: string, key: TestKey) =>
  token(key, i.clock, name).then((jwt) => i.auth.login({ identityId: `deploy-${name}`, jwt }));

describe('trust entries shared by a fleet (PostgresTrustStore)', () => {
  const k1 = makeKey('ES256', 'gh-1');
  const k2 = makeKey('ES256', 'gh-2');

  it('a change made on one instance is seen by the other once its snapshot is older than trustMaxAgeSeconds', async () => {
    const [a, b] = await fleet('f1_');
    expect(b.auth.trust.maxAgeSeconds).toBe(30);
    await a.auth.trust.put(github(k1));
    await a.auth.identities.put!(repo('api'));
    // B reads the store at its first login: the entry written on A is there.
    await expect(login(b, 'api', k1)).resolves.toMatchObject({ identityId: 'deploy-api' });

    // A rotates the entry's key. A uses it at once …
    await a.auth.trust.put(github(k2));
    await expect(login(a, 'api', k2)).resolves.toMatchObject({ identityId: 'deploy-api' });
    await expect(login(a, 'api', k1)).rejects.toMatchObject({ code: 'invalid_credentials' });
    // … B within its 30 s still uses its snapshot (the documented propagation delay) …
    b.clock.advance(29);
    await expect(login(b, 'api', k1)).resolves.toMatchObject({ identityId: 'deploy-api' });
    await expect(login(b, 'api', k2)).rejects.toMatchObject({ code: 'invalid_credentials' });
    // … and from 30 s on, the new entry only.
    b.clock.advance(1);
    await expect(login(b, 'api', k2)).resolves.toMatchObject({ identityId: 'deploy-api' });
    await expect(login(b, 'api', k1)).rejects.toMatchObject({ code: 'invalid_credentials' });
    expect(b.rec.last('login.failure')?.reasonCode).toBe('key_not_found'); // k1's kid is gone
    await Promise.all([a.auth.close(), b.auth.close()]);
  });

  it('a new entry and its new issuer written on one instance log in on the other after the delay', async () => {
    const [a, b] = await fleet('f2_');
    await b.auth.identities.put!({
      ...repo('web'),
      ...plain(k1),
    });
    await expect(login(b, 'web', k1)).resolves.toMatchObject({}); // B has read the (empty) trust table
    const gitlab = 'https://gitlab.example.com';
    await a.auth.trust.put({
      trustId: 'gitlab',
      issuer: gitlab,
      publicKeys: [k2.publicJwk],
      audiences: 'vault',
    });
    await a.auth.identities.put!({
      identityId: 'gl-deploy',
      trust: 'gitlab',
      boundSubject: 'project_path:acme/*',
    });
    const jwt = () =>
      sign(k2, {
        iss: gitlab,
        sub: 'project_path:acme/app',
        aud: 'vault',
        iat: b.clock.ms / 1000,
        exp: b.clock.ms / 1000 + 300,
      });
    await expect(b.auth.login({ identityId: 'gl-deploy', jwt: await jwt() })).rejects.toMatchObject({
      status: 401,
    });
    b.clock.advance(30);
    await expect(b.auth.login({ identityId: 'gl-deploy', jwt: await jwt() })).resolves.toMatchObject({
      identityId: 'gl-deploy',
    });
    await Promise.all([a.auth.close(), b.auth.close()]);
  });

  it('an entry in use cannot be deleted (409 naming the identities); one gone from the table fails closed at login and at config time', async () => {
    const [a, b] = await fleet('f3_');
    await a.auth.trust.put(github(k1));
    for (const name of ['api', 'web']) await a.auth.identities.put!(repo(name));
    await expect(login(b, 'web', k1)).resolves.toMatchObject({});
    const refused = await a.auth.trust.delete('github').catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(TrustInUseError);
    expect(refused).toMatchObject({
      status: 409,
      code: 'trust_in_use',
      identityIds: ['deploy-api', 'deploy-web'],
    });
    expect(await a.auth.trust.get('github')).toBeDefined();

    // Deleted behind the engines' backs (by hand, or by an instance racing an identity write).
    await pool.query(`DELETE FROM "${schema}"."f3_trust_entries" WHERE trust_id = 'github'`);
    // Config time reads the table, not a snapshot: B refuses an identity naming it at once.
    const admin = createIdentityAdmin(b.auth);
    const attach = await admin.attach('deploy-db', repo('db'));
    expect(attach.status).toBe(400);
    expect(attach.body).toMatchObject({ reasonCode: 'invalid_config', field: 'trust' });
    // Login: refused once B's snapshot is older than trustMaxAgeSeconds.
    b.clock.advance(30);
    await expect(login(b, 'web', k1)).rejects.toMatchObject({ code: 'invalid_credentials' });
    expect(b.rec.logs.some((l) => (l.obj as { reason?: string }).reason === 'trust_unresolved')).toBe(true);
    // With no identity naming it, the delete goes through (and reports whether there was a row).
    for (const name of ['api', 'web']) await a.auth.identities.delete!(`deploy-${name}`);
    await a.auth.trust.put(github(k1));
    await expect(a.auth.trust.delete('github')).resolves.toBe(true);
    await expect(a.auth.trust.delete('github')).resolves.toBe(false);
    await Promise.all([a.auth.close(), b.auth.close()]);
  });

  it('entries are validated when written and when read: a row edited into something invalid is never used', async () => {
    const [a, b] = await fleet('f4_');
    await expect(
      a.auth.trust.put({ ...github(k1), jwksUrl: 'http://example.com/keys' }),
    ).rejects.toMatchObject({
      field: 'trust["github"].jwksUrl',
    });
    expect(await a.auth.trust.list()).toEqual([]);
    await a.auth.trust.put(github(k1));
    await a.auth.identities.put!(repo('api'));
    await expect(login(b, 'api', k1)).resolves.toMatchObject({});
    await pool.query(
      `UPDATE "${schema}"."f4_trust_entries" SET entry = jsonb_set(entry, '{clockSkewSeconds}', '9999')`,
    );
    await expect(a.auth.trust.get('github')).rejects.toBeInstanceOf(ConfigError);
    expect(await a.auth.trust.list()).toEqual([]);
    b.clock.advance(30);
    await expect(login(b, 'api', k1)).rejects.toMatchObject({ code: 'invalid_credentials' });
    await Promise.all([a.auth.close(), b.auth.close()]);
  });

  it('keys are fetched once per trust entry on each instance, however many identities use it', async () => {
    const idp = await startTestIdp({ keys: [createSigningKey('ES256', 'shared')] });
    try {
      await migrate(pool, { schema, tablePrefix: 'f5_' });
      // The test IdP signs with the real time.
      const [a, b] = [instance('f5_', { now: Date.now() }), instance('f5_', { now: Date.now() })];
      await a.auth.trust.put({
        trustId: 'github',
        issuer: idp.issuer,
        oidcDiscoveryUrl: idp.issuer,
        allowInsecureLoopback: true,
        audiences: 'aud',
      });
      const names = Array.from({ length: 20 }, (_, i) => `r${i}`);
      for (const name of names) await a.auth.identities.put!(repo(name));
      for (const name of names) {
        const jwt = await idp.sign({ sub: `repo:acme-corp/${name}:ref:refs/heads/main`, aud: 'aud' });
        await expect(b.auth.login({ identityId: `deploy-${name}`, jwt })).resolves.toMatchObject({});
      }
      expect(idp.hits('discovery')).toBe(1);
      expect(idp.hits('jwks')).toBe(1);
      await Promise.all([a.auth.close(), b.auth.close()]);
    } finally {
      await idp.close();
    }
  });
});

describe('a trust store that cannot be read fails closed', () => {
  class FlakyTrustStore extends MemoryTrustStore {
    down = false;
    reads = 0;
    override async list() {
      this.reads++;
      if (this.down) throw new Error('connection refused');
      return super.list();
    }
  }

  it('identities naming an entry answer 503 store_unavailable once the snapshot is stale; others log in; one read a second at most', async () => {
    const key = makeKey('ES256', 'gh-1');
    const store = new FlakyTrustStore([github(key)]);
    const clock = new FakeClock();
    const rec = new Recorder();
    const auth = createOidcAuth({
      identities: [repo('api'), { ...repo('plain'), ...plain(key) }],
      trust: store,
      trustMaxAgeSeconds: 5,
      signingKeys: SIGNING_KEYS,
      clock: clock.now,
      logger: rec.logger,
    });
    const i = { auth, clock, rec };
    await expect(login(i, 'api', key)).resolves.toMatchObject({});
    store.down = true;
    clock.advance(5);
    await expect(login(i, 'api', key)).rejects.toMatchObject({ status: 503, code: 'store_unavailable' });
    await expect(login(i, 'plain', key)).resolves.toMatchObject({});
    await expect(login(i, 'api', key)).rejects.toMatchObject({ status: 503, code: 'store_unavailable' });
    expect(store.reads).toBe(2); // the first read, and one retry: the next waits a second
    expect(rec.logs.some((l) => (l.obj as { event?: string }).event === 'store.error')).toBe(true);
    store.down = false;
    clock.advance(1);
    await expect(login(i, 'api', key)).resolves.toMatchObject({});
    await auth.close();
  });

  it('a write through the engine while it reads the store is not undone by what the read found', async () => {
    const k1 = makeKey('ES256', 'gh-1');
    const k2 = makeKey('ES256', 'gh-2');
    class SlowTrustStore extends MemoryTrustStore {
      hold: Promise<void> | undefined;
      reading: () => void = () => {};
      override async list() {
        const before = await super.list(); // the read sees the table as it was
        this.reading();
        await this.hold;
        return before;
      }
    }
    const store = new SlowTrustStore([github(k1)]);
    const clock = new FakeClock();
    const auth = createOidcAuth({
      identities: [repo('api')],
      trust: store,
      signingKeys: SIGNING_KEYS,
      clock: clock.now,
    });
    const i = { auth, clock, rec: new Recorder() };
    await expect(login(i, 'api', k1)).resolves.toMatchObject({});
    let release = () => {};
    store.hold = new Promise<void>((done) => (release = done));
    const reading = new Promise<void>((done) => (store.reading = done));
    clock.advance(30);
    const jwt = await token(k2, clock, 'api');
    const during = auth.login({ identityId: 'deploy-api', jwt }); // starts the read, which waits
    await reading;
    await auth.trust.put(github(k2));
    release();
    await expect(during).resolves.toMatchObject({});
    await expect(login(i, 'api', k2)).resolves.toMatchObject({});
    await expect(login(i, 'api', k1)).rejects.toMatchObject({ code: 'invalid_credentials' });
    await auth.close();
  });

  it('trustMaxAgeSeconds must be a number from 0 to 3600; trust must be entries or a store', () => {
    for (const bad of [-1, 3601, Number.NaN, '30']) {
      expect(() =>
        createOidcAuth({ identities: [], trustMaxAgeSeconds: bad as number, signingKeys: SIGNING_KEYS }),
      ).toThrow(expect.objectContaining({ field: 'trustMaxAgeSeconds' }));
    }
    expect(() =>
      createOidcAuth({
        identities: [],
        trust: { get() {} } as unknown as TrustStore,
        signingKeys: SIGNING_KEYS,
      }),
    ).toThrow(expect.objectContaining({ field: 'trust' }));
  });
});
