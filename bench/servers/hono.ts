/**
 * Hono 4 on `@hono/node-server` (`getRequestListener`): `GET /hello` answering a small JSON. `BENCH_VARIANT`:
 * - `bare` (default): the route alone, the baseline of every Hono run;
 * - `guard`: behind `requireAccessToken(auth)` from `adapters/hono` (`BENCH_STORE`: memory by default, or redis / postgres, see `lib/stores.ts`, socket address);
 * - `jwk`: behind `hono/jwk` with the IdP's public JWK given once in `keys` (RS256, `iss` and `aud` checked);
 * - `jwk-uri`: the same with `jwks_uri` pointing at a loopback JWKS (hono/jwk has no cache of its own).
 */
import { getRequestListener } from '@hono/node-server';
import { Hono, type MiddlewareHandler } from 'hono';
import { jwk } from 'hono/jwk';
import type { HonoJsonWebKey } from 'hono/utils/jwt/jws';
import { requireAccessToken } from '../../adapters/hono/index.js';
import { HELLO } from '../lib/express-app.js';
import {
  AUDIENCE,
  forgeIdpToken,
  loggedInEngine,
  ISSUER,
  makeIdpKey,
  signIdpToken,
} from '../lib/fixtures.js';
import { startBenchServer } from '../lib/server-kit.js';
import { helloSpec } from '../lib/smoke.js';
import { setupStore, storeKind } from '../lib/stores.js';

const variant = process.env.BENCH_VARIANT || 'bare';

await startBenchServer(async (port) => {
  const key = makeIdpKey('RS256');
  const guards: MiddlewareHandler[] = [];
  let token: string | undefined;
  let forged = '';
  let documents: Record<string, unknown> | undefined;
  if (variant === 'guard') {
    const engine = await loggedInEngine(key, (await setupStore()).store);
    const auth = engine.auth;
    ({ token, forged } = engine);
    guards.push(requireAccessToken(auth) as unknown as MiddlewareHandler);
  } else if (variant === 'jwk' || variant === 'jwk-uri') {
    const verification = { iss: ISSUER, aud: AUDIENCE };
    guards.push(
      variant === 'jwk'
        ? jwk({ keys: [key.publicJwk as HonoJsonWebKey], alg: ['RS256'], verification })
        : jwk({ jwks_uri: `http://127.0.0.1:${port}/.well-known/jwks.json`, alg: ['RS256'], verification }),
    );
    token = await signIdpToken(key);
    forged = await forgeIdpToken(key);
    documents = { '/.well-known/jwks.json': { keys: [key.publicJwk] } };
  } else if (variant !== 'bare') {
    throw new Error(`unknown BENCH_VARIANT ${JSON.stringify(variant)}`);
  }
  const app = new Hono();
  for (const g of guards) app.use('/hello', g);
  app.get('/hello', (c) => c.json(HELLO));
  const spec = helloSpec(token ? { variant, store: storeKind() } : { variant }, token, forged);
  return { listener: getRequestListener(app.fetch), documents, spec };
});
