/**
 * Why a token, or the verifier's view of the issuer, was refused. Callers branch on these, never on
 * message text.
 *
 * Token problems (answer 401): `token_malformed`, `token_too_large`, `algorithm_not_allowed`,
 * `token_type_invalid`, `issuer_mismatch`, `audience_mismatch`, `token_expired`,
 * `token_not_yet_valid`, `claim_missing`, `claim_invalid`, `key_not_found`, `signature_invalid`,
 * `token_inactive`.
 *
 * The issuer could not be asked (answer 503, fail closed): `metadata_unavailable`,
 * `metadata_invalid`, `metadata_issuer_mismatch`, `jwks_unavailable`, `introspection_unavailable`.
 *
 * Host mistakes: `invalid_config` (thrown by `createVerifier`, or by `verify` when introspection was
 * asked for but not configured).
 */
export type VerifyErrorCode =
  | 'token_malformed'
  | 'token_too_large'
  | 'algorithm_not_allowed'
  | 'token_type_invalid'
  | 'issuer_mismatch'
  | 'audience_mismatch'
  | 'token_expired'
  | 'token_not_yet_valid'
  | 'claim_missing'
  | 'claim_invalid'
  | 'key_not_found'
  | 'signature_invalid'
  | 'token_inactive'
  | 'metadata_unavailable'
  | 'metadata_invalid'
  | 'metadata_issuer_mismatch'
  | 'jwks_unavailable'
  | 'introspection_unavailable'
  | 'invalid_config';

const UNAVAILABLE: ReadonlySet<VerifyErrorCode> = new Set([
  'metadata_unavailable',
  'metadata_invalid',
  'metadata_issuer_mismatch',
  'jwks_unavailable',
  'introspection_unavailable',
]);

/**
 * The one error `createVerifier` and `verify` throw. `status` is the HTTP status a resource server
 * should answer with (401 for a refused token, 503 when the issuer could not be asked, 500 for a
 * configuration mistake); `headers` holds the RFC 6750 section 3 `WWW-Authenticate` challenge for
 * 401s. The message never contains the token or a claim value.
 */
export class VerifyError extends Error {
  override name = 'VerifyError';
  /** HTTP status for the answer. */
  readonly status: number;
  /** Same as {@link VerifyError.status} (the http-errors convention). */
  readonly statusCode: number;
  /** Never true: the message is for logs, the `code` for callers. */
  readonly expose = false;
  /** Answer headers (RFC 6750 `WWW-Authenticate` for 401). */
  readonly headers: Readonly<Record<string, string>>;

  constructor(
    readonly code: VerifyErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.status = code === 'invalid_config' ? 500 : UNAVAILABLE.has(code) ? 503 : 401;
    this.statusCode = this.status;
    this.headers =
      this.status === 401
        ? { 'www-authenticate': `Bearer error="invalid_token", error_description="${code}"` }
        : {};
  }
}
