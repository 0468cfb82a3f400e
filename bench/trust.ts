/**
 * Shared trust at scale (issue 14): 10,000 identities referencing one trust entry against 10
 * identities referencing the same entry, in one run.
 *
 *     npx tsx bench/trust.ts [--identities 10000] [--seconds 3] [--rounds 3] [--concurrency 32] [--json]
 *
 * One loopback IdP (`test/helpers/idp-server.ts`, ES256, discovery + JWKS hits counted) and one
 * trust entry discovering it (`oidcDiscoveryUrl`, `allowInsecureLoopback`, entry audiences). Each
 * identity adds only its own `boundSubject`; every login uses a token minted for its identity
 * (subjects differ), spread over all identities in turn. Logins are in-process `auth.login()`
 * calls (no HTTP), `concurrency` in flight, for `seconds` per round; the two configurations
 * alternate for `rounds` rounds and the median requests per second of each is reported, with
 * the ratio. Fetches are counted over the whole run of the large configuration, cold start
 * included: the claim is exactly one discovery and one JWKS fetch in total.
 */
import { parseArgs } from 'node:util';
import { createOidcAuth, type OidcAuth } from '../src/index.js';
import { BENCH_RATE_LIMITS } from './lib/fixtures.js';
import { createSigningKey, startTestIdp, type TestIdp } from '../test/helpers/idp-server.js';

const { values } = parseArgs({
  options: {
    identities: { type: 'string', default: '10000' },
    seconds: { type: 'string', default: '3' },
    rounds: { type: 'string', default: '3' },
    concurrency: { type: 'string', default: '32' },
    json: { type: 'boolean', default: false },
  },
});
const LARGE = Number(values.identities);
const SMALL = 10;
const SECONDS = Number(values.seconds);
const ROUNDS = Number(values.rounds);
const CONCURRENCY = Number(values.concurrency);
const AUDIENCE = 'https://bench.example/app';

interface Setup {
  name: string;
  identities: number;
  idp: TestIdp;
  auth: OidcAuth;
  jwts: string[];
  rps: number[];
  /** Logins per second of this process's CPU time (user + system): steadier on a shared machine. */
  cpuRps: number[];
}

async function setup(identities: number): Promise<Setup> {
  const idp = await startTestIdp({ keys: [createSigningKey('ES256', `bench-${identities}`)] });
  const auth = createOidcAuth({
    trust: [
      {
        trustId: 'ci',
        issuer: idp.issuer,
        oidcDiscoveryUrl: idp.issuer,
        allowInsecureLoopback: true,
        audiences: AUDIENCE,
      },
    ],
    identities: Array.from({ length: identities }, (_, i) => ({
      identityId: `repo-${i}`,
      trust: 'ci',
      boundSubject: `repo:acme-corp/repo-${i}:ref:refs/heads/main`,
    })),
    signingKeys: { k1: 'a-bench-signing-secret-of-at-least-32-bytes!' },
    keys: { cacheMaxAgeMs: 3_600_000, cooldownMs: 30_000 },
    rateLimits: BENCH_RATE_LIMITS,
  });
  const now = Math.floor(Date.now() / 1000);
  const jwts = await Promise.all(
    Array.from({ length: identities }, (_, i) =>
      idp.sign({
        sub: `repo:acme-corp/repo-${i}:ref:refs/heads/main`,
        aud: AUDIENCE,
        iat: now,
        exp: now + 3600,
      }),
    ),
  );
  return {
    name: `${identities} identities, one trust entry`,
    identities,
    idp,
    auth,
    jwts,
    rps: [],
    cpuRps: [],
  };
}

async function round(s: Setup): Promise<{ rps: number; cpuRps: number }> {
  const end = performance.now() + SECONDS * 1000;
  const cpu = process.cpuUsage();
  let next = 0;
  let done = 0;
  let failed = 0;
  const start = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (performance.now() < end) {
        const i = next++ % s.identities;
        try {
          await s.auth.login({ identityId: `repo-${i}`, jwt: s.jwts[i]!, clientIp: '127.0.0.1' });
          done++;
        } catch {
          failed++;
        }
      }
    }),
  );
  if (failed > 0) throw new Error(`${failed} logins failed in ${s.name}`);
  const used = process.cpuUsage(cpu);
  return {
    rps: done / ((performance.now() - start) / 1000),
    cpuRps: done / ((used.user + used.system) / 1e6),
  };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const small = await setup(SMALL);
const large = await setup(LARGE);
try {
  // Cold start of the large configuration: every identity logs in once (10,000 distinct logins).
  const coldStart = performance.now();
  for (let i = 0; i < LARGE; i += CONCURRENCY) {
    await Promise.all(
      large.jwts
        .slice(i, i + CONCURRENCY)
        .map((jwt, j) => large.auth.login({ identityId: `repo-${i + j}`, jwt })),
    );
  }
  const coldMs = performance.now() - coldStart;
  for (const s of [small, large]) await round(s); // warm-up, not counted
  for (let r = 0; r < ROUNDS; r++) {
    for (const s of r % 2 === 0 ? [small, large] : [large, small]) {
      const { rps, cpuRps } = await round(s);
      s.rps.push(rps);
      s.cpuRps.push(cpuRps);
    }
  }
  const result = {
    identities: LARGE,
    coldStartEveryIdentityOnceMs: Math.round(coldMs),
    discoveryFetches: large.idp.hits('discovery'),
    jwksFetches: large.idp.hits('jwks'),
    rpsSmall: Math.round(median(small.rps)),
    rpsLarge: Math.round(median(large.rps)),
    ratio: Number((median(large.rps) / median(small.rps)).toFixed(3)),
    cpuRpsSmall: Math.round(median(small.cpuRps)),
    cpuRpsLarge: Math.round(median(large.cpuRps)),
    cpuRatio: Number((median(large.cpuRps) / median(small.cpuRps)).toFixed(3)),
    rounds: { small: small.rps.map(Math.round), large: large.rps.map(Math.round) },
    node: process.version,
  };
  if (values.json) process.stdout.write(`${JSON.stringify(result)}\n`);
  else {
    process.stdout.write(
      [
        '| configuration | logins/s (median) | logins per CPU-second (median) | discovery fetches | JWKS fetches |',
        '|---|---:|---:|---:|---:|',
        `| ${SMALL} identities, one trust entry | ${result.rpsSmall} | ${result.cpuRpsSmall} | ${small.idp.hits('discovery')} | ${small.idp.hits('jwks')} |`,
        `| ${LARGE} identities, one trust entry | ${result.rpsLarge} | ${result.cpuRpsLarge} | ${result.discoveryFetches} | ${result.jwksFetches} |`,
        '',
        `ratio ${LARGE} / ${SMALL}: ${result.ratio} wall, ${result.cpuRatio} per CPU-second (rounds: ${JSON.stringify(result.rounds)}); every one of the ${LARGE} identities logged in once first (${result.coldStartEveryIdentityOnceMs} ms); ${process.version}`,
        '',
      ].join('\n'),
    );
  }
} finally {
  await small.idp.close();
  await large.idp.close();
}
