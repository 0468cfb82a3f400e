import { SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { afterEach, describe, expect, it } from 'vitest';
import { instrumentOidcAuth } from '../../adapters/opentelemetry/index.js';
import {
  ConfigError,
  NOOP_SPAN,
  createOidcAuth,
  createMetrics,
  type OidcAuthError,
} from '../../src/index.js';
import { exchange } from '../../src/oauth/exchange.js';
import { SIGNING_KEYS, githubIdentity, makeEngine } from '../helpers/engine.js';
import { startTestIdp, loopbackIdentity, type TestIdp } from '../helpers/idp-server.js';
import { githubClaims, makeKey, sign } from '../helpers/jwt.js';
import { decisions, pointValue, telemetry, type Telemetry } from './otel-support.js';

const IP = '203.0.113.7';

function engine(t: Telemetry, options: Parameters<typeof makeEngine>[0] = {}) {
  return makeEngine({ ...options, auth: { instrumentation: t.instrumentation, ...options.auth } });
}

function only(t: Telemetry, name: string): ReadableSpan {
  const found = t.named(name);
  expect(found.map((s) => s.name)).toEqual([name]);
  return found[0]!;
}

const childNames = (t: Telemetry, span: ReadableSpan) => t.childrenOf(span).map((s) => s.name);

async function rejection(promise: Promise<unknown>): Promise<OidcAuthError> {
  return (await promise.then(
    () => expect.unreachable('resolved'),
    (error: unknown) => error,
  )) as OidcAuthError;
}

describe('OpenTelemetry spans', () => {
  it('a login is one span with steps for the store calls, verify (signature, identity read) and policy', async () => {
    const t = telemetry();
    const { auth, clock, key } = engine(t);
    const grant = await auth.login({
      identityId: 'gh-deployer',
      jwt: await sign(key, githubClaims(clock.ms)),
      clientIp: IP,
    });

    const login = only(t, 'oidc_machine_auth.login');
    expect(login.parentSpanContext).toBeUndefined();
    expect(login.kind).toBe(SpanKind.INTERNAL);
    expect(login.status.code).toBe(SpanStatusCode.UNSET);
    expect(login.attributes).toEqual({
      'client.address': IP,
      'oidc_machine_auth.identity.id': 'gh-deployer',
      'oidc_machine_auth.token.id': grant.tokenId,
    });
    expect(childNames(t, login)).toEqual([
      'oidc_machine_auth.store.generation',
      'oidc_machine_auth.verify',
      'oidc_machine_auth.policy',
      'oidc_machine_auth.store.create',
    ]);
    const verify = only(t, 'oidc_machine_auth.verify');
    // Static keys are in hand: no key lookup step, one signature check, then the identity read.
    expect(childNames(t, verify)).toEqual([
      'oidc_machine_auth.signature',
      'oidc_machine_auth.store.identity.get',
    ]);
    expect(only(t, 'oidc_machine_auth.store.create').attributes).toEqual({
      'oidc_machine_auth.store.operation': 'create',
    });
    for (const span of t.spans()) {
      expect(span.spanContext().traceId).toBe(login.spanContext().traceId);
      expect(span.instrumentationScope.name).toBe('oidc-machine-auth');
    }
  });

  it('a refused login: error status and error.type = the detailed reason code, on the span and its policy step, even when the answer hides it', async () => {
    const t = telemetry();
    const { auth, clock, key } = engine(t, { auth: { revealLoginFailureReasons: false } });
    const jwt = await sign(key, githubClaims(clock.ms, { sub: 'repo:evil/repo:ref:refs/heads/main' }));
    const error = await rejection(auth.login({ identityId: 'gh-deployer', jwt, clientIp: IP }));
    expect(error.code).toBe('invalid_credentials');

    const login = only(t, 'oidc_machine_auth.login');
    expect(login.status).toEqual({ code: SpanStatusCode.ERROR });
    expect(login.attributes).toEqual({ 'client.address': IP, 'error.type': 'subject_not_allowed' });
    const policy = only(t, 'oidc_machine_auth.policy');
    expect(policy.attributes['error.type']).toBe('subject_not_allowed');
    expect(policy.status.code).toBe(SpanStatusCode.ERROR);
    expect(t.named('oidc_machine_auth.store.create')).toEqual([]);

    const metrics = await t.collect();
    expect(
      pointValue(metrics, 'oidc_machine_auth.logins', {
        'oidc_machine_auth.outcome': 'failure',
        'error.type': 'subject_not_allowed',
      }),
    ).toBe(1);
  });

  it('a bad signature fails the signature step and the login with signature_invalid; no identity is read', async () => {
    const t = telemetry();
    const { auth, clock } = engine(t);
    const impostor = makeKey('RS256');
    const jwt = await sign({ ...impostor, kid: 'unknown' }, githubClaims(clock.ms), { noKid: true });
    await rejection(auth.login({ identityId: 'gh-deployer', jwt }));
    const login = only(t, 'oidc_machine_auth.login');
    expect(login.attributes['error.type']).toBe('signature_invalid');
    const signature = only(t, 'oidc_machine_auth.signature');
    expect(signature.attributes['error.type']).toBe('signature_invalid');
    expect(t.named('oidc_machine_auth.store.identity.get')).toEqual([]);
  });

  it('guardSpans: true: authenticate (the guard) is one span, its store call timed only (guard.store.duration, no attributes); a refusal has error.type', async () => {
    const t = telemetry({ guardSpans: true });
    const { auth, clock, key } = engine(t);
    const grant = await auth.login({
      identityId: 'gh-deployer',
      jwt: await sign(key, githubClaims(clock.ms)),
    });
    await auth.authenticate(grant.accessToken, { clientIp: IP });
    const error = await rejection(auth.authenticate(`${grant.accessToken}x`, { clientIp: IP }));
    expect(error.code).toBe('invalid_token');

    const [allowed, denied] = t.named('oidc_machine_auth.authenticate');
    expect(allowed!.attributes).toEqual({
      'client.address': IP,
      'oidc_machine_auth.identity.id': 'gh-deployer',
      'oidc_machine_auth.token.id': grant.tokenId,
    });
    expect(allowed!.status.code).toBe(SpanStatusCode.UNSET);
    expect(childNames(t, allowed!)).toEqual([]);
    expect(t.named('oidc_machine_auth.store.consume')).toEqual([]);
    expect(denied!.attributes).toEqual({ 'client.address': IP, 'error.type': 'invalid_token' });
    expect(denied!.status.code).toBe(SpanStatusCode.ERROR);
    expect(childNames(t, denied!)).toEqual([]); // refused before any store call

    const metrics = await t.collect();
    expect(decisions(metrics)).toBe(1);
    expect(decisions(metrics, 'invalid_token')).toBe(1);
    expect(pointValue(metrics, 'oidc_machine_auth.guard.denials', { 'error.type': 'invalid_token' })).toBe(1);
    // The guard's store call (one, the refused token never reached the store): no attribute set.
    expect(metrics.get('oidc_machine_auth.guard.store.duration')).toEqual([
      { attributes: {}, value: expect.objectContaining({ count: 1 }) },
    ]);
    expect(
      pointValue(metrics, 'oidc_machine_auth.store.duration', {
        'oidc_machine_auth.store.operation': 'consume',
      }),
    ).toBeUndefined();
  });

  it('two instrumentations on one meter provider share their metrics: guard decisions add up, each reported once', async () => {
    const t = telemetry();
    const second = instrumentOidcAuth({ meterProvider: t.meterProvider, tracerProvider: t.tracerProvider });
    const a = engine(t);
    const b = makeEngine({ auth: { instrumentation: second } });
    for (const { auth, clock, key } of [a, b]) {
      const grant = await auth.login({
        identityId: 'gh-deployer',
        jwt: await sign(key, githubClaims(clock.ms)),
      });
      await auth.authenticate(grant.accessToken);
    }
    const metrics = await t.collect();
    const decisions = metrics.get('oidc_machine_auth.guard.decisions')!;
    expect(decisions).toEqual([{ attributes: { 'oidc_machine_auth.outcome': 'success' }, value: 2 }]);
    expect(pointValue(metrics, 'oidc_machine_auth.logins', { 'oidc_machine_auth.outcome': 'success' })).toBe(
      2,
    );
  });

  it('guardStoreSpans: true gives authenticate a store.consume child span', async () => {
    const t = telemetry({ guardStoreSpans: true });
    const { auth, clock, key } = engine(t);
    const grant = await auth.login({
      identityId: 'gh-deployer',
      jwt: await sign(key, githubClaims(clock.ms)),
    });
    await auth.authenticate(grant.accessToken);
    const consume = only(t, 'oidc_machine_auth.store.consume');
    expect(consume.parentSpanContext?.spanId).toBe(
      only(t, 'oidc_machine_auth.authenticate').spanContext().spanId,
    );
    expect(consume.attributes).toEqual({ 'oidc_machine_auth.store.operation': 'consume' });
  });

  it('renew and revoke are spans with their store steps; a revoked token is denied as token_revoked', async () => {
    const t = telemetry({ guardSpans: true });
    const { auth, clock, key } = engine(t);
    const grant = await auth.login({
      identityId: 'gh-deployer',
      jwt: await sign(key, githubClaims(clock.ms)),
    });
    clock.advance(60);
    const renewed = await auth.renew(grant.accessToken, { clientIp: IP });
    await auth.revoke(renewed.accessToken, { clientIp: IP });
    await rejection(auth.authenticate(renewed.accessToken));
    await auth.revokeIdentity('gh-deployer');

    const renew = only(t, 'oidc_machine_auth.renew');
    expect(renew.attributes['oidc_machine_auth.token.id']).toBe(grant.tokenId);
    expect(childNames(t, renew)).toEqual(['oidc_machine_auth.store.get', 'oidc_machine_auth.store.extend']);
    expect(childNames(t, only(t, 'oidc_machine_auth.revoke'))).toEqual(['oidc_machine_auth.store.revoke']);
    expect(childNames(t, only(t, 'oidc_machine_auth.revoke_identity'))).toEqual([
      'oidc_machine_auth.store.revoke_identity',
    ]);
    expect(only(t, 'oidc_machine_auth.authenticate').attributes['error.type']).toBe('token_revoked');

    const metrics = await t.collect();
    expect(
      pointValue(metrics, 'oidc_machine_auth.renewals', { 'oidc_machine_auth.outcome': 'success' }),
    ).toBe(1);
    expect(
      pointValue(metrics, 'oidc_machine_auth.revocations', { 'oidc_machine_auth.revocation.scope': 'token' }),
    ).toBe(1);
    expect(
      pointValue(metrics, 'oidc_machine_auth.revocations', {
        'oidc_machine_auth.revocation.scope': 'identity',
      }),
    ).toBe(1);
    expect(pointValue(metrics, 'oidc_machine_auth.guard.denials', { 'error.type': 'token_revoked' })).toBe(1);
    const [consume] = metrics.get('oidc_machine_auth.guard.store.duration')!;
    expect(consume!.attributes).toEqual({});
    expect((consume!.value as { count: number }).count).toBe(1);
    expect((consume!.value as { sum: number }).sum).toBeGreaterThanOrEqual(0);
    for (const operation of [
      'generation',
      'identity.get',
      'create',
      'get',
      'extend',
      'revoke',
      'revoke_identity',
    ]) {
      expect(
        (
          pointValue(metrics, 'oidc_machine_auth.store.duration', {
            'oidc_machine_auth.store.operation': operation,
          }) as { count: number } | undefined
        )?.count,
        operation,
      ).toBe(1);
    }
  });

  it('unsampled (AlwaysOffSampler): no span is recorded, the store latency and guard decisions are', async () => {
    const t = telemetry({ sampled: false });
    const { auth, clock, key } = engine(t);
    const grant = await auth.login({
      identityId: 'gh-deployer',
      jwt: await sign(key, githubClaims(clock.ms)),
    });
    await auth.authenticate(grant.accessToken);
    await rejection(auth.authenticate('omat_nope'));
    expect(t.spans()).toEqual([]);
    const metrics = await t.collect();
    expect(metrics.get('oidc_machine_auth.guard.store.duration')).toEqual([
      { attributes: {}, value: expect.objectContaining({ count: 1 }) },
    ]);
    expect(decisions(metrics)).toBe(1);
    expect(decisions(metrics, 'invalid_token')).toBe(1);
    expect(pointValue(metrics, 'oidc_machine_auth.logins', { 'oidc_machine_auth.outcome': 'success' })).toBe(
      1,
    );
  });

  it('a store method answering a plain value (not a promise) is traced like one answering a promise', async () => {
    const t = telemetry({ guardStoreSpans: true });
    const { auth, clock, key } = engine(t);
    const grant = await auth.login({
      identityId: 'gh-deployer',
      jwt: await sign(key, githubClaims(clock.ms)),
    });
    auth.tokens.consume = ((_id: string, _now: number) => ({ ok: false, reason: 'revoked' })) as never;
    expect((await rejection(auth.authenticate(grant.accessToken))).code).toBe('token_revoked');
    expect(only(t, 'oidc_machine_auth.store.consume').status.code).toBe(SpanStatusCode.UNSET);
  });

  it('a failing store call: the store step and histogram point carry error.type, the operation store_unavailable', async () => {
    const t = telemetry({ guardStoreSpans: true });
    const { auth, clock, key } = engine(t);
    const grant = await auth.login({
      identityId: 'gh-deployer',
      jwt: await sign(key, githubClaims(clock.ms)),
    });
    auth.tokens.consume = async () => {
      throw new TypeError('connection refused');
    };
    const error = await rejection(auth.authenticate(grant.accessToken));
    expect(error.code).toBe('store_unavailable');
    const consume = only(t, 'oidc_machine_auth.store.consume');
    expect(consume.attributes['error.type']).toBe('TypeError');
    expect(only(t, 'oidc_machine_auth.authenticate').attributes['error.type']).toBe('store_unavailable');
    const metrics = await t.collect();
    expect(
      (
        pointValue(metrics, 'oidc_machine_auth.guard.store.duration', {
          'error.type': 'TypeError',
        }) as { count: number }
      ).count,
    ).toBe(1);
  });
});

describe('OpenTelemetry spans of introspection and the token exchange', () => {
  it('RFC 7662 §2.2: introspect is a span with its store steps; active: true with the identity and token id, false for a token not live', async () => {
    const t = telemetry();
    const { auth, clock, key } = engine(t);
    const grant = await auth.login({
      identityId: 'gh-deployer',
      jwt: await sign(key, githubClaims(clock.ms)),
    });
    expect(await auth.introspect(grant.accessToken)).toMatchObject({ tokenId: grant.tokenId });
    await auth.revoke(grant.accessToken);
    expect(await auth.introspect(grant.accessToken)).toBeUndefined();
    expect(await auth.introspect('omat_nope')).toBeUndefined();

    const [live, revoked, forged] = t.named('oidc_machine_auth.introspect');
    expect(live!.attributes).toEqual({
      'oidc_machine_auth.introspection.active': true,
      'oidc_machine_auth.identity.id': 'gh-deployer',
      'oidc_machine_auth.token.id': grant.tokenId,
    });
    expect(live!.status.code).toBe(SpanStatusCode.UNSET);
    expect(childNames(t, live!)).toEqual([
      'oidc_machine_auth.store.get',
      'oidc_machine_auth.store.generation',
    ]);
    // Not live is an answer, not an error: no error.type, and no identity of a revoked token either.
    expect(revoked!.attributes).toEqual({ 'oidc_machine_auth.introspection.active': false });
    expect(revoked!.status.code).toBe(SpanStatusCode.UNSET);
    expect(forged!.attributes).toEqual({ 'oidc_machine_auth.introspection.active': false });
    expect(childNames(t, forged!)).toEqual([]); // refused before any store call

    const metrics = await t.collect();
    const get = pointValue(metrics, 'oidc_machine_auth.store.duration', {
      'oidc_machine_auth.store.operation': 'get',
    }) as { count: number };
    expect(get.count).toBe(2);
  });

  it('RFC 8693 §2.1: a token exchange naming its identity is a token_exchange span with the login and its steps as a child', async () => {
    const t = telemetry();
    const { auth, clock, key } = engine(t);
    const { grant } = await exchange(
      auth,
      { subjectToken: await sign(key, githubClaims(clock.ms)), identityId: 'gh-deployer' },
      { clientIp: IP },
    );

    const span = only(t, 'oidc_machine_auth.token_exchange');
    expect(span.parentSpanContext).toBeUndefined();
    expect(span.status.code).toBe(SpanStatusCode.UNSET);
    expect(span.attributes).toEqual({
      'client.address': IP,
      'oidc_machine_auth.identity.id': 'gh-deployer',
      'oidc_machine_auth.token.id': grant.tokenId,
    });
    expect(childNames(t, span)).toEqual(['oidc_machine_auth.login']);
    const login = only(t, 'oidc_machine_auth.login');
    expect(login.spanContext().traceId).toBe(span.spanContext().traceId);
    expect(login.attributes['oidc_machine_auth.token.id']).toBe(grant.tokenId);
    expect(childNames(t, login)).toContain('oidc_machine_auth.verify');
  });

  it('RFC 8693 §2.1 without client_id: a select step, then the login; a refused exchange has error.type on both spans', async () => {
    const t = telemetry();
    const { auth, clock, key } = engine(t);
    const { grant } = await exchange(auth, { subjectToken: await sign(key, githubClaims(clock.ms)) });
    const [chosen] = t.named('oidc_machine_auth.token_exchange');
    expect(childNames(t, chosen!)).toEqual(['oidc_machine_auth.select', 'oidc_machine_auth.login']);
    expect(chosen!.attributes['oidc_machine_auth.identity.id']).toBe(grant.identityId);

    // A token no identity binds: refused exactly as a forged token is (RFC 8693 §2.2.2, RFC 6749 §5.2).
    const stranger = await sign(key, githubClaims(clock.ms, { sub: 'repo:evil/repo:ref:refs/heads/main' }));
    const error = await rejection(exchange(auth, { subjectToken: stranger }, { clientIp: IP }));
    const refused = t.named('oidc_machine_auth.token_exchange')[1]!;
    expect(refused.status.code).toBe(SpanStatusCode.ERROR);
    expect(refused.attributes).toEqual({ 'client.address': IP, 'error.type': error.code });
    const login = t.childrenOf(refused).find((s) => s.name === 'oidc_machine_auth.login')!;
    expect(login.status.code).toBe(SpanStatusCode.ERROR);
    expect(login.attributes['oidc_machine_auth.identity.id']).toBeUndefined();
  });

  it('an exchange on an engine without instrumentation is traced nowhere, and its login still works', async () => {
    const t = telemetry();
    const { auth, clock, key } = makeEngine();
    const { grant } = await exchange(auth, {
      subjectToken: await sign(key, githubClaims(clock.ms)),
      identityId: 'gh-deployer',
    });
    expect(grant.identityId).toBe('gh-deployer');
    expect(t.spans()).toEqual([]);
  });
});

describe('OpenTelemetry with a discovering identity (key lookups and fetches)', () => {
  let idp: TestIdp | undefined;
  afterEach(async () => {
    await idp?.close();
    idp = undefined;
  });

  it('a cold login has a keys step under verify; each fetch is a CLIENT span; fetches, their duration and cache lookups are metrics', async () => {
    idp = await startTestIdp();
    const t = telemetry();
    const auth = createOidcAuth({
      identities: [loopbackIdentity(idp, 'ci:*', 'api')],
      signingKeys: SIGNING_KEYS,
      instrumentation: t.instrumentation,
    });
    const jwt = await idp.sign({ sub: 'ci:build', aud: 'api' });
    await auth.login({ identityId: 'ci', jwt });
    await auth.login({ identityId: 'ci', jwt });

    const [cold, warm] = t.named('oidc_machine_auth.login');
    const coldVerify = t.childrenOf(cold!).find((s) => s.name === 'oidc_machine_auth.verify')!;
    const keys = t.childrenOf(coldVerify).find((s) => s.name === 'oidc_machine_auth.keys')!;
    expect(keys.attributes).toEqual({ 'oidc_machine_auth.keys.source': 'discovery' });
    expect(keys.status.code).toBe(SpanStatusCode.UNSET);
    const warmVerify = t.childrenOf(warm!).find((s) => s.name === 'oidc_machine_auth.verify')!;
    expect(childNames(t, warmVerify)).toEqual([
      'oidc_machine_auth.signature',
      'oidc_machine_auth.store.identity.get',
    ]);

    const fetches = t.named('oidc_machine_auth.keys.fetch');
    expect(fetches.map((s) => s.attributes['oidc_machine_auth.keys.kind'])).toEqual(['discovery', 'jwks']);
    for (const fetch of fetches) {
      expect(fetch.kind).toBe(SpanKind.CLIENT);
      expect(fetch.attributes['server.address']).toBe('127.0.0.1');
      expect(fetch.attributes['error.type']).toBeUndefined();
    }

    const metrics = await t.collect();
    for (const kind of ['discovery', 'jwks']) {
      const attributes = { 'oidc_machine_auth.keys.kind': kind, 'oidc_machine_auth.outcome': 'success' };
      expect(pointValue(metrics, 'oidc_machine_auth.keys.fetches', attributes)).toBe(1);
      expect(
        (pointValue(metrics, 'oidc_machine_auth.keys.fetch.duration', attributes) as { count: number }).count,
      ).toBe(1);
    }
    const stats = auth.keys.stats();
    expect(stats.hits).toBeGreaterThan(0);
    expect(
      pointValue(metrics, 'oidc_machine_auth.keys.cache.lookups', {
        'oidc_machine_auth.keys.cache.result': 'hit',
      }),
    ).toBe(stats.hits);
    expect(
      pointValue(metrics, 'oidc_machine_auth.keys.cache.lookups', {
        'oidc_machine_auth.keys.cache.result': 'miss',
      }),
    ).toBe(stats.misses);
  });

  it('an unreachable IdP: the keys step, the fetch spans and the login carry error.type', async () => {
    idp = await startTestIdp();
    const t = telemetry();
    const auth = createOidcAuth({
      identities: [loopbackIdentity(idp, 'ci:*', 'api')],
      signingKeys: SIGNING_KEYS,
      instrumentation: t.instrumentation,
    });
    idp.setBehavior('discovery', { kind: 'status', status: 500 });
    const error = await rejection(
      auth.login({ identityId: 'ci', jwt: await idp.sign({ sub: 'ci:build', aud: 'api' }) }),
    );
    expect(error.code).toBe('idp_unavailable');
    expect(only(t, 'oidc_machine_auth.login').attributes['error.type']).toBe('idp_unavailable');
    expect(only(t, 'oidc_machine_auth.keys').attributes['error.type']).toBe('idp_unavailable');
    const fetch = only(t, 'oidc_machine_auth.keys.fetch');
    expect(fetch.status.code).toBe(SpanStatusCode.ERROR);
    expect(fetch.attributes['error.type']).toBe('http_status');
    const metrics = await t.collect();
    expect(
      pointValue(metrics, 'oidc_machine_auth.keys.fetches', {
        'oidc_machine_auth.keys.kind': 'discovery',
        'oidc_machine_auth.outcome': 'failure',
        'error.type': 'http_status',
      }),
    ).toBe(1);
  });
});

describe('OpenTelemetry never records a token or a claim value', () => {
  it('CANARY: log in, exchange, renew, use, introspect, revoke and be refused with tokens and claims carrying a marker; it is in no span name, attribute, event, link, status, resource or metric', async () => {
    const M = `CANARY${Math.random().toString(36).slice(2)}`;
    const t = telemetry();
    const key = makeKey('RS256');
    const { auth, clock } = engine(t, {
      key,
      identity: {
        boundSubject: 'repo:*',
        boundClaims: {},
        claimMetadataMapping: { repository: 'repository', ref: 'ref' },
      },
    });
    const claims = githubClaims(clock.ms, {
      sub: `repo:${M}`,
      jti: `jti-${M}`,
      repository: `${M}/repo`,
      ref: `refs/heads/${M}`,
      [M]: M,
    });
    const jwt = await sign(key, claims);
    const grant = await auth.login({ identityId: 'gh-deployer', jwt, clientIp: IP });
    const used = await auth.authenticate(grant.accessToken, { clientIp: IP });
    expect(used.subject).toBe(`repo:${M}`); // the marker did reach the engine
    clock.advance(60);
    const renewed = await auth.renew(grant.accessToken, { clientIp: IP });
    await auth.authenticate(renewed.accessToken, { clientIp: IP });

    const idpTokens = [jwt];
    // Refusals: a subject not allowed (verified), a bad signature, garbage, a foreign identity id,
    // forged access tokens.
    const refusing = makeEngine({
      key,
      identity: { boundSubject: 'repo:acme/*' },
      auth: { instrumentation: t.instrumentation },
    }).auth;
    await rejection(refusing.login({ identityId: 'gh-deployer', jwt }));
    const forged = await sign(makeKey('RS256', key.kid), claims);
    idpTokens.push(forged);
    await rejection(auth.login({ identityId: 'gh-deployer', jwt: forged }));
    await rejection(auth.login({ identityId: 'gh-deployer', jwt: `${M}.${M}.${M}` }));
    await rejection(auth.login({ identityId: `id-${M}`, jwt }));
    await rejection(auth.authenticate(`omat_${M}`));
    await rejection(auth.renew(`omat_${M}.${M}`));
    await rejection(auth.revoke(`${M}`));
    // The token exchange (named and selected identity, refused) and introspection (live, forged).
    const exchanged = await exchange(
      auth,
      { subjectToken: jwt, identityId: 'gh-deployer' },
      { clientIp: IP },
    );
    const selected = await exchange(auth, { subjectToken: jwt });
    await rejection(exchange(auth, { subjectToken: forged }, { clientIp: IP }));
    await rejection(exchange(auth, { subjectToken: `${M}.${M}.${M}` }));
    expect(await auth.introspect(exchanged.grant.accessToken)).toMatchObject({ subject: `repo:${M}` });
    expect(await auth.introspect(`omat_${M}`)).toBeUndefined();
    await auth.revoke(renewed.accessToken);
    await rejection(auth.authenticate(renewed.accessToken));

    expect(t.named('oidc_machine_auth.token_exchange')).toHaveLength(4);
    expect(t.named('oidc_machine_auth.introspect')).toHaveLength(2);
    expect(t.spans().length).toBeGreaterThan(30);
    const dump = await t.dump();
    expect(dump).toContain('oidc_machine_auth.login'); // the dump holds what was recorded
    expect(dump).not.toContain(M);
    // No part of an IdP token (header, claims, signature).
    for (const idpToken of idpTokens) {
      for (const part of idpToken.split('.')) expect(dump).not.toContain(part);
    }
    // No access token string, nonce or MAC (`omat_<kid>.<tokenId>.<exp>.<nonce>.<mac>`): its token
    // id is the audit handle events carry too, and is recorded by design.
    for (const accessToken of [
      grant.accessToken,
      renewed.accessToken,
      exchanged.grant.accessToken,
      selected.grant.accessToken,
    ]) {
      expect(dump).not.toContain(accessToken);
      for (const part of accessToken.split('.').slice(-2)) expect(dump).not.toContain(part);
    }
  });
});

describe('OpenTelemetry without an SDK', () => {
  it('with no SDK registered the instrumentation records nothing and every operation works', async () => {
    // No global provider is registered in this file: the API answers with its no-op ones.
    expect(trace.getTracerProvider().getTracer('x').startSpan('probe').isRecording()).toBe(false);
    // Nothing to record: the engine gets the no-op span, and skips its steps.
    expect(instrumentOidcAuth().startSpan('authenticate', { clientIp: IP })).toBe(NOOP_SPAN);
    const metrics = createMetrics();
    const { auth, clock, key } = makeEngine({
      auth: { instrumentation: instrumentOidcAuth(), onEvent: metrics.onEvent },
    });
    const grant = await auth.login({
      identityId: 'gh-deployer',
      jwt: await sign(key, githubClaims(clock.ms)),
    });
    await expect(auth.authenticate(grant.accessToken)).resolves.toMatchObject({ identityId: 'gh-deployer' });
    expect((await rejection(auth.authenticate('omat_nope'))).code).toBe('invalid_token');
    clock.advance(10);
    const renewed = await auth.renew(grant.accessToken);
    await auth.revoke(renewed.accessToken);
    // The Prometheus counters are fed from the same event stream, unchanged.
    expect(metrics.snapshot()).toMatchObject({
      logins: { success: 1 },
      guardDenials: { invalid_token: 1 },
      renewals: { success: 1 },
      revocations: { token: 1 },
    });
    expect(metrics.render()).toContain('oidc_machine_auth_logins_total{result="success"} 1');
  });

  it('no SDK: enabled() is false, so the engine starts no span for any operation', async () => {
    expect(instrumentOidcAuth().enabled?.()).toBe(false);
    const started: string[] = [];
    const otel = instrumentOidcAuth();
    const { auth, clock, key } = makeEngine({
      auth: {
        instrumentation: {
          enabled: () => otel.enabled!(),
          startSpan: (name, fields, parent) => {
            started.push(name);
            return otel.startSpan(name, fields, parent);
          },
        },
      },
    });
    const jwt = await sign(key, githubClaims(clock.ms));
    const grant = await auth.login({ identityId: 'gh-deployer', jwt });
    await auth.authenticate(grant.accessToken);
    await auth.introspect(grant.accessToken);
    await exchange(auth, { subjectToken: jwt, identityId: 'gh-deployer' });
    await auth.revoke(grant.accessToken);
    expect(started).toEqual([]);
  });

  it('an instrumentation whose enabled() answers false starts no span; one whose enabled() throws fails no operation', async () => {
    let calls = 0;
    const instrumentation = (enabled: () => boolean) => ({
      enabled,
      startSpan: () => {
        calls++;
        return NOOP_SPAN;
      },
    });
    const off = makeEngine({ auth: { instrumentation: instrumentation(() => false) } });
    const grant = await off.auth.login({
      identityId: 'gh-deployer',
      jwt: await sign(off.key, githubClaims(off.clock.ms)),
    });
    await off.auth.authenticate(grant.accessToken);
    expect(calls).toBe(0);
    const broken = makeEngine({
      auth: {
        instrumentation: instrumentation(() => {
          throw new Error('broken telemetry');
        }),
      },
    });
    const again = await broken.auth.login({
      identityId: 'gh-deployer',
      jwt: await sign(broken.key, githubClaims(broken.clock.ms)),
    });
    await expect(broken.auth.authenticate(again.accessToken)).resolves.toMatchObject({
      tokenId: again.tokenId,
    });
    expect(calls).toBe(0);
  });

  it('an instrumentation whose startSpan throws does not fail an operation', async () => {
    const { auth, clock, key } = makeEngine({
      auth: {
        instrumentation: {
          startSpan() {
            throw new Error('broken telemetry');
          },
        },
      },
    });
    const grant = await auth.login({
      identityId: 'gh-deployer',
      jwt: await sign(key, githubClaims(clock.ms)),
    });
    await expect(auth.authenticate(grant.accessToken)).resolves.toMatchObject({ tokenId: grant.tokenId });
  });

  it('an instrumentation without startSpan is refused at start-up, naming the option', () => {
    expect(() =>
      createOidcAuth({
        identities: [githubIdentity(makeKey('ES256'))],
        signingKeys: SIGNING_KEYS,
        instrumentation: {} as never,
      }),
    ).toThrow(ConfigError);
  });
});
