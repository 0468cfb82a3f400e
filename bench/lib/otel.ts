/**
 * OpenTelemetry for the Express guard benchmark (`BENCH_OTEL` of `servers/express-guard.ts`):
 * - `sdk`: `instrumentOidcAuth()` with an SDK registered globally, as a host registers one: a
 *   `BasicTracerProvider` with a `BatchSpanProcessor` (`BENCH_OTEL_PROCESSOR=simple`: a
 *   `SimpleSpanProcessor`) into an `InMemorySpanExporter`, emptied every second so the heap does not
 *   grow with the run, and a `MeterProvider` whose `PeriodicExportingMetricReader` exports to an
 *   `InMemoryMetricExporter` every second. Every span is sampled (the default `AlwaysOn` sampler).
 *   The guard has no span of its own (the default, `guardSpans: false`): it counts its decision,
 *   times its store call and annotates the request's span when there is one.
 * - `sdk-spans`: the same with `instrumentOidcAuth({ guardSpans: true })`: a span per guarded request.
 * - `api`: `instrumentOidcAuth()` with no SDK registered (the API's no-op providers).
 * - unset: no instrumentation.
 * Loaded only when asked for, so the baseline process never imports OpenTelemetry.
 */
import { createOidcAuth, type Instrumentation, type OidcAuth } from '../../src/index.js';
import { benchIdentity, IDENTITY_ID, SIGNING_KEYS, signIdpToken, type IdpKey } from './fixtures.js';

export async function benchInstrumentation(mode: string | undefined): Promise<Instrumentation | undefined> {
  if (mode === undefined || mode === '') return undefined;
  const { instrumentOidcAuth } = await import('../../adapters/opentelemetry/index.js');
  if (mode === 'api') return instrumentOidcAuth();
  if (mode !== 'sdk' && mode !== 'sdk-spans') throw new Error(`BENCH_OTEL: unknown mode ${mode}`);
  const { metrics, trace } = await import('@opentelemetry/api');
  const { BasicTracerProvider, BatchSpanProcessor, InMemorySpanExporter, SimpleSpanProcessor } =
    await import('@opentelemetry/sdk-trace-base');
  const { AggregationTemporality, InMemoryMetricExporter, MeterProvider, PeriodicExportingMetricReader } =
    await import('@opentelemetry/sdk-metrics');
  const spans = new InMemorySpanExporter();
  const processor =
    process.env.BENCH_OTEL_PROCESSOR === 'simple'
      ? new SimpleSpanProcessor(spans)
      : new BatchSpanProcessor(spans);
  trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [processor] }));
  const metricExporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
  metrics.setGlobalMeterProvider(
    new MeterProvider({
      readers: [new PeriodicExportingMetricReader({ exporter: metricExporter, exportIntervalMillis: 1000 })],
    }),
  );
  setInterval(() => {
    spans.reset();
    metricExporter.reset();
  }, 1000).unref();
  return instrumentOidcAuth({ guardSpans: mode === 'sdk-spans' });
}

/**
 * For `micro.ts`: an engine with `instrumentOidcAuth()` and no SDK (`api`), and one whose
 * instrumentation has providers of its own (`sdk`: batch span processor and periodic metric reader
 * into in-memory exporters, emptied every second), each with a token logged in. Nothing global.
 */
export async function otelEngines(key: IdpKey): Promise<{
  api: OidcAuth;
  apiToken: string;
  sdk: OidcAuth;
  sdkToken: string;
}> {
  const { instrumentOidcAuth } = await import('../../adapters/opentelemetry/index.js');
  const { BasicTracerProvider, BatchSpanProcessor, InMemorySpanExporter } =
    await import('@opentelemetry/sdk-trace-base');
  const { AggregationTemporality, InMemoryMetricExporter, MeterProvider, PeriodicExportingMetricReader } =
    await import('@opentelemetry/sdk-metrics');
  const spans = new InMemorySpanExporter();
  const metricExporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
  setInterval(() => {
    spans.reset();
    metricExporter.reset();
  }, 1000).unref();
  const sdkInstrumentation = instrumentOidcAuth({
    tracerProvider: new BasicTracerProvider({ spanProcessors: [new BatchSpanProcessor(spans)] }),
    meterProvider: new MeterProvider({
      readers: [new PeriodicExportingMetricReader({ exporter: metricExporter, exportIntervalMillis: 1000 })],
    }),
  });
  const engine = async (instrumentation: Instrumentation) => {
    const auth = createOidcAuth({
      identities: [benchIdentity(key)],
      signingKeys: SIGNING_KEYS,
      instrumentation,
    });
    const grant = await auth.login({
      identityId: IDENTITY_ID,
      jwt: await signIdpToken(key),
      clientIp: '127.0.0.1',
    });
    return { auth, token: grant.accessToken };
  };
  const api = await engine(instrumentOidcAuth());
  const sdk = await engine(sdkInstrumentation);
  return { api: api.auth, apiToken: api.token, sdk: sdk.auth, sdkToken: sdk.token };
}
