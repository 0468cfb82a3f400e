/**
 * Run the secrets API on its own, for the README's pipeline step:
 *
 *   IDENTITIES_FILE=identities.json PORT=8080 npx tsx examples/secrets-api/server.ts
 *
 * Environment:
 * - `PORT`: port to listen on. Default 8080.
 * - `HOST`: address to listen on. Default `127.0.0.1`.
 * - `IDENTITIES_FILE`: a JSON file holding an array of identity configs, or
 * - `IDENTITIES_JSON`: the same array inline.
 * - `ACCESS_TOKEN_SECRET`: secret (≥ 32 bytes, e.g. `openssl rand -base64 32`) for the app's own
 *   access tokens. Default: random per process.
 * - `SECRETS_FILE`: secrets to serve. Default: `secrets.json` next to this file.
 */
import { readFileSync } from 'node:fs';
import { createOidcAuth, type IdentityConfigInput } from '../../src/index.js';
import { createSecretsApp, listen, loadSecrets } from './app.js';

function identitiesFromEnv(): IdentityConfigInput[] {
  const text = process.env.IDENTITIES_FILE
    ? readFileSync(process.env.IDENTITIES_FILE, 'utf8')
    : process.env.IDENTITIES_JSON;
  if (!text) throw new Error('set IDENTITIES_FILE or IDENTITIES_JSON to a JSON array of identity configs');
  const parsed: unknown = JSON.parse(text);
  if (!Array.isArray(parsed)) throw new Error('identities must be a JSON array of identity configs');
  return parsed as IdentityConfigInput[];
}

const auth = createOidcAuth({
  identities: identitiesFromEnv(),
  signingKeys: process.env.ACCESS_TOKEN_SECRET ? { k1: process.env.ACCESS_TOKEN_SECRET } : undefined,
  logger: {
    debug: () => {},
    info: (obj, msg) => console.log(msg ?? '', JSON.stringify(obj)),
    warn: (obj, msg) => console.warn(msg ?? '', JSON.stringify(obj)),
    error: (obj, msg) => console.error(msg ?? '', JSON.stringify(obj)),
  },
});
const app = createSecretsApp({
  auth,
  secrets: process.env.SECRETS_FILE ? loadSecrets(process.env.SECRETS_FILE) : undefined,
});
const running = await listen(app, Number(process.env.PORT ?? 8080), process.env.HOST ?? '127.0.0.1');
console.log(`secrets API listening on ${running.url}`);

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    void running
      .close()
      .then(() => auth.close())
      .finally(() => process.exit(0));
  });
}
