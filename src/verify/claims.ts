import type { JWTPayload } from 'jose';
import { VerifyError } from './errors.js';

/** The claims of a verified RFC 9068 access token (section 2.2), plus whatever else the issuer put in. */
export interface AccessTokenClaims extends JWTPayload {
  iss: string;
  sub: string;
  aud: string | string[];
  exp: number;
  iat: number;
  jti: string;
  client_id: string;
  /** Space-separated scopes (RFC 9068 section 2.2.3), when the token carries any. */
  scope?: string;
}

/** RFC 9068 section 2.2: the claims every JWT access token carries. */
export const REQUIRED_CLAIMS = ['iss', 'sub', 'aud', 'exp', 'iat', 'jti', 'client_id'] as const;

/**
 * The RFC 9068 section 2.2 claim types jose does not check for us (it checks `iss`, `aud`, `exp`,
 * `nbf` and `iat`, and that every required claim is present): `sub`, `jti` and `client_id` are
 * strings, `scope` when present is a string. The verified claims are frozen, so a caller cannot
 * change what a cached token says.
 */
export function checkAccessTokenClaims(payload: JWTPayload): AccessTokenClaims {
  for (const claim of ['sub', 'jti', 'client_id'] as const) {
    if (typeof payload[claim] !== 'string' || payload[claim] === '') {
      throw new VerifyError(
        'claim_invalid',
        `the "${claim}" claim must be a non-empty string (RFC 9068 section 2.2)`,
      );
    }
  }
  if (payload.scope !== undefined && typeof payload.scope !== 'string') {
    throw new VerifyError('claim_invalid', 'the "scope" claim must be a string (RFC 9068 section 2.2.3)');
  }
  return deepFreeze(payload) as AccessTokenClaims;
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const inner of Object.values(value)) deepFreeze(inner);
  }
  return value;
}
