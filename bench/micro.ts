/**
 * Micro-benchmarks: the guard's token check, authenticate, a login's policy evaluation and pieces,
 * jose jwtVerify (RS256, ES256, EdDSA; one at a time and 32 in flight) and node:crypto verify (the
 * floor under jose). `tsx bench/micro.ts [--quick] [--json] [--only text]`; best run with
 * `node --expose-gc --import tsx bench/micro.ts` (the runner does). `--profile` CPU-profiles each
 * selected case and prints its hottest functions (use with `--only`).
 */
import { verify as cryptoVerify, type KeyObject } from 'node:crypto';
import { parseArgs } from 'node:util';
import { jwtVerify } from 'jose';
import express, { type Request, type Response } from 'express';
import { requireAccessToken } from '../adapters/express/index.js';
import { AccessTokenCodec, createOidcAuth, guard, hasTokenInQuery, rawHeaderValues } from '../src/index.js';
import { parseIdentityConfig } from '../src/trust/config.js';
import { compileIdentityPolicy } from '../src/policy/match.js';
import { readHeader, verifyIdpToken } from '../src/trust/verify-idp-token.js';
import {
  benchIdentity,
  IDENTITY_ID,
  idpClaims,
  makeIdpKey,
  BENCH_RATE_LIMITS,
  SIGNING_KEYS,
  signIdpToken,
  type BenchAlg,
  type IdpKey,
} from './lib/fixtures.js';
import {
  consumeSink,
  measureCase,
  microMarkdown,
  type MicroCase,
  type MicroResult,
} from './lib/micro-harness.js';
import { profileMarkdown, startProfile, summariseProfile } from './lib/profile.js';
import { otelEngines } from './lib/otel.js';

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
    only: { type: 'string' },
    profile: { type: 'boolean', default: false },
  },
});
const options = values.quick
  ? { batches: 5, batchMs: 20, warmupMs: 100 }
  : { batches: 15, batchMs: 60, warmupMs: 400 };

const ALGS: readonly BenchAlg[] = ['RS256', 'ES256', 'EdDSA'];
const keys = new Map<BenchAlg, IdpKey>(ALGS.map((alg) => [alg, makeIdpKey(alg)]));
const claims = idpClaims();
const jwts = new Map<BenchAlg, string>();
for (const alg of ALGS) jwts.set(alg, await signIdpToken(keys.get(alg)!, claims));
const rsKey = keys.get('RS256')!;
const rsJwt = jwts.get('RS256')!;

// Own tokens and the engine (memory stores, static RS256 key identity).
const codec = new AccessTokenCodec(SIGNING_KEYS);
const auth = createOidcAuth({
  identities: [benchIdentity(rsKey)],
  signingKeys: SIGNING_KEYS,
  rateLimits: BENCH_RATE_LIMITS,
});
const grant = await auth.login({ identityId: IDENTITY_ID, jwt: rsJwt, clientIp: '127.0.0.1' });
const accessToken = grant.accessToken;
// The same engine with OpenTelemetry instrumentation: no SDK, and an SDK of its own (not global).
const otel = await otelEngines(rsKey);
const expiresAt = Date.now() + 3_600_000;
const identity = (await auth.identities.get(IDENTITY_ID))!;
const header = readHeader(rsJwt);
const payload = claims as Record<string, unknown>;
const globConfig = parseIdentityConfig(
  benchIdentity(rsKey, {
    identityId: 'gh-glob',
    boundSubject: 'repo:acme-corp/*:ref:refs/heads/main',
    boundClaims: { repository_id: '612345678', job_workflow_ref: 'acme-corp/*/.github/workflows/**' },
  }),
);

// An Express request as the router hands it to middleware (prototype from a real app, so `req.ip` runs
// Express's own trust-proxy logic), and a response that must not be used on success.
const app = express();
const bearer = `Bearer ${accessToken}`;
const req = Object.assign(Object.create(app.request) as Request, {
  headers: { host: '127.0.0.1:3000', authorization: bearer },
  rawHeaders: ['Host', '127.0.0.1:3000', 'Authorization', bearer],
  url: '/hello',
  socket: { remoteAddress: '127.0.0.1' },
}) as Request;
const res = {} as Response;
const middleware = requireAccessToken(auth);
const throughMiddleware = () =>
  new Promise<void>((resolve, reject) =>
    middleware(req, res, (error?: unknown) => (error ? reject(error as Error) : resolve())),
  );

/** The part of a compact JWS that is signed, and its signature bytes. */
function split(jwt: string): { data: Buffer; signature: Buffer } {
  const dot = jwt.lastIndexOf('.');
  return { data: Buffer.from(jwt.slice(0, dot)), signature: Buffer.from(jwt.slice(dot + 1), 'base64url') };
}

function nodeVerifier(alg: BenchAlg, key: KeyObject): (data: Buffer, signature: Buffer) => boolean {
  if (alg === 'RS256') return (d, s) => cryptoVerify('sha256', d, key, s);
  if (alg === 'ES256') return (d, s) => cryptoVerify('sha256', d, { key, dsaEncoding: 'ieee-p1363' }, s);
  return (d, s) => cryptoVerify(null, d, key, s);
}

/** The callback form of `crypto.verify`: the signature math runs on libuv's thread pool. */
function nodeVerifierAsync(
  alg: BenchAlg,
  key: KeyObject,
): (data: Buffer, signature: Buffer) => Promise<boolean> {
  const digest = alg === 'EdDSA' ? null : 'sha256';
  const keyInput = alg === 'ES256' ? { key, dsaEncoding: 'ieee-p1363' as const } : key;
  return (data, signature) =>
    new Promise((resolve, reject) =>
      cryptoVerify(digest, data, keyInput, signature, (error, ok) => (error ? reject(error) : resolve(ok))),
    );
}

const cases: MicroCase[] = [
  {
    group: 'own access token',
    name: 'AccessTokenCodec.parse (HMAC check)',
    op: () => codec.parse(accessToken),
  },
  {
    group: 'own access token',
    name: 'AccessTokenCodec.mint',
    op: () => codec.mint('AAAAAAAAAAAAAAAAAAAAAA', expiresAt),
  },
  {
    group: 'own access token',
    name: 'auth.authenticate (memory store)',
    op: () => auth.authenticate(accessToken, { clientIp: '127.0.0.1' }),
  },
  {
    group: 'own access token',
    name: 'auth.authenticate (memory store) + OpenTelemetry, no SDK registered',
    op: () => otel.api.authenticate(otel.apiToken, { clientIp: '127.0.0.1' }),
  },
  {
    group: 'own access token',
    name: 'auth.authenticate (memory store) + OpenTelemetry SDK (batch processor, in-memory exporters)',
    op: () => otel.sdk.authenticate(otel.sdkToken, { clientIp: '127.0.0.1' }),
  },
  {
    group: 'guard',
    name: 'guard(auth, request) (bearer parsing + authenticate)',
    op: () => guard(auth, { authorization: bearer, clientIp: '127.0.0.1' }),
  },
  {
    group: 'guard',
    name: 'requireAccessToken middleware to next() (Express req stub, req.ip)',
    op: throughMiddleware,
  },
  { group: 'guard', name: 'Express req.ip getter (trust proxy off)', op: () => req.ip },
  {
    group: 'guard',
    name: 'rawHeaderValues + hasTokenInQuery',
    op: () => rawHeaderValues(req.rawHeaders, 'authorization') && hasTokenInQuery(req.url),
  },
  {
    group: 'login pieces',
    name: 'policy: compileIdentityPolicy(config).check (exact bindings)',
    op: () => compileIdentityPolicy(identity).check(payload),
  },
  {
    group: 'login pieces',
    name: 'policy: compileIdentityPolicy(config).check (glob bindings)',
    op: () => compileIdentityPolicy(globConfig).check(payload),
  },
  {
    group: 'login pieces',
    name: 'policy: metadata(payload)',
    op: () => compileIdentityPolicy(identity).metadata(payload),
  },
  { group: 'login pieces', name: 'readHeader (shape + header JSON)', op: () => readHeader(rsJwt) },
  {
    group: 'login pieces',
    name: 'verifyIdpToken RS256 (key lookup + signature + claim checks)',
    op: () => verifyIdpToken(rsJwt, header, identity, auth.keys, Date.now()),
  },
  {
    group: 'login',
    name: 'auth.login RS256 (memory stores)',
    op: () => auth.login({ identityId: IDENTITY_ID, jwt: rsJwt, clientIp: '127.0.0.1' }),
  },
  {
    group: 'login',
    name: 'auth.login RS256 (memory stores)',
    inFlight: 32,
    op: () => auth.login({ identityId: IDENTITY_ID, jwt: rsJwt, clientIp: '127.0.0.1' }),
  },
];

for (const alg of ALGS) {
  const key = keys.get(alg)!;
  const jwt = jwts.get(alg)!;
  const joseOptions = { algorithms: [alg] };
  for (const inFlight of [1, 32]) {
    cases.push({
      group: 'IdP token verify',
      name: `jose jwtVerify ${alg} (KeyObject)`,
      inFlight,
      op: () => jwtVerify(jwt, key.publicKey, joseOptions),
    });
  }
  const { data, signature } = split(jwt);
  const verifySync = nodeVerifier(alg, key.publicKey);
  cases.push({
    group: 'IdP token verify',
    name: `node:crypto verify ${alg} (sync)`,
    op: () => verifySync(data, signature),
  });
  const verifyAsync = nodeVerifierAsync(alg, key.publicKey);
  cases.push({
    group: 'IdP token verify',
    name: `node:crypto verify ${alg} (callback, thread pool)`,
    inFlight: 32,
    op: () => verifyAsync(data, signature),
  });
}
{
  const key = rsKey.publicKey;
  cases.push({
    group: 'IdP token verify',
    name: 'node:crypto RS256 compact JWS (split + base64url + verify + JSON.parse)',
    op: () => {
      const first = rsJwt.indexOf('.');
      const dot = rsJwt.lastIndexOf('.');
      const ok = cryptoVerify(
        'sha256',
        Buffer.from(rsJwt.slice(0, dot)),
        key,
        Buffer.from(rsJwt.slice(dot + 1), 'base64url'),
      );
      return ok && JSON.parse(Buffer.from(rsJwt.slice(first + 1, dot), 'base64url').toString('utf8'));
    },
  });
}

const selected = values.only
  ? cases.filter((c) => c.name.includes(values.only!) || c.group.includes(values.only!))
  : cases;
const results: MicroResult[] = [];
for (const c of selected) {
  const profiler = values.profile ? await startProfile() : undefined;
  const result = await measureCase(c, options);
  if (profiler) {
    const file = await profiler.stop(`micro-${c.name}-x${result.inFlight}`);
    process.stderr.write(`${profileMarkdown(`${c.name} x${result.inFlight}`, summariseProfile(file))}\n`);
  }
  results.push(result);
  if (!values.json) {
    process.stderr.write(
      `${c.group} | ${c.name} | x${result.inFlight}: ${(result.wallNs / 1000).toFixed(2)} µs wall, ${(result.cpuNs / 1000).toFixed(2)} µs CPU\n`,
    );
  }
}
await auth.close();
if (consumeSink() === Symbol.for('never')) process.stderr.write('\n');
if (values.json) process.stdout.write(`${JSON.stringify(results)}\n`);
else process.stdout.write(`${microMarkdown(results)}\n`);
