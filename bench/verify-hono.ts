/**
 * Issue 15, in process: CPU per request of a Hono route (`app.request()`, no sockets) behind
 * `oidc-machine-auth/verify` and behind `hono/jwk`, on the same RFC 9068 access tokens (Ed25519,
 * `typ: at+jwt`), cases interleaved over several rounds with ratios taken per round. The HTTP
 * version of the same comparison is `npm run bench -- --set verify` (servers/hono-verify.ts).
 *
 *   node --expose-gc --import tsx bench/verify-hono.ts [--quick] [--rounds N]
 *
 * The metadata and JWKS come from a node:http server on 127.0.0.1 (hono/jwk's `jwks_uri` fetches
 * it per request; our verifier once).
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import { Hono, type MiddlewareHandler } from 'hono';
import { jwk } from 'hono/jwk';
import type { HonoJsonWebKey } from 'hono/utils/jwt/jws';
import { exportJWK, generateKeyPair } from 'jose';
import { requireAccessToken } from '../examples/two-services/service-b.js';
import { createVerifier } from '../src/verify/index.js';
import { AUDIENCE, mintAccessToken } from './lib/access-token.js';
import { consumeSink, measureCase, type MicroResult } from './lib/micro-harness.js';
import { median } from './lib/stats.js';

const { values } = parseArgs({
  options: { quick: { type: 'boolean', default: false }, rounds: { type: 'string' } },
});
const rounds = Number(values.rounds ?? (values.quick ? 1 : 3));
const options = values.quick
  ? { batches: 5, batchMs: 20, warmupMs: 100 }
  : { batches: 11, batchMs: 60, warmupMs: 400 };

const { privateKey, publicKey } = await generateKeyPair('EdDSA');
const publicJwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'EdDSA', use: 'sig' };
const server = createServer((req, res) => {
  res.setHeader('content-type', 'application/json');
  if (req.url === '/.well-known/oauth-authorization-server/auth') {
    return res.end(JSON.stringify({ issuer, jwks_uri: `${issuer}/.well-known/jwks.json` }));
  }
  if (req.url === '/auth/.well-known/jwks.json') return res.end(JSON.stringify({ keys: [publicJwk] }));
  res.statusCode = 404;
  res.end('{}');
});
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}/auth`;

const mint = () => mintAccessToken(issuer, privateKey, 'k1');
const token = await mint();
const spreadTokens = await Promise.all(Array.from({ length: 1000 }, mint));

function app(guard?: MiddlewareHandler): Hono {
  const hono = new Hono();
  if (guard) hono.use('/hello', guard);
  hono.get('/hello', (c) => c.json({ hello: 'world' }));
  return hono;
}
const verification = { iss: issuer, aud: AUDIENCE, typ: 'at+jwt' };
const ours = (cache: boolean) =>
  requireAccessToken(
    createVerifier({
      issuer,
      audience: AUDIENCE,
      allowInsecureLoopback: true,
      ...(cache ? {} : { cache: false }),
    }),
  ) as unknown as MiddlewareHandler;
const apps: Record<string, Hono> = {
  bare: app(),
  verify: app(ours(true)),
  'verify, cache off': app(ours(false)),
  'hono/jwk keys': app(jwk({ keys: [publicJwk as HonoJsonWebKey], alg: ['EdDSA'], verification })),
  'hono/jwk jwks_uri': app(
    jwk({ jwks_uri: `${issuer}/.well-known/jwks.json`, alg: ['EdDSA'], verification }),
  ),
};

let spreadIndex = 0;
const request = (name: string, spread: boolean) => async () => {
  const t = spread ? spreadTokens[spreadIndex++ % spreadTokens.length]! : token;
  const res = await apps[name]!.request('/hello', { headers: { authorization: `Bearer ${t}` } });
  if (res.status !== 200) throw new Error(`${name}: status ${res.status}`);
  return res.text();
};
const forged = `${token.slice(0, token.lastIndexOf('.') + 1)}${'A'.repeat(86)}`;
for (const name of Object.keys(apps).filter((n) => n !== 'bare')) {
  const res = await apps[name]!.request('/hello', { headers: { authorization: `Bearer ${forged}` } });
  if (res.status !== 401) throw new Error(`${name}: a forged token got ${res.status}`);
}

// Steady state: every spread token seen once by every app before measuring (our verified-token
// cache then answers; hono/jwk has none and verifies each request anyway).
for (const name of ['verify', 'hono/jwk keys']) {
  for (const t of spreadTokens)
    await apps[name]!.request('/hello', { headers: { authorization: `Bearer ${t}` } });
}

const cases = [
  ['bare', false],
  ['verify', false],
  ['verify, cache off', false],
  ['hono/jwk keys', false],
  ['hono/jwk jwks_uri', false],
  ['verify', true],
  ['hono/jwk keys', true],
] as const;
const label = (name: string, spread: boolean) => `${name}${spread ? ' (1,000 tokens)' : ''}`;
const perRound: Record<string, MicroResult>[] = [];
for (let round = 0; round < rounds; round++) {
  const order = round % 2 === 0 ? [...cases] : [...cases].reverse();
  const results: Record<string, MicroResult> = {};
  for (const [name, spread] of order) {
    results[label(name, spread)] = await measureCase(
      { name: label(name, spread), group: 'hono', op: request(name, spread), inFlight: 16 },
      options,
    );
  }
  perRound.push(results);
  process.stderr.write(`round ${round + 1}/${rounds} done\n`);
}

const us = (ns: number) => (ns / 1000).toFixed(1);
const med = (f: (r: Record<string, MicroResult>) => number) => median(perRound.map(f));
const cpu = (r: Record<string, MicroResult>, name: string) => r[name]!.cpuNs;
const wall = (r: Record<string, MicroResult>, name: string) => r[name]!.wallNs;
const lines = [
  `Hono ${'4'} in process (app.request), 16 in flight, ${rounds} round(s), medians; Node ${process.version}`,
  '',
  '| route | wall µs/req | CPU µs/req |',
  '|---|---:|---:|',
  ...cases.map(
    ([n, s]) =>
      `| ${label(n, s)} | ${us(med((r) => wall(r, label(n, s))))} | ${us(med((r) => cpu(r, label(n, s))))} |`,
  ),
  '',
  '| ratio, per round: b / a (wall time = throughput; CPU = cost per request) | wall, median | CPU, median | wall per round |',
  '|---|---:|---:|---|',
];
for (const [a, b] of [
  ['verify', 'hono/jwk keys'],
  ['verify', 'hono/jwk jwks_uri'],
  ['verify (1,000 tokens)', 'hono/jwk keys (1,000 tokens)'],
  ['verify, cache off', 'hono/jwk keys'],
  ['verify', 'bare'],
] as const) {
  const ratios = perRound.map((r) => wall(r, b) / wall(r, a));
  const cpuRatio = median(perRound.map((r) => cpu(r, b) / cpu(r, a)));
  lines.push(
    `| ${a} vs ${b} | ${median(ratios).toFixed(2)}x | ${cpuRatio.toFixed(2)}x | ${ratios.map((x) => x.toFixed(2)).join(', ')} |`,
  );
}
process.stdout.write(`${lines.join('\n')}\n`);
server.close();
if (consumeSink() === Symbol.for('never')) process.stderr.write('\n');
