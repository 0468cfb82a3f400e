/**
 * Issue 15: a Hono 4 route (`GET /hello` on `@hono/node-server`) behind `oidc-machine-auth/verify`
 * and behind hono's own `hono/jwk`, on the very same RFC 9068 access tokens (Ed25519, `typ: at+jwt`,
 * minted with jose as the token service mints them). The issuer's RFC 8414 metadata and JWKS are
 * served by this process outside the app (not counted). `BENCH_VARIANT`:
 * - `verify`: the middleware of examples/two-services around `createVerifier` (defaults: verified-token cache on);
 * - `verify-nocache`: the same with `cache: false` (every request verifies the signature);
 * - `jwk`: `hono/jwk` with the public JWK given once in `keys` (`iss`, `aud` and `typ` checked);
 * - `jwk-uri`: `hono/jwk` with `jwks_uri` (it has no key cache: it fetches the JWKS per request).
 * `BENCH_SPREAD=N` spreads requests at random over N distinct tokens (default 1).
 */
import { getRequestListener } from '@hono/node-server';
import { Hono, type MiddlewareHandler } from 'hono';
import { jwk } from 'hono/jwk';
import type { HonoJsonWebKey } from 'hono/utils/jwt/jws';
import { exportJWK, generateKeyPair } from 'jose';
import { requireAccessToken } from '../../examples/two-services/service-b.js';
import { createVerifier } from '../../src/verify/index.js';
import { HELLO } from '../lib/express-app.js';
import { AUDIENCE, mintAccessToken } from '../lib/access-token.js';
import { startBenchServer } from '../lib/server-kit.js';
import { helloSpec } from '../lib/smoke.js';

const variant = process.env.BENCH_VARIANT || 'verify';
const spread = Number(process.env.BENCH_SPREAD ?? 1);
await startBenchServer(async (port) => {
  const issuer = `http://127.0.0.1:${port}/auth`;
  const jwksPath = '/auth/.well-known/jwks.json';
  const { privateKey, publicKey } = await generateKeyPair('EdDSA');
  const publicJwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'EdDSA', use: 'sig' };
  const other = await generateKeyPair('EdDSA');
  const tokens = await Promise.all(
    Array.from({ length: spread }, () => mintAccessToken(issuer, privateKey, 'k1')),
  );
  const forged = await mintAccessToken(issuer, other.privateKey, 'k1');

  let guard: MiddlewareHandler;
  if (variant === 'verify' || variant === 'verify-nocache') {
    const verifier = createVerifier({
      issuer,
      audience: AUDIENCE,
      allowInsecureLoopback: true,
      ...(variant === 'verify-nocache' ? { cache: false as const } : {}),
    });
    guard = requireAccessToken(verifier) as unknown as MiddlewareHandler;
  } else if (variant === 'jwk' || variant === 'jwk-uri') {
    const verification = { iss: issuer, aud: AUDIENCE, typ: 'at+jwt' };
    guard =
      variant === 'jwk'
        ? jwk({ keys: [publicJwk as HonoJsonWebKey], alg: ['EdDSA'], verification })
        : jwk({ jwks_uri: `http://127.0.0.1:${port}${jwksPath}`, alg: ['EdDSA'], verification });
  } else {
    throw new Error(`unknown BENCH_VARIANT ${JSON.stringify(variant)}`);
  }
  const app = new Hono();
  app.use('/hello', guard);
  app.get('/hello', (c) => c.json(HELLO));
  const spec = helloSpec({ variant, tokens: spread, alg: 'EdDSA' }, tokens[0], forged);
  if (spread > 1) spec.request.authorizations = tokens.map((t) => `Bearer ${t}`);
  return {
    listener: getRequestListener(app.fetch),
    documents: {
      '/.well-known/oauth-authorization-server/auth': { issuer, jwks_uri: `${issuer}/.well-known/jwks.json` },
      [jwksPath]: { keys: [publicJwk] },
    },
    spec,
  };
});
