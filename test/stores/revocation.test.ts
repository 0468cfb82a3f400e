/**
 * Issue 13, item 1: once an identity is deleted, narrowed or revoked, none of its tokens works,
 * whatever logins were in flight, on every store and across processes.
 */
import { randomUUID } from 'node:crypto';
import { Cluster } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { RedisTokenStore } from '../../adapters/redis/index.js';
import { createIdentityAdmin, type IdentityAdmin } from '../../src/http/identity-admin.js';
import { createOidcAuth, type OidcAuth } from '../../src/engine/auth.js';
import { MemoryIdentityStore, MemoryTokenStore } from '../../src/stores/memory.js';
import type { IdentityStore } from '../../src/types.js';
import { githubIdentity } from '../helpers/engine.js';
import { githubClaims, makeKey, sign, type TestKey } from '../helpers/jwt.js';
import { startRedisCluster, type ThrowawayRedisCluster } from '../helpers/servers.js';
import { LoginStorm, outcomes, preciseNow, type StormToken } from './login-storm.js';
import { Worker } from './worker-client.js';
import { raceBackend } from './race-backend.js';

const IDENTITY_ID = 'revocation-race';
const SIGNING_KEYS = { k1: 'a-revocation-race-test-signing-secret-32-bytes' };
const ROUNDS = 6;
/** What ends the identity's tokens in a round, in turn. */
const ACTIONS = ['admin DELETE', 'admin PATCH narrowing boundSubject', 'delete + revokeIdentity'] as const;
type Action = (typeof ACTIONS)[number];

/** Where the logins run: in this process (memory store) or in worker processes (shared stores). */
interface Fleet {
  start(jwt: string): Promise<void>;
  /** Logins granted so far, and one of their tokens. */
  progress(): Promise<{ successes: number; sample: string | undefined }>;
  /** Stops the logins; every token they were granted. */
  stop(): Promise<StormToken[]>;
  /** The answers of authenticate and renew to `tokens`, on every instance that checks them. */
  outcomes(tokens: string[]): Promise<Array<{ authenticate: string[]; renew: string[] }>>;
}

/** The instance the admin works on: its engine, admin API and identity store. */
interface Main {
  auth: OidcAuth;
  admin: IdentityAdmin;
  identities: IdentityStore & Required<Pick<IdentityStore, 'put' | 'delete'>>;
}

function identity(key: TestKey, overrides = {}) {
  return githubIdentity(key, { identityId: IDENTITY_ID, ...overrides });
}

async function act(main: Main, action: Action, key: TestKey): Promise<void> {
  if (action === 'admin DELETE') {
    expect((await main.admin.revoke(IDENTITY_ID)).status).toBe(200);
  } else if (action === 'admin PATCH narrowing boundSubject') {
    const narrowed = { ...identity(key), boundSubject: 'repo:acme-corp/another-repo:ref:refs/heads/main' };
    expect((await main.admin.update(IDENTITY_ID, narrowed)).status).toBe(200);
  } else {
    expect(await main.identities.delete(IDENTITY_ID)).toBe(true);
    await main.auth.revokeIdentity(IDENTITY_ID);
  }
}

/**
 * `ROUNDS` rounds: (re)attach the identity, storm it with logins, end it while they run, stop the
 * storm, then every token any login of the round obtained (before or after the revocation) must be
 * refused by authenticate and renew as revoked, on every instance. Returns how many tokens came
 * from logins still in flight when the revocation began (the race the property is about).
 */
async function runRounds(main: Main, fleet: Fleet, key: TestKey): Promise<number> {
  let inFlight = 0;
  for (let round = 0; round < ROUNDS; round++) {
    const action = ACTIONS[round % ACTIONS.length]!;
    await main.identities.put(identity(key));
    await fleet.start(await sign(key, githubClaims(Date.now(), { jti: randomUUID() })));
    let sample: string | undefined;
    await vi.waitFor(
      async () => {
        const progress = await fleet.progress();
        expect(progress.successes).toBeGreaterThanOrEqual(20);
        sample = progress.sample;
      },
      { timeout: 20_000, interval: 5 },
    );
    // The round's tokens work until the revocation.
    await expect(main.auth.authenticate(sample!)).resolves.toMatchObject({ identityId: IDENTITY_ID });

    const revocationBegan = preciseNow();
    await act(main, action, key);
    // Logins keep coming for a moment after the revocation returned; each must fail or be refused.
    await new Promise((resolve) => setTimeout(resolve, 30));
    const tokens = await fleet.stop();

    const strings = tokens.map((t) => t.token);
    for (const answers of await fleet.outcomes(strings)) {
      const survivors = [...answers.authenticate, ...answers.renew].filter(
        (code) => code !== 'token_revoked',
      );
      expect({ round, action, tokens: strings.length, survivors }).toEqual({
        round,
        action,
        tokens: strings.length,
        survivors: [],
      });
    }
    inFlight += tokens.filter((t) => t.endedAt > revocationBegan).length;
  }
  return inFlight;
}

/** Logins on the engines of this process, `concurrency` loops on each; every engine checks. */
function inProcessFleet(engines: OidcAuth[], concurrency: number): Fleet {
  let storms: LoginStorm[] = [];
  return {
    async start(jwt) {
      storms = engines.map((auth) => new LoginStorm(auth, IDENTITY_ID, jwt, concurrency).start());
    },
    async progress() {
      return {
        successes: Math.min(...storms.map((storm) => storm.successes)),
        sample: storms.find((storm) => storm.sample)?.sample,
      };
    },
    async stop() {
      return (await Promise.all(storms.map((storm) => storm.stop()))).flat();
    },
    outcomes: (tokens) => Promise.all(engines.map((auth) => outcomes(auth, tokens))),
  };
}

/**
 * A memory store whose reads answer a millisecond later, like a real store's: a login reads the
 * identity after its token verified, right before it stores the access token, so without a wait
 * there no login is ever between the two when the revocation runs. (A macrotask's wait was not
 * enough on Node 24: a whole run could end with no login in flight across a revocation.)
 */
class SlowReadIdentityStore extends MemoryIdentityStore {
  override async get(identityId: string) {
    const config = await super.get(identityId);
    await new Promise((resolve) => setTimeout(resolve, 1));
    return config;
  }
}

describe('#13.1 identity revocation leaves no survivor: memory store, logins in flight in this process', () => {
  it(`${ROUNDS} rounds of 24 concurrent login loops while the identity is deleted, narrowed or revoked`, async () => {
    const key = makeKey('ES256');
    const identities = new SlowReadIdentityStore();
    const auth = createOidcAuth({
      identities,
      tokens: new MemoryTokenStore({ sweepIntervalMs: 0 }),
      signingKeys: SIGNING_KEYS,
    });
    const main: Main = { auth, admin: createIdentityAdmin(auth), identities };
    expect(await runRounds(main, inProcessFleet([auth], 24), key)).toBeGreaterThan(0);
    await auth.close();
  }, 60_000);
});

describe('#13.1 identity revocation leaves no survivor: Redis Cluster (three masters this test starts), two instances in this process', () => {
  let cluster: ThrowawayRedisCluster;
  const clients: Cluster[] = [];

  beforeAll(async () => {
    cluster = await startRedisCluster();
  }, 30_000);

  afterAll(async () => {
    for (const client of clients) client.disconnect();
    await cluster?.stop();
  });

  async function clusterClient(): Promise<Cluster> {
    const client = new Cluster(cluster.nodes, {
      enableOfflineQueue: true,
      redisOptions: { maxRetriesPerRequest: 1 },
    });
    client.on('error', () => {});
    clients.push(client);
    await new Promise((resolve, reject) => {
      client.once('ready', resolve);
      client.once('error', reject);
    });
    return client;
  }

  it(`${ROUNDS} rounds of 2 × 12 concurrent login loops while one instance deletes, narrows or revokes`, async () => {
    const key = makeKey('ES256');
    // One identity store object stands for a database both instances read, answering as late as one
    // (see SlowReadIdentityStore): with test files running two at a time, six rounds could otherwise
    // end with no login in flight across a revocation.
    const identities = new SlowReadIdentityStore();
    const engines = await Promise.all(
      [0, 1].map(async () =>
        createOidcAuth({
          identities,
          tokens: new RedisTokenStore({ client: await clusterClient() }),
          signingKeys: SIGNING_KEYS,
        }),
      ),
    );
    const main: Main = { auth: engines[0]!, admin: createIdentityAdmin(engines[0]!), identities };
    expect(await runRounds(main, inProcessFleet(engines, 12), key)).toBeGreaterThan(0);
  }, 60_000);
});

interface SharedBackend {
  /** The worker's init request. */
  init: Parameters<Worker['send']>[0];
  main: Main;
  cleanup(): Promise<void>;
}

async function sharedBackend(kind: 'redis' | 'postgres'): Promise<SharedBackend> {
  const { init, identities, tokens, cleanup } = await raceBackend(kind, 'oma_rev', SIGNING_KEYS);
  const auth = createOidcAuth({ identities, tokens, signingKeys: SIGNING_KEYS });
  return { init, main: { auth, admin: createIdentityAdmin(auth), identities }, cleanup };
}

describe.each([['Redis' as const], ['PostgreSQL' as const]])(
  '#13.1 identity revocation leaves no survivor: %s, logins in flight in three processes',
  (name) => {
    let backend: SharedBackend;
    let workers: Worker[];

    beforeAll(async () => {
      backend = await sharedBackend(name === 'Redis' ? 'redis' : 'postgres');
      workers = [new Worker(), new Worker(), new Worker()];
      await Promise.all(workers.map((w) => w.send(backend.init)));
    });

    afterAll(async () => {
      await Promise.all((workers ?? []).map((w) => w.stop()));
      await backend?.cleanup();
    });

    it(`${ROUNDS} rounds of 3 × 8 concurrent login loops while another instance deletes, narrows or revokes`, async () => {
      const key = makeKey('ES256');
      const fleet: Fleet = {
        async start(jwt) {
          await Promise.all(
            workers.map((w) => w.send({ type: 'storm-start', identityId: IDENTITY_ID, jwt, concurrency: 8 })),
          );
        },
        async progress() {
          const replies = await Promise.all(workers.map((w) => w.send({ type: 'storm-stats' })));
          return {
            successes: Math.min(...replies.map((r) => r.successes ?? 0)),
            sample: replies.find((r) => r.sample)?.sample,
          };
        },
        async stop() {
          const replies = await Promise.all(workers.map((w) => w.send({ type: 'storm-stop' })));
          return replies.flatMap((r) => r.tokens ?? []);
        },
        async outcomes(tokens) {
          // Checked by the admin's instance and by one of the login instances.
          const [own, other] = await Promise.all([
            outcomes(backend.main.auth, tokens),
            workers[0]!.send({ type: 'outcomes', tokens }),
          ]);
          return [own, { authenticate: other.authenticate ?? [], renew: other.renew ?? [] }];
        },
      };
      expect(await runRounds(backend.main, fleet, key)).toBeGreaterThan(0);
    }, 120_000);
  },
);
