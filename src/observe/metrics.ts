import type { ReasonCode } from '../errors.js';
import type { KeyManagerStats } from '../trust/keys.js';
import type { AuthEvent } from '../types.js';

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
