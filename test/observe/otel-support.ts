import {
  AlwaysOffSampler,
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
  type ReadableSpan,
} from '@opentelemetry/sdk-trace-base';
import { MeterProvider, MetricReader, type DataPoint } from '@opentelemetry/sdk-metrics';
import { instrumentOidcAuth } from '../../adapters/opentelemetry/index.js';
import type { Instrumentation } from '../../src/index.js';

/** A metric reader that exports nothing: tests collect from it. */
class CollectingReader extends MetricReader {
  protected override onForceFlush(): Promise<void> {
    return Promise.resolve();
  }
  protected override onShutdown(): Promise<void> {
    return Promise.resolve();
  }
}

export interface Point {
  attributes: Record<string, unknown>;
  value: unknown;
}

/** An OpenTelemetry SDK (traces and metrics) held in memory, and the instrumentation wired to it. */
export interface Telemetry {
  instrumentation: Instrumentation;
  /** The SDK providers behind it. */
  tracerProvider: BasicTracerProvider;
  meterProvider: MeterProvider;
  spans(): ReadableSpan[];
  /** Spans named `name`. */
  named(name: string): ReadableSpan[];
  /** The spans whose parent is `span`. */
  childrenOf(span: ReadableSpan): ReadableSpan[];
  /** Every data point of every metric, by metric name. */
  collect(): Promise<Map<string, Point[]>>;
  /** Everything recorded, serialised: span names, attributes, events, links, status, resources, metrics. */
  dump(): Promise<string>;
}

/**
 * `sampled: false`: the tracer provider samples nothing (`AlwaysOffSampler`); metrics are recorded.
 * `guardSpans`, `guardStoreSpans`: passed to `instrumentOidcAuth`.
 */
export function telemetry(
  options: { sampled?: boolean; guardSpans?: boolean; guardStoreSpans?: boolean } = {},
): Telemetry {
  const exporter = new InMemorySpanExporter();
  const tracerProvider = new BasicTracerProvider({
    spanProcessors: [new SimpleSpanProcessor(exporter)],
    ...(options.sampled === false && { sampler: new AlwaysOffSampler() }),
  });
  const reader = new CollectingReader();
  const meterProvider = new MeterProvider({ readers: [reader] });
  const spans = () => exporter.getFinishedSpans();

  async function collect(): Promise<Map<string, Point[]>> {
    const { resourceMetrics } = await reader.collect();
    const out = new Map<string, Point[]>();
    for (const scope of resourceMetrics.scopeMetrics) {
      for (const metric of scope.metrics) {
        const points = (metric.dataPoints as Array<DataPoint<unknown>>).map((p) => ({
          attributes: { ...p.attributes },
          value: p.value,
        }));
        out.set(metric.descriptor.name, points);
      }
    }
    return out;
  }

  return {
    instrumentation: instrumentOidcAuth({
      tracerProvider,
      meterProvider,
      ...(options.guardSpans !== undefined && { guardSpans: options.guardSpans }),
      ...(options.guardStoreSpans !== undefined && { guardStoreSpans: options.guardStoreSpans }),
    }),
    tracerProvider,
    meterProvider,
    spans,
    named: (name) => spans().filter((s) => s.name === name),
    childrenOf: (parent) =>
      spans().filter((s) => s.parentSpanContext?.spanId === parent.spanContext().spanId),
    collect,
    async dump() {
      const { resourceMetrics } = await reader.collect();
      return JSON.stringify({
        spans: spans().map((s) => ({
          name: s.name,
          attributes: s.attributes,
          events: s.events,
          links: s.links,
          status: s.status,
          resource: s.resource.attributes,
          scope: s.instrumentationScope,
        })),
        metrics: resourceMetrics,
      });
    },
  };
}

/** The value of the first data point of `name` whose attributes include `attributes`. */
export function pointValue(
  metrics: Map<string, Point[]>,
  name: string,
  attributes: Record<string, unknown>,
): unknown {
  return metrics.get(name)?.find((p) => Object.entries(attributes).every(([k, v]) => p.attributes[k] === v))
    ?.value;
}

/** The `guard.decisions` count of successes, or with `reason` of failures with that reason code. */
export function decisions(metrics: Map<string, Point[]>, reason?: string): unknown {
  return pointValue(
    metrics,
    'oidc_machine_auth.guard.decisions',
    reason === undefined
      ? { 'oidc_machine_auth.outcome': 'success' }
      : { 'oidc_machine_auth.outcome': 'failure', 'error.type': reason },
  );
}
