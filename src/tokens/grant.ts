import { BadRequestError } from '../errors.js';
import type { IdentityConfig } from '../types.js';
import { LoginFailure } from '../verify.js';

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
  /** The JWT `aud` (empty for opaque tokens without an issuer). */
  audience: readonly string[];
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
 * Narrow the identity's defaults by a grant request. Refuses (a {@link LoginFailure} after the IdP
 * token verified) what would widen them: `grant_format_not_allowed` for a JWT where the identity
 * mints opaque tokens, `grant_audience_not_allowed` for an audience outside its list,
 * `grant_scope_not_allowed` for a scope it does not declare (`scopes`, when the identity has them).
 */
export function narrowGrant(
  config: IdentityConfig,
  grant: TokenGrantRequest | undefined,
  defaults: { format: AccessTokenFormat; issuer: string | undefined },
): NarrowedGrant {
  const identityFormat = config.accessTokenFormat ?? defaults.format;
  const format = grant?.format ?? identityFormat;
  if (format === 'jwt' && identityFormat !== 'jwt') throw new LoginFailure('grant_format_not_allowed', true);
  const ttlSeconds = Math.min(config.accessTokenTTL, grant?.ttlSeconds ?? Infinity);
  const allowed = config.accessTokenAudiences ?? (defaults.issuer === undefined ? [] : [defaults.issuer]);
  let audience: readonly string[] = allowed;
  if (grant?.audience !== undefined) {
    const asked = typeof grant.audience === 'string' ? [grant.audience] : grant.audience;
    if (!asked.every((a) => allowed.includes(a))) throw new LoginFailure('grant_audience_not_allowed', true);
    audience = [...new Set(asked)];
  }
  let scopes: readonly string[] | undefined;
  if (grant?.scopes !== undefined && grant.scopes.length > 0) {
    // The identity's scopes (`scopes`, a field of the token-exchange work) bound what may be asked.
    const declared = (config as { readonly scopes?: readonly string[] }).scopes ?? [];
    if (!grant.scopes.every((s) => declared.includes(s)))
      throw new LoginFailure('grant_scope_not_allowed', true);
    scopes = [...new Set(grant.scopes)];
  }
  return { format, ttlSeconds, audience, scopes };
}
