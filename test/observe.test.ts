import { describe, expect, it } from 'vitest';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import ts from 'typescript';
import { combineEventHandlers, createMetrics } from '../src/observe/metrics.js';
import { REDACTED, pinoLogger, redact, redactString, redactingLogger } from '../src/observe/redact.js';
import { createOidcAuth, type AuthEvent } from '../src/index.js';
import type { AuthEventType } from '../src/types.js';
import { FakeClock, Recorder, SIGNING_KEYS, githubIdentity } from './helpers/engine.js';
import { githubClaims, makeKey, sign } from './helpers/jwt.js';
import { loopbackIdentity, startTestIdp } from './helpers/idp-server.js';

/** An engine wired to metrics through `combineEventHandlers`, as a host would. */
function meteredEngine(identity = {}) {
  const key = makeKey();
  const clock = new FakeClock();
  const rec = new Recorder();
  const metrics = createMetrics();
  const auth = createOidcAuth({
    identities: [githubIdentity(key, identity)],
    signingKeys: SIGNING_KEYS,
    clock: clock.now,
    onEvent: combineEventHandlers(metrics.onEvent, rec.onEvent),
    logger: rec.logger,
  });
  metrics.track(auth);
  return { auth, key, clock, rec, metrics };
}

describe('createMetrics', () => {
  it('counts logins by result and reason, guard denials, renewals and revocations from real engine events', async () => {
    const { auth, key, clock, metrics } = meteredEngine();
    const good = await sign(key, githubClaims(clock.ms));
    const grant = await auth.login({ identityId: 'gh-deployer', jwt: good });
    await auth.login({ identityId: 'gh-deployer', jwt: good });
    await expect(
      auth.login({
        identityId: 'gh-deployer',
        jwt: await sign(key, githubClaims(clock.ms, { repository_id: '1' })),
      }),
    ).rejects.toThrow();
    await expect(auth.login({ identityId: 'nobody', jwt: good })).rejects.toThrow();
    await expect(auth.authenticate('omat_garbage')).rejects.toThrow();
    await auth.renew(grant.accessToken);
    await auth.revoke(grant.accessToken);
    await expect(auth.authenticate(grant.accessToken)).rejects.toThrow();
    await auth.revokeIdentity('gh-deployer');

    const snap = metrics.snapshot();
    expect(snap.logins).toEqual({
      success: 2,
      failure: { claim_not_allowed: 1, identity_not_found: 1 },
    });
    expect(snap.guardDenials).toEqual({ invalid_token: 1, token_revoked: 1 });
    expect(snap.renewals).toEqual({ success: 1, failure: {} });
    expect(snap.revocations).toEqual({ token: 1, identity: 1 });
    expect(snap.revokedIdentityTokens).toBe(1);
    expect(snap.keyCache).toEqual({ hits: expect.any(Number), misses: expect.any(Number) });
    expect(snap.keyCache!.hits + snap.keyCache!.misses).toBeGreaterThan(0);
  });

  it('renders the Prometheus text format with HELP/TYPE lines and reason labels', async () => {
    const { auth, key, clock, metrics } = meteredEngine();
    await auth.login({ identityId: 'gh-deployer', jwt: await sign(key, githubClaims(clock.ms)) });
    await expect(
      auth.login({ identityId: 'gh-deployer', jwt: await sign(key, githubClaims(clock.ms, { aud: 'x' })) }),
    ).rejects.toThrow();
    const text = metrics.render();
    expect(text).toContain('# TYPE oidc_machine_auth_logins_total counter');
    expect(text).toContain('oidc_machine_auth_logins_total{result="success"} 1');
    expect(text).toContain(
      'oidc_machine_auth_logins_total{result="failure",reason="audience_not_allowed"} 1',
    );
    expect(text).toContain('oidc_machine_auth_key_fetches_total{result="success"} 0');
    expect(text).toMatch(/oidc_machine_auth_key_cache_lookups_total\{result="hit"\} \d+/);
    expect(text.endsWith('\n')).toBe(true);
    for (const line of text.trimEnd().split('\n')) {
      expect(line).toMatch(/^(# (HELP|TYPE) \w+ .+|\w+(\{[a-z_]+="[a-z_]+"(,[a-z_]+="[a-z_]+")*\})? \d+)$/);
    }
  });

  it('counts key fetches from the engine key stats (a discovery IdP on loopback)', async () => {
    const idp = await startTestIdp();
    try {
      const metrics = createMetrics({ prefix: 'app_auth' });
      const clock = new FakeClock(Date.now());
      const auth = createOidcAuth({
        identities: [
          {
            identityId: 'loop',
            oidcDiscoveryUrl: idp.issuer,
            allowInsecureLoopback: true,
            boundIssuer: idp.issuer,
            boundSubject: 'repo:acme-corp/payments-api:ref:refs/heads/main',
          },
        ],
        signingKeys: SIGNING_KEYS,
        clock: clock.now,
        onEvent: metrics.onEvent,
      });
      metrics.track(auth.keys);
      const jwt = await idp.sign({ sub: 'repo:acme-corp/payments-api:ref:refs/heads/main' });
      await auth.login({ identityId: 'loop', jwt });
      await auth.login({ identityId: 'loop', jwt });
      const snap = metrics.snapshot();
      expect(snap.keyFetches).toEqual({ success: 2, failure: 0 });
      expect(snap.keyCache!.hits).toBeGreaterThanOrEqual(1);
      expect(metrics.render()).toContain('app_auth_key_fetches_total{result="success"} 2');
    } finally {
      await idp.close();
    }
  });

  it('without a tracked engine, counts fetches reported by onKeyFetch and leaves cache stats out', () => {
    const metrics = createMetrics();
    metrics.onKeyFetch({ ok: true });
    metrics.onKeyFetch({ ok: false });
    expect(metrics.snapshot().keyFetches).toEqual({ success: 1, failure: 1 });
    expect(metrics.snapshot().keyCache).toBeUndefined();
    expect(metrics.render()).not.toContain('key_cache');
  });

  it('labels only reason codes: free text never becomes a label (bounded cardinality)', () => {
    const metrics = createMetrics();
    metrics.onEvent({
      type: 'login.failure',
      time: 0,
      reasonCode: 'x"} 1\nevil' as never,
      subject: 'repo:a',
    });
    metrics.onEvent({ type: 'guard.denied', time: 0 });
    metrics.onEvent({ type: 'something.else' as never, time: 0 });
    expect(metrics.snapshot().logins.failure).toEqual({ other: 1 });
    expect(metrics.snapshot().guardDenials).toEqual({ other: 1 });
    expect(metrics.render()).not.toContain('evil');
  });

  it('#13.3 bounded memory: a well-shaped code that is not a reason code is labelled other (labels come from the fixed list)', () => {
    const metrics = createMetrics();
    for (let i = 0; i < 1000; i++) {
      metrics.onEvent({ type: 'login.failure', time: 0, reasonCode: `made_up_${i}` as never });
    }
    metrics.onEvent({ type: 'login.failure', time: 0, reasonCode: 'claim_value_unsupported' });
    expect(metrics.snapshot().logins.failure).toEqual({ other: 1000, claim_value_unsupported: 1 });
  });

  it('reset() zeroes the event counters', () => {
    const metrics = createMetrics();
    metrics.onEvent({ type: 'login.success', time: 0 });
    metrics.reset();
    expect(metrics.snapshot().logins.success).toBe(0);
  });

  it('refuses a prefix that is not a metric name, and a track() source without stats', () => {
    expect(() => createMetrics({ prefix: 'bad name' })).toThrow(TypeError);
    expect(() => createMetrics().track({} as never)).toThrow(TypeError);
  });
});

describe('combineEventHandlers', () => {
  it('calls every handler even when one throws, then rethrows the first error', () => {
    const seen: string[] = [];
    const first = new Error('first');
    const handler = combineEventHandlers(
      () => void seen.push('a'),
      () => {
        throw first;
      },
      undefined,
      () => {
        throw new Error('second');
      },
      () => void seen.push('d'),
    );
    expect(() => handler({ type: 'login.success', time: 0 })).toThrow(first);
    expect(seen).toEqual(['a', 'd']);
  });

  it('the engine logs a throwing handler and the others still see the event', async () => {
    const { auth, key, clock, rec } = (() => {
      const k = makeKey();
      const c = new FakeClock();
      const r = new Recorder();
      const events: AuthEvent[] = [];
      const a = createOidcAuth({
        identities: [githubIdentity(k)],
        signingKeys: SIGNING_KEYS,
        clock: c.now,
        logger: r.logger,
        onEvent: combineEventHandlers(
          () => {
            throw new Error('boom');
          },
          (e) => void events.push(e),
        ),
      });
      return { auth: a, key: k, clock: c, rec: Object.assign(r, { events }) };
    })();
    await auth.login({ identityId: 'gh-deployer', jwt: await sign(key, githubClaims(clock.ms)) });
    expect(rec.events.map((e) => e.type)).toEqual(['login.success']);
    expect(rec.logs.some((l) => (l.obj as { event?: string }).event === 'on_event.error')).toBe(true);
  });
});

const JWT =
  'eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIn0.eyJzdWIiOiJyZXBvOmFjbWUvYXBwIn0.c2lnbmF0dXJlLWJ5dGVzLWhlcmUtMTIzNDU2Nzg5MA';
const OWN = 'omat_k1.AAAAAAAAAAAAAAAAAAAAAA.t3x0ab.QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI';

describe('redaction', () => {
  it('LOG-01: replaces own access tokens, JWTs and bearer credentials inside any string', () => {
    expect(redactString(`token ${OWN} end`)).toBe(`token ${REDACTED} end`);
    expect(redactString(`jwt=${JWT}&x=1`)).toBe(`jwt=${REDACTED}&x=1`);
    expect(redactString('Authorization: Bearer abc.def-ghi')).toBe(`Authorization: Bearer ${REDACTED}`);
    expect(redactString('Bearer realm="oidc-machine-auth", error="invalid_token"')).toBe(
      'Bearer realm="oidc-machine-auth", error="invalid_token"',
    );
    expect(redactString('repo:acme/app:ref:refs/heads/main')).toBe('repo:acme/app:ref:refs/heads/main');
  });

  it('LOG-01: redacts secret-named keys and token-shaped values anywhere in an object, without mutating it', () => {
    const input = {
      event: 'request',
      headers: { Authorization: 'Bearer xyz', 'x-request-id': 'r1' },
      body: { identityId: 'gh-deployer', jwt: JWT, nested: [{ accessToken: OWN }, `see ${OWN}`] },
      access_token: 'opaque',
      tokenId: 'kept',
      count: 3,
      ok: false,
      none: null,
    };
    const copy = structuredClone(input);
    const out = redact(input) as typeof input;
    expect(out).toEqual({
      event: 'request',
      headers: { Authorization: REDACTED, 'x-request-id': 'r1' },
      body: {
        identityId: 'gh-deployer',
        jwt: REDACTED,
        nested: [{ accessToken: REDACTED }, `see ${REDACTED}`],
      },
      access_token: REDACTED,
      tokenId: 'kept',
      count: 3,
      ok: false,
      none: null,
    });
    expect(input).toEqual(copy);
  });

  it('serialises errors with redacted message and stack, and survives cycles and depth', () => {
    const error = Object.assign(new Error(`bad token ${JWT}`), { code: 'E_BAD' });
    const cyclic: Record<string, unknown> = { name: 'a' };
    cyclic.self = cyclic;
    let deep: Record<string, unknown> = { leaf: OWN };
    for (let i = 0; i < 50; i++) deep = { deep };
    const out = redact({ err: error, cyclic, deep, buffer: Buffer.from('secret') }) as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
    expect(out.err).toMatchObject({ type: 'Error', message: `bad token ${REDACTED}`, code: 'E_BAD' });
    expect(out.err.stack).not.toContain('eyJ');
    expect(out.cyclic.self).toBe('[Circular]');
    expect(JSON.stringify(out.deep)).toContain('[Truncated]');
    expect(out.buffer).toBe('[6 bytes]');
  });

  it('LOG-01: redactingLogger and pinoLogger pass redacted objects and messages to a pino-style logger', () => {
    const lines: Array<{ level: string; obj: unknown; msg?: string }> = [];
    const base = {
      bindings: {} as Record<string, unknown>,
      debug: (obj: object, msg?: string) => void lines.push({ level: 'debug', obj, msg }),
      info: (obj: object, msg?: string) => void lines.push({ level: 'info', obj, msg }),
      warn: (obj: object, msg?: string) => void lines.push({ level: 'warn', obj, msg }),
      error: (obj: object, msg?: string) => void lines.push({ level: 'error', obj, msg }),
    };
    const pino = {
      ...base,
      child(bindings: Record<string, unknown>) {
        return { ...base, bindings };
      },
    };
    const logger = redactingLogger(base);
    logger.info({ authorization: 'Bearer x' }, `login with ${JWT}`);
    logger.warn({ jwt: JWT });
    expect(lines[0]).toEqual({
      level: 'info',
      obj: { authorization: REDACTED },
      msg: `login with ${REDACTED}`,
    });
    expect(lines[1]).toEqual({ level: 'warn', obj: { jwt: REDACTED }, msg: undefined });
    expect(lines[1]).not.toHaveProperty('msg', expect.anything());

    const viaPino = pinoLogger(pino);
    viaPino.error({ accessToken: OWN }, 'x');
    expect(lines[2]).toEqual({ level: 'error', obj: { accessToken: REDACTED }, msg: 'x' });
    expect(JSON.stringify(lines)).not.toContain('eyJhbGci');
    expect(JSON.stringify(lines)).not.toContain('omat_k1');
  });

  it('LOG-01: an engine logging through redactingLogger never passes a token to the logger', async () => {
    const key = makeKey();
    const clock = new FakeClock();
    const rec = new Recorder();
    const auth = createOidcAuth({
      identities: [githubIdentity(key)],
      signingKeys: SIGNING_KEYS,
      clock: clock.now,
      logger: redactingLogger(rec.logger),
    });
    const jwt = await sign(key, githubClaims(clock.ms, { aud: 'nope' }));
    await expect(auth.login({ identityId: 'gh-deployer', jwt })).rejects.toThrow();
    expect(rec.logs.length).toBeGreaterThan(0);
    expect(rec.dump()).not.toContain(jwt.split('.')[2]!);
  });
});

/** The regexp `redactString` replaced: right on short inputs, quadratic on long `eyJ` runs (the oracle). */
const TOKEN_SHAPES_REGEXP =
  /omat_[A-Za-z0-9._~+/=-]+|eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]*){0,3}|\b(Bearer|bearer|BEARER|Basic|basic|BASIC)\s+(?!realm\b|error\b)[A-Za-z0-9._~+/=-]+/g;
const oracleRedact = (text: string) =>
  text.replace(TOKEN_SHAPES_REGEXP, (_m, scheme: string | undefined) =>
    scheme ? `${scheme} ${REDACTED}` : REDACTED,
  );

/**
 * The median, over interleaved pairs, of time(large) / time(small), each timing `reps` calls, with
 * `reps` set so one small timing lasts at least 2 ms. Linear work gives about the size ratio;
 * quadratic work its square.
 */
function medianTimeRatio(run: (input: string) => unknown, small: string, large: string, pairs = 15): number {
  const time = (input: string, reps: number) => {
    const start = process.hrtime.bigint();
    for (let i = 0; i < reps; i++) run(input);
    return Number(process.hrtime.bigint() - start);
  };
  let reps = 1;
  while (time(small, reps) < 2e6 && reps < 1 << 16) reps *= 2;
  run(large); // warm up
  const ratios: number[] = [];
  for (let i = 0; i < pairs; i++) {
    // Alternate the order so a GC pause or a CPU-frequency step falls on both sides alike.
    let smallNs: number;
    let largeNs: number;
    if (i % 2 === 0) {
      smallNs = time(small, reps);
      largeNs = time(large, reps);
    } else {
      largeNs = time(large, reps);
      smallNs = time(small, reps);
    }
    ratios.push(largeNs / Math.max(1, smallNs));
  }
  ratios.sort((x, y) => x - y);
  return ratios[Math.floor(ratios.length / 2)]!;
}

/** Adversarial families: each a function of a size in characters. */
const FAMILIES: Record<string, (n: number) => string> = {
  'eyJ repeated, no dot': (n) => 'eyJ'.repeat(Math.ceil(n / 3)).slice(0, n),
  'eyJ then a base64url run, no dot': (n) => `eyJ${'A'.repeat(n - 3)}`,
  'base64url run of eyJ ending in a space': (n) => `${'eyJ'.repeat(Math.ceil(n / 3)).slice(0, n - 1)} `,
  'a URL whose query is an eyJ run': (n) => `https://idp.example/cb?code=${'eyJ'.repeat(n / 3)}`,
  dots: (n) => '.'.repeat(n),
  'eyJ.': (n) => 'eyJ.'.repeat(n / 4),
  'omat_ repeated': (n) => 'omat_'.repeat(n / 5),
  'Bearer then spaces then a comma': (n) => `Bearer${' '.repeat(n - 7)},`,
  'Bearer repeated': (n) => 'Bearer '.repeat(n / 7),
};

describe('#13.4 linear-time redaction', () => {
  const MiB = 1 << 20;

  it('#13.4 linear-time redaction: the scanner finds exactly what the token-shape regexp finds (property, short inputs)', () => {
    const piece = fc.constantFrom(
      'eyJ',
      '.',
      'omat_',
      'Bearer',
      'bearer',
      'BEARER',
      'Basic',
      'basic',
      'BASIC',
      'BeArEr',
      ' ',
      '  ',
      '\t',
      '\n',
      '\u00a0',
      '\u2028',
      '\ufeff',
      'realm',
      'error',
      'realmx',
      'a',
      'Z',
      '9',
      '-',
      '_',
      '=',
      '/',
      '+',
      '~',
      'x',
      'B',
      'b',
      'e',
      'y',
      'J',
      'é',
      '"',
      ',',
      ':',
      'omat',
      'ey',
    );
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 24 }), (pieces) => {
        const text = pieces.join('');
        expect(redactString(text)).toBe(oracleRedact(text));
      }),
      { numRuns: 20_000 },
    );
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 64 }), (text) => {
        expect(redactString(text)).toBe(oracleRedact(text));
      }),
      { numRuns: 2_000 },
    );
  });

  it('#13.4 linear-time redaction: 1 MiB adversarial inputs are redacted right', () => {
    const eyjRun = 'eyJ'.repeat(MiB / 3);
    expect(redactString(eyjRun)).toBe(eyjRun);
    expect(redactString(`${eyjRun}.`)).toBe(REDACTED);
    expect(redactString(`x ${eyjRun}.sig.more.x.y.z`)).toBe(`x ${REDACTED}.z`);
    const dots = '.'.repeat(MiB);
    expect(redactString(dots)).toBe(dots);
    const b64 = 'A'.repeat(MiB);
    expect(redactString(b64)).toBe(b64);
    expect(redactString(`${b64}eyJ${b64}.${b64}`)).toBe(`${b64}${REDACTED}`);
    expect(redactString('eyJa.'.repeat(MiB / 5))).toBe(`${REDACTED}.`.repeat(MiB / 25));
    expect(redactString('omat_'.repeat(MiB / 5))).toBe(REDACTED);
    expect(redactString(`Bearer${' '.repeat(MiB)}abc`)).toBe(`Bearer ${REDACTED}`);
    const lonelyScheme = `Bearer${' '.repeat(MiB)},`;
    expect(redactString(lonelyScheme)).toBe(lonelyScheme);
    const url = `https://idp.example/cb?code=${eyjRun}&id_token=${JWT}`;
    expect(redactString(url)).toBe(`https://idp.example/cb?code=${eyjRun}&id_token=${REDACTED}`);
    // redact() and redactingLogger() use the same scanner on every string they meet.
    expect(redact({ url, list: [eyjRun, `${eyjRun}.`] })).toEqual({
      url: `https://idp.example/cb?code=${eyjRun}&id_token=${REDACTED}`,
      list: [eyjRun, REDACTED],
    });
    const lines: Array<[object, string | undefined]> = [];
    const sink = (obj: object, msg?: string) => void lines.push([obj, msg]);
    redactingLogger({ debug: sink, info: sink, warn: sink, error: sink }).warn({ url }, `${eyjRun}.`);
    expect(lines).toEqual([
      [{ url: `https://idp.example/cb?code=${eyjRun}&id_token=${REDACTED}` }, REDACTED],
    ]);
  });

  for (const [name, family] of Object.entries(FAMILIES)) {
    it(`#13.4 linear-time redaction: redactString work grows linearly (${name}: 8x the input, < 24x the time)`, () => {
      const small = family(4 * 1024);
      const large = family(32 * 1024);
      expect(medianTimeRatio(redactString, small, large)).toBeLessThan(24);
    });
  }

  it('#13.4 linear-time redaction: redact() and redactingLogger() work grows linearly (8x the input, < 24x the time)', () => {
    const log = (n: number) => {
      const text = 'eyJ'.repeat(n / 3);
      return { msg: `${text} `, obj: { url: `https://x/?q=${text}`, nested: [{ jwt: text }, text], text } };
    };
    const sink = () => undefined;
    const logger = redactingLogger({ debug: sink, info: sink, warn: sink, error: sink });
    const [small, large] = [log(4 * 1024), log(32 * 1024)];
    const inputs = new Map([
      [small.msg, small],
      [large.msg, large],
    ]);
    expect(medianTimeRatio((key) => redact(inputs.get(key)!.obj), small.msg, large.msg)).toBeLessThan(24);
    expect(
      medianTimeRatio((key) => logger.info(inputs.get(key)!.obj, inputs.get(key)!.msg), small.msg, large.msg),
    ).toBeLessThan(24);
  });

  it('#13.4 linear-time redaction: a shared sub-object reached along exponentially many paths stops at the value budget', () => {
    let node: unknown = { leaf: `${'eyJ'.repeat(100)}.x` };
    for (let i = 0; i < 9; i++)
      node = Object.fromEntries(Array.from({ length: 20 }, (_, k) => [`k${k}`, node]));
    // 20^9 paths to the leaf; without a budget this walk would not finish.
    const out = JSON.stringify(redact(node));
    expect(out).toContain('[Truncated]');
    expect(out).toContain(REDACTED);
    expect(out).not.toContain('eyJ');
  });
});

/** Every event type, once: a type error here when `AuthEventType` changes without this list. */
const EVERY_EVENT_TYPE: Record<AuthEventType, true> = {
  'login.success': true,
  'login.failure': true,
  'token.renew': true,
  'token.renew.failure': true,
  'token.revoke': true,
  'identity.revoke': true,
  'tokens.revoked_where': true,
  'guard.denied': true,
  'keys.fetch': true,
  'keys.fetch.failure': true,
  'login.candidate_mismatch': true,
};

describe('#13.15 the README promises exactly what the code does', () => {
  it('#13.15 the README promises exactly what the code does: a walkthrough emits every AuthEventType where documented, with the documented fields, and every log line has a message', async () => {
    const idp = await startTestIdp();
    try {
      const clock = new FakeClock(Date.now());
      const rec = new Recorder();
      const SUB = 'repo:acme-corp/payments-api:ref:refs/heads/main';
      const ci = { ...loopbackIdentity(idp, SUB, 'https://secrets.example.com'), accessTokenTTL: 600 };
      const auth = createOidcAuth({
        identities: [
          ci,
          { ...ci, identityId: 'ci-short', accessTokenTTL: 60, accessTokenMaxTTL: 60 },
          {
            ...ci,
            identityId: 'ci-audit',
            candidateRules: [
              { effect: 'deny', name: 'freeze', claims: { jti: 'jti-1' } },
              { effect: 'allow', name: 'main', subject: SUB },
            ],
          },
        ],
        signingKeys: SIGNING_KEYS,
        clock: clock.now,
        onEvent: rec.onEvent,
        logger: rec.logger,
        keys: {
          keyCache: {
            get: async () => {
              throw new Error('cache down');
            },
            set: async () => {
              throw new Error('cache down');
            },
          },
        },
      });
      const jwt = (claims = {}) =>
        idp.sign({ sub: SUB, aud: 'https://secrets.example.com', jti: 'jti-1', ...claims });
      const ip = '203.0.113.7';
      const minted: string[] = [];

      // The IdP is down: keys.fetch.failure, then login.failure idp_unavailable (503).
      idp.setBehavior('discovery', { kind: 'status', status: 503 });
      await expect(auth.login({ identityId: 'ci', jwt: await jwt(), clientIp: ip })).rejects.toMatchObject({
        status: 503,
      });
      idp.reset();
      clock.advance(31); // past the refetch cooldown
      // keys.fetch (discovery and JWKS), login.success with the verified token's iss, sub and jti.
      const grant = await auth.login({ identityId: 'ci', jwt: await jwt(), clientIp: ip });
      minted.push(grant.accessToken);
      // Audit mode: the candidate rules would deny what the live ones allow (login.candidate_mismatch).
      minted.push((await auth.login({ identityId: 'ci-audit', jwt: await jwt(), clientIp: ip })).accessToken);
      // A verified token refused by a binding: login.failure with iss, sub and jti.
      await expect(
        auth.login({
          identityId: 'ci',
          jwt: await jwt({ sub: 'repo:evil/x:ref:refs/heads/main' }),
          clientIp: ip,
        }),
      ).rejects.toMatchObject({ code: 'subject_not_allowed' });
      // Refused before any signature: no iss, sub or jti; a malformed id never reaches events or logs.
      await expect(auth.login({ identityId: 'ci', jwt: 'garbage', clientIp: ip })).rejects.toThrow();
      await expect(auth.login({ identityId: 'bad id\nINJECTED', jwt: 'garbage' })).rejects.toThrow();
      await expect(auth.authenticate('omat_garbage', { clientIp: ip })).rejects.toThrow(); // guard.denied
      await auth.authenticate(grant.accessToken, { clientIp: ip });
      const renewed = await auth.renew(grant.accessToken, { clientIp: ip }); // token.renew
      minted.push(renewed.accessToken);
      const short = await auth.login({ identityId: 'ci-short', jwt: await jwt(), clientIp: ip });
      minted.push(short.accessToken);
      await expect(auth.renew(short.accessToken, { clientIp: ip })).rejects.toMatchObject({
        code: 'max_ttl_reached', // token.renew.failure
      });
      await auth.revoke(renewed.accessToken, { clientIp: ip }); // token.revoke
      expect(await auth.revokeIdentity('ci-short')).toBe(1); // identity.revoke
      // tokens.revoked_where: only ci-audit's token is still live among those of this subject.
      expect(await auth.revokeWhere({ claim: 'sub', value: SUB })).toBe(1);
      await auth.close();

      const types = new Set(rec.events.map((e) => e.type));
      expect([...types].sort()).toEqual(Object.keys(EVERY_EVENT_TYPE).sort());
      const only = (type: AuthEventType) => rec.events.filter((e) => e.type === type);
      const fields = (e: AuthEvent) => Object.keys(e).sort();

      expect(only('keys.fetch.failure')[0]).toMatchObject({
        reasonCode: 'idp_unavailable',
        detail: { kind: 'discovery', url: idp.discoveryUrl, error: 'http_status' },
      });
      expect(only('keys.fetch').map((e) => e.detail?.kind)).toEqual(['discovery', 'jwks']);
      expect(only('keys.fetch')[1]).toMatchObject({ detail: { url: idp.jwksUrl } });
      expect(fields(only('login.success')[0]!)).toEqual(
        ['clientIp', 'identityId', 'issuer', 'jti', 'subject', 'time', 'tokenId', 'type'].sort(),
      );
      expect(only('login.success')[0]).toMatchObject({
        identityId: 'ci',
        issuer: idp.issuer,
        subject: SUB,
        jti: 'jti-1',
      });
      const [down, bound, garbage, malformed] = only('login.failure');
      expect(down).toMatchObject({ reasonCode: 'idp_unavailable', identityId: 'ci', clientIp: ip });
      expect(down).not.toHaveProperty('subject');
      expect(bound).toMatchObject({ reasonCode: 'subject_not_allowed', issuer: idp.issuer, jti: 'jti-1' });
      expect(bound!.subject).toBe('repo:evil/x:ref:refs/heads/main');
      expect(garbage).toMatchObject({ identityId: 'ci', reasonCode: 'token_malformed' });
      for (const e of [garbage, malformed])
        for (const f of ['issuer', 'subject', 'jti']) expect(e).not.toHaveProperty(f);
      expect(malformed!.identityId).toBeUndefined();
      expect(only('guard.denied')[0]).toMatchObject({ reasonCode: 'invalid_token', clientIp: ip });
      expect(only('token.renew')[0]).toMatchObject({
        identityId: 'ci',
        tokenId: grant.tokenId,
        clientIp: ip,
      });
      expect(only('token.renew.failure')[0]).toMatchObject({
        reasonCode: 'max_ttl_reached',
        tokenId: short.tokenId,
      });
      expect(only('token.revoke')[0]).toMatchObject({ tokenId: grant.tokenId, clientIp: ip });
      expect(only('identity.revoke')[0]).toMatchObject({ identityId: 'ci-short', detail: { revoked: 1 } });
      // The claim's name and the count; never the value.
      expect(only('tokens.revoked_where')[0]).toEqual({
        type: 'tokens.revoked_where',
        time: expect.any(Number),
        detail: { claim: 'sub', revoked: 1 },
      });
      expect(only('login.candidate_mismatch')[0]).toMatchObject({
        identityId: 'ci-audit',
        issuer: idp.issuer,
        subject: SUB,
        clientIp: ip,
        detail: {
          live: 'allow',
          candidate: 'deny',
          candidateRule: 'freeze',
          candidateReason: 'denied_by_rule',
        },
      });

      // Never a token in an event or a log line; never the malformed id.
      const recorded = rec.dump();
      for (const token of minted) expect(recorded).not.toContain(token);
      expect(recorded).not.toContain('INJECTED');
      // Every log line: an `event` name and a message.
      expect(rec.logs.length).toBeGreaterThan(0);
      for (const line of rec.logs) {
        expect(typeof (line.obj as { event?: unknown }).event, JSON.stringify(line)).toBe('string');
        expect(line.msg, JSON.stringify(line)).toMatch(/\S/);
      }
      const logged = new Set(rec.logs.map((l) => (l.obj as { event: string }).event));
      for (const event of [
        'keys.fetch.failure',
        'keys.fetch',
        'keys.cache_read_failed',
        'keys.cache_write_failed',
        'login.failure',
      ]) {
        expect(logged).toContain(event);
      }
      expect(logged).not.toContain('keys.fetch_failed');
    } finally {
      await idp.close();
    }
  });

  it('#13.15 the README promises exactly what the code does: metrics count key fetches from keys.fetch events once, with or without onKeyFetch', async () => {
    const idp = await startTestIdp();
    try {
      const SUB = 'repo:acme-corp/payments-api:ref:refs/heads/main';
      for (const withHook of [false, true]) {
        const metrics = createMetrics();
        const auth = createOidcAuth({
          identities: [loopbackIdentity(idp, SUB, 'aud')],
          signingKeys: SIGNING_KEYS,
          onEvent: metrics.onEvent,
          ...(withHook ? { keys: { onFetch: metrics.onKeyFetch } } : {}),
        });
        await auth.login({ identityId: 'ci', jwt: await idp.sign({ sub: SUB, aud: 'aud' }) });
        expect(metrics.snapshot().keyFetches).toEqual({ success: 2, failure: 0 });
        await auth.close();
      }
    } finally {
      await idp.close();
    }
  });

  it('#13.15 the README promises exactly what the code does: every logger call in src/ and adapters/ passes a message', () => {
    const root = fileURLToPath(new URL('..', import.meta.url));
    const files = ['src', 'adapters'].flatMap((dir) =>
      readdirSync(join(root, dir), { recursive: true, encoding: 'utf8' })
        .filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'))
        .map((f) => join(root, dir, f)),
    );
    const silent: string[] = [];
    let calls = 0;
    for (const file of files) {
      const source = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true);
      const visit = (node: ts.Node): void => {
        if (ts.isCallExpression(node) && ts.isPropertyAccessExpression(node.expression)) {
          const method = node.expression.name.text;
          const target = node.expression.expression.getText(source);
          if (['debug', 'info', 'warn', 'error'].includes(method) && /logger$/i.test(target)) {
            calls++;
            if (node.arguments.length < 2) {
              const { line } = source.getLineAndCharacterOfPosition(node.getStart(source));
              silent.push(`${file.slice(root.length)}:${line + 1}`);
            }
          }
        }
        ts.forEachChild(node, visit);
      };
      visit(source);
    }
    expect(calls).toBeGreaterThan(15);
    expect(silent).toEqual([]);
  });
});
