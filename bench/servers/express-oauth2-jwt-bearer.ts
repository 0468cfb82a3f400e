/** Express 5 + express-oauth2-jwt-bearer verifying an IdP-style RS256 JWT, keys from a loopback JWKS (cached). */
import { auth } from 'express-oauth2-jwt-bearer';
import { expressApp, hello, jsonErrors } from '../lib/express-app.js';
import { AUDIENCE, forgeIdpToken, ISSUER, makeIdpKey, signIdpToken } from '../lib/fixtures.js';
import { startBenchServer } from '../lib/server-kit.js';
import { bearerGet, guardSmoke } from '../lib/smoke.js';

await startBenchServer(async (port) => {
  const key = makeIdpKey('RS256');
  const app = expressApp();
  const guard = auth({
    issuer: ISSUER,
    audience: AUDIENCE,
    jwksUri: `http://127.0.0.1:${port}/.well-known/jwks.json`,
    tokenSigningAlg: 'RS256',
  });
  app.get('/hello', guard, hello);
  jsonErrors(app);
  const token = await signIdpToken(key);
  return {
    listener: app,
    documents: { '/.well-known/jwks.json': { keys: [key.publicJwk] } },
    spec: {
      request: bearerGet('/hello', token),
      smoke: guardSmoke('/hello', token, await forgeIdpToken(key)),
    },
  };
});
