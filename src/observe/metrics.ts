import type { ReasonCode } from '../errors.js';
import type { KeyManagerStats } from '../trust/keys.js';
import type { AuthEvent, Logger } from '../types.js';

/** What {@link AuthMetrics.snapshot} returns: every counter since creation (or the last reset). */
export interface MetricsSnapshot {
  logins: { success: number; failure: Record<string, number> };
  /** Bearer-guard refusals by reason code (`invalid_token`, `token_expired`, `ip_not_allowed`…). */
  guardDenials: Record<string, number>;
  renewals: { success: number; failure: Record<string, number> };
  /** `token`: one token id revoked; `identity`: every token of an identity (e.g. its config deleted). */
  revocations: { token: number; identity: number };
  /** Tokens that identity revocations found live. */
  revokedIdentityTokens: number;
  /** Discovery and JWKS fetches. From `auth.keys.stats()` once {@link AuthMetrics.track} was called. */
  keyFetches: { success: number; failure: number };
  /** Key lookups served from cache or not; only known once {@link AuthMetrics.track} was called. */
  keyCache: { hits: number; misses: number } | undefined;
  /**
   * Audit mode (`candidateRules`): logins where the candidate rules would have decided differently.
   * `candidateDenies`: live allowed, candidate would deny; `candidateAllows`: the reverse.
   */
  candidateMismatches: { candidateDenies: number; candidateAllows: number };
}

/** Where key statistics come from: the engine (`auth`) or its `KeyManager` (`auth.keys`). */
export type KeyStatsSource = { stats(): KeyManagerStats } | { keys: { stats(): KeyManagerStats } };

/** Options of {@link createMetrics}. */
export interface MetricsOptions {
  /** Metric name prefix. Default `oidc_machine_auth`. */
  prefix?: string;
}

/** Counters a host exports; fed by the engine's `onEvent` hook. No metrics library needed. */
export interface AuthMetrics {
  /** Pass as `createOidcAuth({ onEvent })` (or through {@link combineEventHandlers}). Never throws. */
  readonly onEvent: (event: AuthEvent) => void;
  /**
   * For a shared `KeyManager` (`new KeyManager({ onFetch: metrics.onKeyFetch })`), whose fetches the
   * engine does not report as events: counts key fetches when {@link track} is not used. Once it has
   * been called, `keys.fetch`/`keys.fetch.failure` events are not counted too (no double count).
   * Ignored for counting once a key stats source is tracked (the stats are exact).
   */
  readonly onKeyFetch: (info: { ok: boolean }) => void;
  /** Read key fetch and cache counters from the engine (`metrics.track(auth)`) at snapshot time. */
  track(source: KeyStatsSource): void;
  snapshot(): MetricsSnapshot;
  /** Prometheus text exposition format (0.0.4): serve it with `content-type: text/plain; version=0.0.4`. */
  render(): string;
  /** Zero the event counters (key stats belong to the engine and are not reset). */
  reset(): void;
}

/** Every reason code, once: `satisfies` makes the compiler refuse a list that misses one. */
const REASON_LABELS: ReadonlySet<string> = new Set(
  Object.keys({
    invalid_credentials: true,
    identity_not_found: true,
    token_malformed: true,
    token_too_large: true,
    algorithm_not_allowed: true,
    key_not_found: true,
    signature_invalid: true,
    issuer_mismatch: true,
    token_expired: true,
    token_not_yet_valid: true,
    token_issued_in_future: true,
    token_lifetime_too_long: true,
    subject_not_allowed: true,
    audience_not_allowed: true,
    claim_not_allowed: true,
    claim_missing: true,
    denied_by_rule: true,
    no_rule_matched: true,
    claim_value_unsupported: true,
    grant_format_not_allowed: true,
    token_already_used: true,
    missing_token: true,
    invalid_request: true,
    invalid_token: true,
    token_revoked: true,
    uses_exhausted: true,
    max_ttl_reached: true,
    ip_not_allowed: true,
    forbidden: true,
    invalid_body: true,
    body_too_large: true,
    unsupported_media_type: true,
    idp_unavailable: true,
    store_unavailable: true,
    rate_limited: true,
    locked_out: true,
    scope_not_allowed: true,
    target_not_allowed: true,
    unsupported_grant_type: true,
    unsupported_token_type: true,
    claim_not_revocable: true,
    revocation_limit_reached: true,
    invalid_dpop_proof: true,
    dpop_required: true,
    use_dpop_nonce: true,
    dpop_key_mismatch: true,
    invalid_config: true,
    trust_not_found: true,
    trust_in_use: true,
  } satisfies Record<ReasonCode, true>),
);

/** A reason label value: one of the library's reason codes, or `other` (labels are never free text). */
function reasonLabel(code: ReasonCode | undefined): string {
  return code !== undefined && REASON_LABELS.has(code) ? code : 'other';
}

function bump(map: Record<string, number>, key: string, by = 1): void {
  map[key] = (map[key] ?? 0) + by;
}

/**
 * Login, guard, renewal, revocation and key counters for a host to export.
 *
 * ```ts
 * const metrics = createMetrics();
 * const auth = createOidcAuth({ identities, onEvent: metrics.onEvent });
 * metrics.track(auth); // key fetches and cache hits from auth.keys.stats()
 * app.get('/metrics', (_req, res) => res.type('text/plain; version=0.0.4').send(metrics.render()));
 * ```
 *
 * Labels are reason codes only (never identity ids, subjects or addresses), so cardinality stays
 * bounded by the {@link ReasonCode} list.
 */
export function createMetrics(options: MetricsOptions = {}): AuthMetrics {
  const prefix = options.prefix ?? 'oidc_machine_auth';
  if (!/^[a-zA-Z_:][a-zA-Z0-9_:]*$/.test(prefix)) throw new TypeError('metrics prefix is not a metric name');
  let counts = fresh();
  let keySource: { stats(): KeyManagerStats } | undefined;
  let fetchHookUsed = false;

  function fresh() {
    return {
      loginSuccess: 0,
      loginFailure: Object.create(null) as Record<string, number>,
      guardDenials: Object.create(null) as Record<string, number>,
      renewSuccess: 0,
      renewFailure: Object.create(null) as Record<string, number>,
      revokeToken: 0,
      revokeIdentity: 0,
      revokedIdentityTokens: 0,
      fetchOk: 0,
      fetchFailed: 0,
      candidateDenies: 0,
      candidateAllows: 0,
    };
  }

  const onEvent = (event: AuthEvent): void => {
    switch (event?.type) {
      case 'login.success':
        counts.loginSuccess++;
        break;
      case 'login.failure':
        bump(counts.loginFailure, reasonLabel(event.reasonCode));
        break;
      case 'guard.denied':
        bump(counts.guardDenials, reasonLabel(event.reasonCode));
        break;
      case 'token.renew':
        counts.renewSuccess++;
        break;
      case 'token.renew.failure':
        bump(counts.renewFailure, reasonLabel(event.reasonCode));
        break;
      case 'token.revoke':
        counts.revokeToken++;
        break;
      case 'identity.revoke': {
        counts.revokeIdentity++;
        const revoked = event.detail?.revoked;
        if (typeof revoked === 'number' && Number.isSafeInteger(revoked) && revoked > 0) {
          counts.revokedIdentityTokens += revoked;
        }
        break;
      }
      case 'keys.fetch':
        if (!fetchHookUsed) counts.fetchOk++;
        break;
      case 'keys.fetch.failure':
        if (!fetchHookUsed) counts.fetchFailed++;
        break;
      case 'login.candidate_mismatch':
        if (event.detail?.candidate === 'deny') counts.candidateDenies++;
        else if (event.detail?.candidate === 'allow') counts.candidateAllows++;
        break;
      default:
        break;
    }
  };

  const onKeyFetch = (info: { ok: boolean }): void => {
    fetchHookUsed = true;
    if (info?.ok) counts.fetchOk++;
    else counts.fetchFailed++;
  };

  function keyStats(): KeyManagerStats | undefined {
    if (!keySource) return undefined;
    try {
      return keySource.stats();
    } catch {
      return undefined;
    }
  }

  function snapshot(): MetricsSnapshot {
    const stats = keyStats();
    return {
      logins: { success: counts.loginSuccess, failure: { ...counts.loginFailure } },
      guardDenials: { ...counts.guardDenials },
      renewals: { success: counts.renewSuccess, failure: { ...counts.renewFailure } },
      revocations: { token: counts.revokeToken, identity: counts.revokeIdentity },
      revokedIdentityTokens: counts.revokedIdentityTokens,
      keyFetches: stats
        ? { success: stats.fetches - stats.failures, failure: stats.failures }
        : { success: counts.fetchOk, failure: counts.fetchFailed },
      keyCache: stats ? { hits: stats.hits, misses: stats.misses } : undefined,
      candidateMismatches: {
        candidateDenies: counts.candidateDenies,
        candidateAllows: counts.candidateAllows,
      },
    };
  }

  function render(): string {
    const s = snapshot();
    const out: string[] = [];
    const counter = (name: string, help: string, samples: Array<[Record<string, string>, number]>) => {
      const full = `${prefix}_${name}_total`;
      out.push(`# HELP ${full} ${help}`, `# TYPE ${full} counter`);
      for (const [labels, value] of samples) out.push(`${full}${labelText(labels)} ${value}`);
    };
    const byReason = (result: Record<string, string>, map: Record<string, number>) =>
      Object.keys(map)
        .sort()
        .map((reason): [Record<string, string>, number] => [{ ...result, reason }, map[reason] ?? 0]);
    counter('logins', 'Logins with an IdP token, by result and reason code.', [
      [{ result: 'success' }, s.logins.success],
      ...byReason({ result: 'failure' }, s.logins.failure),
    ]);
    counter(
      'guard_denials',
      'Requests refused by the bearer guard, by reason code.',
      byReason({}, s.guardDenials),
    );
    counter('renewals', 'Access token renewals, by result and reason code.', [
      [{ result: 'success' }, s.renewals.success],
      ...byReason({ result: 'failure' }, s.renewals.failure),
    ]);
    counter('revocations', 'Revocations: one token id, or every token of an identity.', [
      [{ scope: 'token' }, s.revocations.token],
      [{ scope: 'identity' }, s.revocations.identity],
    ]);
    counter('identity_revoked_tokens', 'Live tokens revoked by identity revocations.', [
      [{}, s.revokedIdentityTokens],
    ]);
    counter('key_fetches', 'Discovery document and JWKS fetches, by result.', [
      [{ result: 'success' }, s.keyFetches.success],
      [{ result: 'failure' }, s.keyFetches.failure],
    ]);
    counter(
      'candidate_mismatches',
      'Audit mode: logins the candidate rules would have decided differently, by live and candidate decision.',
      [
        [{ live: 'allow', candidate: 'deny' }, s.candidateMismatches.candidateDenies],
        [{ live: 'deny', candidate: 'allow' }, s.candidateMismatches.candidateAllows],
      ],
    );
    if (s.keyCache) {
      counter('key_cache_lookups', 'IdP key lookups served from cache (hit) or not (miss).', [
        [{ result: 'hit' }, s.keyCache.hits],
        [{ result: 'miss' }, s.keyCache.misses],
      ]);
    }
    return `${out.join('\n')}\n`;
  }

  return {
    onEvent,
    onKeyFetch,
    track(source: KeyStatsSource) {
      const candidate = 'keys' in source ? source.keys : source;
      if (typeof candidate?.stats !== 'function') throw new TypeError('track() needs auth or auth.keys');
      keySource = candidate;
    },
    snapshot,
    render,
    reset() {
      counts = fresh();
    },
  };
}

function labelText(labels: Record<string, string>): string {
  const keys = Object.keys(labels);
  if (keys.length === 0) return '';
  const escape = (v: string) => v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
  return `{${keys.map((k) => `${k}="${escape(labels[k] ?? '')}"`).join(',')}}`;
}

/**
 * One `onEvent` handler that calls each given handler in turn (`undefined` entries are skipped).
 * A handler that throws does not stop the others; the first error is rethrown after all ran, so the
 * engine logs it.
 */
export function combineEventHandlers(
  ...handlers: Array<((event: AuthEvent) => void) | undefined>
): (event: AuthEvent) => void {
  const list = handlers.filter((h): h is (event: AuthEvent) => void => typeof h === 'function');
  return (event: AuthEvent) => {
    let failed = false;
    let first: unknown;
    for (const handler of list) {
      try {
        handler(event);
      } catch (error) {
        if (!failed) first = error;
        failed = true;
      }
    }
    if (failed) throw first;
  };
}

// ---------------------------------------------------------------------------------------------
// Redaction

/** What stands in for a redacted value. */
export const REDACTED = '[REDACTED]';

/** Keys whose values are always redacted (compared lower-case, `-` and `_` ignored). */
const SECRET_KEYS: ReadonlySet<string> = new Set([
  'authorization',
  'proxyauthorization',
  'jwt',
  'accesstoken',
  'idtoken',
  'refreshtoken',
  'token',
  'bearer',
  'cookie',
  'setcookie',
  'password',
  'secret',
  'clientsecret',
  'privatekey',
  'signingkeys',
]);

/**
 * Token-shaped substrings, as one regular expression would say it:
 *
 * ```
 * omat_[A-Za-z0-9._~+/=-]+
 * | eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]*){0,3}
 * | \b(Bearer|bearer|BEARER|Basic|basic|BASIC)\s+(?!realm\b|error\b)[A-Za-z0-9._~+/=-]+
 * ```
 *
 * our own access tokens (`omat_…`), JWS/JWE compact tokens starting with a base64url JSON header
 * (`eyJ…`), and the credentials after `Bearer`/`Basic`. A backtracking regexp retries `eyJ…` from
 * every `eyJ` of a long base64url run without a dot (quadratic: a 64 KiB run took seconds), so
 * {@link redactString} scans instead, each character a bounded number of times: linear time, same
 * matches (a property test holds it to the regexp above).
 */
const OWN = 1; // [A-Za-z0-9._~+/=-]: own tokens and credentials after a scheme
const B64URL = 2; // [A-Za-z0-9_-]
const WORD = 4; // [A-Za-z0-9_]: the regexp `\b`
const CHAR_CLASS = new Uint8Array(128);
for (let c = 0; c < 128; c++) {
  const ch = String.fromCharCode(c);
  const alnum = /[A-Za-z0-9]/.test(ch);
  CHAR_CLASS[c] =
    (alnum || '._~+/=-'.includes(ch) ? OWN : 0) |
    (alnum || ch === '_' || ch === '-' ? B64URL : 0) |
    (alnum || ch === '_' ? WORD : 0);
}
const SCHEMES = ['Bearer', 'bearer', 'BEARER', 'Basic', 'basic', 'BASIC'] as const;

/** The class bits of `text[i]` (0 outside the string or past ASCII). */
function classAt(text: string, i: number): number {
  const c = text.charCodeAt(i); // NaN outside the string
  return c < 128 ? CHAR_CLASS[c]! : 0;
}

/** The regexp `\s` (ECMAScript WhiteSpace and LineTerminator). */
function isSpace(c: number): boolean {
  return (
    (c >= 9 && c <= 13) ||
    c === 32 ||
    c === 0xa0 ||
    c === 0x1680 ||
    (c >= 0x2000 && c <= 0x200a) ||
    c === 0x2028 ||
    c === 0x2029 ||
    c === 0x202f ||
    c === 0x205f ||
    c === 0x3000 ||
    c === 0xfeff
  );
}

/** Replace every token-shaped substring of a string with `[REDACTED]`. Linear time in its length. */
export function redactString(text: string): string {
  const n = text.length;
  let out = '';
  let copied = 0;
  // The last base64url run found, [runFrom, runEnd): every `eyJ` inside one run ends where it ends,
  // so no run is scanned twice (the positions asked about only grow).
  let runFrom = 0;
  let runEnd = -1;
  const base64urlEnd = (from: number): number => {
    if (from >= runFrom && from <= runEnd) return runEnd;
    let j = from;
    while (classAt(text, j) & B64URL) j++;
    runFrom = from;
    runEnd = j;
    return j;
  };
  let i = 0;
  while (i < n) {
    const c = text.charCodeAt(i);
    let end = -1;
    let replacement = REDACTED;
    if (c === 111 /* o */ && text.startsWith('omat_', i)) {
      let j = i + 5;
      while (classAt(text, j) & OWN) j++;
      if (j > i + 5) end = j;
    } else if (c === 101 /* e */ && text.startsWith('eyJ', i)) {
      let j = base64urlEnd(i + 3);
      if (text.charCodeAt(j) === 46 /* . */) {
        j = base64urlEnd(j + 1);
        for (let k = 0; k < 3 && text.charCodeAt(j) === 46; k++) j = base64urlEnd(j + 1);
        end = j;
      }
    } else if ((c === 66 || c === 98) /* B or b */ && !(classAt(text, i - 1) & WORD)) {
      const scheme = SCHEMES.find((s) => text.startsWith(s, i));
      if (scheme) {
        let j = i + scheme.length;
        while (j < n && isSpace(text.charCodeAt(j))) j++;
        // Fewer spaces never help: the credential class holds no space. So no backtracking.
        const param =
          (text.startsWith('realm', j) && !(classAt(text, j + 5) & WORD)) ||
          (text.startsWith('error', j) && !(classAt(text, j + 5) & WORD));
        if (j > i + scheme.length && !param) {
          let k = j;
          while (classAt(text, k) & OWN) k++;
          if (k > j) {
            end = k;
            replacement = `${scheme} ${REDACTED}`;
          }
        }
      }
    }
    if (end < 0) {
      i++;
      continue;
    }
    out += text.slice(copied, i) + replacement;
    copied = i = end;
  }
  return copied === 0 ? text : out + text.slice(copied);
}

const MAX_DEPTH = 10;
const MAX_ENTRIES = 1000;
/** Values visited by one {@link redact} call: shared sub-objects are reached once per path. */
const MAX_NODES = 100_000;
/** Strings at least this long are redacted once per {@link redact} call, however often they recur. */
const MEMO_LENGTH = 256;

/**
 * A deep copy of a value to be logged, with token-shaped strings and secret-named keys
 * (`authorization`, `jwt`, `accessToken`, `token`, `cookie`, `password`…) replaced by `[REDACTED]`,
 * anywhere in the object. Errors become `{ type, message, stack, code }` with the same redaction;
 * cycles become `[Circular]`; nesting past 10 levels, or anything past the first 100,000 values
 * visited, becomes `[Truncated]`; containers keep their first 1,000 entries. The work is linear in
 * the size of the value: an object that shares one sub-object along many paths (a DAG whose unfolded
 * tree is exponential) stops at the value budget, and a long string that recurs is scanned once.
 */
export function redact(value: unknown): unknown {
  const seen = new WeakSet<object>();
  const memo = new Map<string, string>();
  let budget = MAX_NODES;
  const walk = (node: unknown, depth: number): unknown => {
    if (--budget < 0) return '[Truncated]';
    if (typeof node === 'string') {
      if (node.length < MEMO_LENGTH) return redactString(node);
      let clean = memo.get(node);
      if (clean === undefined) memo.set(node, (clean = redactString(node)));
      return clean;
    }
    if (node === null || typeof node !== 'object') return node;
    if (seen.has(node)) return '[Circular]';
    if (depth >= MAX_DEPTH) return '[Truncated]';
    const original = node;
    seen.add(original);
    try {
      if (node instanceof Error) {
        const out: Record<string, unknown> = { type: node.name, message: redactString(node.message) };
        if (typeof node.stack === 'string') out.stack = redactString(node.stack);
        const code = (node as { code?: unknown }).code;
        if (typeof code === 'string' || typeof code === 'number') out.code = code;
        return out;
      }
      if (node instanceof Date) return node;
      if (ArrayBuffer.isView(node) || node instanceof ArrayBuffer) return `[${node.byteLength} bytes]`;
      if (node instanceof Map) node = Object.fromEntries(first(node.entries(), MAX_ENTRIES));
      if (Array.isArray(node) || node instanceof Set) {
        const size = Array.isArray(node) ? node.length : node.size;
        const items = Array.isArray(node) ? node.slice(0, MAX_ENTRIES) : first(node.values(), MAX_ENTRIES);
        const out = items.map((item: unknown) => walk(item, depth + 1));
        if (size > MAX_ENTRIES) out.push(`[${size - MAX_ENTRIES} more]`);
        return out;
      }
      const out: Record<string, unknown> = {};
      let n = 0;
      for (const key of Object.keys(node as object)) {
        if (++n > MAX_ENTRIES) break;
        const item = (node as Record<string, unknown>)[key];
        out[key] = isSecretKey(key) && item !== undefined && item !== null ? REDACTED : walk(item, depth + 1);
      }
      return out;
    } finally {
      seen.delete(original);
    }
  };
  return walk(value, 0);
}

/** The first `count` items of an iterator. */
function first<T>(items: Iterator<T>, count: number): T[] {
  const out: T[] = [];
  for (let next = items.next(); !next.done && out.length < count; next = items.next()) out.push(next.value);
  return out;
}

function isSecretKey(key: string): boolean {
  return SECRET_KEYS.has(key.toLowerCase().replace(/[-_]/g, ''));
}

/** A pino-style logger: the four levels this library uses, each `(obj, msg?)`. */
export type PinoLike = Logger & { child?: (bindings: Record<string, unknown>) => unknown };

/**
 * Wrap any pino-style logger so every object and message it receives is passed through
 * {@link redact} first. Works for the engine's own logs and for a host's.
 */
export function redactingLogger(logger: Logger): Logger {
  const level =
    (name: keyof Logger) =>
    (obj: object, msg?: string): void => {
      const clean = redact(obj) as object;
      if (msg === undefined) logger[name](clean);
      else logger[name](clean, redactString(msg));
    };
  return { debug: level('debug'), info: level('info'), warn: level('warn'), error: level('error') };
}

/**
 * Adapt a pino logger for `createOidcAuth({ logger })`: a `child({ lib: 'oidc-machine-auth' })` when
 * the logger has `child`, wrapped by {@link redactingLogger}.
 */
export function pinoLogger(
  pino: PinoLike,
  bindings: Record<string, unknown> = { lib: 'oidc-machine-auth' },
): Logger {
  const child = typeof pino.child === 'function' ? (pino.child(bindings) as Logger) : pino;
  return redactingLogger(child);
}
