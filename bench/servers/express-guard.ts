/**
 * Express 5 + `requireAccessToken(auth)`. Knobs:
 * - `BENCH_STORE`: `memory` (the default), `redis`, `postgres` or `mariadb` (see `lib/stores.ts`);
 * - `BENCH_IDENTITIES`: filler identities added (default 0);
 * - `BENCH_LIVE_TOKENS`: filler live tokens, made at start as logins would (default 0, at least `BENCH_SPREAD`);
 * - `BENCH_SPREAD`: under load, requests spread at random over this many of the filler tokens instead of
 *   all using the logged-in one (default 0). A token used by many requests at once is the PostgreSQL
 *   store's best case (concurrent uses share statements), spread tokens its common case;
 * - `BENCH_OTEL`: `sdk` (OpenTelemetry instrumentation, SDK registered) or `api` (no SDK): see `lib/otel.ts`.
 *
 * With a shared store, before answering its spec line the server sends `BENCH_RT_REQUESTS` (default 400)
 * guarded requests to a throw-away listener of the same app and reports store round trips per request in
 * `info`: client-side (ioredis commands sent / pg `client.query` calls / mysql2 `query` calls) and, for
 * Redis and MariaDB, server-side (`INFO commandstats` EVALSHA calls delta, `Com_update` delta; other
 * clients of the shared server can only inflate it).
 */
import { createServer, type RequestListener } from 'node:http';
import type { AddressInfo } from 'node:net';
import { requireAccessToken } from '../../adapters/express/index.js';
import { createOidcAuth, MemoryTokenStore } from '../../src/index.js';
import { expressApp, hello } from '../lib/express-app.js';
import {
  benchIdentity,
  fillerIdentities,
  fillTokens,
  IDENTITY_ID,
  makeIdpKey,
  SIGNING_KEYS,
  signIdpToken,
  tamper,
} from '../lib/fixtures.js';
import { intEnv, startBenchServer } from '../lib/server-kit.js';
import { bearerGet, guardSmoke } from '../lib/smoke.js';
import { setupStore, type StoreSetup } from '../lib/stores.js';
import { benchInstrumentation } from '../lib/otel.js';

const identities = intEnv('BENCH_IDENTITIES', 0);
const spread = intEnv('BENCH_SPREAD', 0);
const liveTokens = Math.max(intEnv('BENCH_LIVE_TOKENS', 0), spread);
const rtRequests = intEnv('BENCH_RT_REQUESTS', 400);
const HOST = '127.0.0.1';

/** Sends `count` guarded requests (10 at a time) to a temporary listener of `app`; all must answer 200. */
async function drive(app: RequestListener, token: string, count: number): Promise<void> {
  const server = createServer(app);
  await new Promise<void>((resolve) => server.listen(0, HOST, resolve));
  const url = `http://${HOST}:${(server.address() as AddressInfo).port}/hello`;
  try {
    let next = 0;
    const worker = async () => {
      while (next++ < count) {
        const res = await fetch(url, { headers: { authorization: `Bearer ${token}` } });
        await res.arrayBuffer();
        if (res.status !== 200) throw new Error(`round-trip probe: status ${res.status}`);
      }
    };
    await Promise.all(Array.from({ length: 10 }, worker));
  } finally {
    server.closeAllConnections();
    server.close();
  }
}

/** Store round trips per guarded request, counted on `app` (shared stores only). */
async function roundTrips(setup: StoreSetup, app: RequestListener, token: string) {
  await drive(app, token, 20); // warm: prepared statements, script cache, connections
  const client0 = setup.roundTrips();
  const server0 = await setup.serverCount?.();
  await drive(app, token, rtRequests);
  const server1 = await setup.serverCount?.();
  const info: Record<string, number> = {
    storeRoundTripsPerRequest: (setup.roundTrips() - client0) / rtRequests,
  };
  if (server0 !== undefined && server1 !== undefined)
    info[setup.serverCountName ?? 'serverCountPerRequest'] = (server1 - server0) / rtRequests;
  return info;
}

await startBenchServer(async () => {
  const setup = await setupStore();
  const tokens = setup.store ?? new MemoryTokenStore();
  const key = makeIdpKey('RS256');
  const auth = createOidcAuth({
    identities: [benchIdentity(key), ...fillerIdentities(key, identities)],
    tokens,
    signingKeys: SIGNING_KEYS,
    instrumentation: await benchInstrumentation(process.env.BENCH_OTEL),
  });
  const authorizations = await fillTokens(tokens, liveTokens, { sample: spread });
  const grant = await auth.login({
    identityId: IDENTITY_ID,
    jwt: await signIdpToken(key),
    clientIp: '127.0.0.1',
  });
  const app = expressApp();
  app.get('/hello', requireAccessToken(auth), hello);
  return {
    listener: app,
    spec: {
      request: { ...bearerGet('/hello', grant.accessToken), ...(spread > 0 && { authorizations }) },
      smoke: guardSmoke('/hello', grant.accessToken, tamper(grant.accessToken)),
      info: {
        store: setup.kind,
        identities: identities + 1,
        liveTokens: liveTokens + 1,
        spread,
        ...(process.env.BENCH_OTEL && { otel: process.env.BENCH_OTEL }),
        ...(setup.store && (await roundTrips(setup, app, grant.accessToken))),
      },
    },
  };
});
