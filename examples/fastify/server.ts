/**
 * The Fastify secrets API on its own:
 *
 *   IDENTITIES_FILE=identities.json PORT=8080 npx tsx examples/fastify/server.ts
 *
 * Environment: `PORT` (default 8080), `HOST` (default `127.0.0.1`), `IDENTITIES_FILE` or
 * `IDENTITIES_JSON` (an array of identity configs), `ACCESS_TOKEN_SECRET` (≥ 32 bytes, e.g.
 * `openssl rand -base64 32`; default a random key per process), `TRUST_PROXY` (Fastify's
 * `trustProxy`, e.g. `loopback` or `10.0.0.0/8`; default none).
 */
import { readFileSync } from 'node:fs';
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
const app = await createSecretsApp({ auth, trustProxy: process.env.TRUST_PROXY?.split(',') ?? false });
app.addHook('onClose', () => auth.close());
const url = await app.listen({
  port: Number(process.env.PORT ?? 8080),
  host: process.env.HOST ?? '127.0.0.1',
});
console.log(`fastify secrets API listening on ${url}`);

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => void app.close().finally(() => process.exit(0)));
}
