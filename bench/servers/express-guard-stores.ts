/**
 * Express 5 + `requireAccessToken(auth)` with a shared store on the local servers (`BENCH_STORE=redis` or
 * `postgres`, see `lib/stores.ts`). `BENCH_SPREAD` (default 0): under load, requests spread at random over
 * this many other live tokens (made at start, as logins would) instead of all using one; a token used by
 * many requests at once is the PostgreSQL store's best case (concurrent uses share statements), spread
 * tokens its common case.
 *
 * Before answering its spec line the server sends `BENCH_RT_REQUESTS` (default 400) guarded requests to a
 * throw-away listener of the same app and reports store round trips per request in `info`: client-side
 * (ioredis commands sent / pg `client.query` calls) and, for Redis, server-side (`INFO commandstats`
 * EVALSHA calls delta; other clients of the shared server can only inflate it).
 */
import { createServer, type RequestListener } from 'node:http';
import type { AddressInfo } from 'node:net';
import { requireAccessToken } from '../../adapters/express/index.js';
import { createOidcAuth } from '../../src/index.js';
import { expressApp, hello } from '../lib/express-app.js';
import {
  benchIdentity,
  fillTokens,
  IDENTITY_ID,
  makeIdpKey,
  SIGNING_KEYS,
  signIdpToken,
  tamper,
} from '../lib/fixtures.js';
import { intEnv, startBenchServer } from '../lib/server-kit.js';
import { bearerGet, guardSmoke } from '../lib/smoke.js';
import { setupStore } from '../lib/stores.js';

const rtRequests = intEnv('BENCH_RT_REQUESTS', 400);
const spread = intEnv('BENCH_SPREAD', 0);
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

await startBenchServer(async () => {
  const setup = await setupStore();
  if (!setup.store) throw new Error('BENCH_STORE must be redis or postgres (express-guard.ts runs memory)');
  const key = makeIdpKey('RS256');
  const auth = createOidcAuth({
    identities: [benchIdentity(key)],
    tokens: setup.store,
    signingKeys: SIGNING_KEYS,
  });
  const grant = await auth.login({
    identityId: IDENTITY_ID,
    jwt: await signIdpToken(key),
    clientIp: '127.0.0.1',
  });
  const authorizations = await fillTokens(setup.store, spread, { sample: spread });
  const app = expressApp();
  app.get('/hello', requireAccessToken(auth), hello);

  await drive(app, grant.accessToken, 20); // warm: prepared statements, script cache, connections
  const client0 = setup.roundTrips();
  const server0 = await setup.serverCount?.();
  await drive(app, grant.accessToken, rtRequests);
  const server1 = await setup.serverCount?.();
  const info: Record<string, string | number> = {
    store: setup.kind,
    storeRoundTripsPerRequest: (setup.roundTrips() - client0) / rtRequests,
    spread,
  };
  if (server0 !== undefined && server1 !== undefined)
    info.evalshaPerRequest = (server1 - server0) / rtRequests;
  return {
    listener: app,
    spec: {
      request: { ...bearerGet('/hello', grant.accessToken), ...(spread > 0 && { authorizations }) },
      smoke: guardSmoke('/hello', grant.accessToken, tamper(grant.accessToken)),
      info,
    },
  };
});
