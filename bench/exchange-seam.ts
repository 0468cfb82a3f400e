/**
 * The RFC 8693 token exchange against the Infisical login route, for instruction counting:
 * `valgrind --tool=callgrind node --import tsx bench/exchange-seam.ts <mode> <N>` runs N sequential
 * calls of the framework-neutral answer each adapter calls, with the body as the adapters' parser
 * leaves it (no HTTP): `login` (`loginAnswer`, JSON body, as Infisical's clients send it),
 * `login-form` (the same fields as a form), `exchange` (`oauthTokenAnswer`, naming the identity by
 * `client_id`) and `exchange-select` (the identity selected by the token's issuer and subject). Each
 * mode first runs N calls to warm up; with `SEAM_SYNC=<file>` it then writes `<file>.ready` and waits
 * for `<file>.go` before the N measured calls: `bash bench/seam.sh exchange-seam.ts` prints the
 * instructions per call, which other work on the machine does not change (bench/exchange.ts times the
 * same calls). Start-up (RSA key generation's random cost among it) is never in a count.
 */
import { existsSync, writeFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  TOKEN_EXCHANGE_GRANT,
  TOKEN_TYPE,
  createOidcAuth,
  loginAnswer,
  oauthTokenAnswer,
  parseRequestBody,
  type HttpAnswer,
} from '../src/index.js';
import {
  benchIdentity,
  IDENTITY_ID,
  makeIdpKey,
  BENCH_RATE_LIMITS,
  SIGNING_KEYS,
  signIdpToken,
} from './lib/fixtures.js';

const mode = process.argv[2] ?? 'exchange';
const n = Number(process.argv[3] ?? 20_000);
const key = makeIdpKey('RS256');
const auth = createOidcAuth({
  identities: [benchIdentity(key)],
  signingKeys: SIGNING_KEYS,
  rateLimits: BENCH_RATE_LIMITS,
});
const jwt = await signIdpToken(key);
const FORM = 'application/x-www-form-urlencoded';
const form = (fields: Record<string, string>) => new URLSearchParams(fields).toString();
const exchangeFields = {
  grant_type: TOKEN_EXCHANGE_GRANT,
  subject_token: jwt,
  subject_token_type: TOKEN_TYPE.jwt,
};
const bodies = {
  login: JSON.stringify({ identityId: IDENTITY_ID, jwt }),
  'login-form': form({ identityId: IDENTITY_ID, jwt }),
  exchange: form({ ...exchangeFields, client_id: IDENTITY_ID }),
  'exchange-select': form(exchangeFields),
};
const ops: Record<keyof typeof bodies, () => Promise<HttpAnswer>> = {
  login: () => loginAnswer(auth, parseRequestBody('application/json', bodies.login), '127.0.0.1'),
  'login-form': () => loginAnswer(auth, parseRequestBody(FORM, bodies['login-form']), '127.0.0.1'),
  exchange: () =>
    oauthTokenAnswer(auth, {
      contentType: FORM,
      body: parseRequestBody(FORM, bodies.exchange),
      clientIp: '127.0.0.1',
    }),
  'exchange-select': () =>
    oauthTokenAnswer(auth, {
      contentType: FORM,
      body: parseRequestBody(FORM, bodies['exchange-select']),
      clientIp: '127.0.0.1',
    }),
};
if (!Object.hasOwn(ops, mode)) throw new Error(`mode must be one of ${Object.keys(ops).join(', ')}`);
const op = ops[mode as keyof typeof ops];
const first = await op();
if (first.status !== 200) throw new Error(`${mode} answered ${first.status}: ${JSON.stringify(first.body)}`);
for (let i = 0; i < n; i++) await op();
const sync = process.env.SEAM_SYNC;
if (sync) {
  writeFileSync(`${sync}.ready`, String(process.pid));
  while (!existsSync(`${sync}.go`)) await sleep(50);
}
const started = performance.now();
for (let i = 0; i < n; i++) await op();
const elapsed = performance.now() - started;
if (n > 0) process.stdout.write(`${mode}: ${((elapsed * 1000) / n).toFixed(3)} µs per call\n`);
await auth.close();
process.exit(0);
