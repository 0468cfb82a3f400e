import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  startInstance,
  type InstanceOptions,
  type RunningInstance,
} from '../../examples/multi-instance/app.js';
import { LIMITED_IDENTITY_ID, fleetIdentities } from '../../examples/multi-instance/identities.js';
import { IDENTITY_ID, WORKSPACE_SLUG, pipelineIdentity } from '../../examples/secrets-api/identity.js';
import { startIdp, type DemoIdp } from '../../examples/secrets-api/idp.js';
import { freePort, sharedRedisOptions, uniqueName } from '../helpers/servers.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const { host, port } = sharedRedisOptions();
const REDIS_URL = `redis://${host}:${port}`;
/** An identity only the revokeIdentity test uses, so revoking it leaves the other tests' tokens alone. */
const REVOCABLE_IDENTITY_ID = '9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d';

let redis: Redis;

beforeAll(async () => {
  redis = new Redis({ ...sharedRedisOptions(), lazyConnect: true, enableOfflineQueue: false });
  redis.on('error', () => {});
  // A Redis that cannot be reached fails this file, never skips it.
  await redis.connect();
});

afterAll(async () => {
  await redis?.quit();
});

async function keysUnder(prefix: string): Promise<string[]> {
  const keys: string[] = [];
  let cursor = '0';
  do {
    const [next, batch] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
    keys.push(...batch);
    cursor = next;
  } while (cursor !== '0');
  return keys;
}

interface Answer {
  status: number;
  instance: string | null;
  retryAfter: string | null;
  body: Record<string, unknown>;
}

async function call(url: string, init: RequestInit = {}): Promise<Answer> {
  const response = await fetch(url, init);
  return {
    status: response.status,
    instance: response.headers.get('x-instance'),
    retryAfter: response.headers.get('retry-after'),
    body: (await response.json()) as Record<string, unknown>,
  };
}

const post = (url: string, body: Record<string, string>) =>
  call(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

const login = async (instance: RunningInstance, idp: DemoIdp, identityId = IDENTITY_ID) =>
  post(`${instance.url}/api/v1/auth/oidc-auth/login`, { identityId, jwt: await idp.token() });

const read = (instance: RunningInstance, token: string) =>
  call(`${instance.url}/api/v3/secrets/raw?environment=prod&workspaceSlug=${WORKSPACE_SLUG}`, {
    headers: { authorization: `Bearer ${token}` },
  });

describe('examples/multi-instance/demo.ts', () => {
  it('runs two instances as separate processes behind one Redis, exits 0 and leaves no key behind', async () => {
    const prefix = `${uniqueName('oma_demo_test')}:`;
    const child = spawn(process.execPath, ['--import', 'tsx', 'examples/multi-instance/demo.ts'], {
      cwd: ROOT,
      env: { ...process.env, REDIS_URL, REDIS_PREFIX: prefix },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));

    expect(output).toContain('All checks passed.');
    expect(output).not.toContain('✘');
    expect(output).toMatch(/200: [AB], [AB], [AB]\n/);
    expect(output).not.toContain('omat_');
    expect(code).toBe(0);
    expect(await keysUnder(prefix)).toEqual([]);
  }, 60_000);
});

describe('two instances sharing one Redis, a signing key and identities', () => {
  const prefix = `${uniqueName('oma_fleet_test')}:`;
  const signingKeys = { k1: 'a-multi-instance-test-signing-secret-32-bytes+' };
  let idp: DemoIdp;
  let a: RunningInstance;
  let b: RunningInstance;
  const started: RunningInstance[] = [];

  async function instance(name: string, options: Partial<InstanceOptions> = {}): Promise<RunningInstance> {
    const running = await startInstance({
      name,
      identities: [
        ...fleetIdentities(idp.issuer),
        pipelineIdentity(idp.issuer, { identityId: REVOCABLE_IDENTITY_ID }),
      ],
      signingKeys,
      redisUrl: REDIS_URL,
      redisPrefix: prefix,
      ...options,
    });
    started.push(running);
    return running;
  }

  beforeAll(async () => {
    idp = await startIdp();
    [a, b] = await Promise.all([instance('A'), instance('B')]);
  });

  afterAll(async () => {
    await Promise.all(started.map((running) => running.close()));
    await idp?.close();
    const keys = await keysUnder(prefix);
    if (keys.length > 0) await redis.del(...keys);
  });

  it('a token issued by A is accepted by B; renewed on B, it works on A', async () => {
    const granted = await login(a, idp);
    expect(granted).toMatchObject({ status: 200, instance: 'A' });
    const token = String(granted.body.accessToken);
    expect(await read(b, token)).toMatchObject({ status: 200, instance: 'B' });

    const renewed = await post(`${b.url}/api/v1/auth/token/renew`, { accessToken: token });
    expect(renewed).toMatchObject({ status: 200, instance: 'B' });
    expect(await read(a, String(renewed.body.accessToken))).toMatchObject({ status: 200, instance: 'A' });
  });

  it('TOK-08: a token revoked on B is refused on A at once, original and renewed strings alike', async () => {
    const token = String((await login(a, idp)).body.accessToken);
    const renewed = String(
      (await post(`${a.url}/api/v1/auth/token/renew`, { accessToken: token })).body.accessToken,
    );
    expect((await read(a, token)).status).toBe(200);

    expect((await post(`${b.url}/api/v1/auth/token/revoke`, { accessToken: renewed })).status).toBe(200);
    for (const [on, string] of [
      [a, token],
      [a, renewed],
      [b, token],
    ] as const) {
      const refused = await read(on, string);
      expect(refused.status).toBe(401);
      expect(refused.body.reasonCode).toBe('token_revoked');
    }
  });

  it("TOK-08: revoking an identity on B refuses all of that identity's tokens on A", async () => {
    const tokens = await Promise.all([
      login(a, idp, REVOCABLE_IDENTITY_ID),
      login(b, idp, REVOCABLE_IDENTITY_ID),
    ]);
    const strings = tokens.map((t) => String(t.body.accessToken));
    for (const token of strings) expect((await read(a, token)).status).toBe(200);

    expect(await b.auth.revokeIdentity(REVOCABLE_IDENTITY_ID)).toBe(2);
    for (const token of strings) {
      expect(await read(a, token)).toMatchObject({ status: 401, body: { reasonCode: 'token_revoked' } });
    }
    // Other identities' tokens are untouched.
    expect((await read(a, String((await login(b, idp)).body.accessToken))).status).toBe(200);
  });

  it('TOK-04: 50 parallel reads of a 3-use token split across A and B give exactly three successes', async () => {
    const token = String((await login(a, idp, LIMITED_IDENTITY_ID)).body.accessToken);
    const answers = await Promise.all(Array.from({ length: 50 }, (_, i) => read(i % 2 === 0 ? a : b, token)));
    expect(answers.filter((r) => r.status === 200)).toHaveLength(3);
    const refused = answers.filter((r) => r.status !== 200);
    expect(refused).toHaveLength(47);
    for (const answer of refused) {
      expect(answer).toMatchObject({ status: 401, body: { reasonCode: 'uses_exhausted' } });
    }
    // Both instances took part in the race.
    expect(new Set(answers.map((r) => r.instance))).toEqual(new Set(['A', 'B']));
  });

  it('an instance with another signing key refuses the fleet tokens: signing keys must be shared', async () => {
    const stranger = await instance('C', {
      signingKeys: { k1: 'another-signing-secret-of-at-least-32-bytes!!' },
    });
    const token = String((await login(a, idp)).body.accessToken);
    expect(await read(stranger, token)).toMatchObject({ status: 401, body: { reasonCode: 'invalid_token' } });
    expect((await read(b, token)).status).toBe(200);
  });

  it('an instance that cannot reach Redis answers 503 store_unavailable with Retry-After, never 200', async () => {
    const cutOff = await instance('D', { redisUrl: `redis://127.0.0.1:${await freePort()}`, timeoutMs: 300 });
    const token = String((await login(a, idp)).body.accessToken);

    const started = performance.now();
    const guarded = await read(cutOff, token);
    const loggedIn = await login(cutOff, idp);
    // Generous bound: the point is "gives up by itself", not speed.
    expect(performance.now() - started).toBeLessThan(10_000);
    for (const answer of [guarded, loggedIn]) {
      expect(answer.status).toBe(503);
      expect(answer.body.reasonCode).toBe('store_unavailable');
      expect(answer.retryAfter).toMatch(/^\d+$/);
    }
    // The rest of the fleet is unaffected.
    expect((await read(a, token)).status).toBe(200);
  });
});
