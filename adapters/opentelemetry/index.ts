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
  type Meter,
  type MeterProvider,
  type Span,
  type Tracer,
  type TracerProvider,
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
   * Give every guarded request (`authenticate`, the hot path) a span of its own. Default false: the
   * guard adds its outcome to the span active when it runs (the request's span, when HTTP
   * instrumentation made one: `oidc_machine_auth.outcome`, `oidc_machine_auth.identity.id`,
   * `oidc_machine_auth.token.id`, `oidc_machine_auth.denial.reason`), counts its decision in
   * `oidc_machine_auth.guard.decisions` and times its store call in
   * `oidc_machine_auth.guard.store.duration`; a span per request would double the spans an
   * instrumented app records. Login, renew, revoke, introspection and the token exchange always
   * have their spans.
   */
  guardSpans?: boolean;
  /**
   * With {@link guardSpans}, give `authenticate` a `store.consume` child span too (implies
   * `guardSpans`). Default false: its store call is timed in `oidc_machine_auth.guard.store.duration` only.
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
const ACTIVE = 'oidc_machine_auth.introspection.active';
const CACHE_RESULT = 'oidc_machine_auth.keys.cache.result';
/** A guard refusal's reason code on the request's span (whose `error.type` is the HTTP layer's). */
const DENIAL_REASON = 'oidc_machine_auth.denial.reason';

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
  if (typeof fields.active === 'boolean') out[ACTIVE] = fields.active;
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
  guardStoreDuration: Histogram;
  decisions: GuardDecisions;
  /** False when the meter is the API's no-op one (no SDK): nothing is timed or counted. */
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

const NO_ATTRIBUTES: Attributes = Object.freeze({});

/**
 * Record a store call's duration: the guard's (`authenticate`'s `consume`, once per request) in
 * `guard.store.duration` with no attributes unless it failed, since the SDK serialises and looks
 * up every attribute set it is given; any other in `store.duration` by operation.
 */
function recordStore(
  instruments: Instruments,
  guard: boolean,
  operation: string | undefined,
  failed: string | undefined,
  started: number,
): void {
  const seconds = (performance.now() - started) / 1000;
  if (guard) {
    instruments.guardStoreDuration.record(
      seconds,
      failed === undefined ? NO_ATTRIBUTES : { [ERROR_TYPE]: failed },
    );
  } else {
    instruments.storeDuration.record(seconds, storeAttributes(operation, failed));
  }
}

/** At most this many failure reasons are counted apart; more are counted as `_OTHER`. */
const MAX_DECISION_REASONS = 64;

/**
 * The guard's decisions (`oidc_machine_auth.guard.decisions`), counted here and reported when the
 * SDK collects (an observable counter): a request adds one to a number, where a synchronous counter
 * would look its attribute set up (serialise and hash it) on every request.
 */
class GuardDecisions {
  #success = 0;
  readonly #failures = new Map<string, { count: number; attributes: Attributes }>();

  success(): void {
    this.#success++;
  }

  /** One guard decision: a success, or a failure with its reason code. */
  record(failed: string | undefined): void {
    if (failed === undefined) this.success();
    else this.failure(failed);
  }

  failure(reason: string): void {
    let entry = this.#failures.get(reason);
    if (!entry) {
      if (this.#failures.size >= MAX_DECISION_REASONS && reason !== '_OTHER') return this.failure('_OTHER');
      entry = { count: 0, attributes: Object.freeze({ [OUTCOME]: 'failure', [ERROR_TYPE]: reason }) };
      this.#failures.set(reason, entry);
    }
    entry.count++;
  }

  observe(result: { observe(value: number, attributes: Attributes): void }): void {
    if (this.#success > 0) result.observe(this.#success, SUCCESS);
    for (const { count, attributes } of this.#failures.values()) result.observe(count, attributes);
  }
}

/** A span's store step when it gets no span of its own: times the store call, records nothing else. */
class StoreTimer implements TraceSpan {
  #failed: string | undefined;
  readonly #started = performance.now();

  constructor(
    readonly instruments: Instruments,
    readonly guard: boolean,
    readonly operation: string | undefined,
  ) {}

  child(): TraceSpan {
    return NOOP_SPAN;
  }

  set(): void {}

  fail(reason: string): void {
    this.#failed ??= errorType(reason);
  }

  end(): void {
    try {
      recordStore(this.instruments, this.guard, this.operation, this.#failed, this.#started);
    } catch {
      // Telemetry never fails a request.
    }
  }
}

/** One span of the engine, as an OpenTelemetry span. */
/**
 * The guard without a span of its own ({@link OpenTelemetryOptions.guardSpans} off): its store call
 * timed, its decision counted, and its outcome added to the request's span when one is recording.
 */
class GuardRecord implements TraceSpan {
  #failed: string | undefined;
  #identityId: string | undefined;
  #tokenId: string | undefined;

  constructor(
    readonly instruments: Instruments,
    /** The span active when the guard started (the request's), if it records. */
    readonly request: Span | undefined,
  ) {}

  child(name: StepName, fields?: SpanFields): TraceSpan {
    if (name !== 'store' || !this.instruments.metricsOn) return NOOP_SPAN;
    return new StoreTimer(this.instruments, true, fields?.operation);
  }

  set(fields: SpanFields): void {
    if (typeof fields.identityId === 'string') this.#identityId = fields.identityId;
    if (typeof fields.tokenId === 'string') this.#tokenId = fields.tokenId;
  }

  fail(reason: string): void {
    this.#failed ??= errorType(reason);
  }

  end(): void {
    try {
      if (this.instruments.metricsOn) {
        this.instruments.decisions.record(this.#failed);
      }
      const request = this.request;
      if (request === undefined) return;
      if (this.#failed !== undefined) {
        request.setAttribute(OUTCOME, 'failure');
        request.setAttribute(DENIAL_REASON, this.#failed);
        return;
      }
      request.setAttribute(OUTCOME, 'success');
      if (this.#identityId !== undefined) request.setAttribute(IDENTITY_ID, this.#identityId);
      if (this.#tokenId !== undefined) request.setAttribute(TOKEN_ID, this.#tokenId);
    } catch {
      // Telemetry never fails a request.
    }
  }
}

class OtelSpan implements TraceSpan {
  #failed: string | undefined;
  #context: Context | undefined;
  readonly #started: number;
  /** A store step of `authenticate` (timed in `guard.store.duration`). */
  guardStep = false;

  constructor(
    readonly span: Span,
    readonly parent: Context,
    readonly kind: OperationName | StepName,
    readonly operation: string | undefined,
    readonly instruments: Instruments,
  ) {
    this.#started = kind === 'store' ? performance.now() : 0;
  }

  /** The context of this span's children. */
  context(): Context {
    return (this.#context ??= trace.setSpan(this.parent, this.span));
  }

  child(name: StepName, fields?: SpanFields): TraceSpan {
    try {
      if (!this.span.isRecording() || (this.kind === 'authenticate' && !this.instruments.guardStoreSpans)) {
        // No child span (not sampled, or the guard's store call): a store step still times the
        // store call, when there are metrics.
        if (name !== 'store' || !this.instruments.metricsOn) return NOOP_SPAN;
        return new StoreTimer(this.instruments, this.kind === 'authenticate', fields?.operation);
      }
      const parent = this.context();
      const operation = name === 'store' ? fields?.operation : undefined;
      const spanName = operation ? `oidc_machine_auth.store.${operation}` : STEP_NAMES[name];
      const attributes = attributesOf(fields);
      const span = this.instruments.tracer.startSpan(spanName, attributes ? { attributes } : {}, parent);
      const child = new OtelSpan(span, parent, name, operation, this.instruments);
      child.guardStep = this.kind === 'authenticate';
      return child;
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
        recordStore(this.instruments, this.guardStep, this.operation, this.#failed, this.#started);
      } else if (this.kind === 'authenticate' && this.instruments.metricsOn) {
        this.instruments.decisions.record(this.#failed);
      }
    } catch {
      // Telemetry never fails a request.
    }
  }
}

/** What the API's proxy tracer provider delegates to while no SDK is registered. */
const NO_SDK_TRACER_PROVIDER = new ProxyTracerProvider().getDelegate();

/**
 * Whether spans from `provider` can never be recorded: `provider` is the API's global proxy and no
 * SDK is registered behind it yet. Asked per operation (an identity check), since an SDK may be
 * registered later.
 */
function tracesNothing(provider: TracerProvider): () => boolean {
  if (!(provider instanceof ProxyTracerProvider)) return () => false;
  return () => provider.getDelegate() === NO_SDK_TRACER_PROVIDER;
}

const OPERATION_NAMES: Readonly<Record<OperationName, string>> = {
  login: 'oidc_machine_auth.login',
  authenticate: 'oidc_machine_auth.authenticate',
  renew: 'oidc_machine_auth.renew',
  revoke: 'oidc_machine_auth.revoke',
  revoke_identity: 'oidc_machine_auth.revoke_identity',
  introspect: 'oidc_machine_auth.introspect',
  token_exchange: 'oidc_machine_auth.token_exchange',
};
const STEP_NAMES: Readonly<Record<StepName, string>> = {
  select: 'oidc_machine_auth.select',
  verify: 'oidc_machine_auth.verify',
  keys: 'oidc_machine_auth.keys',
  signature: 'oidc_machine_auth.signature',
  policy: 'oidc_machine_auth.policy',
  store: 'oidc_machine_auth.store',
};

/** The metrics of one meter: made once, shared by every instrumentation on it. */
interface MeterMetrics {
  logins: Counter;
  denials: Counter;
  renewals: Counter;
  revocations: Counter;
  keyFetches: Counter;
  keyFetchDuration: Histogram;
  storeDuration: Histogram;
  guardStoreDuration: Histogram;
  decisions: GuardDecisions;
  /** The key managers whose cache lookups are reported. */
  keyManagers: Set<{ stats(): KeyManagerStats }>;
  /** False for the API's no-op meter (no SDK). */
  metricsOn: boolean;
}

const METER_METRICS = new WeakMap<Meter, MeterMetrics>();

function meterMetrics(meter: Meter): MeterMetrics {
  const known = METER_METRICS.get(meter);
  if (known) return known;
  const counter = (name: string, description: string, unit: string) =>
    meter.createCounter(name, { description, unit, valueType: ValueType.INT });
  const seconds = (name: string, description: string) =>
    meter.createHistogram(name, {
      description,
      unit: 's',
      valueType: ValueType.DOUBLE,
      advice: { explicitBucketBoundaries: DURATION_BUCKETS },
    });
  const storeDuration = seconds(
    'oidc_machine_auth.store.duration',
    'Duration of token and identity store calls.',
  );
  const made: MeterMetrics = {
    logins: counter('oidc_machine_auth.logins', 'Logins with an IdP token, by outcome.', '{login}'),
    denials: counter(
      'oidc_machine_auth.guard.denials',
      'Access tokens refused by the guard, renew or revoke, by reason code.',
      '{denial}',
    ),
    renewals: counter('oidc_machine_auth.renewals', 'Access token renewals, by outcome.', '{renewal}'),
    revocations: counter(
      'oidc_machine_auth.revocations',
      'Revocations: one token id, or every token of an identity.',
      '{revocation}',
    ),
    keyFetches: counter(
      'oidc_machine_auth.keys.fetches',
      'Discovery document and JWKS fetches, by kind and outcome.',
      '{fetch}',
    ),
    keyFetchDuration: seconds(
      'oidc_machine_auth.keys.fetch.duration',
      'Duration of discovery document and JWKS fetches.',
    ),
    storeDuration,
    guardStoreDuration: seconds(
      'oidc_machine_auth.guard.store.duration',
      "Duration of the guard's store call (authenticate's consume), once per guarded request.",
    ),
    decisions: new GuardDecisions(),
    keyManagers: new Set(),
    // The no-op meter hands out one shared histogram: ours is it when no SDK is registered.
    metricsOn: storeDuration !== createNoopMeter().createHistogram('oidc_machine_auth.probe'),
  };
  METER_METRICS.set(meter, made);
  if (!made.metricsOn) return made;

  const decisions = meter.createObservableCounter('oidc_machine_auth.guard.decisions', {
    description: 'Access tokens checked by the guard (authenticate), by outcome.',
    unit: '{decision}',
    valueType: ValueType.INT,
  });
  decisions.addCallback((result) => made.decisions.observe(result));

  const cacheLookups = meter.createObservableCounter('oidc_machine_auth.keys.cache.lookups', {
    description: 'IdP key lookups served from cache (hit) or not (miss).',
    unit: '{lookup}',
    valueType: ValueType.INT,
  });
  cacheLookups.addCallback((result) => {
    if (made.keyManagers.size === 0) return;
    let hits = 0;
    let misses = 0;
    for (const manager of made.keyManagers) {
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
  return made;
}

/**
 * OpenTelemetry for an engine: `createOidcAuth({ identities, instrumentation: instrumentOidcAuth() })`.
 *
 * Spans and metrics go through `@opentelemetry/api` only. With no SDK registered they go to the
 * API's no-op providers. Attributes are ids, addresses and reason codes: never a token, a token
 * string or a claim value (not even a login's subject or issuer). Metric attributes are bounded:
 * reason codes and a few fixed values, never ids or addresses.
 *
 * One instrumentation may serve several engines; each key manager is counted once. Instrumentations
 * on the same meter provider share their metrics.
 */
export function instrumentOidcAuth(options: OpenTelemetryOptions = {}): Instrumentation {
  const tracerProvider = options.tracerProvider ?? trace.getTracerProvider();
  const tracer = tracerProvider.getTracer(INSTRUMENTATION_SCOPE);
  const meter = (options.meterProvider ?? metrics.getMeterProvider()).getMeter(INSTRUMENTATION_SCOPE);
  const shared = meterMetrics(meter);
  const { logins, denials, renewals, revocations, keyFetches, keyFetchDuration } = shared;
  const instruments: Instruments = {
    tracer,
    storeDuration: shared.storeDuration,
    guardStoreDuration: shared.guardStoreDuration,
    decisions: shared.decisions,
    metricsOn: shared.metricsOn,
    guardStoreSpans: options.guardStoreSpans ?? false,
  };
  const guardSpans = options.guardSpans ?? options.guardStoreSpans ?? false;
  const noTraces = tracesNothing(tracerProvider);
  const metricsOn = shared.metricsOn;

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
    enabled: () => metricsOn || !noTraces(),
    startSpan(name: OperationName, fields: SpanFields, parent?: TraceSpan): TraceSpan {
      try {
        // No SDK at all (the API's no-op tracer and meter): nothing to record, not even a span object.
        if (!metricsOn && noTraces()) return NOOP_SPAN;
        if (name === 'authenticate' && !guardSpans) {
          const request = noTraces() ? undefined : trace.getSpan(context.active());
          const recording = request?.isRecording() ? request : undefined;
          return recording || metricsOn ? new GuardRecord(instruments, recording) : NOOP_SPAN;
        }
        const context_ = parent instanceof OtelSpan ? parent.context() : context.active();
        const attributes = attributesOf(fields);
        const span = tracer.startSpan(OPERATION_NAMES[name], attributes ? { attributes } : {}, context_);
        // Nothing to record (no metrics, span not sampled): the engine skips its steps.
        if (!metricsOn && !span.isRecording()) return NOOP_SPAN;
        return new OtelSpan(span, context_, name, undefined, instruments);
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
      shared.keyManagers.add(keys);
    },
  };
}
