import { metrics, trace } from '@opentelemetry/api';
import { MeterProvider, MetricReader } from '@opentelemetry/sdk-metrics';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { afterAll, describe, expect, it } from 'vitest';
import { instrumentOidcAuth } from '../../adapters/opentelemetry/index.js';
import { makeEngine } from '../helpers/engine.js';
import { githubClaims, sign } from '../helpers/jwt.js';

class CollectingReader extends MetricReader {
  protected override onForceFlush(): Promise<void> {
    return Promise.resolve();
  }
  protected override onShutdown(): Promise<void> {
    return Promise.resolve();
  }
}

afterAll(() => {
  trace.disable();
  metrics.disable();
});

describe('OpenTelemetry through the global providers (a registered SDK)', () => {
  it('no SDK yet: enabled() is false and nothing is started; a tracer provider registered later is used from the next operation on', async () => {
    const instrumentation = instrumentOidcAuth({ guardSpans: true });
    expect(instrumentation.enabled?.()).toBe(false);
    const { auth, clock, key } = makeEngine({ auth: { instrumentation } });
    const grant = await auth.login({
      identityId: 'gh-deployer',
      jwt: await sign(key, githubClaims(clock.ms)),
    });
    await auth.authenticate(grant.accessToken);

    const exporter = new InMemorySpanExporter();
    trace.setGlobalTracerProvider(
      new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }),
    );
    try {
      expect(instrumentation.enabled?.()).toBe(true);
      await auth.authenticate(grant.accessToken);
      expect(exporter.getFinishedSpans().map((s) => s.name)).toEqual(['oidc_machine_auth.authenticate']);
    } finally {
      trace.disable();
    }
  });

  it('instrumentOidcAuth() without options: spans reach a tracer provider registered after it, metrics the meter provider registered before it', async () => {
    const reader = new CollectingReader();
    metrics.setGlobalMeterProvider(new MeterProvider({ readers: [reader] }));
    const instrumentation = instrumentOidcAuth();
    const exporter = new InMemorySpanExporter();
    trace.setGlobalTracerProvider(
      new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }),
    );

    const { auth, clock, key } = makeEngine({ auth: { instrumentation } });
    const grant = await auth.login({
      identityId: 'gh-deployer',
      jwt: await sign(key, githubClaims(clock.ms)),
    });
    await auth.authenticate(grant.accessToken);

    expect(exporter.getFinishedSpans().map((s) => s.name)).toContain('oidc_machine_auth.login');
    const { resourceMetrics } = await reader.collect();
    const names = resourceMetrics.scopeMetrics.flatMap((s) => s.metrics.map((m) => m.descriptor.name));
    expect(names).toEqual(
      expect.arrayContaining(['oidc_machine_auth.logins', 'oidc_machine_auth.guard.decisions']),
    );
  });
});
