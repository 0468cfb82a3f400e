/**
 * One instance of the fleet: the secrets API with its token state in Redis. Start as many as you
 * like, anywhere, with the same `REDIS_URL`, `REDIS_PREFIX`, `ACCESS_TOKEN_SECRET` and identities:
 *
 *   ACCESS_TOKEN_SECRET=$(openssl rand -base64 32) IDENTITIES_FILE=identities.json PORT=8081 \
 *     npx tsx examples/multi-instance/instance.ts
 *
 * Environment:
 * - `ACCESS_TOKEN_SECRET`: secret (≥ 32 bytes, `openssl rand -base64 32`) for the app's own access
 *   tokens. Required: instances that share a token store must verify each other's tokens, so a
 *   random per-process key is refused.
 * - `IDENTITIES_FILE`: a JSON file holding an array of identity configs, or
 * - `IDENTITIES_JSON`: the same array inline.
 * - `REDIS_URL`: default `redis://127.0.0.1:6379`.
 * - `REDIS_PREFIX`: prefix of the keys the token store writes. Default `oma:`.
 * - `REDIS_TIMEOUT_MS`: longest wait for Redis per call before answering 503. Default 1000.
 * - `PORT`: default 8080 (0: a random free port). `HOST`: default `127.0.0.1`.
 * - `INSTANCE_NAME`: shown in the `x-instance` answer header and in logs. Default `PORT`'s value.
 * - `LOG_LEVEL`: `info` to log logins and refusals too; warnings and errors are always logged.
 *
 * Prints `instance <name> listening on <url>` once it accepts requests; stops on SIGTERM or SIGINT.
 */
import { readFileSync } from 'node:fs';
import type { IdentityConfigInput, Logger } from '../../src/index.js';
import { startInstance } from './app.js';

function required(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is required (make one with \`openssl rand -base64 32\`)`);
  return value;
}

function identitiesFromEnv(): IdentityConfigInput[] {
  const text = process.env.IDENTITIES_FILE
    ? readFileSync(process.env.IDENTITIES_FILE, 'utf8')
    : process.env.IDENTITIES_JSON;
  if (!text) throw new Error('set IDENTITIES_FILE or IDENTITIES_JSON to a JSON array of identity configs');
  const parsed: unknown = JSON.parse(text);
  if (!Array.isArray(parsed)) throw new Error('identities must be a JSON array of identity configs');
  return parsed as IdentityConfigInput[];
}

const verbose = process.env.LOG_LEVEL === 'info';
const line = (obj: object, msg?: string) => `${msg ?? ''} ${JSON.stringify(obj)}`;
const logger: Logger = {
  debug: () => {},
  info: (obj, msg) => {
    if (verbose) console.log(line(obj, msg));
  },
  warn: (obj, msg) => console.error(line(obj, msg)),
  error: (obj, msg) => console.error(line(obj, msg)),
};

const port = Number(process.env.PORT ?? 8080);
const instance = await startInstance({
  name: process.env.INSTANCE_NAME ?? String(port),
  identities: identitiesFromEnv(),
  signingKeys: { k1: required('ACCESS_TOKEN_SECRET') },
  redisUrl: process.env.REDIS_URL,
  redisPrefix: process.env.REDIS_PREFIX,
  timeoutMs: process.env.REDIS_TIMEOUT_MS ? Number(process.env.REDIS_TIMEOUT_MS) : undefined,
  port,
  host: process.env.HOST,
  logger,
});
console.log(`instance ${instance.name} listening on ${instance.url}`);

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    void instance.close().finally(() => process.exit(0));
  });
}
