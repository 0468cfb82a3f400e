/**
 * Express 5 + express-oauth2-jwt-bearer in its DPoP mode (`dpop: { enabled: true, required: true }`,
 * `authRequired`) on the same DPoP-bound JWT access tokens and proofs as `express-guard-dpop.ts`,
 * finding the keys from our RFC 8414 metadata URL (answered outside the app, cached by the library).
 * It keeps no proof `jti`s, so it does not refuse a replayed proof.
 */
import { auth as jwtBearer } from 'express-oauth2-jwt-bearer';
import { authorizationServerMetadata } from '../../src/index.js';
import {
  BENCH_PROOF_WINDOW_SECONDS,
  dpopAccessToken,
  dpopEngine,
  dpopHelloSpec,
} from '../lib/dpop-access.js';
import { expressApp, hello, jsonErrors } from '../lib/express-app.js';
import { makeIdpKey } from '../lib/fixtures.js';
import { OUR_ISSUER } from '../lib/jwt-access.js';
import { startBenchServer } from '../lib/server-kit.js';

const METADATA = '/.well-known/oauth-authorization-server/api/v1/auth';

await startBenchServer(async (port) => {
  const key = makeIdpKey('RS256');
  const auth = dpopEngine(key);
  const { token, maker } = await dpopAccessToken(auth, key);
  const metadata = {
    ...authorizationServerMetadata(OUR_ISSUER),
    jwks_uri: `http://127.0.0.1:${port}/.well-known/jwks.json`,
  };
  const app = expressApp();
  app.get(
    '/hello',
    jwtBearer({
      issuerBaseURL: `http://127.0.0.1:${port}${METADATA}`,
      audience: OUR_ISSUER,
      strict: true,
      authRequired: true,
      dpop: { enabled: true, required: true, iatOffset: BENCH_PROOF_WINDOW_SECONDS },
    }),
    hello,
  );
  jsonErrors(app);
  return {
    listener: app,
    documents: { [METADATA]: metadata, '/.well-known/jwks.json': auth.jwks() },
    // It answers a missing proof and a bound token sent as Bearer 400 (invalid_request).
    spec: dpopHelloSpec(port, token, maker, { replay: false, refusal: 400 }),
  };
});
