import type { KeyManagerStats } from '../trust/keys.js';
import type { AuthEvent } from '../types.js';

/**
 * The engine's instrumentation seam: spans around what it does, the event stream `onEvent` gets,
 * and its key statistics. The core depends on no telemetry library; `oidc-machine-auth/opentelemetry`
 * implements this with `@opentelemetry/api`, and anything else may too. Without one (the default)
 * the engine calls nothing: each traced step costs one comparison.
 *
 * What reaches an implementation is ids, addresses and reason codes only: never a token, a token
 * string or a claim value (not even the subject or issuer of a login).
 */
export interface Instrumentation {
  /**
   * Start the span of an engine operation: a child of `parent` when given (an operation the engine
   * runs inside another: the login of a token exchange), else of whatever the implementation takes
   * as current. Must not throw, and should return fast.
   */
  startSpan(name: OperationName, fields: SpanFields, parent?: TraceSpan): TraceSpan;
  /**
   * Whether a span started now could record anything. When it answers false the engine starts no
   * span (and builds no fields for one): the operation runs as without instrumentation. Asked once
   * per operation, so it must be cheap; it may change over time (an SDK registered later).
   * Default: always true.
   */
  enabled?(): boolean;
  /** Every event the engine emits (the same stream `onEvent` gets), before `onEvent`. Must not throw. */
  onEvent?(event: AuthEvent): void;
  /** Called once by `createOidcAuth` with its key manager: its counters may be read at collection time. */
  observeKeys?(keys: { stats(): KeyManagerStats }): void;
}

/**
 * The engine operations that start a span: each `OidcAuth` method of that name (`revoke_identity`
 * is `revokeIdentity`), and `token_exchange`, the RFC 8693 exchange of the OAuth routes (its login
 * is a `login` span under it).
 */
export type OperationName =
  'login' | 'authenticate' | 'renew' | 'revoke' | 'revoke_identity' | 'introspect' | 'token_exchange';

/**
 * Steps inside an operation: `select` (a token exchange without `client_id` choosing the identity by
 * the token's issuer and bindings), `verify` (an IdP token's signature and claims, key lookups included),
 * `keys` (a key lookup that may wait for a discovery or JWKS fetch), `signature` (one signature
 * check), `policy` (the identity's subject, audience and claim bindings), `store` (one store call,
 * named by {@link SpanFields.operation}).
 */
export type StepName = 'select' | 'verify' | 'keys' | 'signature' | 'policy' | 'store';

/** Store calls, as {@link SpanFields.operation} names them. */
export type StoreOperation =
  'identity.get' | 'generation' | 'create' | 'get' | 'consume' | 'extend' | 'revoke' | 'revoke_identity';

/** What a span may carry. Each value is config, an address, or our own random id; never a claim value. */
export interface SpanFields {
  /** The client's address, as the framework's trust-proxy logic determined it. */
  clientIp?: string | undefined;
  /** The identity of a login that found it, or of the access token used. */
  identityId?: string | undefined;
  /** Our own random token id (not a credential: an access token also carries a signature). */
  tokenId?: string | undefined;
  /** The store call of a `store` step. */
  operation?: StoreOperation;
  /** Where a `keys` step's keys come from (the identity's config). */
  keySource?: 'static' | 'jwks' | 'discovery';
  /** Whether an introspected token is active (RFC 7662 §2.2), on an `introspect` span. */
  active?: boolean;
}

/** One span. Implementations must not throw from any method. */
export interface TraceSpan {
  /** Start a step of this span. */
  child(name: StepName, fields?: SpanFields): TraceSpan;
  /** Add fields learnt on the way (the identity and token id of a successful login). */
  set(fields: SpanFields): void;
  /**
   * Mark the span failed: `reason` is a {@link ReasonCode} for a refusal, or an error's class name
   * (`_OTHER` when it has none fit to record). The first call decides: a login refused as
   * `subject_not_allowed` and answered `invalid_credentials` records the former.
   */
  fail(reason: string): void;
  end(): void;
}

/** The span of an engine without instrumentation: every method does nothing. */
export const NOOP_SPAN: TraceSpan = Object.freeze({
  child: () => NOOP_SPAN,
  set() {},
  fail() {},
  end() {},
});

const ERROR_NAME = /^[A-Za-z_$][\w$]{0,63}$/;

/**
 * What a span records of an error: its reason code (`OidcAuthError`, `LoginFailure` and `KeyError`
 * carry one), else its class name, else `_OTHER`. Never its message.
 */
export function errorType(error: unknown): string {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    if (typeof code === 'string' && /^[a-z][a-z_]{0,63}$/.test(code)) return code;
    if (ERROR_NAME.test(error.name)) return error.name;
  }
  return '_OTHER';
}

/** The fields of each store step, made once. */
export const STORE_STEP: Readonly<Record<StoreOperation, SpanFields>> = Object.freeze({
  'identity.get': { operation: 'identity.get' },
  generation: { operation: 'generation' },
  create: { operation: 'create' },
  get: { operation: 'get' },
  consume: { operation: 'consume' },
  extend: { operation: 'extend' },
  revoke: { operation: 'revoke' },
  revoke_identity: { operation: 'revoke_identity' },
});

/**
 * Run `work` as a `name` step of `parent` (`work` gets the step's span, for steps of its own): ended
 * when its promise settles, failed with {@link errorType} when it rejects. With {@link NOOP_SPAN} as
 * parent, only `work(NOOP_SPAN)`.
 */
export function step<T>(
  parent: TraceSpan,
  name: StepName,
  fields: SpanFields | undefined,
  work: (span: TraceSpan) => Promise<T>,
): Promise<T> {
  if (parent === NOOP_SPAN) return work(NOOP_SPAN);
  const span = parent.child(name, fields);
  let pending: Promise<T>;
  try {
    pending = Promise.resolve(work(span)); // a store may answer with a plain value
  } catch (error) {
    span.fail(errorType(error));
    span.end();
    throw error;
  }
  return pending.then(
    (value) => {
      span.end();
      return value;
    },
    (error: unknown) => {
      span.fail(errorType(error));
      span.end();
      throw error;
    },
  );
}

/**
 * Run the synchronous `work` as a `name` step of `parent`; `refused` says which reason code a result
 * stands for a refusal with (a policy verdict), if any.
 */
export function stepSync<T>(
  parent: TraceSpan,
  name: StepName,
  work: () => T,
  refused: (result: T) => string | undefined,
): T {
  if (parent === NOOP_SPAN) return work();
  const span = parent.child(name);
  try {
    const result = work();
    const reason = refused(result);
    if (reason !== undefined) span.fail(reason);
    return result;
  } catch (error) {
    span.fail(errorType(error));
    throw error;
  } finally {
    span.end();
  }
}

/** What each operation's result says of the span: the identity and token id it granted or found. */
function resultFields(name: OperationName, result: unknown): SpanFields | undefined {
  if (name === 'introspect') {
    if (result === undefined) return { active: false };
    const fields = resultFields('login', result);
    return fields ? { ...fields, active: true } : undefined;
  }
  if (typeof result !== 'object' || result === null) return undefined;
  const { identityId, tokenId } = result as { identityId?: unknown; tokenId?: unknown };
  return typeof identityId === 'string' && typeof tokenId === 'string' ? { identityId, tokenId } : undefined;
}

/** The parent given by {@link within} to the next operation started, until it starts. */
let pendingParent: TraceSpan | undefined;

/**
 * `call()`, with `parent` as the parent of the first traced engine operation it starts synchronously
 * (the `auth.login()` of a token exchange): the seam has no context of its own to carry it.
 */
export function within<T>(parent: TraceSpan, call: () => T): T {
  if (parent === NOOP_SPAN) return call();
  const previous = pendingParent;
  pendingParent = parent;
  try {
    return call();
  } finally {
    pendingParent = previous;
  }
}

/** The span of operation `name`, or {@link NOOP_SPAN} when nothing would record it. */
function begin(instrumentation: Instrumentation, name: OperationName, fields: SpanFields): TraceSpan {
  const parent = pendingParent;
  pendingParent = undefined;
  try {
    return instrumentation.startSpan(name, fields, parent);
  } catch {
    return NOOP_SPAN;
  }
}

/** Whether `instrumentation` may record now (its `enabled()`, false if that throws). */
function enabled(instrumentation: Instrumentation): boolean {
  if (instrumentation.enabled === undefined) return true;
  try {
    return instrumentation.enabled() !== false;
  } catch {
    return false;
  }
}

/** The instrumentation of each traced operation (see {@link instrumentationOf}). */
const INSTRUMENTATION_OF = new WeakMap<object, Instrumentation>();

/**
 * The instrumentation behind `operation`, a traced engine method (`auth.login`), or `undefined`:
 * how work built on an engine's public methods (the token exchange) traces itself beside them.
 */
export function instrumentationOf(operation: unknown): Instrumentation | undefined {
  return typeof operation === 'function' ? INSTRUMENTATION_OF.get(operation) : undefined;
}

/**
 * `operation` traced as `name`: a span per call, started with `fields(...args)` (the client address),
 * given the identity and token id of its result, failed with the reason code of its error. The
 * operation takes `arity` arguments, then the span for its steps; the wrapper takes `arity`
 * arguments only (so a caller's extra argument is never taken for a span). Without instrumentation,
 * or while it is not {@link Instrumentation.enabled}, a plain call of `operation` with those
 * arguments: it gets {@link NOOP_SPAN} from its default parameter, and nothing is allocated for a
 * span.
 */
export function traceOperation<A extends unknown[], R>(
  instrumentation: Instrumentation | undefined,
  name: OperationName,
  arity: 1 | 2,
  fields: (...args: A) => SpanFields,
  operation: (...args: [...A, TraceSpan]) => Promise<R>,
): (...args: A) => Promise<R> {
  const plain = operation as unknown as (a?: unknown, b?: unknown, span?: TraceSpan) => Promise<R>;
  const spanFields = fields as unknown as (a?: unknown, b?: unknown) => SpanFields;
  let traced: (a?: unknown, b?: unknown) => Promise<R>;
  if (!instrumentation) {
    traced = arity === 1 ? (a) => plain(a) : (a, b) => plain(a, b);
  } else if (arity === 1) {
    traced = (a) => {
      if (!enabled(instrumentation)) return plain(a);
      const span = begin(instrumentation, name, spanFields(a));
      // Nothing records (no SDK): the operation as it is, with no span to end.
      return span === NOOP_SPAN ? plain(a) : settle(span, name, plain(a, span));
    };
  } else {
    traced = (a, b) => {
      if (!enabled(instrumentation)) return plain(a, b);
      const span = begin(instrumentation, name, spanFields(a, b));
      // Omitted arguments stay undefined (their defaults apply): the span is always argument 3.
      return span === NOOP_SPAN ? plain(a, b) : settle(span, name, plain(a, b, span));
    };
  }
  if (instrumentation) INSTRUMENTATION_OF.set(traced, instrumentation);
  return traced as unknown as (...args: A) => Promise<R>;
}

/**
 * `work(span)` traced as operation `name` of `instrumentation` (for operations outside the engine:
 * the token exchange), as {@link traceOperation} traces an engine method.
 */
export function traceCall<R>(
  instrumentation: Instrumentation | undefined,
  name: OperationName,
  fields: SpanFields,
  work: (span: TraceSpan) => Promise<R>,
): Promise<R> {
  if (!instrumentation || !enabled(instrumentation)) return work(NOOP_SPAN);
  const span = begin(instrumentation, name, fields);
  if (span === NOOP_SPAN) return work(NOOP_SPAN);
  let pending: Promise<R>;
  try {
    pending = work(span);
  } catch (error) {
    pending = Promise.reject(error);
  }
  return settle(span, name, pending);
}

/** `pending`'s result, once `span` got its fields or failure and ended. */
function settle<R>(span: TraceSpan, name: OperationName, pending: Promise<R>): Promise<R> {
  return pending.then(
    (result) => {
      finish(span, resultFields(name, result), undefined);
      return result;
    },
    (error: unknown) => {
      finish(span, undefined, errorType(error));
      throw error;
    },
  );
}

/** End `span` with what was learnt or why it failed; an instrumentation that throws fails no operation. */
function finish(span: TraceSpan, learnt: SpanFields | undefined, failed: string | undefined): void {
  try {
    if (learnt) span.set(learnt);
    if (failed !== undefined) span.fail(failed);
  } catch {
    // Telemetry never fails an operation.
  }
  try {
    span.end();
  } catch {
    // As above.
  }
}
