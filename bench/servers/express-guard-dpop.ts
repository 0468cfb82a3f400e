/**
 * Express 5 + `requireAccessToken(auth)` with a DPoP-bound JWT access token (RFC 9449, `cnf.jkt`;
 * Ed25519 token, no uses limit, memory store): every request carries `Authorization: DPoP` and a
 * proof of its own (ES256, fresh `jti`), checked per RFC 9449 §4.3. Knobs:
 * - `BENCH_PROOF_CHECKS`: where proof signatures are checked (`dpop.proofChecks`), `worker` (default) or
 *   `thread-pool`;
 * - `BENCH_REPLAY`: the replay cache of the proofs' `jti`s, `memory` (default) or `redis`
 *   (`RedisReplayCache`, default options: see `lib/dpop-access.ts`);
 * - `BENCH_RT_REQUESTS` (default 400): with Redis, before answering its spec line the server sends
 *   that many guarded requests to a throw-away listener of the same app and reports the replay
 *   cache's Redis commands per request in `info` (`replayRoundTripsPerRequest`, client side).
 */
import { requireAccessToken } from '../../adapters/express/index.js';
import {
  benchReplayCache,
  dpopAccessToken,
  dpopEngine,
  dpopHelloSpec,
  replayRoundTrips,
} from '../lib/dpop-access.js';
import { expressApp, hello } from '../lib/express-app.js';
import { makeIdpKey } from '../lib/fixtures.js';
import { intEnv, startBenchServer } from '../lib/server-kit.js';

await startBenchServer(async (port) => {
  const key = makeIdpKey('RS256');
  const replay = await benchReplayCache();
  const auth = dpopEngine(key, replay.cache);
  const { token, maker } = await dpopAccessToken(auth, key);
  const app = expressApp();
  app.get('/hello', requireAccessToken(auth), hello);
  const info: Record<string, string | number> = {
    replayCache: replay.kind,
    proofChecks: process.env.BENCH_PROOF_CHECKS === 'thread-pool' ? 'thread-pool' : 'worker',
  };
  if (replay.kind !== 'memory') {
    const count = intEnv('BENCH_RT_REQUESTS', 400);
    info.replayRoundTripsPerRequest = await replayRoundTrips(app, token, maker, replay, count);
  }
  return { listener: app, spec: dpopHelloSpec(port, token, maker, { replay: true, info }) };
});
