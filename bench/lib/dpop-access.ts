/**
 * Fixtures of the DPoP benchmarks (issue 16): the JWT access-token engine of `jwt-access.ts` with a
 * proof window long enough for proofs made before a run, a DPoP-bound access token (`cnf.jkt`), the
 * replay cache of the guard (`BENCH_REPLAY`), and the spec every DPoP candidate answers (same smoke
 * checks, the same proofs under load).
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createServer, type RequestListener } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Redis } from 'ioredis';
import { RedisReplayCache } from '../../adapters/redis/index.js';
import { MemoryReplayCache, createOidcAuth, type OidcAuth, type ReplayCache } from '../../src/index.js';
import { ProofMaker, newProofJwk } from './dpop-proofs.js';
import { benchIdentity, IDENTITY_ID, SIGNING_KEYS, signIdpToken, type IdpKey } from './fixtures.js';
import { ACCESS_TOKEN_KEY, OUR_ISSUER } from './jwt-access.js';
import type { ServerSpec, SmokeCase } from './protocol.js';

/**
 * Seconds a proof's `iat` may lie from now: the load client makes its proofs when it first loads a
 * server (so signing them costs the measured client nothing), and a sliced round of the default set
 * keeps a server up for many minutes.
 */
export const BENCH_PROOF_WINDOW_SECONDS = 3600;

export type ReplayKind = 'memory' | 'redis';

/** The replay cache of a DPoP guard server, and how to count its round trips. */
export interface BenchReplay {
  kind: ReplayKind;
  cache: ReplayCache;
  /** Redis commands this process sent so far (client side); 0 for memory. */
  commands: () => number;
}

/**
 * The replay cache named by `BENCH_REPLAY`:
 * - `memory` (default): a `MemoryReplayCache` holding every `jti` of a round (a million; the default
 *   100,000 fills up);
 * - `redis`: `RedisReplayCache` with its default options (remembers of one event-loop turn batched
 *   into one script call) on its own ioredis client to 127.0.0.1:6379 (`enableOfflineQueue: false`,
 *   `maxRetriesPerRequest: 1`), keys under a per-process prefix (`omabench:dpop:<pid>-<hex>:`),
 *   deleted at exit, so runs never see each other's `jti`s.
 */
export async function benchReplayCache(): Promise<BenchReplay> {
  const kind = process.env.BENCH_REPLAY || 'memory';
  if (kind === 'memory') {
    return { kind, cache: new MemoryReplayCache({ maxEntries: 1_000_000 }), commands: () => 0 };
  }
  if (kind !== 'redis') throw new Error(`BENCH_REPLAY must be memory or redis, not ${JSON.stringify(kind)}`);
  const host = '127.0.0.1';
  const prefix = `omabench:dpop:${process.pid}-${randomBytes(4).toString('hex')}:`;
  const client = new Redis({ host, port: 6379, enableOfflineQueue: false, maxRetriesPerRequest: 1 });
  await new Promise((resolve) => client.once('ready', resolve));
  let commands = 0;
  const send = client.sendCommand.bind(client);
  client.sendCommand = ((...args: Parameters<typeof send>) => {
    commands++;
    return send(...args);
  }) as typeof client.sendCommand;
  process.on('exit', () => {
    // Bench keys only (a per-process prefix); SCAN, never KEYS, on the shared server.
    execFileSync(
      'sh',
      ['-c', `redis-cli -h ${host} --scan --pattern '${prefix}*' | xargs -r redis-cli -h ${host} UNLINK`],
      { stdio: 'ignore' },
    );
  });
  return { kind, cache: new RedisReplayCache({ client, prefix }), commands: () => commands };
}

/**
 * The engine of `jwtEngine` (Ed25519 JWT access tokens, no uses limit) with that proof window,
 * `replayCache` (default: the memory one of {@link benchReplayCache}), and proof signatures checked
 * where `BENCH_PROOF_CHECKS` says (`worker`, the default, or `thread-pool`).
 */
export function dpopEngine(
  key: IdpKey,
  replayCache: ReplayCache = new MemoryReplayCache({ maxEntries: 1_000_000 }),
): OidcAuth {
  return createOidcAuth({
    identities: [benchIdentity(key, { accessTokenFormat: 'jwt' })],
    signingKeys: SIGNING_KEYS,
    issuer: OUR_ISSUER,
    accessTokens: { signingKeys: [{ privateKey: ACCESS_TOKEN_KEY, kid: 'bench-ed25519' }] },
    dpop: {
      proofWindowSeconds: BENCH_PROOF_WINDOW_SECONDS,
      proofChecks: process.env.BENCH_PROOF_CHECKS === 'thread-pool' ? 'thread-pool' : 'worker',
    },
    replayCache,
  });
}

/** A client key, and a DPoP-bound JWT access token for it (a login with a proof). */
export async function dpopAccessToken(
  auth: OidcAuth,
  key: IdpKey,
): Promise<{ token: string; maker: ProofMaker }> {
  const maker = new ProofMaker(newProofJwk());
  const login = `${OUR_ISSUER}/oidc-auth/login`;
  const grant = await auth.login({
    identityId: IDENTITY_ID,
    jwt: await signIdpToken(key),
    clientIp: '127.0.0.1',
    dpop: { proof: maker.make('POST', login), method: 'POST', url: login },
  });
  if (grant.tokenType !== 'DPoP') throw new Error('the bench login did not bind its token');
  return { token: grant.accessToken, maker };
}

/**
 * `GET /hello` with `Authorization: DPoP <token>` and a fresh proof per request. Smoke: a proof 200;
 * no proof and the token as Bearer refused (401, or the peer's `refusal` status); with `replay`, the
 * smoke proof again 401 (a peer that keeps no `jti`s cannot refuse that).
 */
export function dpopHelloSpec(
  port: number,
  token: string,
  maker: ProofMaker,
  options: { replay: boolean; refusal?: number; info?: Record<string, string | number> },
): Omit<ServerSpec, 'port'> {
  const url = `http://127.0.0.1:${port}/hello`;
  const headers = (proof?: string) => ({
    authorization: `DPoP ${token}`,
    ...(proof === undefined ? {} : { dpop: proof }),
  });
  const proof = maker.make('GET', url, token);
  const refusal = options.refusal ?? 401;
  const smoke: SmokeCase[] = [
    {
      name: 'bound token with a proof',
      request: { method: 'GET', path: '/hello', headers: headers(proof) },
      status: 200,
    },
    { name: 'no proof', request: { method: 'GET', path: '/hello', headers: headers() }, status: refusal },
    {
      name: 'bound token as Bearer',
      request: { method: 'GET', path: '/hello', headers: { authorization: `Bearer ${token}` } },
      status: refusal,
    },
  ];
  if (options.replay) {
    smoke.push({
      name: 'replayed proof',
      request: { method: 'GET', path: '/hello', headers: headers(proof) },
      status: 401,
    });
  }
  return {
    request: {
      method: 'GET',
      path: '/hello',
      headers: headers(maker.make('GET', url, token)),
      dpop: { privateJwk: maker.privateJwk, token },
    },
    smoke,
    info: { token: 'jwt-ed25519', proof: 'ES256', replayCache: 'memory', ...options.info },
  };
}

/**
 * Replay-cache round trips per guarded request: `count` requests (10 at a time, each with a fresh
 * proof) to a temporary listener of `app`, all answering 200, after a warm-up of 20; the commands
 * `replay` sent meanwhile, divided by `count`. At most 1 (issue 16); fewer when remembers of one turn
 * share a script call.
 */
export async function replayRoundTrips(
  app: RequestListener,
  token: string,
  maker: ProofMaker,
  replay: BenchReplay,
  count: number,
): Promise<number> {
  const server = createServer(app);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hello`;
  const drive = async (n: number) => {
    let next = 0;
    const worker = async () => {
      while (next++ < n) {
        const headers = { authorization: `DPoP ${token}`, dpop: maker.make('GET', url, token) };
        const res = await fetch(url, { headers });
        await res.arrayBuffer();
        if (res.status !== 200) throw new Error(`replay round-trip probe: status ${res.status}`);
      }
    };
    await Promise.all(Array.from({ length: 10 }, worker));
  };
  try {
    await drive(20); // warm: the script loaded, the connection up
    const before = replay.commands();
    await drive(count);
    return (replay.commands() - before) / count;
  } finally {
    server.closeAllConnections();
    server.close();
  }
}
