/**
 * Express 5 + `oidcAuthRouter(auth)` at `/api/v1/auth`, the same identity and IdP token as
 * `express-login.ts`, driven through a form body. Knob `BENCH_EXCHANGE_ROUTE`:
 * - `exchange` (default): `POST /oauth/token`, RFC 8693 token exchange naming the identity by `client_id`;
 * - `select`: the same exchange without `client_id` (the identity selected by issuer and subject);
 * - `login-form`: `POST /oidc-auth/login` with the same fields as a form (Infisical's GitHub action).
 */
import { oidcAuthRouter } from '../../adapters/express/index.js';
import { createOidcAuth, TOKEN_EXCHANGE_GRANT, TOKEN_TYPE } from '../../src/index.js';
import type { BenchRequest } from '../lib/protocol.js';
import { expressApp } from '../lib/express-app.js';
import {
  benchIdentity,
  forgeIdpToken,
  IDENTITY_ID,
  makeIdpKey,
  BENCH_RATE_LIMITS,
  SIGNING_KEYS,
  signIdpToken,
} from '../lib/fixtures.js';
import { startBenchServer } from '../lib/server-kit.js';

const route = process.env.BENCH_EXCHANGE_ROUTE ?? 'exchange';
const LOGIN = '/api/v1/auth/oidc-auth/login';
const TOKEN = '/api/v1/auth/oauth/token';

function formPost(path: string, fields: Record<string, string>): BenchRequest {
  return {
    method: 'POST',
    path,
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(fields).toString(),
  };
}

await startBenchServer(async () => {
  const key = makeIdpKey('RS256');
  const auth = createOidcAuth({
    identities: [benchIdentity(key)],
    signingKeys: SIGNING_KEYS,
    rateLimits: BENCH_RATE_LIMITS,
  });
  const app = expressApp();
  app.use('/api/v1/auth', oidcAuthRouter(auth));
  const jwt = await signIdpToken(key);
  const forged = await forgeIdpToken(key);
  const exchange = (subject_token: string): Record<string, string> => ({
    grant_type: TOKEN_EXCHANGE_GRANT,
    subject_token,
    subject_token_type: TOKEN_TYPE.jwt,
    ...(route === 'select' ? {} : { client_id: IDENTITY_ID }),
  });
  if (route === 'login-form') {
    return {
      listener: app,
      spec: {
        request: formPost(LOGIN, { identityId: IDENTITY_ID, jwt }),
        smoke: [
          {
            name: 'valid',
            request: formPost(LOGIN, { identityId: IDENTITY_ID, jwt }),
            status: 200,
            bodyIncludes: 'accessToken',
          },
          { name: 'forged', request: formPost(LOGIN, { identityId: IDENTITY_ID, jwt: forged }), status: 401 },
        ],
        info: { route },
      },
    };
  }
  return {
    listener: app,
    spec: {
      request: formPost(TOKEN, exchange(jwt)),
      smoke: [
        { name: 'valid', request: formPost(TOKEN, exchange(jwt)), status: 200, bodyIncludes: 'access_token' },
        { name: 'forged', request: formPost(TOKEN, exchange(forged)), status: 400 },
        {
          name: 'wrong grant',
          request: formPost(TOKEN, { ...exchange(jwt), grant_type: 'password' }),
          status: 400,
        },
      ],
      info: { route },
    },
  };
});
