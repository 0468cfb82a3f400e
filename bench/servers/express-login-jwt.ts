/**
 * Express 5 + `oidcAuthRouter(auth)`: `POST /oidc-auth/login` minting a JWT access token (RFC 9068,
 * Ed25519; `BENCH_ACCESS_ALG=ES256`: P-256) instead of an opaque one; otherwise as `express-login.ts`.
 */
import { oidcAuthRouter } from '../../adapters/express/index.js';
import { expressApp } from '../lib/express-app.js';
import { forgeIdpToken, IDENTITY_ID, makeIdpKey, signIdpToken } from '../lib/fixtures.js';
import { jwtEngine } from '../lib/jwt-access.js';
import { startBenchServer } from '../lib/server-kit.js';
import { jsonPost, loginSmoke } from '../lib/smoke.js';

const PATH = '/api/v1/auth/oidc-auth/login';

await startBenchServer(async () => {
  const key = makeIdpKey('RS256');
  const alg = process.env.BENCH_ACCESS_ALG === 'ES256' ? 'ES256' : 'EdDSA';
  const auth = jwtEngine(key, alg);
  const app = expressApp();
  app.use('/api/v1/auth', oidcAuthRouter(auth));
  const jwt = await signIdpToken(key);
  return {
    listener: app,
    spec: {
      request: jsonPost(PATH, { identityId: IDENTITY_ID, jwt }),
      smoke: [
        ...loginSmoke(PATH, IDENTITY_ID, jwt, await forgeIdpToken(key)),
        {
          name: 'JWT minted',
          request: jsonPost(PATH, { identityId: IDENTITY_ID, jwt }),
          status: 200,
          bodyIncludes: '"accessToken":"eyJ',
        },
      ],
      info: { format: 'jwt', alg },
    },
  };
});
