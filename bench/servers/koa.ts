/**
 * Koa 3: `GET /hello` answering a small JSON. `BENCH_VARIANT`:
 * - `bare` (default): the route alone, the baseline of every Koa run;
 * - `guard`: behind `requireAccessToken(auth)` from `adapters/koa` (`BENCH_STORE`: memory by default, or redis / postgres, see `lib/stores.ts`);
 * - `koa-jwt`: behind koa-jwt with jwks-rsa (`koaJwtSecret`, cache on) verifying an IdP-style RS256 JWT
 *   whose keys come from a loopback JWKS.
 * Every variant routes with the same hand-written path check, so only the guard differs.
 */
import jwksRsa from 'jwks-rsa';
import Koa, { type Middleware } from 'koa';
import compose from 'koa-compose';
import koaJwt from 'koa-jwt';
import { requireAccessToken } from '../../adapters/koa/index.js';
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

const hello: Middleware = (ctx) => {
  ctx.body = HELLO;
};

/** `GET /hello` through `guards`, every other request left to Koa's 404. */
function koaApp(guards: Middleware[]): Koa {
  const app = new Koa();
  // Refused smoke requests must not print stacks; Koa renders the status of thrown 401s itself.
  app.silent = true;
  const route = compose([...guards, hello]);
  app.use((ctx, next) => (ctx.method === 'GET' && ctx.path === '/hello' ? route(ctx, next) : next()));
  return app;
}

await startBenchServer(async (port) => {
  const key = makeIdpKey('RS256');
  let app: Koa;
  let token: string | undefined;
  let forged = '';
  let documents: Record<string, unknown> | undefined;
  if (variant === 'bare') {
    app = koaApp([]);
  } else if (variant === 'guard') {
    const engine = await loggedInEngine(key, (await setupStore()).store);
    const auth = engine.auth;
    ({ token, forged } = engine);
    app = koaApp([requireAccessToken(auth) as Middleware]);
  } else if (variant === 'koa-jwt') {
    const secret = jwksRsa.koaJwtSecret({
      jwksUri: `http://127.0.0.1:${port}/.well-known/jwks.json`,
      cache: true,
      rateLimit: true,
    });
    app = koaApp([koaJwt({ secret, algorithms: ['RS256'], issuer: ISSUER, audience: AUDIENCE })]);
    token = await signIdpToken(key);
    forged = await forgeIdpToken(key);
    documents = { '/.well-known/jwks.json': { keys: [key.publicJwk] } };
  } else {
    throw new Error(`unknown BENCH_VARIANT ${JSON.stringify(variant)}`);
  }
  const spec = helloSpec(token ? { variant, store: storeKind() } : { variant }, token, forged);
  return { listener: app.callback(), documents, spec };
});
