/**
 * The OpenTelemetry seam's cost on the guard's hot path, for instruction counting:
 * `valgrind --tool=callgrind node --import tsx bench/otel-seam.ts <none|api|sdk> <N>` runs N
 * sequential `auth.authenticate` calls on an engine with no instrumentation (`none`),
 * `instrumentOidcAuth()` with no SDK registered (`api`), or with a registered global SDK (`sdk`:
 * batch span processor and periodic metric reader into in-memory exporters, as `bench/lib/otel.ts`).
 * Each mode first runs N calls to warm up. With `SEAM_SYNC=<file>` it then writes `<file>.ready`
 * and waits for `<file>.go` before the N measured calls, so that a script can switch callgrind's
 * instrumentation on only for them (`--instr-atstart=no`, then `callgrind_control -i on <pid>`):
 * `bash bench/seam.sh otel-seam.ts` does, and prints instructions per call. Without valgrind it prints the wall
 * time per call.
 */
import { existsSync, writeFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { createOidcAuth } from '../src/index.js';
import { benchInstrumentation } from './lib/otel.js';
import { benchIdentity, IDENTITY_ID, makeIdpKey, SIGNING_KEYS, signIdpToken } from './lib/fixtures.js';

const mode = process.argv[2] ?? 'none';
const n = Number(process.argv[3] ?? 100_000);
const instrumentation = await benchInstrumentation(mode === 'none' ? undefined : mode);
const key = makeIdpKey('RS256');
const auth = createOidcAuth({
  identities: [benchIdentity(key)],
  signingKeys: SIGNING_KEYS,
  ...(instrumentation && { instrumentation }),
});
const grant = await auth.login({
  identityId: IDENTITY_ID,
  jwt: await signIdpToken(key),
  clientIp: '127.0.0.1',
});
const context = { clientIp: '127.0.0.1' };
for (let i = 0; i < n; i++) await auth.authenticate(grant.accessToken, context);
const sync = process.env.SEAM_SYNC;
if (sync) {
  writeFileSync(`${sync}.ready`, String(process.pid));
  while (!existsSync(`${sync}.go`)) await sleep(50);
}
const started = performance.now();
for (let i = 0; i < n; i++) await auth.authenticate(grant.accessToken, context);
const elapsed = performance.now() - started;
if (n > 0) process.stdout.write(`${mode}: ${((elapsed * 1000) / n).toFixed(3)} µs per authenticate\n`);
process.exit(0);
