import {
  SpanKind,
  SpanStatusCode,
  ValueType,
  context,
  createNoopMeter,
  metrics,
  trace,
  type Attributes,
  type Context,
  type Counter,
  type Histogram,
  type MeterProvider,
  type Span,
  type Tracer,
  type TracerProvider,
  INVALID_SPAN_CONTEXT,
  ProxyTracerProvider,
} from '@opentelemetry/api';
import {
  NOOP_SPAN,
  type AuthEvent,
  type Instrumentation,
  type KeyManagerStats,
  type OperationName,
  type SpanFields,
  type StepName,
  type TraceSpan,
} from '../../src/index.js';

/** The instrumentation scope (tracer and meter name) of every span and metric. */
export const INSTRUMENTATION_SCOPE = 'oidc-machine-auth';

/** Options of {@link instrumentOidcAuth}. */
export interface OpenTelemetryOptions {
  /** Where spans go. Default: the global one (`trace.getTracerProvider()`, which follows a later registration). */
  tracerProvider?: TracerProvider;
  /**
   * Where metrics go. Default: the global one as registered when {@link instrumentOidcAuth} is
   * called (the metrics API has no proxy: register the SDK first).
   */
  meterProvider?: MeterProvider;
  /**
   * Give `authenticate` (the guard, the hot path) a `store.consume` child span. Default false: the
   * guard is one span, and its store call is timed in `oidc_machine_auth.store.duration` only.
   */
  guardStoreSpans?: boolean;
}

// Attribute names: OpenTelemetry semantic conventions where one exists, `oidc_machine_auth.*` else.
const CLIENT_ADDRESS = 'client.address';
const SERVER_ADDRESS = 'server.address';
const ERROR_TYPE = 'error.type';
const IDENTITY_ID = 'oidc_machine_auth.identity.id';
const TOKEN_ID = 'oidc_machine_auth.token.id';
const STORE_OPERATION = 'oidc_machine_auth.store.operation';
const KEY_SOURCE = 'oidc_machine_auth.keys.source';
const KEY_KIND = 'oidc_machine_auth.keys.kind';
const OUTCOME = 'oidc_machine_auth.outcome';
const SCOPE = 'oidc_machine_auth.revocation.scope';
const CACHE_RESULT = 'oidc_machine_auth.keys.cache.result';

/** Error types are reason codes, error class names or the fetch error codes: anything else is `_OTHER`. */
const ERROR_TYPE_VALUE = /^[A-Za-z_$][\w$]{0,63}$/;
function errorType(value: unknown): string {
  return typeof value === 'string' && ERROR_TYPE_VALUE.test(value) ? value : '_OTHER';
}

const SUCCESS: Attributes = Object.freeze({ [OUTCOME]: 'success' });
const DURATION_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** The span attributes of the engine's fields. */
function attributesOf(fields: SpanFields | undefined): Attributes | undefined {
  if (!fields) return undefined;
  const out: Attributes = {};
  if (typeof fields.clientIp === 'string') out[CLIENT_ADDRESS] = fields.clientIp;
  if (typeof fields.identityId === 'string') out[IDENTITY_ID] = fields.identityId;
  if (typeof fields.tokenId === 'string') out[TOKEN_ID] = fields.tokenId;
  if (typeof fields.operation === 'string') out[STORE_OPERATION] = fields.operation;
  if (typeof fields.keySource === 'string') out[KEY_SOURCE] = fields.keySource;
  return out;
}

/** The host name of a URL, or `undefined`. */
function hostOf(url: unknown): string | undefined {
  if (typeof url !== 'string') return undefined;
  try {
    return new URL(url).hostname || undefined;
  } catch {
    return undefined;
  }
}

interface Instruments {
  tracer: Tracer;
  storeDuration: Histogram;
  guardDecisions: Counter;
  /** False when the meter is the API's no-op one (no SDK): nothing is timed. */
  metricsOn: boolean;
  guardStoreSpans: boolean;
}

/** The attributes of a store duration point, per operation (made once). */
const STORE_ATTRIBUTES = new Map<string, Attributes>();
function storeAttributes(operation: string | undefined, failed: string | undefined): Attributes {
  const name = operation ?? '_OTHER';
  if (failed !== undefined) return { [STORE_OPERATION]: name, [ERROR_TYPE]: failed };
  let attributes = STORE_ATTRIBUTES.get(name);
  if (!attributes && STORE_ATTRIBUTES.size < 64) {
    STORE_ATTRIBUTES.set(name, (attributes = Object.freeze({ [STORE_OPERATION]: name })));
  }
  return attributes ?? { [STORE_OPERATION]: name };
}

/** One span of the engine, as an OpenTelemetry span. */
class OtelSpan implements TraceSpan {
  #failed: string | undefined;
  #context: Context | undefined;
  readonly #started: number;

  constructor(
    readonly span: Span,
    readonly parent: Context,
    readonly kind: OperationName | StepName,
    readonly operation: string | undefined,
    readonly instruments: Instruments,
  ) {
    this.#started = kind === 'store' ? performance.now() : 0;
  }

  child(name: StepName, fields?: SpanFields): TraceSpan {
    try {
      if (!this.span.isRecording() || (this.kind === 'authenticate' && !this.instruments.guardStoreSpans)) {
        // No child span (not sampled, no SDK, or the guard's store call): a store step still times
        // the store call, when there are metrics.
        if (name !== 'store' || !this.instruments.metricsOn) return NOOP_SPAN;
        return new OtelSpan(NON_RECORDING, this.parent, name, fields?.operation, this.instruments);
      }
      const parent = (this.#context ??= trace.setSpan(this.parent, this.span));
      const operation = name === 'store' ? fields?.operation : undefined;
      const spanName = operation ? `oidc_machine_auth.store.${operation}` : STEP_NAMES[name];
      const attributes = attributesOf(fields);
      const span = this.instruments.tracer.startSpan(spanName, attributes ? { attributes } : {}, parent);
      return new OtelSpan(span, parent, name, operation, this.instruments);
    } catch {
      return NOOP_SPAN;
    }
  }

  set(fields: SpanFields): void {
    const attributes = attributesOf(fields);
    if (attributes) this.span.setAttributes(attributes);
  }

  fail(reason: string): void {
    if (this.#failed !== undefined) return;
    this.#failed = errorType(reason);
    this.span.setAttribute(ERROR_TYPE, this.#failed);
    this.span.setStatus({ code: SpanStatusCode.ERROR });
  }

  end(): void {
    try {
      this.span.end();
      if (this.kind === 'store') {
        const seconds = (performance.now() - this.#started) / 1000;
        this.instruments.storeDuration.record(seconds, storeAttributes(this.operation, this.#failed));
      } else if (this.kind === 'authenticate') {
        this.instruments.guardDecisions.add(
          1,
          this.#failed === undefined ? SUCCESS : { [OUTCOME]: 'failure', [ERROR_TYPE]: this.#failed },
        );
      }
    } catch {
      // Telemetry never fails a request.
    }
  }
}

/** What the API's proxy tracer provider delegates to while no SDK is registered. */
const NO_SDK_TRACER_PROVIDER = new ProxyTracerProvider().getDelegate();

/** Whether `provider` is the API's global proxy with no SDK registered behind it (yet). */
function noTracerSdk(provider: TracerProvider): boolean {
  return provider instanceof ProxyTracerProvider && provider.getDelegate() === NO_SDK_TRACER_PROVIDER;
}

/** The span of a timing-only store step: records nothing. */
const NON_RECORDING: Span = trace.wrapSpanContext(INVALID_SPAN_CONTEXT);

const OPERATION_NAMES: Readonly<Record<OperationName, string>> = {
  login: 'oidc_machine_auth.login',
  authenticate: 'oidc_machine_auth.authenticate',
  renew: 'oidc_machine_auth.renew',
  revoke: 'oidc_machine_auth.revoke',
  revoke_identity: 'oidc_machine_auth.revoke_identity',
};
const STEP_NAMES: Readonly<Record<StepName, string>> = {
  verify: 'oidc_machine_auth.verify',
  keys: 'oidc_machine_auth.keys',
  signature: 'oidc_machine_auth.signature',
  policy: 'oidc_machine_auth.policy',
  store: 'oidc_machine_auth.store',
};

/**
 * OpenTelemetry for an engine: `createOidcAuth({ identities, instrumentation: instrumentOidcAuth() })`.
 *
 * Spans and metrics go through `@opentelemetry/api` only. With no SDK registered they go to the
 * API's no-op providers. Attributes are ids, addresses and reason codes: never a token, a token
 * string or a claim value (not even a login's subject or issuer). Metric attributes are bounded:
 * reason codes and a few fixed values, never ids or addresses.
 *
 * One instrumentation may serve several engines; each key manager is counted once.
 */
export function instrumentOidcAuth(options: OpenTelemetryOptions = {}): Instrumentation {
  const tracerProvider = options.tracerProvider ?? trace.getTracerProvider();
  const tracer = tracerProvider.getTracer(INSTRUMENTATION_SCOPE);
  const meter = (options.meterProvider ?? metrics.getMeterProvider()).getMeter(INSTRUMENTATION_SCOPE);
  const counter = (name: string, description: string, unit: string) =>
    meter.createCounter(name, { description, unit, valueType: ValueType.INT });
  const seconds = (name: string, description: string) =>
    meter.createHistogram(name, {
      description,
      unit: 's',
      valueType: ValueType.DOUBLE,
      advice: { explicitBucketBoundaries: DURATION_BUCKETS },
    });

  const logins = counter('oidc_machine_auth.logins', 'Logins with an IdP token, by outcome.', '{login}');
  const denials = counter(
    'oidc_machine_auth.guard.denials',
    'Access tokens refused by the guard, renew or revoke, by reason code.',
    '{denial}',
  );
  const renewals = counter('oidc_machine_auth.renewals', 'Access token renewals, by outcome.', '{renewal}');
  const revocations = counter(
    'oidc_machine_auth.revocations',
    'Revocations: one token id, or every token of an identity.',
    '{revocation}',
  );
  const keyFetches = counter(
    'oidc_machine_auth.keys.fetches',
    'Discovery document and JWKS fetches, by kind and outcome.',
    '{fetch}',
  );
  const keyFetchDuration = seconds(
    'oidc_machine_auth.keys.fetch.duration',
    'Duration of discovery document and JWKS fetches.',
  );
  const storeDuration = seconds(
    'oidc_machine_auth.store.duration',
    'Duration of token and identity store calls.',
  );
  const instruments: Instruments = {
    tracer,
    storeDuration,
    // The no-op meter hands out one shared histogram: ours is it when no SDK is registered.
    metricsOn: storeDuration !== createNoopMeter().createHistogram('oidc_machine_auth.probe'),
    guardStoreSpans: options.guardStoreSpans ?? false,
    guardDecisions: counter(
      'oidc_machine_auth.guard.decisions',
      'Access tokens checked by the guard (authenticate), by outcome.',
      '{decision}',
    ),
  };

  const keyManagers = new Set<{ stats(): KeyManagerStats }>();
  const cacheLookups = meter.createObservableCounter('oidc_machine_auth.keys.cache.lookups', {
    description: 'IdP key lookups served from cache (hit) or not (miss).',
    unit: '{lookup}',
    valueType: ValueType.INT,
  });
  cacheLookups.addCallback((result) => {
    if (keyManagers.size === 0) return;
    let hits = 0;
    let misses = 0;
    for (const manager of keyManagers) {
      try {
        const stats = manager.stats();
        hits += stats.hits;
        misses += stats.misses;
      } catch {
        // A key manager that cannot answer is left out of this collection.
      }
    }
    result.observe(hits, { [CACHE_RESULT]: 'hit' });
    result.observe(misses, { [CACHE_RESULT]: 'miss' });
  });

  const failure = (event: AuthEvent): Attributes => ({
    [OUTCOME]: 'failure',
    [ERROR_TYPE]: errorType(event.reasonCode),
  });

  function keyFetch(event: AuthEvent, ok: boolean): void {
    const kind = event.detail?.kind === 'discovery' ? 'discovery' : 'jwks';
    const attributes: Attributes = ok
      ? { [KEY_KIND]: kind, [OUTCOME]: 'success' }
      : { [KEY_KIND]: kind, [OUTCOME]: 'failure', [ERROR_TYPE]: errorType(event.detail?.error) };
    keyFetches.add(1, attributes);
    const durationMs = event.detail?.durationMs;
    const duration = typeof durationMs === 'number' && durationMs >= 0 ? durationMs : 0;
    keyFetchDuration.record(duration / 1000, attributes);
    // One span per fetch, ended now and started its duration ago. A fetch is shared by every login
    // waiting for those keys (single flight): it is a child of the context active when it ended,
    // not of one login; each login's `oidc_machine_auth.keys` step spans its wait.
    const end = Date.now();
    const host = hostOf(event.detail?.url);
    const spanAttributes: Attributes = host ? { ...attributes, [SERVER_ADDRESS]: host } : { ...attributes };
    delete spanAttributes[OUTCOME];
    const span = tracer.startSpan(
      'oidc_machine_auth.keys.fetch',
      { kind: SpanKind.CLIENT, startTime: end - duration, attributes: spanAttributes },
      context.active(),
    );
    if (!ok) span.setStatus({ code: SpanStatusCode.ERROR });
    span.end(end);
  }

  return {
    startSpan(name: OperationName, fields: SpanFields): TraceSpan {
      try {
        // No SDK at all (the API's no-op tracer and meter): nothing to record, not even a span object.
        if (!instruments.metricsOn && noTracerSdk(tracerProvider)) return NOOP_SPAN;
        const parent = context.active();
        const attributes = attributesOf(fields);
        const span = tracer.startSpan(OPERATION_NAMES[name], attributes ? { attributes } : {}, parent);
        // No SDK at all (no-op tracer and meter): nothing to record, and the engine skips its steps.
        if (!instruments.metricsOn && !span.isRecording()) return NOOP_SPAN;
        return new OtelSpan(span, parent, name, undefined, instruments);
      } catch {
        return NOOP_SPAN;
      }
    },
    onEvent(event: AuthEvent): void {
      try {
        switch (event?.type) {
          case 'login.success':
            logins.add(1, SUCCESS);
            break;
          case 'login.failure':
            logins.add(1, failure(event));
            break;
          case 'guard.denied':
            denials.add(1, { [ERROR_TYPE]: errorType(event.reasonCode) });
            break;
          case 'token.renew':
            renewals.add(1, SUCCESS);
            break;
          case 'token.renew.failure':
            renewals.add(1, failure(event));
            break;
          case 'token.revoke':
            revocations.add(1, { [SCOPE]: 'token' });
            break;
          case 'identity.revoke':
            revocations.add(1, { [SCOPE]: 'identity' });
            break;
          case 'keys.fetch':
            keyFetch(event, true);
            break;
          case 'keys.fetch.failure':
            keyFetch(event, false);
            break;
          default:
            break;
        }
      } catch {
        // Telemetry never fails a request.
      }
    },
    observeKeys(keys: { stats(): KeyManagerStats }): void {
      keyManagers.add(keys);
    },
  };
}
