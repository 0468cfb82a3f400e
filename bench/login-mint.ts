/**
 * What minting a JWT access token adds to a login, in process (no HTTP): `--logins` logins of one
 * kind (`--kind opaque|jwt`, or both), 16 in flight, after `--warmup` unmeasured ones. Prints, per
 * login, the wall time, the event loop's busy time (what limits a server's requests/s) and the
 * process CPU (every thread: the IdP token's RSA check and, for a JWT, the Ed25519 signature run on
 * libuv's thread pool).
 *
 * `npx tsx bench/login-mint.ts [--kind jwt] [--logins 5000] [--warmup 500]`
 *
 * Noise-free instruction counts, per thread (file `-01` is the event loop): run each kind twice
 * under callgrind with two `--warmup` values and subtract, so start-up cancels out, e.g.
 * `valgrind --tool=callgrind --separate-threads=yes --callgrind-out-file=/tmp/cg.jwt.200 \
 *   node --import tsx bench/login-mint.ts --kind jwt --logins 1 --warmup 200` (and `--warmup 1200`);
 * the IdP key is generated per run, so subtract `RSA_generate_multi_prime_key`'s inclusive count.
 */
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { createOidcAuth, type OidcAuth } from '../src/index.js';
import {
  BENCH_RATE_LIMITS,
  benchIdentity,
  IDENTITY_ID,
  makeIdpKey,
  SIGNING_KEYS,
  signIdpToken,
} from './lib/fixtures.js';
import { jwtEngine } from './lib/jwt-access.js';

const { values } = parseArgs({
  options: {
    kind: { type: 'string' },
    logins: { type: 'string', default: '5000' },
    warmup: { type: 'string', default: '500' },
  },
});
const logins = Number(values.logins);
const warmup = Number(values.warmup);
const IN_FLIGHT = 16;

const key = makeIdpKey('RS256');
const jwt = await signIdpToken(key);
const engines: Record<string, OidcAuth> = {
  opaque: createOidcAuth({
    identities: [benchIdentity(key)],
    signingKeys: SIGNING_KEYS,
    rateLimits: BENCH_RATE_LIMITS,
  }),
  jwt: jwtEngine(key),
};

async function run(auth: OidcAuth, count: number): Promise<void> {
  let started = 0;
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      while (started++ < count) await auth.login({ identityId: IDENTITY_ID, jwt, clientIp: '127.0.0.1' });
    }),
  );
}

for (const [kind, auth] of Object.entries(engines)) {
  if (values.kind !== undefined && values.kind !== kind) continue;
  await run(auth, warmup);
  const loop = performance.eventLoopUtilization();
  const cpu = process.cpuUsage();
  const start = performance.now();
  await run(auth, logins);
  const wall = ((performance.now() - start) * 1000) / logins;
  const busy = (performance.eventLoopUtilization(loop).active * 1000) / logins;
  const used = process.cpuUsage(cpu);
  const perLogin = (used.user + used.system) / logins;
  console.log(
    `${kind.padEnd(6)} wall ${wall.toFixed(1)} µs  event loop busy ${busy.toFixed(1)} µs  CPU ${perLogin.toFixed(1)} µs per login`,
  );
}
await Promise.all(Object.values(engines).map((auth) => auth.close()));
