/**
 * Two instances of the secrets API, as two separate Node processes, behind one Redis:
 *
 *   npx tsx examples/multi-instance/demo.ts
 *
 * Starts a loopback OpenID provider and instances A and B (`instance.ts`) sharing a Redis (default
 * `redis://127.0.0.1:6379`, `REDIS_URL` to change), a signing key and a key prefix unique to this run
 * (`REDIS_PREFIX` to choose it). Then: logs in on A and reads with that token on B; renews on B and
 * reads on A; revokes on B and shows A refusing at once; fires ten parallel reads at A and B with a
 * 3-use token and counts exactly three successes. Deletes every key it wrote, stops everything, and
 * exits 0 only when every step behaved as expected.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { IDENTITY_ID, WORKSPACE_SLUG } from '../secrets-api/identity.js';
import { startIdp, type DemoIdp } from '../secrets-api/idp.js';
import { LIMITED_IDENTITY_ID, fleetIdentities } from './identities.js';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const PREFIX = process.env.REDIS_PREFIX ?? `oma-demo-${randomBytes(6).toString('hex')}:`;
const INSTANCE_SCRIPT = fileURLToPath(new URL('./instance.ts', import.meta.url));

const say = (text = '') => console.log(text);
let failures = 0;
function check(ok: boolean, what: string): void {
  say(`  ${ok ? '✔' : '✘'} ${what}`);
  if (!ok) failures++;
}
let stepNumber = 0;
const step = (title: string) => say(`\n[${++stepNumber}] ${title}`);

interface Answer {
  status: number;
  instance: string | null;
  body: Record<string, unknown>;
}

async function call(url: string, init: RequestInit = {}): Promise<Answer> {
  const response = await fetch(url, init);
  const text = await response.text();
  let body: Record<string, unknown>;
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch {
    body = { text };
  }
  return { status: response.status, instance: response.headers.get('x-instance'), body };
}

const post = (url: string, body: Record<string, string>) =>
  call(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

const read = (instance: string, token: string) =>
  call(`${instance}/api/v3/secrets/raw?environment=prod&workspaceSlug=${WORKSPACE_SLUG}`, {
    headers: { authorization: `Bearer ${token}` },
  });

const shown = (a: Answer) =>
  `${a.status} from ${a.instance ?? '?'}${a.body.reasonCode ? ` (${String(a.body.reasonCode)})` : ''}`;

/** A running `instance.ts` process. */
interface InstanceProcess {
  name: string;
  url: string;
  child: ChildProcess;
}

function startInstanceProcess(name: string, env: Record<string, string>): Promise<InstanceProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', INSTANCE_SCRIPT], {
    env: { ...process.env, ...env, INSTANCE_NAME: name, PORT: '0' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stderr!.on('data', (chunk: Buffer) =>
    process.stderr.write(chunk.toString().replace(/^/gm, `[${name}] `)),
  );
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`instance ${name} did not start`));
    }, 30_000);
    let out = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const url = /listening on (http:\/\/\S+)/.exec(out)?.[1];
      if (url) {
        clearTimeout(timer);
        resolve({ name, url, child });
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`instance ${name} exited with ${code}`));
    });
  });
}

async function stopInstanceProcess(instance: InstanceProcess): Promise<void> {
  const { child } = instance;
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}

async function keysOfThisRun(redis: Redis): Promise<string[]> {
  const keys: string[] = [];
  let cursor = '0';
  do {
    const [next, batch] = await redis.scan(cursor, 'MATCH', `${PREFIX}*`, 'COUNT', 1000);
    keys.push(...batch);
    cursor = next;
  } while (cursor !== '0');
  return keys;
}

async function flow(idp: DemoIdp, a: InstanceProcess, b: InstanceProcess, redis: Redis): Promise<void> {
  say('oidc-machine-auth: two app instances behind one Redis');
  step(`Two instances, one Redis: A ${a.url} (pid ${a.child.pid}), B ${b.url} (pid ${b.child.pid})`);
  say(`    shared: Redis ${REDIS_URL}, key prefix ${PREFIX}, one signing key`);
  check(a.child.pid !== b.child.pid, 'A and B are separate processes');

  step('Log in on A: POST /api/v1/auth/oidc-auth/login');
  const login = await post(`${a.url}/api/v1/auth/oidc-auth/login`, {
    identityId: IDENTITY_ID,
    jwt: await idp.token(),
  });
  say(`    ${shown(login)}`);
  check(login.status === 200 && login.instance === 'A', 'A issued an access token');
  const token = String(login.body.accessToken);

  step('Read secrets on B with the token A issued');
  const onB = await read(b.url, token);
  say(`    ${shown(onB)}`);
  check(onB.status === 200 && onB.instance === 'B', 'B accepts it (same signing key, same store)');

  step('Renew on B, read on A with the renewed token');
  const renewed = await post(`${b.url}/api/v1/auth/token/renew`, { accessToken: token });
  say(`    renew: ${shown(renewed)}`);
  const renewedToken = String(renewed.body.accessToken);
  const onA = await read(a.url, renewedToken);
  say(`    read:  ${shown(onA)}`);
  check(renewed.status === 200 && onA.status === 200, 'a token renewed on B works on A');

  step('Revoke on B, then read on A at once');
  const revoked = await post(`${b.url}/api/v1/auth/token/revoke`, { accessToken: renewedToken });
  say(`    revoke: ${shown(revoked)}`);
  const afterA = await read(a.url, token);
  const afterB = await read(b.url, renewedToken);
  say(`    A: ${shown(afterA)}; B: ${shown(afterB)}`);
  check(revoked.status === 200, 'B revoked the token');
  check(
    afterA.status === 401 && afterA.body.reasonCode === 'token_revoked',
    'A refuses it at once: 401 token_revoked (every string issued for the token id, original included)',
  );
  check(afterB.status === 401 && afterB.body.reasonCode === 'token_revoked', 'B refuses it too');

  step('A 3-use token: ten parallel reads, alternating A and B');
  const limited = await post(`${a.url}/api/v1/auth/oidc-auth/login`, {
    identityId: LIMITED_IDENTITY_ID,
    jwt: await idp.token(),
  });
  check(limited.status === 200, 'A issued a token limited to 3 uses');
  const limitedToken = String(limited.body.accessToken);
  const answers = await Promise.all(
    Array.from({ length: 10 }, (_, i) => read((i % 2 === 0 ? a : b).url, limitedToken)),
  );
  const ok = answers.filter((r) => r.status === 200);
  const exhausted = answers.filter((r) => r.status === 401 && r.body.reasonCode === 'uses_exhausted');
  say(`    200: ${ok.map((r) => r.instance).join(', ') || 'none'}`);
  say(`    401 uses_exhausted: ${exhausted.length}`);
  check(ok.length === 3, 'exactly 3 reads succeeded across A and B');
  check(exhausted.length === 7, 'the other 7 were refused with uses_exhausted');
  const next = await read(b.url, limitedToken);
  check(next.status === 401 && next.body.reasonCode === 'uses_exhausted', `one more on B: ${shown(next)}`);

  step('The state lives in Redis');
  const keys = await keysOfThisRun(redis);
  const tokenKeys = keys.filter((k) => k.startsWith(`${PREFIX}t:`)).length;
  const indexKeys = keys.filter((k) => k.startsWith(`${PREFIX}i:`)).length;
  say(`    ${tokenKeys} token hashes, ${indexKeys} identity indexes under ${PREFIX}`);
  check(tokenKeys === 2 && indexKeys === 2, 'one hash per token id, one index per identity');
}

async function main(): Promise<number> {
  const redis = new Redis(REDIS_URL, {
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
  });
  redis.on('error', () => {});
  try {
    await redis.connect();
  } catch {
    console.error(`cannot reach Redis at ${REDIS_URL}: start one, or set REDIS_URL`);
    redis.disconnect();
    return 1;
  }
  let idp: DemoIdp | undefined;
  const instances: InstanceProcess[] = [];
  try {
    idp = await startIdp();
    const env = {
      REDIS_URL,
      REDIS_PREFIX: PREFIX,
      ACCESS_TOKEN_SECRET: randomBytes(32).toString('base64url'),
      IDENTITIES_JSON: JSON.stringify(fleetIdentities(idp.issuer)),
    };
    const started = await Promise.allSettled([
      startInstanceProcess('A', env),
      startInstanceProcess('B', env),
    ]);
    for (const result of started) {
      if (result.status === 'fulfilled') instances.push(result.value);
    }
    for (const result of started) if (result.status === 'rejected') throw result.reason;
    await flow(idp, instances[0]!, instances[1]!, redis);
  } catch (error) {
    failures++;
    console.error(`demo failed: ${error instanceof Error ? error.message : String(error)}`);
  } finally {
    await Promise.all(instances.map(stopInstanceProcess));
    await idp?.close();
    const keys = await keysOfThisRun(redis);
    if (keys.length > 0) await redis.del(...keys);
    const left = (await keysOfThisRun(redis)).length;
    say(`\nCleaned up: instances stopped, ${keys.length} keys under ${PREFIX} deleted, ${left} left.`);
    if (left > 0) failures++;
    redis.disconnect();
  }
  say(failures === 0 ? 'All checks passed.' : `${failures} check(s) failed.`);
  return failures === 0 ? 0 : 1;
}

process.exitCode = await main();
