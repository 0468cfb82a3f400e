import { randomUUID } from 'node:crypto';
import { describe, type OidcAuth } from '../engine/auth.js';
import { BadRequestError, OidcAuthError, UnauthorizedError, type ReasonCode } from '../errors.js';
import type { HttpAnswer } from '../http/answers.js';

/** The `error` values of RFC 6749 §5.2 and RFC 8693 §2.2.2 the OAuth endpoints answer with. */
export type OAuthErrorCode =
  | 'invalid_request'
  | 'invalid_client'
  | 'invalid_grant'
  | 'unsupported_grant_type'
  | 'invalid_scope'
  | 'invalid_target'
  | 'temporarily_unavailable'
  // RFC 9449 §5 and §8
  | 'invalid_dpop_proof'
  | 'use_dpop_nonce';

/** An RFC 6749 §5.2 error body, with our stable reason code (and request id) alongside. */
export interface OAuthErrorBody {
  error: OAuthErrorCode;
  error_description: string;
  reasonCode: ReasonCode;
  reqId?: string;
}

/** Every OAuth answer: RFC 6749 §5.1/§5.2 require `Cache-Control: no-store` (and `Pragma: no-cache`). */
export const OAUTH_NO_STORE: Readonly<Record<string, string>> = Object.freeze({
  'cache-control': 'no-store',
  pragma: 'no-cache',
});

/** A request the OAuth endpoints refuse as `invalid_request` (RFC 6749 §5.2), 400. */
export function oauthInvalidRequest(message: string, code: ReasonCode = 'invalid_request'): BadRequestError {
  return new BadRequestError(code, message);
}

/** RFC 6749 §5.2 `invalid_client`: the request carried client credentials this endpoint does not check. */
export class ClientAuthenticationError extends UnauthorizedError {
  override name = 'ClientAuthenticationError';
  constructor(message: string) {
    super('invalid_request', message);
  }
}

/** The RFC 6749 §5.2 `error` (and HTTP status) for one of our errors. */
export function oauthErrorOf(error: OidcAuthError): { status: number; error: OAuthErrorCode } {
  if (error instanceof ClientAuthenticationError) return { status: 401, error: 'invalid_client' };
  switch (error.code) {
    case 'unsupported_grant_type':
      return { status: 400, error: 'unsupported_grant_type' };
    case 'scope_not_allowed':
      return { status: 400, error: 'invalid_scope' };
    case 'target_not_allowed':
      return { status: 400, error: 'invalid_target' };
    // RFC 8693 §2.2.2: a request unacceptable by policy (a JWT asked of an identity that mints
    // opaque tokens) is `invalid_request`; the subject token itself was fine.
    case 'grant_format_not_allowed':
      return { status: 400, error: 'invalid_request' };
    case 'invalid_dpop_proof':
      return { status: 400, error: 'invalid_dpop_proof' };
    case 'use_dpop_nonce':
      return { status: 400, error: 'use_dpop_nonce' };
    case 'idp_unavailable':
    case 'store_unavailable':
      return { status: 503, error: 'temporarily_unavailable' };
    // A budget spent (docs/RATE-LIMITS.md): 429 with its Retry-After; RFC 6749 names no throttling error.
    case 'rate_limited':
    case 'locked_out':
      return { status: 429, error: 'temporarily_unavailable' };
    // The body could not be read at all: the HTTP status says why (RFC 9110), the error is the RFC's.
    case 'body_too_large':
      return { status: 413, error: 'invalid_request' };
    case 'unsupported_media_type':
      return { status: 415, error: 'invalid_request' };
    default:
      break;
  }
  // A subject token refused (unverified, expired, not accepted by the identity, or from a client
  // address the identity does not trust): RFC 8693 §2.2.2 says `invalid_grant` for an invalid
  // subject_token; the login's 401/403 becomes that 400.
  if (error.status === 401 || error.status === 403) return { status: 400, error: 'invalid_grant' };
  return { status: 400, error: 'invalid_request' };
}

/**
 * The answer of the OAuth endpoints for any error: RFC 6749 §5.2 JSON (`error`,
 * `error_description`) with our `reasonCode` and `reqId`, `Cache-Control: no-store`, a
 * `Retry-After` on 503 and 429. Anything not one of ours (a bug) is logged by name and answered
 * `invalid_request`, never with its text.
 */
export function oauthErrorAnswer(auth: Pick<OidcAuth, 'logger'>, error: unknown): HttpAnswer {
  const reqId = randomUUID();
  let known: OidcAuthError;
  if (error instanceof OidcAuthError) known = error;
  else {
    auth.logger?.error({ event: 'http.error', reqId, err: describe(error) }, 'unexpected error answered 400');
    known = oauthInvalidRequest('The request could not be processed');
  }
  const { status, error: code } = oauthErrorOf(known);
  const headers: Record<string, string> = { ...OAUTH_NO_STORE };
  for (const [name, value] of Object.entries(known.headers)) {
    // A bearer challenge belongs to the login route's 401, not to a 400 of the token endpoint.
    if (name.toLowerCase() !== 'www-authenticate') headers[name] = value;
  }
  const body: OAuthErrorBody = {
    error: code,
    error_description: known.message,
    reasonCode: known.code,
    reqId,
  };
  return { status, headers, body };
}
