/**
 * Identities with `keySources` and `trust` in the identity stores: they round-trip, and a store's
 * `issuerKeySources` finds a `keySources` identity by any of its sources' issuers (so an instance
 * that has not loaded it registers its source after a refused login, as for a flat config).
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrate, PostgresIdentityStore } from '../../adapters/postgres/index.js';
import { createIdentityAdmin, identityOidcAuthView } from '../../src/http/identity-admin.js';
import { createOidcAuth } from '../../src/index.js';
import { SIGNING_KEYS } from '../helpers/engine.js';
import { MemoryIdentityStore, parseIdentityConfig } from '../../src/index.js';
import type { IdentityConfigInput, IdentityStore } from '../../src/types.js';
import { makeKey } from '../helpers/jwt.js';
import { sharedPgConfig, uniqueName } from '../helpers/servers.js';

const A = 'https://oidc.a.trust-stores.example.com';
const B = 'https://oidc.b.trust-stores.example.com';
const ka = makeKey('ES256', 'ts-a');

const multi = (identityId: string): IdentityConfigInput => ({
  identityId,
  keySources: [
    { issuer: A, publicKeys: [ka.publicJwk] },
    { issuer: B, jwksUrl: `${B}/keys` },
    { issuerPattern: 'https://oidc.*.fleet.trust-stores.example.com/id/*' },
  ],
  boundSubject: 'system:serviceaccount:payments:*',
  boundAudiences: 'vault',
});
const viaTrust = (identityId: string): IdentityConfigInput => ({
  identityId,
  trust: 'github',
  boundSubject: 'repo:acme-corp/api:ref:refs/heads/main',
});

const schema = uniqueName('oma_trust');
let pool: pg.Pool;
beforeAll(async () => {
  pool = new pg.Pool(sharedPgConfig());
  await migrate(pool, { schema });
});
afterAll(async () => {
  await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await pool.end();
});

const stores: Array<[string, () => IdentityStore]> = [
  ['MemoryIdentityStore', () => new MemoryIdentityStore()],
  ['PostgresIdentityStore', () => new PostgresIdentityStore({ pool, schema })],
];

describe.each(stores)('%s with keySources and trust', (_name, create) => {
  it('round-trips both shapes to configs equal to what parseIdentityConfig makes', async () => {
    const store = create();
    for (const input of [multi('ks-1'), viaTrust('tr-1')]) {
      await store.put!(input);
      expect(await store.get(input.identityId)).toEqual(parseIdentityConfig(input));
    }
  });

  it('issuerKeySources finds a keySources identity by each exact issuer of its sources, and only those', async () => {
    const store = create();
    await store.put!(multi('ks-2'));
    for (const issuer of [A, B]) {
      const listed = await store.issuerKeySources!(issuer);
      expect(listed.map((c) => c.keySources)).toContainEqual(parseIdentityConfig(multi('ks-2')).keySources);
    }
    expect(await store.issuerKeySources!('https://oidc.c.trust-stores.example.com')).toEqual([]);
  });
});

describe('admin view', () => {
  it('shows keySources and trust, so an admin GET says where the keys come from', () => {
    expect(identityOidcAuthView(parseIdentityConfig(multi('v-1'))).keySources).toEqual(
      parseIdentityConfig(multi('v-1')).keySources,
    );
    expect(identityOidcAuthView(parseIdentityConfig(viaTrust('v-2'))).trust).toBe('github');
    expect(Object.hasOwn(identityOidcAuthView(parseIdentityConfig(viaTrust('v-2'))), 'keySources')).toBe(
      false,
    );
  });
});

describe('admin API with trust references', () => {
  it('attaches an identity naming a known trust entry; refuses an unknown one with 400 invalid_config on trust', async () => {
    const auth = createOidcAuth({
      identities: [],
      trust: [{ trustId: 'github', issuer: A, publicKeys: [ka.publicJwk], audiences: 'vault' }],
      signingKeys: SIGNING_KEYS,
    });
    const admin = createIdentityAdmin(auth);
    const ok = await admin.attach('tr-3', {
      trust: 'github',
      boundSubject: 'repo:acme-corp/api:ref:refs/heads/main',
    });
    expect(ok.status).toBe(200);
    expect((ok.body as { identityOidcAuth: { trust?: string } }).identityOidcAuth.trust).toBe('github');
    const bad = await admin.attach('tr-4', { trust: 'gitlab', boundSubject: 's' });
    expect(bad.status).toBe(400);
    expect(JSON.stringify(bad.body)).toContain('trust');
    const multiSources = await admin.attach('ks-3', { ...multi('ks-3'), identityId: undefined });
    expect(multiSources.status).toBe(200);
  });
});
