/**
 * The RFC 8693 token exchange against the Infisical login route, in process (no HTTP, so no
 * socket or load-generator noise): the framework-neutral answers each adapter calls, with the body
 * as the adapters' form parser leaves it. Cases alternate A, B, A, B… for `--rounds` rounds and the
 * ratio is taken per round (same process, same moment), then the median.
 * `npx tsx bench/exchange.ts [--rounds N] [--quick]`.
 */
import { parseArgs } from 'node:util';
import type { HttpAnswer } from '../src/index.js';
import { exchangeCases } from './lib/exchange-cases.js';
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

const { auth, calls } = await exchangeCases();

async function ok(answer: Promise<HttpAnswer>): Promise<void> {
  const { status } = await answer;
  if (status !== 200) throw new Error(`answered ${status}`);
}

const cases: MicroCase[] = [
  { name: 'login (JSON body)', group: 'login', op: () => ok(calls.login()) },
  { name: 'login (form body)', group: 'login', op: () => ok(calls['login-form']()) },
  { name: 'token exchange, client_id', group: 'exchange', op: () => ok(calls.exchange()) },
  { name: 'token exchange, selected', group: 'exchange', op: () => ok(calls['exchange-select']()) },
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
