/** Express 5 + express-jwt with jwks-rsa (cache on) verifying an IdP-style RS256 JWT from a loopback JWKS. */
import { expressjwt, type GetVerificationKey } from 'express-jwt';
import jwksRsa from 'jwks-rsa';
import { expressApp, hello, jsonErrors } from '../lib/express-app.js';
import { AUDIENCE, forgeIdpToken, ISSUER, makeIdpKey, signIdpToken } from '../lib/fixtures.js';
import { startBenchServer } from '../lib/server-kit.js';
import { bearerGet, guardSmoke } from '../lib/smoke.js';

await startBenchServer(async (port) => {
  const key = makeIdpKey('RS256');
  const app = expressApp();
  const secret = jwksRsa.expressJwtSecret({
    jwksUri: `http://127.0.0.1:${port}/.well-known/jwks.json`,
    cache: true,
    rateLimit: true,
  }) as GetVerificationKey;
  app.get('/hello', expressjwt({ secret, algorithms: ['RS256'], issuer: ISSUER, audience: AUDIENCE }), hello);
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
