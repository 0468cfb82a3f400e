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
import { measureCase, type MicroCase, type MicroResult } from './lib/micro-harness.js';
import { median } from './lib/stats.js';

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

const results = new Map<string, MicroResult[]>(cases.map((c) => [c.name, []]));
for (let round = 0; round < rounds; round++) {
  const order = round % 2 === 0 ? cases : [...cases].reverse();
  for (const c of order) results.get(c.name)!.push(await measureCase(c, options));
}
const perOp = (name: string, pick: (r: MicroResult) => number) => results.get(name)!.map(pick);
const us = (ns: number) => (ns / 1000).toFixed(1);
for (const c of cases) {
  process.stdout.write(
    `${c.name.padEnd(28)} wall ${us(median(perOp(c.name, (r) => r.wallNs)))} µs/op  cpu ${us(median(perOp(c.name, (r) => r.cpuNs)))} µs/op\n`,
  );
}
const ratio = (a: string, b: string, pick: (r: MicroResult) => number) => {
  const per = perOp(a, pick).map((x, i) => perOp(b, pick)[i]! / x); // throughput ratio = b time / a time
  return `${median(per).toFixed(2)}x (rounds ${Math.min(...per).toFixed(2)}–${Math.max(...per).toFixed(2)})`;
};
for (const [a, b] of [
  ['token exchange, client_id', 'login (JSON body)'],
  ['token exchange, client_id', 'login (form body)'],
  ['token exchange, selected', 'login (JSON body)'],
] as const) {
  process.stdout.write(
    `${a} vs ${b}: throughput ${ratio(a, b, (r) => r.wallNs)} (wall), ${ratio(a, b, (r) => r.cpuNs)} (cpu)\n`,
  );
}
await auth.close();
