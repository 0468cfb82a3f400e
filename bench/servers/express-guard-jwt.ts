/**
 * Express 5 + `requireAccessToken(auth)` with a JWT access token (RFC 9068, Ed25519, identity
 * without a uses limit, memory store): verified signature kept in the LRU, store state reused for
 * `revocationCheckSeconds` (10 s) between store checks.
 */
import { requireAccessToken } from '../../adapters/express/index.js';
import { expressApp, hello } from '../lib/express-app.js';
import { makeIdpKey } from '../lib/fixtures.js';
import { forgeJwt, jwtAccessToken, jwtEngine } from '../lib/jwt-access.js';
import { startBenchServer } from '../lib/server-kit.js';
import { helloSpec } from '../lib/smoke.js';

await startBenchServer(async () => {
  const key = makeIdpKey('RS256');
  const auth = jwtEngine(key);
  const token = await jwtAccessToken(auth, key);
  const app = expressApp();
  app.get('/hello', requireAccessToken(auth), hello);
  return { listener: app, spec: helloSpec({ token: 'jwt-ed25519' }, token, forgeJwt(token)) };
});
