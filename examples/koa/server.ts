/**
 * The Koa secrets API on its own:
 *
 *   IDENTITIES_FILE=identities.json PORT=8080 npx tsx examples/koa/server.ts
 *
 * Environment: `PORT` (default 8080), `HOST` (default `127.0.0.1`), `IDENTITIES_FILE` or
 * `IDENTITIES_JSON` (an array of identity configs), `ACCESS_TOKEN_SECRET` (≥ 32 bytes, e.g.
 * `openssl rand -base64 32`; default a random key per process), `BEHIND_PROXY=1` when one reverse
 * proxy runs in front of the app.
 */
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { createOidcAuth, type IdentityConfigInput } from '../../src/index.js';
import { createSecretsApp } from './app.js';

const text = process.env.IDENTITIES_FILE
  ? readFileSync(process.env.IDENTITIES_FILE, 'utf8')
  : process.env.IDENTITIES_JSON;
if (!text) throw new Error('set IDENTITIES_FILE or IDENTITIES_JSON to a JSON array of identity configs');

const auth = createOidcAuth({
  identities: JSON.parse(text) as IdentityConfigInput[],
  signingKeys: process.env.ACCESS_TOKEN_SECRET ? { k1: process.env.ACCESS_TOKEN_SECRET } : undefined,
});
const app = createSecretsApp({ auth, behindProxy: process.env.BEHIND_PROXY === '1' });
const server = app.listen(Number(process.env.PORT ?? 8080), process.env.HOST ?? '127.0.0.1', () => {
  const { address, port } = server.address() as AddressInfo;
  console.log(`koa secrets API listening on http://${address}:${port}`);
});

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => server.close(() => void auth.close().finally(() => process.exit(0))));
}
