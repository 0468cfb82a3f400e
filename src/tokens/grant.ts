import { BadRequestError } from '../errors.js';
import type { IdentityConfig } from '../types.js';
import { LoginFailure } from '../trust/verify-idp-token.js';

/** The two kinds of access token. */
export type AccessTokenFormat = 'opaque' | 'jwt';

/**
 * What a caller of `auth.login()` (the token-exchange endpoint, say) asks for beyond the identity's
 * defaults. Every field only narrows: a shorter lifetime, some of the audiences the identity allows,
 * some of the scopes it declares, an opaque token where a JWT would be minted.
 */
export interface TokenGrantRequest {
  /** Seconds; the token lives `min(ttlSeconds, accessTokenTTL)`. A positive integer. */
  ttlSeconds?: number;
  /** A subset of the identity's `scopes`; written into a JWT's `scope` claim. */
  scopes?: readonly string[];
  /** One or more of the identity's `accessTokenAudiences` (default list: the issuer). JWT only. */
  audience?: string | readonly string[];
  /** `opaque` is always allowed; `jwt` only when the identity's format is `jwt`. */
  format?: AccessTokenFormat;
}

/** The identity's grant after narrowing. */
export interface NarrowedGrant {
  format: AccessTokenFormat;
  /** Seconds granted now and on each renewal. */
  ttlSeconds: number;
  /** Seconds after creation past which no renewal reaches: the identity's max TTL, or a shorter asked TTL. */
  maxTtlSeconds: number;
  /** A JWT's `aud`: the audiences asked for, else every allowed one (empty for opaque tokens without an issuer). */
  audience: readonly string[];
  /** The audiences asked for, recorded on the token (absent when none was asked). */
  askedAudience: readonly string[] | undefined;
  /** Scopes granted: those asked for, else every scope the identity declares; absent when none. */
  scopes: readonly string[] | undefined;
}

/** RFC 6749 §3.3 scope-token: `%x21 / %x23-5B / %x5D-7E`, 1 or more. */
const SCOPE_TOKEN = /^[\x21\x23-\x5b\x5d-\x7e]{1,128}$/;
const MAX_ITEMS = 64;
/** 1-2048 characters, none of them a C0 control or DEL. */
// eslint-disable-next-line no-control-regex -- refusing control characters is the point
const PRINTABLE = /^[^\x00-\x1f\x7f]{1,2048}$/;

/**
 * Check the shape of a grant request before any work (a direct caller's mistake is a 400
 * `invalid_request`, never a refusal that looks like a credential problem).
 */
export function checkGrantRequest(grant: unknown): TokenGrantRequest | undefined {
  if (grant === undefined || grant === null) return undefined;
  const bad = (what: string) => new BadRequestError('invalid_request', `grant.${what}`);
  if (typeof grant !== 'object' || Array.isArray(grant)) throw bad('must be an object') as Error;
  const { ttlSeconds, scopes, audience, format, ...rest } = grant as Record<string, unknown>;
  if (Object.keys(rest).length > 0) throw bad('has an unknown field');
  if (ttlSeconds !== undefined && !(Number.isSafeInteger(ttlSeconds) && (ttlSeconds as number) > 0)) {
    throw bad('ttlSeconds must be a positive integer');
  }
  if (scopes !== undefined && !stringList(scopes, SCOPE_TOKEN)) {
    throw bad('scopes must be an array of RFC 6749 scope tokens');
  }
  const audiences = typeof audience === 'string' ? [audience] : audience;
  if (audiences !== undefined && (!stringList(audiences, PRINTABLE) || audiences.length === 0)) {
    throw bad('audience must be a string or a non-empty array of strings');
  }
  if (format !== undefined && format !== 'opaque' && format !== 'jwt') {
    throw bad('format must be "opaque" or "jwt"');
  }
  return grant as TokenGrantRequest;
}

function stringList(value: unknown, pattern: RegExp): value is string[] {
  return (
    Array.isArray(value) &&
    value.length <= MAX_ITEMS &&
    value.every((item) => typeof item === 'string' && pattern.test(item))
  );
}

/**
 * Narrow the identity's defaults by a grant request (the token exchange's downscoping, RFC 8693
 * section 2.1). Every field only narrows; what would widen is refused, never dropped silently (a
 * {@link LoginFailure} after the IdP token verified): `grant_format_not_allowed` for a JWT where the
 * identity mints opaque tokens, `target_not_allowed` for an audience outside `accessTokenAudiences`
 * (default list: the engine's issuer), `scope_not_allowed` for a scope outside `scopes` (RFC 6749
 * section 5.2 `invalid_scope`, RFC 8693 section 2.2.2 `invalid_target` at the token endpoint).
 * A TTL shorter than the identity's also caps its renewals: the token never outlives what was asked.
 */
export function narrowGrant(
  config: IdentityConfig,
  grant: TokenGrantRequest | undefined,
  defaults: { format: AccessTokenFormat; issuer: string | undefined },
): NarrowedGrant {
  const identityFormat = config.accessTokenFormat ?? defaults.format;
  const format = grant?.format ?? identityFormat;
  if (format === 'jwt' && identityFormat !== 'jwt') throw new LoginFailure('grant_format_not_allowed', true);
  const ttl = Math.min(config.accessTokenTTL, config.accessTokenMaxTTL);
  const asked = grant?.ttlSeconds;
  const shorter = asked !== undefined && asked < ttl;
  const ttlSeconds = shorter ? asked : ttl;
  const maxTtlSeconds = shorter ? asked : config.accessTokenMaxTTL;
  const allowed = config.accessTokenAudiences ?? (defaults.issuer === undefined ? [] : [defaults.issuer]);
  let audience: readonly string[] = allowed;
  let askedAudience: readonly string[] | undefined;
  if (grant?.audience !== undefined) {
    const list = typeof grant.audience === 'string' ? [grant.audience] : grant.audience;
    if (!list.every((a) => allowed.includes(a))) throw new LoginFailure('target_not_allowed', true);
    audience = askedAudience = Object.freeze([...new Set(list)]);
  }
  const declared = config.scopes ?? [];
  const scopeList = grant?.scopes ?? declared;
  if (!scopeList.every((s) => declared.includes(s))) throw new LoginFailure('scope_not_allowed', true);
  const scopes = scopeList.length > 0 ? Object.freeze([...new Set(scopeList)]) : undefined;
  return { format, ttlSeconds, maxTtlSeconds, audience, askedAudience, scopes };
}
