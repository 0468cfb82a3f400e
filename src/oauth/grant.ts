import type { IdentityConfig } from '../types.js';
import { LoginFailure } from '../verify.js';

/**
 * What a caller of `auth.login()` may ask of the token it mints (the token exchange's downscoping).
 * Every field only narrows what the identity's config grants; none can widen it.
 */
export interface GrantRequest {
  /** Lifetime in seconds; capped at the identity's `accessTokenTTL`. The token is then not renewable past it. */
  ttlSeconds?: number;
  /** Scopes; each must be one the identity declares in `scopes` (else `scope_not_allowed`). */
  scopes?: readonly string[];
  /** Audiences; each must be one the identity declares in `accessTokenAudiences` (else `target_not_allowed`). */
  audience?: readonly string[];
  /** Token kind. Only `opaque` is minted on this branch; the `token` branch adds `jwt`. */
  format?: 'opaque' | 'jwt';
}

/** The grant a login mints, after narrowing. */
export interface NarrowedGrant {
  /** Lifetime of the token string, in seconds. */
  ttlSeconds: number;
  /** Seconds after creation past which no renewal reaches. */
  maxTtlSeconds: number;
  /** Space-separated scopes granted; absent when none. */
  scope?: string;
  /** Audiences granted; absent when none was asked for. */
  audience?: readonly string[];
}

/**
 * Narrow the identity's grant by `request` (opaque tokens; the `token` branch's mint step takes the
 * same request). Without a request: the identity's TTLs, and its declared scopes when it has any.
 * A scope or audience the identity does not declare is refused, never dropped silently: the caller
 * asked for something it cannot have (RFC 6749 §5.2 `invalid_scope`, RFC 8693 §2.2.2
 * `invalid_target`). Thrown as a {@link LoginFailure} with `verified: true`: it runs only once the
 * IdP token verified and the identity's policy allowed it.
 */
export function narrowGrant(config: IdentityConfig, request: GrantRequest | undefined): NarrowedGrant {
  const ttl = Math.min(config.accessTokenTTL, config.accessTokenMaxTTL);
  const out: NarrowedGrant = { ttlSeconds: ttl, maxTtlSeconds: config.accessTokenMaxTTL };
  const asked = request?.ttlSeconds;
  if (asked !== undefined) {
    if (!Number.isSafeInteger(asked) || asked < 1) throw new LoginFailure('invalid_request', true);
    if (asked < ttl) {
      out.ttlSeconds = asked;
      out.maxTtlSeconds = asked;
    }
  }
  const declared = config.scopes ?? [];
  const scopes = request?.scopes ?? declared;
  for (const scope of scopes) {
    if (!declared.includes(scope)) throw new LoginFailure('scope_not_allowed', true);
  }
  if (scopes.length > 0) out.scope = [...new Set(scopes)].join(' ');
  const audiences = request?.audience;
  if (audiences && audiences.length > 0) {
    const allowed = config.accessTokenAudiences ?? [];
    for (const audience of audiences) {
      if (!allowed.includes(audience)) throw new LoginFailure('target_not_allowed', true);
    }
    out.audience = Object.freeze([...new Set(audiences)]);
  }
  return out;
}
