/**
 * The Hono secrets API on its own, served by `@hono/node-server`:
 *
 *   IDENTITIES_FILE=identities.json PORT=8080 npx tsx examples/hono/server.ts
 *
 * Environment: `PORT` (default 8080), `HOST` (default `127.0.0.1`), `IDENTITIES_FILE` or
 * `IDENTITIES_JSON` (an array of identity configs), `ACCESS_TOKEN_SECRET` (≥ 32 bytes, e.g.
 * `openssl rand -base64 32`; default a random key per process), `BEHIND_PROXY=1` when a reverse
 * proxy on this host (loopback) runs in front.
 */
import { readFileSync } from 'node:fs';
import { serve } from '@hono/node-server';
import { createOidcAuth, type IdentityConfigInput } from '../../src/index.js';
import { createSecretsApp } from './app.js';

const text = process.env.IDENTITIES_FILE
  ? readFileSync(process.env.IDENTITIES_FILE, 'utf8')
  : process.env.IDENTITIES_JSON;
if (!text) throw new Error('set IDENTITIES_FILE or IDENTITIES_JSON to a JSON array of identity configs');

const isLoopback = (ip: string) => ip === '127.0.0.1' || ip === '::1' || ip === '::ffff:127.0.0.1';
const auth = createOidcAuth({
  identities: JSON.parse(text) as IdentityConfigInput[],
  signingKeys: process.env.ACCESS_TOKEN_SECRET ? { k1: process.env.ACCESS_TOKEN_SECRET } : undefined,
});
const app = createSecretsApp({
  auth,
  isTrustedProxy: process.env.BEHIND_PROXY === '1' ? isLoopback : undefined,
});
const server = serve(
  { fetch: app.fetch, port: Number(process.env.PORT ?? 8080), hostname: process.env.HOST ?? '127.0.0.1' },
  ({ address, port }) => console.log(`hono secrets API listening on http://${address}:${port}`),
);

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => server.close(() => void auth.close().finally(() => process.exit(0))));
}
