/**
 * Stable, machine-readable reasons. Callers branch on these, never on message text.
 *
 * Login reasons after the IdP signature verified tell a pipeline author what to fix; before that,
 * every login failure is reported as `invalid_credentials` (see {@link LoginFailurePolicy}).
 */
export type ReasonCode =
  // login: uniform answer until the JWT's signature verified
  | 'invalid_credentials'
  // login: detailed reasons (always in events and logs; in answers once the signature verified)
  | 'identity_not_found'
  | 'token_malformed'
  | 'token_too_large'
  | 'algorithm_not_allowed'
  | 'key_not_found'
  | 'signature_invalid'
  | 'issuer_mismatch'
  | 'token_expired'
  | 'token_not_yet_valid'
  | 'token_issued_in_future'
  | 'token_lifetime_too_long'
  | 'subject_not_allowed'
  | 'audience_not_allowed'
  | 'claim_not_allowed'
  | 'claim_missing'
  // identities with rules: a deny rule matched; no allow rule matched (of several)
  | 'denied_by_rule'
  | 'no_rule_matched'
  // 401: a verified claim (iss, sub, a mapped claim) holds U+0000 or a lone surrogate, which no store keeps as sent
  | 'claim_value_unsupported'
  // login with a narrowing grant (auth.login({ grant })): it asked for more than the identity allows
  | 'grant_format_not_allowed'
  // 401: an identity with singleUseTokens saw this IdP token exchanged before
  | 'token_already_used'
  // guard, renew, revoke
  | 'missing_token'
  | 'invalid_request'
  | 'invalid_token'
  | 'token_revoked'
  | 'uses_exhausted'
  | 'max_ttl_reached'
  | 'ip_not_allowed'
  | 'forbidden'
  // request shape
  | 'invalid_body'
  | 'body_too_large'
  | 'unsupported_media_type'
  // availability (fail closed)
  | 'idp_unavailable'
  | 'store_unavailable'
  // 429 with Retry-After (docs/RATE-LIMITS.md): a budget of the client address or identity is spent;
  // a subject's logins are locked out by its failed logins
  | 'rate_limited'
  | 'locked_out'
  // OAuth token exchange (RFC 8693): a requested scope or audience the identity does not declare,
  // a grant or token type the endpoint does not take
  | 'scope_not_allowed'
  | 'target_not_allowed'
  | 'unsupported_grant_type'
  | 'unsupported_token_type'
  // revocation by claim (auth.revokeWhere): a claim the engine does not record (400); the store keeps
  // as many revocation entries as it may (503 with Retry-After)
  | 'claim_not_revocable'
  | 'revocation_limit_reached'
  // DPoP (RFC 9449): a proof that fails a §4.3 check; an identity that requires a proof got none; the
  // server's nonce is missing or stale; the proof's key is not the one the token is bound to
  | 'invalid_dpop_proof'
  | 'dpop_required'
  | 'use_dpop_nonce'
  | 'dpop_key_mismatch'
  // configuration
  | 'invalid_config'
  // trust entries (admin API, auth.trust)
  | 'trust_not_found'
  | 'trust_in_use';

/** The `error` field of an answer body, as Infisical's API names them. */
export type ErrorName =
  | 'BadRequest'
  | 'UnauthorizedError'
  | 'ForbiddenError'
  | 'NotFound'
  | 'PayloadTooLarge'
  | 'UnsupportedMediaType'
  | 'ValidationFailure'
  | 'Conflict'
  | 'TooManyRequests'
  | 'ServiceUnavailable'
  | 'InternalServerError';

/** The JSON body of every error answer. Never carries a token, a claim value, a `kid` or upstream text. */
export interface ErrorBody {
  statusCode: number;
  error: ErrorName;
  message: string;
  reasonCode: ReasonCode;
  reqId?: string;
}

const NAMES: Record<number, ErrorName> = {
  400: 'BadRequest',
  401: 'UnauthorizedError',
  403: 'ForbiddenError',
  404: 'NotFound',
  413: 'PayloadTooLarge',
  409: 'Conflict',
  415: 'UnsupportedMediaType',
  422: 'ValidationFailure',
  429: 'TooManyRequests',
  503: 'ServiceUnavailable',
};

export interface OidcAuthErrorOptions {
  cause?: unknown;
  headers?: Record<string, string>;
  /** Extra details for events and logs only (never sent to the client). */
  detail?: Record<string, unknown>;
}

/**
 * Base class of every error this library throws. Follows the http-errors convention
 * (`status`, `statusCode`, `expose`, `headers`) so Express's and Koa's default error handlers
 * render it correctly with no glue.
 */
export class OidcAuthError extends Error {
  override name = 'OidcAuthError';
  /** Stable reason code. */
  readonly code: ReasonCode;
  /** HTTP status. */
  readonly status: number;
  readonly statusCode: number;
  /** The message is safe to show to the caller. */
  readonly expose = true;
  /** Headers the answer must carry (`WWW-Authenticate`, `Retry-After`). */
  readonly headers: Record<string, string>;
  /** Details for events and logs only; never serialised into answers. */
  readonly detail: Record<string, unknown> | undefined;

  constructor(status: number, code: ReasonCode, message: string, options: OidcAuthErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.status = status;
    this.statusCode = status;
    this.code = code;
    this.headers = options.headers ?? {};
    this.detail = options.detail;
  }

  /** The answer body for this error. */
  toBody(reqId?: string): ErrorBody {
    const body: ErrorBody = {
      statusCode: this.status,
      error: NAMES[this.status] ?? 'InternalServerError',
      message: this.message,
      reasonCode: this.code,
    };
    if (reqId) body.reqId = reqId;
    return body;
  }

  /** Never leak the cause (jose errors carry the claims) when an error is serialised. */
  toJSON(): ErrorBody {
    return this.toBody();
  }
}

/** 400: the request is malformed (bad `Authorization` header, token in the query string…). */
export class BadRequestError extends OidcAuthError {
  override name = 'BadRequestError';
  constructor(code: ReasonCode, message: string, options?: OidcAuthErrorOptions) {
    super(400, code, message, options);
  }
}

/** 401: credentials missing or not accepted. */
export class UnauthorizedError extends OidcAuthError {
  override name = 'UnauthorizedError';
  constructor(code: ReasonCode, message: string, options?: OidcAuthErrorOptions) {
    super(401, code, message, options);
  }
}

/** 403: credentials accepted, but not from here (trusted IPs) or not for this (authorize predicate). */
export class ForbiddenError extends OidcAuthError {
  override name = 'ForbiddenError';
  constructor(code: ReasonCode, message: string, options?: OidcAuthErrorOptions) {
    super(403, code, message, options);
  }
}

/** 413, 415 or 422: the request body cannot be used. */
export class RequestBodyError extends OidcAuthError {
  override name = 'RequestBodyError';
  constructor(status: 413 | 415 | 422, code: ReasonCode, message: string, options?: OidcAuthErrorOptions) {
    super(status, code, message, options);
  }
}

/** 429 (RFC 6585 §4): a rate limit or a lockout; carries `Retry-After` (seconds). */
export class TooManyRequestsError extends OidcAuthError {
  override name = 'TooManyRequestsError';
  constructor(
    code: 'rate_limited' | 'locked_out',
    message: string,
    options: OidcAuthErrorOptions & { retryAfterSeconds: number },
  ) {
    super(429, code, message, {
      ...options,
      headers: { 'retry-after': String(options.retryAfterSeconds), ...options.headers },
    });
  }
}

/** 503: a store or the IdP cannot be reached. Always fails closed; carries `Retry-After`. */
export class ServiceUnavailableError extends OidcAuthError {
  override name = 'ServiceUnavailableError';
  constructor(
    code: 'idp_unavailable' | 'store_unavailable',
    message: string,
    options: OidcAuthErrorOptions & { retryAfterSeconds?: number } = {},
  ) {
    super(503, code, message, {
      ...options,
      headers: { 'retry-after': String(options.retryAfterSeconds ?? 5), ...options.headers },
    });
  }
}

/** An identity config (or library option) that cannot be used. Thrown when it is stored or loaded. */
export class ConfigError extends OidcAuthError {
  override name = 'ConfigError';
  /** The identity whose config is wrong, when known. */
  readonly identityId: string | undefined;
  /** The config field at fault, e.g. `accessTokenTrustedIps[1]`. */
  readonly field: string;
  constructor(field: string, problem: string, identityId?: string, options?: OidcAuthErrorOptions) {
    super(
      400,
      'invalid_config',
      `${identityId ? `identity ${JSON.stringify(identityId)}: ` : ''}${field}: ${problem}`,
      options,
    );
    this.field = field;
    this.identityId = identityId;
  }
}

/** RFC 6750 §3 `WWW-Authenticate` value. No `error=` when the request carried no credentials. */
export function bearerChallenge(
  realm: string,
  error?: 'invalid_request' | 'invalid_token' | 'insufficient_scope',
  description?: string,
): string {
  let value = `Bearer realm="${realm}"`;
  if (error) value += `, error="${error}"`;
  if (error && description) value += `, error_description="${description.replace(/["\\]/g, '')}"`;
  return value;
}
