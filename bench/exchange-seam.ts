/**
 * The RFC 8693 token exchange against the Infisical login route, for instruction counting:
 * `valgrind --tool=callgrind node --import tsx bench/exchange-seam.ts <mode> <N>` runs N sequential
 * calls of one of bench/lib/exchange-cases.ts's answers (`login`, `login-form`, `exchange`,
 * `exchange-select`: the answer each adapter calls, with the body its parser leaves, no HTTP). Each
 * mode first runs N calls to warm up; with `SEAM_SYNC=<file>` it then writes `<file>.ready` and waits
 * for `<file>.go` before the N measured calls: `bash bench/seam.sh exchange-seam.ts` prints the
 * instructions per call, which other work on the machine does not change (bench/exchange.ts times the
 * same calls). Start-up (RSA key generation's random cost among it) is never in a count.
 */
import { existsSync, writeFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { exchangeCases } from './lib/exchange-cases.js';

const mode = process.argv[2] ?? 'exchange';
const n = Number(process.argv[3] ?? 20_000);
const { auth, calls } = await exchangeCases();
if (!Object.hasOwn(calls, mode)) throw new Error(`mode must be one of ${Object.keys(calls).join(', ')}`);
const op = calls[mode as keyof typeof calls];
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
