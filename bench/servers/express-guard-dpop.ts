/**
 * Express 5 + `requireAccessToken(auth)` with a DPoP-bound JWT access token (RFC 9449, `cnf.jkt`;
 * Ed25519 token, no uses limit, memory store and memory replay cache): every request carries
 * `Authorization: DPoP` and a proof of its own (ES256, fresh `jti`), checked per RFC 9449 §4.3.
 */
import { requireAccessToken } from '../../adapters/express/index.js';
import { dpopAccessToken, dpopEngine, dpopHelloSpec } from '../lib/dpop-access.js';
import { expressApp, hello } from '../lib/express-app.js';
import { makeIdpKey } from '../lib/fixtures.js';
import { startBenchServer } from '../lib/server-kit.js';

await startBenchServer(async (port) => {
  const key = makeIdpKey('RS256');
  const auth = dpopEngine(key);
  const { token, maker } = await dpopAccessToken(auth, key);
  const app = expressApp();
  app.get('/hello', requireAccessToken(auth), hello);
  return { listener: app, spec: dpopHelloSpec(port, token, maker, { replay: true }) };
});
