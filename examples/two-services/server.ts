/**
 * Service B on its own, served by `@hono/node-server`:
 *
 *   ISSUER=https://a.example/api/v1/auth AUDIENCE=https://b.example PORT=8081 npx tsx examples/two-services/server.ts
 *
 * Environment: `ISSUER` (service A's issuer URL, exactly as A is configured), `AUDIENCE` (what A puts
 * in `aud` for B), `PORT` (default 8081), `HOST` (default `127.0.0.1`), `INTROSPECTION_CLIENT_ID` and
 * `INTROSPECTION_CLIENT_SECRET` (for `DELETE /reports/:id`), `ALLOW_INSECURE_LOOPBACK=1` for an
 * `http://127.0.0.1` issuer during development.
 */
import { serve } from '@hono/node-server';
import { createServiceB } from './service-b.js';

const { ISSUER, AUDIENCE, INTROSPECTION_CLIENT_ID, INTROSPECTION_CLIENT_SECRET } = process.env;
if (!ISSUER || !AUDIENCE) throw new Error('set ISSUER (service A) and AUDIENCE (this service)');

const app = createServiceB({
  issuer: ISSUER,
  audience: AUDIENCE,
  allowInsecureLoopback: process.env.ALLOW_INSECURE_LOOPBACK === '1',
  introspection:
    INTROSPECTION_CLIENT_ID && INTROSPECTION_CLIENT_SECRET
      ? { clientId: INTROSPECTION_CLIENT_ID, clientSecret: INTROSPECTION_CLIENT_SECRET }
      : undefined,
});
const server = serve(
  { fetch: app.fetch, port: Number(process.env.PORT ?? 8081), hostname: process.env.HOST ?? '127.0.0.1' },
  ({ address, port }) => console.log(`service B listening on http://${address}:${port}`),
);
for (const signal of ['SIGINT', 'SIGTERM'] as const)
  process.once(signal, () => server.close(() => process.exit(0)));
