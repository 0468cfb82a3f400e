import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { migrate, PostgresIdentityStore, PostgresTokenStore } from '../../adapters/postgres/index.js';
import { ConfigError, ServiceUnavailableError } from '../../src/errors.js';
import type { IdentityConfigInput } from '../../src/types.js';
import { identityStoreConformance, makeRecord, tokenStoreConformance } from '../../src/testing/index.js';
import { sharedPgConfig, startProxy, uniqueName, type OutageProxy } from '../helpers/servers.js';

const schema = uniqueName('oma_test');
const schemas = [schema];
let pool: pg.Pool;

beforeAll(async () => {
  pool = new pg.Pool({ ...sharedPgConfig(), max: 20, connectionTimeoutMillis: 2000 });
  pool.on('error', () => {});
  // A PostgreSQL that cannot be reached fails this file, never skips it.
  await migrate(pool, { schema });
});

afterAll(async () => {
  for (const name of schemas) await pool.query(`DROP SCHEMA IF EXISTS "${name}" CASCADE`);
  await pool.end();
});

function tokenStore(options: Partial<ConstructorParameters<typeof PostgresTokenStore>[0]> = {}) {
  return new PostgresTokenStore({ pool, schema, ...options });
}

/** How many consume/renew statements (`WITH hit AS …`) wait on a row lock now. */
async function statementsWaitingOnLock(): Promise<number> {
  const { rows } = await pool.query(
    `SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'WITH hit AS%'`,
  );
  return (rows[0] as { n: number }).n;
}

async function rowCount(table = 'oma_access_tokens', inSchema = schema): Promise<number> {
  const { rows } = await pool.query(`SELECT count(*)::int AS n FROM "${inSchema}"."${table}"`);
  return (rows[0] as { n: number }).n;
}

describe('#18 PostgreSQL stores through the exported conformance suites', () => {
  // Each instance the suites ask for is an app instance: its own pool, through a TCP proxy this file
  // owns in front of the shared server, which the outage hook shuts (connections refused and cut).
  let gate: OutageProxy;
  const pools: pg.Pool[] = [];
  const test = { describe, it, before: beforeAll, after: afterAll };
  const outage = { break: () => gate.down(), restore: () => gate.up() };

  beforeAll(async () => {
    gate = await startProxy(Number(sharedPgConfig().port));
  });

  afterAll(async () => {
    await gate?.up();
    await Promise.all(pools.map((p) => p.end()));
    await gate?.close();
  });

  function instancePool(): pg.Pool {
    const p = new pg.Pool({ ...sharedPgConfig(), port: gate.port, max: 10, connectionTimeoutMillis: 2000 });
    // Idle connections cut by the outage emit 'error' on the pool: without a listener, Node exits.
    p.on('error', () => {});
    pools.push(p);
    return p;
  }

  tokenStoreConformance({
    name: 'PostgresTokenStore',
    test,
    create: () => new PostgresTokenStore({ pool: instancePool(), schema }),
    outage,
  });

  identityStoreConformance({
    name: 'PostgresIdentityStore',
    test,
    create: () => new PostgresIdentityStore({ pool: instancePool(), schema }),
    outage,
  });
});

describe('migrate', () => {
  it('is idempotent and safe when many instances start at once', async () => {
    const fresh = uniqueName('oma_mig');
    schemas.push(fresh);
    await Promise.all(Array.from({ length: 6 }, () => migrate(pool, { schema: fresh, tablePrefix: 'x_' })));
    await migrate(pool, { schema: fresh, tablePrefix: 'x_' });
    expect(await rowCount('x_access_tokens', fresh)).toBe(0);
    expect(await rowCount('x_identities', fresh)).toBe(0);
  });

  it('runs on first use when the store is built with migrate: true', async () => {
    const fresh = uniqueName('oma_lazy');
    schemas.push(fresh);
    const s = new PostgresTokenStore({ pool, schema: fresh, migrate: true });
    const record = makeRecord();
    await Promise.all([s.create(record), s.get(record.tokenId, Date.now())]);
    expect(await s.get(record.tokenId, Date.now())).toEqual(record);
  });

  it('#13.1 identity revocation leaves no survivor: upgrades a token table made before generations (rows read as 0, refused once revoked)', async () => {
    const old = uniqueName('oma_old');
    schemas.push(old);
    await pool.query(`CREATE SCHEMA "${old}"`);
    // The token table as the previous version's migrate made it.
    await pool.query(`CREATE TABLE "${old}".oma_access_tokens (
      token_id text PRIMARY KEY, identity_id text NOT NULL, created_at bigint NOT NULL,
      expires_at bigint NOT NULL, max_expires_at bigint NOT NULL, ttl_seconds integer NOT NULL,
      uses_limit integer NOT NULL DEFAULT 0, uses_count bigint NOT NULL DEFAULT 0,
      revoked boolean NOT NULL DEFAULT false, trusted_ips jsonb NOT NULL, metadata json NOT NULL,
      issuer text, subject text)`);
    const record = makeRecord();
    await pool.query(
      `INSERT INTO "${old}".oma_access_tokens VALUES ($1, $2, $3, $4, $5, $6, 0, 0, false, $7, $8, $9, $10)`,
      [
        record.tokenId,
        record.identityId,
        record.createdAt,
        record.expiresAt,
        record.maxExpiresAt,
        record.ttlSeconds,
        JSON.stringify(record.trustedIps),
        JSON.stringify(record.metadata),
        record.issuer,
        record.subject,
      ],
    );
    await migrate(pool, { schema: old });
    await migrate(pool, { schema: old });
    const s = new PostgresTokenStore({ pool, schema: old });
    expect(await s.get(record.tokenId, Date.now())).toEqual(record);
    expect((await s.consume(record.tokenId, Date.now())).ok).toBe(true);
    await s.revokeIdentity(record.identityId);
    expect(await s.consume(record.tokenId, Date.now())).toEqual({ ok: false, reason: 'revoked' });
  });

  it('upgrades a token table made before token exchange: migrate adds scope and audience, old rows read back without them, new rows keep them', async () => {
    const old = uniqueName('oma_old');
    schemas.push(old);
    await pool.query(`CREATE SCHEMA "${old}"`);
    // The token table as the previous version's migrate made it (generation, no scope or audience).
    await pool.query(`CREATE TABLE "${old}".oma_access_tokens (
      token_id text PRIMARY KEY, identity_id text NOT NULL, created_at bigint NOT NULL,
      expires_at bigint NOT NULL, max_expires_at bigint NOT NULL, ttl_seconds integer NOT NULL,
      uses_limit integer NOT NULL DEFAULT 0, uses_count bigint NOT NULL DEFAULT 0,
      revoked boolean NOT NULL DEFAULT false, trusted_ips jsonb NOT NULL, metadata json NOT NULL,
      issuer text, subject text, generation bigint NOT NULL DEFAULT 0)`);
    const before = makeRecord();
    await pool.query(
      `INSERT INTO "${old}".oma_access_tokens VALUES ($1, $2, $3, $4, $5, $6, 0, 0, false, $7, $8, $9, $10, 0)`,
      [
        before.tokenId,
        before.identityId,
        before.createdAt,
        before.expiresAt,
        before.maxExpiresAt,
        before.ttlSeconds,
        JSON.stringify(before.trustedIps),
        JSON.stringify(before.metadata),
        before.issuer,
        before.subject,
      ],
    );
    const s = new PostgresTokenStore({ pool, schema: old });
    // Before migrate, this version cannot write to the old table: it fails closed, never drops the grant.
    await expect(s.create(makeRecord({ scope: 'deploy' }))).rejects.toThrow(ServiceUnavailableError);
    await migrate(pool, { schema: old });
    await migrate(pool, { schema: old });
    const got = await s.get(before.tokenId, Date.now());
    expect(got).toEqual(before);
    expect(got).not.toHaveProperty('scope');
    expect(got).not.toHaveProperty('audience');
    const after = makeRecord({ scope: 'deploy', audience: ['https://api.example'] });
    await s.create(after);
    expect(await s.get(after.tokenId, Date.now())).toEqual(after);
    const { rows } = await pool.query(
      `SELECT column_name FROM information_schema.columns
       WHERE table_schema = $1 AND table_name = 'oma_access_tokens' AND column_name IN ('scope', 'audience')
       ORDER BY column_name`,
      [old],
    );
    expect(rows.map((r: { column_name: string }) => r.column_name)).toEqual(['audience', 'scope']);
  });

  it('refuses a schema or prefix that is not a plain identifier', async () => {
    expect(() => tokenStore({ schema: 'a"; DROP TABLE x; --' })).toThrow(ConfigError);
    expect(() => tokenStore({ tablePrefix: 'x-' })).toThrow(ConfigError);
    await expect(migrate(pool, { schema: 'bad name' })).rejects.toThrow(ConfigError);
  });
});

describe('PostgresTokenStore', () => {
  it('a guarded request (consume) is one round trip, as a named prepared statement', async () => {
    const s = tokenStore();
    const record = makeRecord({ usesLimit: 3 });
    await s.create(record);
    const sent = vi.spyOn(pg.Client.prototype, 'query');
    try {
      expect((await s.consume(record.tokenId, record.createdAt + 1)).ok).toBe(true);
      expect(await s.consume(`${record.tokenId}x`, record.createdAt + 1)).toEqual({
        ok: false,
        reason: 'not_found',
      });
      await s.revoke(record.tokenId);
      expect(await s.consume(record.tokenId, record.createdAt + 1)).toEqual({ ok: false, reason: 'revoked' });
      expect(sent).toHaveBeenCalledTimes(4);
      expect((sent.mock.calls[0]![0] as { name?: string }).name).toMatch(/^oma_[0-9a-f]{20}$/);
    } finally {
      sent.mockRestore();
    }
  });

  it('a use racing a revoke is refused as revoked, not miscounted', async () => {
    const s = tokenStore();
    const record = makeRecord({ usesLimit: 3 });
    await s.create(record);
    const revoker = await pool.connect();
    try {
      await revoker.query('BEGIN');
      await revoker.query(`UPDATE "${schema}".oma_access_tokens SET revoked = true WHERE token_id = $1`, [
        record.tokenId,
      ]);
      const use = s.consume(record.tokenId, Date.now());
      await vi.waitFor(async () => expect(await statementsWaitingOnLock()).toBeGreaterThan(0));
      await revoker.query('COMMIT');
      expect(await use).toEqual({ ok: false, reason: 'revoked' });
    } finally {
      revoker.release();
    }
    expect((await s.get(record.tokenId, Date.now()))?.usesCount).toBe(0);
  });

  it('concurrent uses of one token share statements; each success sees its own count', async () => {
    const s = tokenStore();
    const record = makeRecord({ usesLimit: 0 });
    await s.create(record);
    const sent = vi.spyOn(pg.Client.prototype, 'query');
    try {
      const results = await Promise.all(
        Array.from({ length: 50 }, () => s.consume(record.tokenId, record.createdAt + 1)),
      );
      const counts = results.map((r) => (r.ok ? r.record.usesCount : -1));
      expect(counts.sort((a, b) => a - b)).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
      // The first use goes alone; the 49 that arrived while it was in flight go as one statement.
      expect(sent).toHaveBeenCalledTimes(2);
    } finally {
      sent.mockRestore();
    }
    expect((await s.get(record.tokenId, record.createdAt + 1))?.usesCount).toBe(50);
  });

  it('uses queued behind a statement see what changed meanwhile, and never overspend', async () => {
    const s = tokenStore();
    const record = makeRecord({ usesLimit: 3 });
    await s.create(record);
    const other = await pool.connect();
    try {
      await other.query('BEGIN');
      await other.query(`SELECT 1 FROM "${schema}".oma_access_tokens WHERE token_id = $1 FOR UPDATE`, [
        record.tokenId,
      ]);
      const first = s.consume(record.tokenId, Date.now());
      await vi.waitFor(async () => expect(await statementsWaitingOnLock()).toBe(1));
      const queued = Array.from({ length: 4 }, () => s.consume(record.tokenId, Date.now()));
      // Another instance spends one of the three uses while they wait.
      await other.query(`UPDATE "${schema}".oma_access_tokens SET uses_count = 1 WHERE token_id = $1`, [
        record.tokenId,
      ]);
      await other.query('COMMIT');
      expect(await first).toMatchObject({ ok: true, record: { usesCount: 2 } });
      const rest = await Promise.all(queued);
      expect(rest[0]).toMatchObject({ ok: true, record: { usesCount: 3 } });
      expect(rest.slice(1)).toEqual(Array(3).fill({ ok: false, reason: 'uses_exhausted' }));
    } finally {
      other.release();
    }
    expect((await s.get(record.tokenId, Date.now()))?.usesCount).toBe(3);
  });

  it('a use queued behind a statement that fails is refused with it, within the timeout', async () => {
    const stalled = { connect: () => new Promise(() => {}) } as unknown as pg.Pool;
    const s = new PostgresTokenStore({ pool: stalled, schema, statementTimeoutMs: 300 });
    const started = performance.now();
    const settled = await Promise.allSettled(
      Array.from({ length: 3 }, () => s.consume('tok-stalled', Date.now())),
    );
    const elapsed = performance.now() - started;
    for (const result of settled) {
      expect(result.status).toBe('rejected');
      if (result.status === 'rejected') expect(result.reason).toBeInstanceOf(ServiceUnavailableError);
    }
    // Run one after another, the queued ones would take 300 ms more each.
    expect(elapsed).toBeLessThan(550);
  });

  it('HTTP-04: ids with SQL metacharacters are data, never SQL', async () => {
    const s = tokenStore();
    const identityId = "x'); DROP TABLE oma_access_tokens; --";
    const record = makeRecord({ identityId, tokenId: "'; DELETE FROM oma_access_tokens; --" });
    await s.create(record);
    expect(await s.get(record.tokenId, Date.now())).toEqual(record);
    expect(await s.revokeIdentity(identityId)).toBe(1);
    expect(await rowCount()).toBeGreaterThan(0);
  });

  it('CLM-06: a subject with NUL fails closed (store_unavailable), never stored truncated', async () => {
    const s = tokenStore();
    const record = makeRecord({ subject: 'repo:a\u0000b' });
    await expect(s.create(record)).rejects.toMatchObject({ code: 'store_unavailable' });
    expect(await s.get(record.tokenId, Date.now())).toBeUndefined();
  });

  it('purgeExpired deletes expired rows in bounded batches, after the grace period', async () => {
    const fresh = uniqueName('oma_purge');
    schemas.push(fresh);
    const s = new PostgresTokenStore({ pool, schema: fresh, migrate: true });
    const now = Date.now();
    const old = { createdAt: now - 3_600_000, expiresAt: now - 600_000 };
    await Promise.all(Array.from({ length: 25 }, () => s.create(makeRecord(old))));
    await s.create(makeRecord({ createdAt: now - 120_000, expiresAt: now - 60_000 })); // within grace
    await s.create(makeRecord()); // live
    const deletes = vi.spyOn(pg.Client.prototype, 'query');
    try {
      expect(await s.purgeExpired({ batchSize: 10 })).toBe(25);
      expect(deletes).toHaveBeenCalledTimes(3);
    } finally {
      deletes.mockRestore();
    }
    expect(await rowCount('oma_access_tokens', fresh)).toBe(2);
    expect(await s.purgeExpired({ now: now + 600_000 })).toBe(2);
  });

  it('purges on a timer when purgeIntervalMs is set, and close stops it', async () => {
    const fresh = uniqueName('oma_timer');
    schemas.push(fresh);
    await migrate(pool, { schema: fresh });
    const s = new PostgresTokenStore({ pool, schema: fresh, purgeIntervalMs: 50, purgeGraceMs: 0 });
    const now = Date.now();
    await s.create(makeRecord({ createdAt: now - 2000, expiresAt: now - 1000 }));
    await vi.waitFor(async () => expect(await rowCount('oma_access_tokens', fresh)).toBe(0), {
      timeout: 3000,
    });
    await s.close();
    await s.create(makeRecord({ createdAt: now - 2000, expiresAt: now - 1000 }));
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(await rowCount('oma_access_tokens', fresh)).toBe(1);
  });

  it('reports the row size of a token', async () => {
    const s = tokenStore();
    const small = makeRecord({ metadata: { role: 'deployer', repo: 'acme/api' } });
    const large = makeRecord({
      metadata: {
        role: 'deployer',
        repository: 'acme/api',
        ref: 'refs/heads/main',
        workflow: 'deploy.yml',
        environment: 'production',
        runId: '1234567890',
      },
    });
    await s.create(small);
    await s.create(large);
    const { rows } = await pool.query(
      `SELECT token_id, pg_column_size(t.*) AS bytes FROM "${schema}".oma_access_tokens t WHERE token_id = ANY($1)`,
      [[small.tokenId, large.tokenId]],
    );
    const size = new Map(rows.map((r: { token_id: string; bytes: number }) => [r.token_id, r.bytes]));
    console.info(
      `postgres pg_column_size(row): ${size.get(small.tokenId)} B (small metadata), ` +
        `${size.get(large.tokenId)} B (6 mapped claims), plus index entries`,
    );
    expect(size.get(small.tokenId)).toBeLessThan(512);
  });
});

const identity = (identityId: string): IdentityConfigInput => ({
  identityId,
  oidcDiscoveryUrl: 'https://token.actions.githubusercontent.com',
  boundIssuer: 'https://token.actions.githubusercontent.com',
  boundSubject: 'repo:acme/api:ref:refs/heads/main',
  boundAudiences: 'https://github.com/acme',
  accessTokenTTL: 3600,
  accessTokenMaxTTL: 7200,
  metadata: { role: 'deployer', projects: ['p1'] },
});

describe('PostgresIdentityStore', () => {
  const store = () => new PostgresIdentityStore({ pool, schema });

  it('puts, gets, lists and deletes validated configs', async () => {
    const s = store();
    const id = uniqueName('identity');
    const stored = await s.put(identity(id));
    expect(stored.accessTokenTTL).toBe(3600);
    expect(stored.boundAudiences).toEqual(['https://github.com/acme']);
    expect(await s.get(id)).toEqual(stored);
    expect((await s.list()).find((c) => c.identityId === id)).toEqual(stored);
    const replaced = await s.put({ ...identity(id), accessTokenTTL: 60 });
    expect((await s.get(id))?.accessTokenTTL).toBe(60);
    expect(replaced.accessTokenTTL).toBe(60);
    expect(await s.delete(id)).toBe(true);
    expect(await s.get(id)).toBeUndefined();
    expect(await s.delete(id)).toBe(false);
  });

  it('refuses an invalid config on write and stores nothing', async () => {
    const s = store();
    const id = uniqueName('identity');
    await expect(s.put({ ...identity(id), accessTokenTTL: 10_000, accessTokenMaxTTL: 60 })).rejects.toThrow(
      ConfigError,
    );
    expect(await s.get(id)).toBeUndefined();
  });

  it('a row edited by hand into an invalid config is never used: ConfigError on read', async () => {
    const s = store();
    const id = uniqueName('identity');
    await s.put(identity(id));
    await pool.query(
      `UPDATE "${schema}".oma_identities SET config = jsonb_set(config, '{accessTokenTrustedIps}', '["not-a-cidr"]')
       WHERE identity_id = $1`,
      [id],
    );
    await expect(s.get(id)).rejects.toThrow(ConfigError);
    await expect(s.list()).rejects.toThrow(ConfigError);
    await pool.query(`DELETE FROM "${schema}".oma_identities WHERE identity_id = $1`, [id]);
  });

  it('a config filed under another identity id is never used', async () => {
    const s = store();
    const id = uniqueName('identity');
    const other = uniqueName('identity');
    await s.put(identity(id));
    await pool.query(`UPDATE "${schema}".oma_identities SET identity_id = $2 WHERE identity_id = $1`, [
      id,
      other,
    ]);
    await expect(s.get(other)).rejects.toThrow(ConfigError);
    await pool.query(`DELETE FROM "${schema}".oma_identities WHERE identity_id = $1`, [other]);
  });

  it('HTTP-04: an identity id with SQL metacharacters is data', async () => {
    const s = store();
    expect(await s.get("x' OR '1'='1")).toBeUndefined();
    expect(await s.delete("x'; DROP TABLE oma_identities; --")).toBe(false);
    expect(await rowCount('oma_identities')).toBeGreaterThanOrEqual(0);
  });

  it('a database that cannot answer in time throws store_unavailable', async () => {
    const s = new PostgresIdentityStore({ pool, schema, statementTimeoutMs: 100 });
    const id = uniqueName('identity');
    await s.put(identity(id));
    const locker = await pool.connect();
    try {
      await locker.query('BEGIN');
      await locker.query(`LOCK TABLE "${schema}".oma_identities IN ACCESS EXCLUSIVE MODE`);
      const error = await s.get(id).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ServiceUnavailableError);
      expect(error).toMatchObject({ code: 'store_unavailable', headers: { 'retry-after': '5' } });
    } finally {
      await locker.query('ROLLBACK');
      locker.release();
    }
    expect((await s.get(id))?.identityId).toBe(id);
  });
});
