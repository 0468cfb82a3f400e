/**
 * The benchmark table. Adding a candidate = one server file under `bench/servers/` + one entry here
 * (and a comparison when it has a target). Scale variants reuse a server file with `env` knobs.
 */

/** One server configuration measured under load. */
export interface Candidate {
  /** Stable id, used by `--only` and in the report. */
  id: string;
  /** What the report calls it. */
  label: string;
  /** File under `bench/servers/`. */
  server: string;
  /** `BENCH_*` knobs passed to the server (store, identities, live tokens). */
  env?: Record<string, string>;
  framework: 'express' | 'koa' | 'hono' | 'fastify' | 'nestjs' | 'node';
  /** Id of the bare route of the same framework: "extra server CPU per request" is measured over it. */
  bare: string;
  /** Sets it belongs to; `--set` picks one (default `default`). */
  sets: readonly string[];
  /**
   * Measured in whole runs with a fresh server of its own, never up beside the other candidates
   * of a sliced round. A server holding a million records or configs does major-GC work of that
   * heap while it idles between its slices (V8's memory reducer), on the same two cores as the
   * candidate being measured, and resumes mid-collection: sliced, the million-token guard measured
   * 0.76-0.82x of the thousand-token one in some rounds, alone 0.91-0.99x.
   */
  alone?: boolean;
  /** The node binary its server runs on (`--nodes`). Default: the bench's own. */
  node?: string;
}

/** A ratio the report computes per round: `candidate` rps / `baseline` rps, same round. */
export interface Comparison {
  label: string;
  candidate: string;
  baseline: string;
  /** Minimum ratio the issues set; none for informative ratios. */
  target?: number;
  /** Where the target comes from. */
  source?: string;
  /** With `--nodes`: the node version (`v22.23.3`) both ends ran on, and the comparison's own label. */
  node?: { version: string; of: string };
}

/**
 * Every candidate, in report order. Sets: `default` (issue 2's Express run), `express`, `peers`, `login`, `scale`,
 * `tokens` (issue 15: JWT access tokens under our guard, express-oauth2-jwt-bearer and login),
 * `diagnose`, `frameworks` (issue 3: Koa, Hono, Fastify), `stores` (issue 4: Redis and PostgreSQL; issue 18: the
 * MariaDB example store), `nestjs` (issue 17: a NestJS route bare, behind our guard, behind passport-jwt),
 * `dpop` (issue 16: DPoP-bound JWT access tokens under our guard, with the memory and the Redis replay cache, and
 * under express-oauth2-jwt-bearer's DPoP mode).
 */
export const CANDIDATES: readonly Candidate[] = [
  {
    id: 'express-bare',
    label: 'Express bare',
    server: 'express-bare.ts',
    framework: 'express',
    bare: 'express-bare',
    sets: ['default', 'express', 'scale', 'diagnose', 'tokens', 'dpop'],
  },
  {
    id: 'express-guard-memory',
    label: 'Express + requireAccessToken (memory store)',
    server: 'express-guard.ts',
    env: { BENCH_STORE: 'memory' },
    framework: 'express',
    bare: 'express-bare',
    sets: ['default', 'express', 'diagnose', 'stores', 'otel'],
  },
  // Issue 17: the same guard with OpenTelemetry instrumentation, an SDK registered or none (lib/otel.ts).
  ...(
    [
      ['sdk', 'SDK registered, in-memory exporters'],
      ['sdk-spans', 'SDK registered, a span per guarded request (guardSpans)'],
      ['api', 'no SDK registered'],
    ] as const
  ).map(([mode, what]): Candidate => ({
    id: `express-guard-otel-${mode}`,
    label: `Express + requireAccessToken (memory store) + OpenTelemetry, ${what}`,
    server: 'express-guard.ts',
    env: { BENCH_STORE: 'memory', BENCH_OTEL: mode },
    framework: 'express',
    bare: 'express-bare',
    sets: ['default', 'express', 'otel'],
  })),
  {
    id: 'express-oauth2-jwt-bearer',
    label: 'Express + express-oauth2-jwt-bearer (RS256, cached JWKS)',
    server: 'express-oauth2-jwt-bearer.ts',
    framework: 'express',
    bare: 'express-bare',
    sets: ['default', 'express', 'peers'],
  },
  // Issue 15: our JWT access tokens (Ed25519), under our guard and under a peer verifier.
  {
    id: 'express-guard-jwt',
    label: 'Express + requireAccessToken, JWT access token (Ed25519, no uses limit)',
    server: 'express-guard-jwt.ts',
    framework: 'express',
    bare: 'express-bare',
    sets: ['default', 'express', 'tokens'],
  },
  {
    id: 'express-oauth2-jwt-bearer-ours',
    label: 'Express + express-oauth2-jwt-bearer on our JWT access tokens (Ed25519, our metadata URL)',
    server: 'express-oauth2-jwt-bearer-ours.ts',
    framework: 'express',
    bare: 'express-bare',
    sets: ['default', 'express', 'peers', 'tokens'],
  },
  // Issue 16: DPoP-bound JWT access tokens, a proof (ES256, fresh jti) per request, memory replay cache.
  {
    id: 'express-guard-dpop',
    label:
      'Express + requireAccessToken, DPoP-bound JWT access token, ES256 proof per request (memory replay cache)',
    server: 'express-guard-dpop.ts',
    framework: 'express',
    bare: 'express-bare',
    sets: ['default', 'express', 'dpop'],
  },
  // The same guard with proof signatures checked one libuv thread-pool job each (`dpop.proofChecks:
  // 'thread-pool'`) instead of on the signature worker (the default), issue 16.
  {
    id: 'express-guard-dpop-thread-pool',
    label:
      'Express + requireAccessToken, DPoP-bound JWT access token, ES256 proof per request (proofChecks: thread-pool)',
    server: 'express-guard-dpop.ts',
    env: { BENCH_PROOF_CHECKS: 'thread-pool' },
    framework: 'express',
    bare: 'express-bare',
    sets: ['dpop'],
  },
  // The same guard with the proofs' jtis in Redis (RedisReplayCache, batched remembers), issue 16.
  {
    id: 'express-guard-dpop-redis',
    label:
      'Express + requireAccessToken, DPoP-bound JWT access token, ES256 proof per request (Redis replay cache)',
    server: 'express-guard-dpop.ts',
    env: { BENCH_REPLAY: 'redis' },
    framework: 'express',
    bare: 'express-bare',
    sets: ['dpop'],
  },
  {
    id: 'express-oauth2-jwt-bearer-dpop',
    label: 'Express + express-oauth2-jwt-bearer, DPoP mode, same tokens and proofs',
    server: 'express-oauth2-jwt-bearer-dpop.ts',
    framework: 'express',
    bare: 'express-bare',
    sets: ['default', 'express', 'peers', 'dpop'],
  },
  {
    id: 'express-login-jwt',
    label: 'Express login minting a JWT access token (Ed25519)',
    server: 'express-login-jwt.ts',
    framework: 'express',
    bare: 'express-bare',
    sets: ['default', 'express', 'login', 'tokens'],
  },
  {
    id: 'express-login-jwt-es256',
    label: 'Express login minting a JWT access token (ES256)',
    server: 'express-login-jwt.ts',
    env: { BENCH_ACCESS_ALG: 'ES256' },
    framework: 'express',
    bare: 'express-bare',
    sets: ['login', 'tokens'],
  },
  {
    id: 'express-jwt',
    label: 'Express + express-jwt + jwks-rsa (RS256, cached JWKS)',
    server: 'express-jwt.ts',
    framework: 'express',
    bare: 'express-bare',
    sets: ['default', 'express', 'peers'],
  },
  {
    id: 'express-login',
    label: 'Express login: oidcAuthRouter POST /oidc-auth/login (RS256, static key)',
    server: 'express-login.ts',
    framework: 'express',
    bare: 'express-bare',
    sets: ['default', 'express', 'login', 'tokens'],
  },
  // Issue 15: the RFC 8693 token exchange, the second front door onto the same login.
  ...(
    [
      ['express-token-exchange', 'exchange', 'Express RFC 8693 token exchange: POST /oauth/token, client_id'],
      [
        'express-token-exchange-select',
        'select',
        'Express RFC 8693 token exchange, identity selected (no client_id)',
      ],
      [
        'express-login-form',
        'login-form',
        'Express login with a form body (the exchange fields, Infisical route)',
      ],
    ] as const
  ).map(([id, route, label]): Candidate => ({
    id,
    label,
    server: 'express-token-exchange.ts',
    env: { BENCH_EXCHANGE_ROUTE: route },
    framework: 'express',
    bare: 'express-bare',
    sets: ['login', 'oauth'],
  })),
  {
    id: 'express-login-jose',
    label: 'Express minimal login: jose jwtVerify + node:crypto HMAC',
    server: 'express-login-jose.ts',
    framework: 'express',
    bare: 'express-bare',
    sets: ['default', 'express', 'login'],
  },
  // Diagnostics: what requireAccessToken's extra CPU is made of (see servers/express-guard-variants.ts).
  ...(
    [
      ['noop-async', 'async no-op middleware (header compare)'],
      ['floor-hmac', 'floor: sync node:crypto HMAC + Map lookup'],
      ['floor-map', 'floor: sync Map lookup, no crypto'],
      ['cached-mac', 'sync Map lookup + timingSafeEqual against a cached MAC'],
      ['direct', 'async middleware calling auth.authenticate directly'],
      ['fixed-ip', 'requireAccessToken with getClientIp fixed (no req.ip)'],
      ['codec-mac-cache', 'requireAccessToken, AccessTokenCodec.parse with a verified-MAC cache'],
    ] as const
  ).map(([variant, what]): Candidate => ({
    id: `express-guard-${variant}`,
    label: `Express + ${what}`,
    server: 'express-guard-variants.ts',
    env: { BENCH_VARIANT: variant },
    framework: 'express',
    bare: 'express-bare',
    sets: ['diagnose'],
  })),
  // Scale (issue 6): the same guard and login as identities (10 → 1,000,000) and live tokens
  // (1,000 → 1,000,000) grow. Guard requests spread at random over min(live tokens, 10,000) of them:
  // the verified-MAC cache's default size, so the store lookup is what grows.
  ...(
    [
      [1_000, 10],
      [10_000, 10],
      [1_000_000, 10],
      [1_000, 1_000_000],
    ] as const
  ).map(([tokens, identities]): Candidate => ({
    id: `express-guard-scale-${tokens}t-${identities}i`,
    label: `Express guard (memory), ${tokens.toLocaleString('en-US')} live tokens, ${identities.toLocaleString('en-US')} identities`,
    server: 'express-guard.ts',
    env: {
      BENCH_STORE: 'memory',
      BENCH_LIVE_TOKENS: String(tokens),
      BENCH_SPREAD: String(Math.min(tokens, 10_000)),
      BENCH_IDENTITIES: String(identities - 1),
    },
    framework: 'express',
    bare: 'express-bare',
    sets: ['default', 'scale'],
    alone: true,
  })),
  ...[10, 10_000, 1_000_000].map((n): Candidate => ({
    id: `express-login-scale-${n}i`,
    label: `Express login, ${n.toLocaleString('en-US')} identities`,
    server: 'express-login.ts',
    env: { BENCH_IDENTITIES: String(n - 1) },
    framework: 'express',
    bare: 'express-bare',
    sets: ['default', 'scale'],
    alone: true,
  })),
  // Issue 3: Koa, Hono and Fastify, each bare, behind our guard (memory store) and behind its usual JWT peer.
  ...frameworkCandidates(),
  // Issue 4: the Express guard on the shared stores (the memory one above is the baseline), with every
  // request on one token, and spread at random over 1,000 live tokens.
  ...(['redis', 'postgres'] as const).map((store): Candidate => ({
    id: `express-guard-${store}`,
    label: `Express + requireAccessToken (${store === 'redis' ? 'Redis' : 'PostgreSQL'} store)`,
    server: 'express-guard.ts',
    env: { BENCH_STORE: store },
    framework: 'express',
    bare: 'express-bare',
    sets: ['default', 'stores'],
  })),
  ...(['memory', 'redis', 'postgres'] as const).map((store): Candidate => ({
    id: `express-guard-${store}-spread`,
    label: `Express + requireAccessToken (${{ memory: 'memory', redis: 'Redis', postgres: 'PostgreSQL' }[store]} store, requests over 1,000 tokens)`,
    server: 'express-guard.ts',
    env: { BENCH_STORE: store, BENCH_SPREAD: '1000' },
    framework: 'express',
    bare: 'express-bare',
    sets: ['default', 'stores'],
  })),
  ...frameworkStoreCandidates(),
  // Issue 15: a Hono route behind oidc-machine-auth/verify vs hono/jwk, same RFC 9068 tokens (Ed25519).
  ...(
    [
      ['verify', '1', 'Hono + oidc-machine-auth/verify (Ed25519 at+jwt)'],
      ['verify-nocache', '1', 'Hono + oidc-machine-auth/verify, verified-token cache off'],
      ['jwk', '1', 'Hono + hono/jwk (Ed25519 at+jwt, keys given once)'],
      ['jwk-uri', '1', 'Hono + hono/jwk (Ed25519 at+jwt, jwks_uri on loopback)'],
      ['verify', '1000', 'Hono + oidc-machine-auth/verify, requests over 1,000 tokens'],
      ['jwk', '1000', 'Hono + hono/jwk (keys given once), requests over 1,000 tokens'],
    ] as const
  ).map(([variant, spread, label]): Candidate => ({
    id: `hono-at-${variant}${spread === '1' ? '' : '-spread'}`,
    label,
    server: 'hono-verify.ts',
    env: { BENCH_VARIANT: variant, BENCH_SPREAD: spread },
    framework: 'hono',
    bare: 'hono-bare',
    sets: ['verify'],
  })),
  // Issue 18: the MariaDB/MySQL store of examples/custom-store-mysql (a custom store as a user writes
  // it) behind the same Express guard, one token and spread like the Redis and PostgreSQL ones above.
  ...([false, true] as const).map((spread): Candidate => ({
    id: `express-guard-mariadb${spread ? '-spread' : ''}`,
    label: `Express + requireAccessToken (MariaDB example store${spread ? ', requests over 1,000 tokens' : ''})`,
    server: 'express-guard.ts',
    env: { BENCH_STORE: 'mariadb', ...(spread && { BENCH_SPREAD: '1000' }) },
    framework: 'express',
    bare: 'express-bare',
    sets: ['default', 'stores'],
  })),
  // Issue 17: a NestJS route (Express platform) bare, behind OidcAuthGuard, and behind @nestjs/passport + passport-jwt.
  ...(
    [
      ['bare', 'NestJS bare (Express platform)'],
      ['guard', 'NestJS + OidcAuthGuard (memory store)'],
      ['passport-jwt', 'NestJS + @nestjs/passport + passport-jwt + jwks-rsa (RS256, cached JWKS)'],
    ] as const
  ).map(([variant, label]): Candidate => ({
    id: `nestjs-${variant}`,
    label,
    server: 'nestjs.ts',
    env: { BENCH_VARIANT: variant },
    framework: 'nestjs',
    bare: 'nestjs-bare',
    sets: ['default', 'nestjs'],
  })),
  {
    id: 'nestjs-noop-guard',
    label: 'NestJS + a guard returning true (the cost of any Nest guard)',
    server: 'nestjs.ts',
    env: { BENCH_VARIANT: 'noop-guard' },
    framework: 'nestjs',
    bare: 'nestjs-bare',
    sets: ['nestjs', 'diagnose'],
  },
];

/** The ratios reported; those with a `target` get a met/MISSED verdict. */
export const COMPARISONS: readonly Comparison[] = [
  {
    label: 'guard (memory) vs bare Express',
    candidate: 'express-guard-memory',
    baseline: 'express-bare',
    target: 0.85,
    source: 'issue 2',
  },
  {
    label: 'guard (memory) vs express-oauth2-jwt-bearer',
    candidate: 'express-guard-memory',
    baseline: 'express-oauth2-jwt-bearer',
    target: 1.5,
    source: 'issues 2, 6',
  },
  {
    label: 'guard (memory) vs express-jwt + jwks-rsa',
    candidate: 'express-guard-memory',
    baseline: 'express-jwt',
    target: 2,
    source: 'issue 6',
  },
  {
    label: 'login vs minimal jose login',
    candidate: 'express-login',
    baseline: 'express-login-jose',
    target: 0.85,
    source: 'issues 2, 6',
  },
  { label: 'login vs bare Express', candidate: 'express-login', baseline: 'express-bare' },
  {
    label: 'token exchange vs Infisical login',
    candidate: 'express-token-exchange',
    baseline: 'express-login',
    target: 0.95,
    source: 'issue 15',
  },
  {
    label: 'token exchange vs form login',
    candidate: 'express-token-exchange',
    baseline: 'express-login-form',
  },
  {
    label: 'selected token exchange vs Infisical login',
    candidate: 'express-token-exchange-select',
    baseline: 'express-login',
  },
  {
    label: 'JWT guard vs bare Express',
    candidate: 'express-guard-jwt',
    baseline: 'express-bare',
    target: 0.8,
    source: 'issue 15',
  },
  {
    label: 'JWT guard vs express-oauth2-jwt-bearer (same tokens)',
    candidate: 'express-guard-jwt',
    baseline: 'express-oauth2-jwt-bearer-ours',
    target: 1.6,
    source: 'issue 15',
  },
  {
    label: 'DPoP guard vs bare Express',
    candidate: 'express-guard-dpop',
    baseline: 'express-bare',
    target: 0.6,
    source: 'issue 16',
  },
  {
    label: 'DPoP guard vs express-oauth2-jwt-bearer DPoP mode (same tokens and proofs)',
    candidate: 'express-guard-dpop',
    baseline: 'express-oauth2-jwt-bearer-dpop',
    target: 1.3,
    source: 'issue 16',
  },
  {
    label: 'DPoP guard, proof signatures on the signature worker vs one thread-pool job each',
    candidate: 'express-guard-dpop',
    baseline: 'express-guard-dpop-thread-pool',
  },
  {
    label: 'DPoP guard, Redis replay cache vs memory',
    candidate: 'express-guard-dpop-redis',
    baseline: 'express-guard-dpop',
    target: 0.75,
    source: 'issue 16',
  },
  {
    // Minting a JWT adds at most 15% to a login: JWT login rps ≥ opaque login rps / 1.15.
    label: 'login minting a JWT (Ed25519) vs an opaque token',
    candidate: 'express-login-jwt',
    baseline: 'express-login',
    target: 1 / 1.15,
    source: 'issue 15',
  },
  {
    label: 'login minting a JWT (ES256) vs an opaque token',
    candidate: 'express-login-jwt-es256',
    baseline: 'express-login',
    target: 1 / 1.15,
    source: 'issue 15',
  },
  {
    label: 'guard + OpenTelemetry (SDK) vs guard',
    candidate: 'express-guard-otel-sdk',
    baseline: 'express-guard-memory',
    target: 0.9,
    source: 'issue 17',
  },
  {
    label: 'guard + OpenTelemetry (SDK, guardSpans: a span per request) vs guard',
    candidate: 'express-guard-otel-sdk-spans',
    baseline: 'express-guard-memory',
  },
  {
    label: 'guard + OpenTelemetry (no SDK) vs guard',
    candidate: 'express-guard-otel-api',
    baseline: 'express-guard-memory',
    target: 0.98,
    source: 'issue 17',
  },
  {
    label: 'express-oauth2-jwt-bearer vs bare',
    candidate: 'express-oauth2-jwt-bearer',
    baseline: 'express-bare',
  },
  { label: 'express-jwt vs bare', candidate: 'express-jwt', baseline: 'express-bare' },
  // Scale: largest vs smallest (issue 6 wants the largest to cost at most 1.2x the smallest: rps ratio ≥ 0.83).
  ...(
    [
      ['10,000 vs 1,000 live tokens', '10000t-10i'],
      ['1,000,000 vs 1,000 live tokens', '1000000t-10i'],
      ['1,000,000 vs 10 identities', '1000t-1000000i'],
    ] as const
  ).map(([what, id]): Comparison => ({
    label: `guard, ${what}`,
    candidate: `express-guard-scale-${id}`,
    baseline: 'express-guard-scale-1000t-10i',
    ...(id !== '10000t-10i' && { target: 1 / 1.2, source: 'issue 6' }),
  })),
  {
    label: 'login, 10,000 vs 10 identities',
    candidate: 'express-login-scale-10000i',
    baseline: 'express-login-scale-10i',
  },
  {
    label: 'login, 1,000,000 vs 10 identities',
    candidate: 'express-login-scale-1000000i',
    baseline: 'express-login-scale-10i',
    target: 1 / 1.2,
    source: 'issue 6',
  },
  // Issue 3: each framework's guard against its own bare route and against its usual JWT peer.
  {
    label: 'Koa guard vs bare Koa',
    candidate: 'koa-guard',
    baseline: 'koa-bare',
    target: 0.75,
    source: 'issue 3',
  },
  {
    label: 'Fastify guard vs bare Fastify',
    candidate: 'fastify-guard',
    baseline: 'fastify-bare',
    target: 0.75,
    source: 'issue 3',
  },
  {
    label: 'Hono guard vs bare Hono',
    candidate: 'hono-guard',
    baseline: 'hono-bare',
    target: 0.6,
    source: 'issue 3',
  },
  {
    label: 'Hono guard vs hono/jwk (keys given once)',
    candidate: 'hono-guard',
    baseline: 'hono-jwk',
    target: 3,
    source: 'issue 3',
  },
  { label: 'Hono guard vs hono/jwk (jwks_uri)', candidate: 'hono-guard', baseline: 'hono-jwk-uri' },
  {
    label: 'Koa guard vs koa-jwt + jwks-rsa',
    candidate: 'koa-guard',
    baseline: 'koa-jwt',
    target: 2,
    source: 'issue 3',
  },
  { label: 'Fastify guard vs @fastify/jwt', candidate: 'fastify-guard', baseline: 'fastify-jwt' },
  { label: 'koa-jwt vs bare Koa', candidate: 'koa-jwt', baseline: 'koa-bare' },
  { label: 'hono/jwk (keys) vs bare Hono', candidate: 'hono-jwk', baseline: 'hono-bare' },
  { label: '@fastify/jwt vs bare Fastify', candidate: 'fastify-jwt', baseline: 'fastify-bare' },
  // Issue 4: the shared stores against the memory store, same run.
  {
    label: 'guard, Redis vs memory store (Express)',
    candidate: 'express-guard-redis',
    baseline: 'express-guard-memory',
    target: 0.6,
    source: 'issue 4',
  },
  {
    label: 'guard, PostgreSQL vs memory store (Express)',
    candidate: 'express-guard-postgres',
    baseline: 'express-guard-memory',
    target: 0.4,
    source: 'issue 4',
  },
  {
    label: 'guard, Redis vs memory store, requests over 1,000 tokens',
    candidate: 'express-guard-redis-spread',
    baseline: 'express-guard-memory-spread',
    target: 0.6,
    source: 'issue 4',
  },
  {
    label: 'guard, PostgreSQL vs memory store, requests over 1,000 tokens',
    candidate: 'express-guard-postgres-spread',
    baseline: 'express-guard-memory-spread',
    target: 0.4,
    source: 'issue 4',
  },
  { label: 'guard, Redis store vs bare Express', candidate: 'express-guard-redis', baseline: 'express-bare' },
  {
    label: 'guard, PostgreSQL store vs bare Express',
    candidate: 'express-guard-postgres',
    baseline: 'express-bare',
  },
  ...frameworkStoreComparisons(),
  {
    label: 'oidc-machine-auth/verify vs hono/jwk (keys given once), same tokens (Hono)',
    candidate: 'hono-at-verify',
    baseline: 'hono-at-jwk',
    target: 3,
    source: 'issue 15',
  },
  {
    label: 'oidc-machine-auth/verify vs hono/jwk (jwks_uri), same tokens (Hono)',
    candidate: 'hono-at-verify',
    baseline: 'hono-at-jwk-uri',
    target: 3,
    source: 'issue 15',
  },
  {
    label: 'oidc-machine-auth/verify vs hono/jwk (keys given once), requests over 1,000 tokens',
    candidate: 'hono-at-verify-spread',
    baseline: 'hono-at-jwk-spread',
  },
  {
    label: 'oidc-machine-auth/verify, cache off vs hono/jwk (keys given once)',
    candidate: 'hono-at-verify-nocache',
    baseline: 'hono-at-jwk',
  },
  { label: 'oidc-machine-auth/verify vs bare Hono', candidate: 'hono-at-verify', baseline: 'hono-bare' },
  {
    label: 'guard, MariaDB example vs memory store (Express)',
    candidate: 'express-guard-mariadb',
    baseline: 'express-guard-memory',
    target: 0.5,
    source: 'issue 18',
  },
  {
    label: 'guard, MariaDB example vs memory store, requests over 1,000 tokens',
    candidate: 'express-guard-mariadb-spread',
    baseline: 'express-guard-memory-spread',
  },
  {
    label: 'NestJS guard vs bare NestJS route',
    candidate: 'nestjs-guard',
    baseline: 'nestjs-bare',
    target: 0.85,
    source: 'issue 17',
  },
  {
    label: 'NestJS guard vs @nestjs/passport + passport-jwt',
    candidate: 'nestjs-guard',
    baseline: 'nestjs-passport-jwt',
    target: 1,
    source: 'issue 17',
  },
  {
    label: 'NestJS no-op guard vs bare NestJS route',
    candidate: 'nestjs-noop-guard',
    baseline: 'nestjs-bare',
  },
  { label: 'NestJS guard vs NestJS no-op guard', candidate: 'nestjs-guard', baseline: 'nestjs-noop-guard' },
];

/**
 * The candidates to run: the members of `set` (`all` for every one), narrowed by `only` (a candidate
 * stays when its id contains a pattern or its framework equals one); bare baselines of the chosen
 * ones are added. Table order is kept.
 */
export function selectCandidates(only: readonly string[] | undefined, set: string): Candidate[] {
  const chosen = new Set<string>();
  for (const c of CANDIDATES) {
    if (set !== 'all' && !c.sets.includes(set)) continue;
    if (only && !only.some((p) => c.id.includes(p) || c.framework === p)) continue;
    chosen.add(c.id).add(c.bare);
  }
  return CANDIDATES.filter((c) => chosen.has(c.id));
}

/**
 * Issue 3's candidates: per framework the bare route, our guard (memory store) and the framework's usual
 * JWT guard verifying an IdP-style RS256 token with cached keys (`BENCH_VARIANT` of `servers/<framework>.ts`).
 * A function so the table above can list them before this declaration runs.
 */
function frameworkCandidates(): Candidate[] {
  const rows: [Candidate['framework'], string, string][] = [
    ['koa', 'bare', 'Koa bare'],
    ['koa', 'guard', 'Koa + requireAccessToken (memory store)'],
    ['koa', 'koa-jwt', 'Koa + koa-jwt + jwks-rsa (RS256, cached JWKS)'],
    ['hono', 'bare', 'Hono bare (@hono/node-server)'],
    ['hono', 'guard', 'Hono + requireAccessToken (memory store)'],
    ['hono', 'jwk', 'Hono + hono/jwk (RS256, keys given once)'],
    ['hono', 'jwk-uri', 'Hono + hono/jwk (RS256, jwks_uri on loopback)'],
    ['fastify', 'bare', 'Fastify bare'],
    ['fastify', 'guard', 'Fastify + requireAccessToken preHandler (memory store)'],
    ['fastify', 'fastify-jwt', 'Fastify + @fastify/jwt (RS256, public key given once)'],
  ];
  return rows.map(([framework, variant, label]) => ({
    id: variant.startsWith(framework) ? variant : `${framework}-${variant}`,
    label,
    server: `${framework}.ts`,
    env: { BENCH_VARIANT: variant },
    framework,
    bare: `${framework}-bare`,
    // The memory-store guard is also the baseline of the framework's shared-store runs.
    sets: variant === 'guard' ? ['default', 'frameworks', 'stores'] : ['default', 'frameworks'],
  }));
}

// Functions, not constants: the lists at the top of the file call them before constants here exist.
function frameworkName(framework: 'koa' | 'hono' | 'fastify'): string {
  return { koa: 'Koa', hono: 'Hono', fastify: 'Fastify' }[framework];
}

function storeName(store: 'redis' | 'postgres'): string {
  return store === 'redis' ? 'Redis' : 'PostgreSQL';
}

/** Issue 6: each framework's guard on the shared stores, against its guard on the memory store. */
function frameworkStoreCandidates(): Candidate[] {
  return (['koa', 'hono', 'fastify'] as const).flatMap((framework) =>
    (['redis', 'postgres'] as const).map((store): Candidate => ({
      id: `${framework}-guard-${store}`,
      label: `${frameworkName(framework)} + requireAccessToken (${storeName(store)} store)`,
      server: `${framework}.ts`,
      env: { BENCH_VARIANT: 'guard', BENCH_STORE: store },
      framework,
      bare: `${framework}-bare`,
      sets: ['default', 'stores'],
    })),
  );
}

function frameworkStoreComparisons(): Comparison[] {
  return (['koa', 'hono', 'fastify'] as const).flatMap((framework) =>
    (['redis', 'postgres'] as const).map((store): Comparison => ({
      label: `${frameworkName(framework)} guard, ${storeName(store)} vs memory store`,
      candidate: `${framework}-guard-${store}`,
      baseline: `${framework}-guard`,
      target: store === 'redis' ? 0.6 : 0.4,
      source: 'issues 4, 6',
    })),
  );
}
