/**
 * Express 5 + `oidcAuthRouter(auth)` at `/api/v1/auth`: `POST /oidc-auth/login` with a valid RS256 IdP
 * token (static public key identity, memory stores). Knob: `BENCH_IDENTITIES` (filler identities, default 0).
 */
import { oidcAuthRouter } from '../../adapters/express/index.js';
import { createOidcAuth } from '../../src/index.js';
import { expressApp } from '../lib/express-app.js';
import {
  benchIdentity,
  fillerIdentities,
  forgeIdpToken,
  IDENTITY_ID,
  makeIdpKey,
  BENCH_RATE_LIMITS,
  SIGNING_KEYS,
  signIdpToken,
} from '../lib/fixtures.js';
import { intEnv, startBenchServer } from '../lib/server-kit.js';
import { jsonPost, loginSmoke } from '../lib/smoke.js';

const identities = intEnv('BENCH_IDENTITIES', 0);
const PATH = '/api/v1/auth/oidc-auth/login';

await startBenchServer(async () => {
  const key = makeIdpKey('RS256');
  const auth = createOidcAuth({
    identities: [benchIdentity(key), ...fillerIdentities(key, identities)],
    signingKeys: SIGNING_KEYS,
    rateLimits: BENCH_RATE_LIMITS,
  });
  const app = expressApp();
  app.use('/api/v1/auth', oidcAuthRouter(auth));
  const jwt = await signIdpToken(key);
  return {
    listener: app,
    spec: {
      request: jsonPost(PATH, { identityId: IDENTITY_ID, jwt }),
      smoke: loginSmoke(PATH, IDENTITY_ID, jwt, await forgeIdpToken(key)),
      info: { identities: identities + 1 },
    },
  };
});
