/**
 * Why the DPoP client gave up. Callers branch on `code`, never on message text.
 *
 * - `invalid_argument`: a bad option or argument (an unsupported `alg`, a URL that is not absolute
 *   http(s), a method that is not a token).
 * - `login_refused`: the login or token-exchange endpoint answered an error; `status` and the server's
 *   `reasonCode` (or RFC 6749 `error`) are on the error.
 * - `token_not_bound`: the server answered a token whose type is not `DPoP` (RFC 9449 §5): it did not
 *   bind the token to the key, so it would work for anyone who read it.
 * - `invalid_response`: the server's answer was not the JSON shape its route documents.
 * - `not_logged_in`: `fetch` was called before `login` or `exchange` gave the client a token.
 *
 * No message, property or cause ever holds a token, a proof or an IdP JWT.
 */
export type DpopClientErrorCode =
  'invalid_argument' | 'login_refused' | 'token_not_bound' | 'invalid_response' | 'not_logged_in';

/** The one error the DPoP client throws (network failures from `fetch` pass through unchanged). */
export class DpopClientError extends Error {
  override name = 'DpopClientError';
  readonly code: DpopClientErrorCode;
  /** The HTTP status of the server's answer, when the error comes from one. */
  readonly status: number | undefined;
  /** The server's stable reason: its `reasonCode`, else its RFC 6749 `error`, when it sent one. */
  readonly reasonCode: string | undefined;

  constructor(
    code: DpopClientErrorCode,
    message: string,
    details: { status?: number; reasonCode?: string } = {},
  ) {
    super(message);
    this.code = code;
    this.status = details.status;
    this.reasonCode = details.reasonCode;
  }
}
