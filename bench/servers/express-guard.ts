/**
 * Express 5 + `requireAccessToken(auth)`. Knobs: `BENCH_STORE` (`memory`, the default),
 * `BENCH_IDENTITIES` (filler identities added, default 0), `BENCH_LIVE_TOKENS` (filler live tokens, default 0),
 * `BENCH_SPREAD` (under load, requests spread at random over this many of the filler tokens instead of
 * all using the logged-in one; default 0).
 */
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

const storeKind = process.env.BENCH_STORE || 'memory';
if (storeKind !== 'memory') throw new Error(`BENCH_STORE=${storeKind} is not wired yet`);
const identities = intEnv('BENCH_IDENTITIES', 0);
const liveTokens = intEnv('BENCH_LIVE_TOKENS', 0);
const spread = intEnv('BENCH_SPREAD', 0);

await startBenchServer(async () => {
  const key = makeIdpKey('RS256');
  const tokens = new MemoryTokenStore();
  const auth = createOidcAuth({
    identities: [benchIdentity(key), ...fillerIdentities(key, identities)],
    tokens,
    signingKeys: SIGNING_KEYS,
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
      info: { store: storeKind, identities: identities + 1, liveTokens: liveTokens + 1, spread },
    },
  };
});
