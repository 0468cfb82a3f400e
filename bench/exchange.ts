/**
 * The RFC 8693 token exchange against the Infisical login route, in process (no HTTP, so no
 * socket or load-generator noise): the framework-neutral answers each adapter calls, with the body
 * as the adapters' form parser leaves it. Cases alternate A, B, A, B… for `--rounds` rounds and the
 * ratio is taken per round (same process, same moment), then the median.
 * `npx tsx bench/exchange.ts [--rounds N] [--quick]`.
 */
import { parseArgs } from 'node:util';
import {
  TOKEN_EXCHANGE_GRANT,
  TOKEN_TYPE,
  createOidcAuth,
  loginAnswer,
  oauthTokenAnswer,
  parseRequestBody,
} from '../src/index.js';
import {
  benchIdentity,
  IDENTITY_ID,
  makeIdpKey,
  BENCH_RATE_LIMITS,
  SIGNING_KEYS,
  signIdpToken,
} from './lib/fixtures.js';
import {
  measureAlternating,
  throughputRatio,
  writeCaseMedians,
  type MicroCase,
} from './lib/micro-harness.js';

const { values } = parseArgs({
  options: { rounds: { type: 'string', default: '5' }, quick: { type: 'boolean', default: false } },
});
const rounds = Number(values.rounds);
const options = values.quick
  ? { batches: 5, batchMs: 20, warmupMs: 100 }
  : { batches: 15, batchMs: 60, warmupMs: 400 };

const key = makeIdpKey('RS256');
const auth = createOidcAuth({
  identities: [benchIdentity(key)],
  signingKeys: SIGNING_KEYS,
  rateLimits: BENCH_RATE_LIMITS,
});
const jwt = await signIdpToken(key);
const FORM = 'application/x-www-form-urlencoded';
const form = (fields: Record<string, string>) => new URLSearchParams(fields).toString();
const loginForm = form({ identityId: IDENTITY_ID, jwt });
const loginJson = JSON.stringify({ identityId: IDENTITY_ID, jwt });
const exchangeFields = {
  grant_type: TOKEN_EXCHANGE_GRANT,
  subject_token: jwt,
  subject_token_type: TOKEN_TYPE.jwt,
};
const named = form({ ...exchangeFields, client_id: IDENTITY_ID });
const selected = form(exchangeFields);

async function ok(answer: Promise<{ status: number }>): Promise<void> {
  const { status } = await answer;
  if (status !== 200) throw new Error(`answered ${status}`);
}

const cases: MicroCase[] = [
  {
    name: 'login (JSON body)',
    group: 'login',
    op: () => ok(loginAnswer(auth, parseRequestBody('application/json', loginJson), '127.0.0.1')),
  },
  {
    name: 'login (form body)',
    group: 'login',
    op: () => ok(loginAnswer(auth, parseRequestBody(FORM, loginForm), '127.0.0.1')),
  },
  {
    name: 'token exchange, client_id',
    group: 'exchange',
    op: () =>
      ok(
        oauthTokenAnswer(auth, {
          contentType: FORM,
          body: parseRequestBody(FORM, named),
          clientIp: '127.0.0.1',
        }),
      ),
  },
  {
    name: 'token exchange, selected',
    group: 'exchange',
    op: () =>
      ok(
        oauthTokenAnswer(auth, {
          contentType: FORM,
          body: parseRequestBody(FORM, selected),
          clientIp: '127.0.0.1',
        }),
      ),
  },
];

const results = await measureAlternating(cases, rounds, options);
writeCaseMedians(results, { pad: 28, digits: 1 });
for (const [a, b] of [
  ['token exchange, client_id', 'login (JSON body)'],
  ['token exchange, client_id', 'login (form body)'],
  ['token exchange, selected', 'login (JSON body)'],
] as const) {
  const wall = throughputRatio(results, a, b, (r) => r.wallNs);
  const cpu = throughputRatio(results, a, b, (r) => r.cpuNs);
  process.stdout.write(`${a} vs ${b}: throughput ${wall} (wall), ${cpu} (cpu)\n`);
}
await auth.close();
