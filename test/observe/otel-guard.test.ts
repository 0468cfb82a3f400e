import type { AddressInfo } from 'node:net';
import { context, type Span } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';
import express from 'express';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireAccessToken } from '../../adapters/express/index.js';
import type { OidcAuthError } from '../../src/index.js';
import { makeEngine } from '../helpers/engine.js';
import { githubClaims, sign } from '../helpers/jwt.js';
import { decisions, pointValue, telemetry, type Telemetry } from './otel-support.js';

/**
 * The guard's default telemetry (`guardSpans` off): no span of its own; its outcome on the span
 * active when it runs, which in an instrumented app is the request's span. Node's context manager
 * (AsyncLocalStorage) is registered here, as an SDK set-up registers it, so an active span reaches
 * the guard through the framework's async calls.
 */
beforeAll(() => {
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
});
afterAll(() => {
  context.disable();
});

async function rejection(promise: Promise<unknown>): Promise<OidcAuthError> {
  return (await promise.then(
    () => expect.unreachable('resolved'),
    (error: unknown) => error,
  )) as OidcAuthError;
}

/** `work` inside an active `request` span of `t`'s tracer provider (as HTTP instrumentation makes one). */
async function inRequestSpan(t: Telemetry, work: () => Promise<unknown>): Promise<ReadableSpan> {
  const tracer = t.tracerProvider.getTracer('test-http');
  let span: Span | undefined;
  await tracer.startActiveSpan('request', async (active) => {
    span = active;
    try {
      await work();
    } catch {
      // The refusal is asserted on the span.
    } finally {
      active.end();
    }
  });
  const id = span!.spanContext().spanId;
  return t.spans().find((s) => s.spanContext().spanId === id)!;
}

async function loggedIn(t: Telemetry) {
  const engine = makeEngine({ auth: { instrumentation: t.instrumentation } });
  const grant = await engine.auth.login({
    identityId: 'gh-deployer',
    jwt: await sign(engine.key, githubClaims(engine.clock.ms)),
  });
  return { ...engine, grant };
}

describe('OpenTelemetry on the guard without guardSpans (the default)', () => {
  it('no authenticate span: the request span gets the outcome, identity id and token id; a refusal its outcome and reason code', async () => {
    const t = telemetry();
    const { auth, grant } = await loggedIn(t);
    const allowed = await inRequestSpan(t, () => auth.authenticate(grant.accessToken));
    const denied = await inRequestSpan(t, () => auth.authenticate(`${grant.accessToken}x`));

    expect(t.named('oidc_machine_auth.authenticate')).toEqual([]);
    expect(t.named('oidc_machine_auth.store.consume')).toEqual([]);
    expect(allowed.attributes).toEqual({
      'oidc_machine_auth.outcome': 'success',
      'oidc_machine_auth.identity.id': 'gh-deployer',
      'oidc_machine_auth.token.id': grant.tokenId,
    });
    // The request span's error.type and status belong to the HTTP layer: the guard leaves them.
    expect(denied.attributes).toEqual({
      'oidc_machine_auth.outcome': 'failure',
      'oidc_machine_auth.denial.reason': 'invalid_token',
    });
    expect(denied.status.code).toBe(0);

    const metrics = await t.collect();
    expect(decisions(metrics)).toBe(1);
    expect(decisions(metrics, 'invalid_token')).toBe(1);
    // One store call (the forged token never reached the store).
    expect(metrics.get('oidc_machine_auth.guard.store.duration')).toEqual([
      { attributes: {}, value: expect.objectContaining({ count: 1 }) },
    ]);
  });

  it('no active span: decisions and the store call are still measured; a store failure is timed with its error.type', async () => {
    const t = telemetry();
    const { auth, grant } = await loggedIn(t);
    await auth.authenticate(grant.accessToken);
    auth.tokens.consume = async () => {
      throw new TypeError('connection refused');
    };
    expect((await rejection(auth.authenticate(grant.accessToken))).code).toBe('store_unavailable');
    expect(t.named('oidc_machine_auth.authenticate')).toEqual([]);
    const metrics = await t.collect();
    expect(decisions(metrics, 'store_unavailable')).toBe(1);
    expect(
      (
        pointValue(metrics, 'oidc_machine_auth.guard.store.duration', { 'error.type': 'TypeError' }) as {
          count: number;
        }
      ).count,
    ).toBe(1);
  });

  it('an unsampled request span is left alone (nothing is recorded on it)', async () => {
    const t = telemetry({ sampled: false });
    const { auth, grant } = await loggedIn(t);
    let annotated = false;
    await t.tracerProvider.getTracer('test-http').startActiveSpan('request', async (span) => {
      const setAttribute = span.setAttribute.bind(span);
      span.setAttribute = (key, value) => {
        annotated = true;
        return setAttribute(key, value);
      };
      await auth.authenticate(grant.accessToken);
      span.end();
    });
    expect(annotated).toBe(false);
    expect(t.spans()).toEqual([]);
  });

  it('through Express: each request span (started by a first middleware, as HTTP instrumentation does) carries its guard outcome', async () => {
    const t = telemetry();
    const { auth, grant } = await loggedIn(t);
    const tracer = t.tracerProvider.getTracer('test-http');
    const app = express();
    app.use((req, res, next) => {
      tracer.startActiveSpan(`GET ${req.path}`, (span) => {
        res.on('finish', () => span.end());
        next();
      });
    });
    app.get('/secrets', requireAccessToken(auth), (_req, res) => {
      res.json({ ok: true });
    });
    const server = app.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    const { port } = server.address() as AddressInfo;
    try {
      const call = (token: string) =>
        fetch(`http://127.0.0.1:${port}/secrets`, { headers: { authorization: `Bearer ${token}` } });
      expect((await call(grant.accessToken)).status).toBe(200);
      expect((await call('omat_forged')).status).toBe(401);
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
    const requests = t.named('GET /secrets');
    expect(requests.map((s) => s.attributes)).toEqual([
      {
        'oidc_machine_auth.outcome': 'success',
        'oidc_machine_auth.identity.id': 'gh-deployer',
        'oidc_machine_auth.token.id': grant.tokenId,
      },
      { 'oidc_machine_auth.outcome': 'failure', 'oidc_machine_auth.denial.reason': 'invalid_token' },
    ]);
    expect(t.named('oidc_machine_auth.authenticate')).toEqual([]);
  });

  it('CANARY: a marker in the IdP token subject and claims, and in forged access tokens, reaches no request-span attribute', async () => {
    const M = `CANARY${Math.random().toString(36).slice(2)}`;
    const t = telemetry();
    const engine = makeEngine({
      auth: { instrumentation: t.instrumentation },
      identity: {
        boundSubject: 'repo:*',
        boundClaims: {},
        claimMetadataMapping: { repository: 'repository' },
      },
    });
    const grant = await engine.auth.login({
      identityId: 'gh-deployer',
      jwt: await sign(
        engine.key,
        githubClaims(engine.clock.ms, { sub: `repo:${M}`, repository: `${M}/repo`, [M]: M }),
      ),
    });
    const used = await inRequestSpan(t, async () => {
      expect((await engine.auth.authenticate(grant.accessToken)).subject).toBe(`repo:${M}`);
    });
    expect(used.attributes['oidc_machine_auth.outcome']).toBe('success');
    for (const forged of [`omat_${M}`, `${M}.${M}.${M}`, `${grant.accessToken}${M}`]) {
      await inRequestSpan(t, () => engine.auth.authenticate(forged));
    }
    const dump = await t.dump();
    expect(dump).toContain('oidc_machine_auth.denial.reason');
    expect(dump).not.toContain(M);
    expect(dump).not.toContain(grant.accessToken);
  });

  it('guardSpans: true: the guard has its own span, a child of the request span, and the request span is left alone', async () => {
    const t = telemetry({ guardSpans: true });
    const { auth, grant } = await loggedIn(t);
    const request = await inRequestSpan(t, () => auth.authenticate(grant.accessToken));
    const [guard] = t.named('oidc_machine_auth.authenticate');
    expect(guard!.parentSpanContext?.spanId).toBe(request.spanContext().spanId);
    expect(guard!.attributes['oidc_machine_auth.identity.id']).toBe('gh-deployer');
    expect(request.attributes).toEqual({});
  });
});
