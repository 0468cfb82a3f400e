import type { KeyManagerStats } from '../keys.js';
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
  /** Start the span of an engine operation. Must not throw, and should return fast. */
  startSpan(name: OperationName, fields: SpanFields): TraceSpan;
  /** Every event the engine emits (the same stream `onEvent` gets), before `onEvent`. Must not throw. */
  onEvent?(event: AuthEvent): void;
  /** Called once by `createOidcAuth` with its key manager: its counters may be read at collection time. */
  observeKeys?(keys: { stats(): KeyManagerStats }): void;
}

/** The engine operations that start a span (each `OidcAuth` method of that name; `revoke_identity` is `revokeIdentity`). */
export type OperationName = 'login' | 'authenticate' | 'renew' | 'revoke' | 'revoke_identity';

/**
 * Steps inside an operation: `verify` (an IdP token's signature and claims, key lookups included),
 * `keys` (a key lookup that may wait for a discovery or JWKS fetch), `signature` (one signature
 * check), `policy` (the identity's subject, audience and claim bindings), `store` (one store call,
 * named by {@link SpanFields.operation}).
 */
export type StepName = 'verify' | 'keys' | 'signature' | 'policy' | 'store';

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
function resultFields(result: unknown): SpanFields | undefined {
  if (typeof result !== 'object' || result === null) return undefined;
  const { identityId, tokenId } = result as { identityId?: unknown; tokenId?: unknown };
  return typeof identityId === 'string' && typeof tokenId === 'string' ? { identityId, tokenId } : undefined;
}

/**
 * `operation` traced as `name`: a span per call, started with `fields(...args)` (the client address),
 * given the identity and token id of its result, failed with the reason code of its error. The
 * operation takes `arity` arguments, then the span for its steps. Without instrumentation, a call
 * of `operation` with its `arity` arguments only (so a caller's extra argument is never taken for a
 * span): it gets {@link NOOP_SPAN} from its default parameter.
 */
export function traceOperation<A extends unknown[], R>(
  instrumentation: Instrumentation | undefined,
  name: OperationName,
  arity: 1 | 2,
  fields: (...args: A) => SpanFields,
  operation: (...args: [...A, TraceSpan]) => Promise<R>,
): (...args: A) => Promise<R> {
  const plain = operation as (...args: unknown[]) => Promise<R>;
  if (!instrumentation) {
    const direct = arity === 1 ? (a?: unknown) => plain(a) : (a?: unknown, b?: unknown) => plain(a, b);
    return direct as unknown as (...args: A) => Promise<R>;
  }
  return (...args: A): Promise<R> => {
    let span: TraceSpan;
    try {
      span = instrumentation.startSpan(name, fields(...args));
    } catch {
      span = NOOP_SPAN;
    }
    // Nothing records (no SDK): the operation as it is, with no span to end.
    if (span === NOOP_SPAN) return arity === 1 ? plain(args[0]) : plain(args[0], args[1]);
    // Omitted arguments stay undefined (their defaults apply): the span is always argument `arity`.
    return settle(span, arity === 1 ? plain(args[0], span) : plain(args[0], args[1], span));
  };
}

/** `pending`'s result, once `span` got its fields or failure and ended. */
async function settle<R>(span: TraceSpan, pending: Promise<R>): Promise<R> {
  try {
    const result = await pending;
    const learnt = resultFields(result);
    if (learnt) span.set(learnt);
    return result;
  } catch (error) {
    span.fail(errorType(error));
    throw error;
  } finally {
    span.end();
  }
}
