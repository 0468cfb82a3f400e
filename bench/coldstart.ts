/**
 * Cold start and key rotation: how many times the IdP is fetched, and what the logins waiting on
 * those fetches see (p50/p99 latency), when a fresh engine meets a burst of logins.
 *
 *     npx tsx bench/coldstart.ts [--logins 200] [--json]
 *
 * One loopback IdP (`test/helpers/idp-server.ts`: discovery + JWKS over http, hits counted) and an
 * identity that discovers it (`oidcDiscoveryUrl`, `allowInsecureLoopback`). Scenarios, each on a
 * fresh engine unless said otherwise:
 * - `cold`: N concurrent logins before anything is cached;
 * - `warm`: N more on the same engine (no fetch expected);
 * - `rotated`: 31 s later (the engine's clock; past the 30 s refetch cooldown) the IdP signs with a
 *   new key; N concurrent logins with it on the warm engine;
 * - `unknown kids`: 31 s later again, N concurrent logins each naming a different unknown `kid`
 *   (refused, 401): one refetch at most, whatever the number of kids.
 * Prints a Markdown table (or JSON with `--json`, for `bench/run.ts`).
 */
import { parseArgs } from 'node:util';
import { createOidcAuth, type OidcAuth } from '../src/index.js';
import {
  createSigningKey,
  loopbackIdentity,
  startTestIdp,
  type TestIdp,
} from '../test/helpers/idp-server.js';
import { fmt, percentile } from './lib/stats.js';

interface ColdStartRow {
  scenario: string;
  logins: number;
  succeeded: number;
  discoveryFetches: number;
  jwksFetches: number;
  p50Ms: number;
  p99Ms: number;
  wallMs: number;
}

const { values } = parseArgs({
  options: { logins: { type: 'string', default: '200' }, json: { type: 'boolean', default: false } },
});
const N = Number(values.logins);
const AUDIENCE = 'https://bench.example/app';
const SUBJECT = 'repo:acme-corp/payments-api:ref:refs/heads/main';

/** The engines' clock: moved forward between scenarios instead of waiting. */
let now = Date.now();

function engine(idp: TestIdp): OidcAuth {
  return createOidcAuth({
    clock: () => now,
    identities: [loopbackIdentity(idp, SUBJECT, AUDIENCE)],
    signingKeys: { k1: 'a-bench-signing-secret-of-at-least-32-bytes!' },
  });
}

async function burst(scenario: string, idp: TestIdp, auth: OidcAuth, jwts: string[]): Promise<ColdStartRow> {
  idp.resetHits();
  const latencies: number[] = [];
  let succeeded = 0;
  const start = performance.now();
  await Promise.all(
    jwts.map(async (jwt) => {
      const t0 = performance.now();
      try {
        await auth.login({ identityId: 'ci', jwt, clientIp: '127.0.0.1' });
        succeeded++;
      } catch {
        // refused: counted by `succeeded`
      }
      latencies.push(performance.now() - t0);
    }),
  );
  const wallMs = performance.now() - start;
  latencies.sort((a, b) => a - b);
  return {
    scenario,
    logins: jwts.length,
    succeeded,
    discoveryFetches: idp.hits('discovery'),
    jwksFetches: idp.hits('jwks'),
    p50Ms: percentile(latencies, 0.5),
    p99Ms: percentile(latencies, 0.99),
    wallMs,
  };
}

const idp = await startTestIdp({ keys: [createSigningKey('RS256', 'key-1')] });
try {
  const claims = () => {
    const iat = Math.floor(now / 1000);
    return { sub: SUBJECT, aud: AUDIENCE, iat, exp: iat + 300 };
  };
  const signed = (options?: Parameters<TestIdp['sign']>[1]) =>
    Promise.all(Array.from({ length: N }, () => idp.sign(claims(), options)));
  const rows: ColdStartRow[] = [];
  const auth = engine(idp);
  rows.push(await burst('cold: fresh engine', idp, auth, await signed()));
  rows.push(await burst('warm: same engine', idp, auth, await signed()));
  now += 31_000;
  const rotated = createSigningKey('RS256', 'key-2');
  idp.setKeys([rotated, ...idp.keys]);
  rows.push(
    await burst('rotated: IdP signs with a new kid (31 s later)', idp, auth, await signed({ key: rotated })),
  );
  now += 31_000;
  const unknown = await Promise.all(
    Array.from({ length: N }, (_, i) => idp.sign(claims(), { kid: `unknown-${i}` })),
  );
  rows.push(await burst('unknown kids: one per login, refused (31 s later)', idp, auth, unknown));

  if (values.json) {
    process.stdout.write(`${JSON.stringify(rows)}\n`);
  } else {
    process.stdout.write(coldStartMarkdown(rows));
  }
} finally {
  await idp.close();
}

/** The Markdown table `bench/run.ts` puts in the report. */
function coldStartMarkdown(rows: ColdStartRow[]): string {
  const lines = [
    '| scenario | logins | succeeded | discovery fetches | JWKS fetches | p50 ms | p99 ms | all done, ms |',
    '|---|---:|---:|---:|---:|---:|---:|---:|',
    ...rows.map(
      (r) =>
        `| ${r.scenario} | ${r.logins} | ${r.succeeded} | ${r.discoveryFetches} | ${r.jwksFetches} | ${fmt(r.p50Ms, 1)} | ${fmt(r.p99Ms, 1)} | ${fmt(r.wallMs, 0)} |`,
    ),
  ];
  return `${lines.join('\n')}\n`;
}
