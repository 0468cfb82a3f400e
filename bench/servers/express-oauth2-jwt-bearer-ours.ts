/**
 * Express 5 + express-oauth2-jwt-bearer verifying OUR JWT access tokens (Ed25519, the same engine
 * configuration and key as `express-guard-jwt.ts`), finding them from our RFC 8414 metadata URL:
 * `auth({ issuerBaseURL: <metadata URL>, audience, strict: true })`. The metadata and the JWKS are
 * answered outside the app (not counted); the library caches both.
 */
import { auth as jwtBearer } from 'express-oauth2-jwt-bearer';
import { authorizationServerMetadata } from '../../src/index.js';
import { expressApp, hello, jsonErrors } from '../lib/express-app.js';
import { makeIdpKey } from '../lib/fixtures.js';
import { forgeJwt, jwtAccessToken, jwtEngine, OUR_ISSUER } from '../lib/jwt-access.js';
import { startBenchServer } from '../lib/server-kit.js';
import { helloSpec } from '../lib/smoke.js';

const METADATA = '/.well-known/oauth-authorization-server/api/v1/auth';

await startBenchServer(async (port) => {
  const key = makeIdpKey('RS256');
  const auth = jwtEngine(key);
  const token = await jwtAccessToken(auth, key);
  const metadata = {
    ...authorizationServerMetadata(OUR_ISSUER),
    // The JWKS is served on the bench server's loopback port (a real deployment's is `{issuer}/.well-known/jwks.json`).
    jwks_uri: `http://127.0.0.1:${port}/.well-known/jwks.json`,
  };
  const app = expressApp();
  app.get(
    '/hello',
    jwtBearer({ issuerBaseURL: `http://127.0.0.1:${port}${METADATA}`, audience: OUR_ISSUER, strict: true }),
    hello,
  );
  jsonErrors(app);
  return {
    listener: app,
    documents: { [METADATA]: metadata, '/.well-known/jwks.json': auth.jwks() },
    spec: helloSpec({ token: 'jwt-ed25519' }, token, forgeJwt(token)),
  };
});
