import { BadRequestError, ConfigError, OidcAuthError } from '../errors.js';
import { IDENTITY_ID_PATTERN } from '../trust/config.js';
import { compilePath, readClaim, validateClaimPath, type CompiledClaimPath } from '../policy/match.js';
import type { RevokeWhereFilter, TokenStore } from '../types.js';

/**
 * Revocation by claim (`auth.revokeWhere`): which claims a login records, how a filter is checked,
 * and the bounded entry list the memory store keeps (docs/SECURITY.md, guarantee 9).
 */

/**
 * Claim paths recorded by default: a GitHub Actions run, repository and commit, a GitLab pipeline
 * and project, a Kubernetes pod, and `sub` (any IdP). Only claims present on a token are recorded.
 */
export const DEFAULT_REVOCABLE_CLAIMS: readonly string[] = Object.freeze([
  'run_id',
  'repository',
  'sha',
  'sub',
  'pipeline_id',
  'project_path',
  'kubernetes.io.pod.uid',
]);
/** Most claim paths `revocableClaims` may list. */
export const MAX_REVOCABLE_CLAIMS = 32;
/** Longest claim value recorded (characters); a longer one is not recorded, so not revocable by. */
export const MAX_REVOCABLE_VALUE_LENGTH = 256;
/** How long a store keeps a revocation entry: far longer than any login takes (see `TokenStore.revokeWhere`). */
export const REVOCATION_KEEP_MS = 60 * 60 * 1000;
/** Most revocation entries a store keeps at once; past it `revokeWhere` answers 503 with `Retry-After`. */
export const MAX_REVOCATION_ENTRIES = 10_000;

/** The compiled `revocableClaims` option. */
export interface RevocableClaims {
  readonly paths: readonly string[];
  readonly compiled: readonly CompiledClaimPath[];
}

/** Validate the engine's `revocableClaims` option (default {@link DEFAULT_REVOCABLE_CLAIMS}). */
export function compileRevocableClaims(option: readonly string[] | undefined): RevocableClaims {
  const paths = option ?? DEFAULT_REVOCABLE_CLAIMS;
  if (!Array.isArray(paths)) throw new ConfigError('revocableClaims', 'must be an array of claim paths');
  if (paths.length > MAX_REVOCABLE_CLAIMS) {
    throw new ConfigError('revocableClaims', `lists more than ${MAX_REVOCABLE_CLAIMS} claim paths`);
  }
  paths.forEach((path, i) => validateClaimPath(path as string, `revocableClaims[${i}]`));
  if (new Set(paths).size !== paths.length) throw new ConfigError('revocableClaims', 'lists a path twice');
  return {
    paths: Object.freeze([...paths]),
    compiled: paths.map((path, i) => compilePath(path, `revocableClaims[${i}]`, '')),
  };
}

/** U+0000 or a lone surrogate: no store keeps such a value as sent. */
const UNSTORABLE = /\0|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/** A claim value as recorded and matched: a string as is, a finite number as `String(n)`; else none. */
function recordable(value: unknown): string | undefined {
  const text =
    typeof value === 'string'
      ? value
      : typeof value === 'number' && Number.isFinite(value)
        ? String(value)
        : '';
  if (text === '' || text.length > MAX_REVOCABLE_VALUE_LENGTH || UNSTORABLE.test(text)) return undefined;
  return text;
}

/** The revocable claim values of a verified token: path → value, only those present and recordable. */
export function revocableClaimValues(
  payload: Record<string, unknown>,
  claims: RevocableClaims,
): Record<string, string> | undefined {
  let out: Record<string, string> | undefined;
  for (let i = 0; i < claims.compiled.length; i++) {
    const value = recordable(readClaim(payload, claims.compiled[i]!));
    if (value !== undefined) (out ??= {})[claims.paths[i]!] = value;
  }
  return out === undefined ? undefined : Object.freeze(out);
}

/**
 * `input` as a store filter, or a 400: `claim` one of `revocableClaims`, `value` a non-empty string
 * or finite number as a login records it, `identityId` (optional) well formed. Messages never echo
 * the value.
 */
export function revokeWhereFilter(input: unknown, claims: RevocableClaims): RevokeWhereFilter {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new BadRequestError('invalid_request', 'revokeWhere takes { identityId?, claim, value }');
  }
  const { identityId, claim, value } = input as Record<string, unknown>;
  for (const key of Object.keys(input)) {
    if (key !== 'identityId' && key !== 'claim' && key !== 'value') {
      throw new BadRequestError(
        'invalid_request',
        `revokeWhere takes no field ${JSON.stringify(key.slice(0, 64))}`,
      );
    }
  }
  if (identityId !== undefined && (typeof identityId !== 'string' || !IDENTITY_ID_PATTERN.test(identityId))) {
    throw new BadRequestError('invalid_request', 'identityId is malformed');
  }
  if (typeof claim !== 'string' || !claims.paths.includes(claim)) {
    throw new BadRequestError(
      'claim_not_revocable',
      'claim must be one of the claim paths the engine records (option revocableClaims): ' +
        claims.paths.join(', '),
    );
  }
  const text = recordable(value);
  if (text === undefined) {
    throw new BadRequestError(
      'invalid_request',
      `value must be a non-empty string of at most ${MAX_REVOCABLE_VALUE_LENGTH} characters or a finite number`,
    );
  }
  return identityId === undefined ? { claim, value: text } : { identityId, claim, value: text };
}

/** The store's `revokeWhere` and `revocationStamps`, or a clear error naming what is missing. */
export function requireRevokeWhere(
  tokens: TokenStore,
): Required<Pick<TokenStore, 'revokeWhere' | 'revocationStamps'>> {
  if (typeof tokens.revokeWhere !== 'function' || typeof tokens.revocationStamps !== 'function') {
    throw new ConfigError(
      'tokens.revokeWhere',
      'the token store cannot revoke by claim: it must implement revokeWhere and revocationStamps (docs/STORES.md)',
    );
  }
  return tokens as Required<Pick<TokenStore, 'revokeWhere' | 'revocationStamps'>>;
}

/** 503 with `Retry-After`: the store keeps `maxEntries` revocations already; the oldest goes at `retryAfterSeconds`. */
export class RevocationLimitError extends OidcAuthError {
  override name = 'RevocationLimitError';
  constructor(retryAfterSeconds: number, options: { cause?: unknown } = {}) {
    super(
      503,
      'revocation_limit_reached',
      'Too many revocations by claim are in force; retry once the oldest has expired',
      {
        ...options,
        headers: { 'retry-after': String(Math.max(1, Math.ceil(retryAfterSeconds))) },
      },
    );
  }
}

/** The key of an entry: identity (`''` for all), claim and value, NUL-separated (none holds a NUL). */
export function entryKey(identityId: string | undefined, claim: string, value: string): string {
  return `${identityId ?? ''}\0${claim}\0${value}`;
}

/**
 * The memory store's revocation entries: key → epoch and when it was made, a floor (the highest
 * epoch of entries dropped), the epoch. Synchronous throughout: the store calls it inside the step
 * that also creates or walks records.
 *
 * @internal
 */
export class ClaimRevocations {
  epoch = 0;
  /** Highest epoch of an entry dropped: a record stamped below it is refused at create. */
  floor = 0;
  /** Entry key → { epoch, at }; insertion order is age order (a re-revocation moves to the end). */
  readonly #entries = new Map<string, { epoch: number; at: number }>();

  get size(): number {
    return this.#entries.size;
  }

  /** Drop entries made `keepMs` ago or more, raising the floor; then refuse past `maxEntries`; then add one. */
  add(filter: RevokeWhereFilter, now: number, limits: { keepMs: number; maxEntries: number }): number {
    for (const [key, entry] of this.#entries) {
      if (now - entry.at < limits.keepMs) break;
      this.floor = Math.max(this.floor, entry.epoch);
      this.#entries.delete(key);
    }
    const key = entryKey(filter.identityId, filter.claim, filter.value);
    if (!this.#entries.has(key) && this.#entries.size >= limits.maxEntries) {
      const oldest = this.#entries.values().next().value!;
      throw new RevocationLimitError((oldest.at + limits.keepMs - now) / 1000);
    }
    const epoch = ++this.epoch;
    this.#entries.delete(key);
    this.#entries.set(key, { epoch, at: now });
    return epoch;
  }

  /** Whether a record stamped `stamp` with `claims` must be revoked as it is created. */
  refuses(identityId: string, claims: Readonly<Record<string, string>> | undefined, stamp: number): boolean {
    // No claims: no revocation by claim can match it, whatever was forgotten.
    if (stamp >= this.epoch || claims === undefined) return false;
    if (stamp < this.floor) return true;
    for (const claim in claims) {
      const value = claims[claim]!;
      const all = this.#entries.get(entryKey(undefined, claim, value));
      if (all !== undefined && all.epoch > stamp) return true;
      const own = this.#entries.get(entryKey(identityId, claim, value));
      if (own !== undefined && own.epoch > stamp) return true;
    }
    return false;
  }
}
