/**
 * Fastify 5: `GET /hello` answering a small JSON. `BENCH_VARIANT`:
 * - `bare` (default): the route alone, the baseline of every Fastify run;
 * - `guard`: behind `requireAccessToken(auth)` from `adapters/fastify` as the route's `preHandler` (`BENCH_STORE`: memory by default, or redis / postgres, see `lib/stores.ts`);
 * - `fastify-jwt`: behind @fastify/jwt (`request.jwtVerify()` as `preHandler`) verifying an IdP-style RS256 JWT
 *   with the public key given once (PEM), `iss` and `aud` checked, fast-jwt's token cache left off (its default).
 * The harness owns the `node:http` server, so Fastify's request handler is taken through `serverFactory`.
 */
import { createServer, type RequestListener } from 'node:http';
import fastifyJwt from '@fastify/jwt';
import Fastify, { type FastifyReply, type FastifyRequest, type preHandlerAsyncHookHandler } from 'fastify';
import { requireAccessToken } from '../../adapters/fastify/index.js';
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

await startBenchServer(async () => {
  const key = makeIdpKey('RS256');
  let handler: RequestListener | undefined;
  const app = Fastify({
    logger: false,
    serverFactory: (h) => {
      handler = h as RequestListener;
      return createServer();
    },
  });
  let preHandler: preHandlerAsyncHookHandler | undefined;
  let token: string | undefined;
  let forged = '';
  if (variant === 'guard') {
    const engine = await loggedInEngine(key, (await setupStore()).store);
    const auth = engine.auth;
    ({ token, forged } = engine);
    preHandler = requireAccessToken(auth);
  } else if (variant === 'fastify-jwt') {
    await app.register(fastifyJwt, {
      secret: { public: key.publicKey.export({ type: 'spki', format: 'pem' }).toString(), private: 'unused' },
      verify: { algorithms: ['RS256'], allowedIss: ISSUER, allowedAud: AUDIENCE },
    });
    preHandler = async (request: FastifyRequest, reply: FastifyReply) => {
      try {
        await request.jwtVerify();
      } catch {
        await reply.code(401).send({ error: 'invalid_token' });
      }
    };
    token = await signIdpToken(key);
    forged = await forgeIdpToken(key);
  } else if (variant !== 'bare') {
    throw new Error(`unknown BENCH_VARIANT ${JSON.stringify(variant)}`);
  }
  app.get('/hello', preHandler ? { preHandler } : {}, async () => HELLO);
  await app.ready();
  if (!handler) throw new Error('fastify did not call serverFactory');
  const spec = helloSpec(token ? { variant, store: storeKind() } : { variant }, token, forged);
  return { listener: handler, spec };
});
