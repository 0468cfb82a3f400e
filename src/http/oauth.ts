import type { OidcAuth } from '../engine/auth.js';
import { RequestBodyError } from '../errors.js';
import { bodyKind, REPEATED_PARAMETERS, type HttpAnswer } from './answers.js';
import { OAUTH_NO_STORE, oauthErrorAnswer, oauthInvalidRequest } from '../oauth/errors.js';
import {
  exchangeGrant,
  issuedTokenType,
  parseExchangeRequest,
  type ExchangeParameters,
} from '../oauth/exchange.js';
import type { DpopRequest } from '../tokens/dpop.js';

/** The OAuth routes, relative to the prefix the host mounts the auth routes under. */
export const OAUTH_ROUTES = {
  /** RFC 8693 token exchange; mounted by every adapter's auth router. */
  token: '/oauth/token',
  /** RFC 7662; mounted only by the introspection router, behind a host-supplied guard. */
  introspect: '/oauth/introspect',
  /** RFC 7009; mounted only by the introspection router, behind a host-supplied guard. */
  revoke: '/oauth/revoke',
} as const;

/** What an OAuth endpoint reads of a request: its media type, its parsed body, the client address. */
export interface OAuthRequest {
  contentType: string | undefined;
  /** The body as `parseRequestBody` (or a host's urlencoded parser) left it. */
  body: unknown;
  clientIp?: string | undefined;
  /** The request's DPoP proof, method and URL (RFC 9449): a token exchange with a proof binds its token. */
  dpop?: DpopRequest | undefined;
}

/**
 * The parameters of a form body. RFC 8693 §2.1, RFC 7662 §2.1 and RFC 7009 §2.1 all send
 * `application/x-www-form-urlencoded`; nothing else is taken (415, `invalid_request`). A value
 * that is not a string (a host parser's nested object) is `invalid_request`.
 */
function parametersOf(request: OAuthRequest): ExchangeParameters {
  if (bodyKind(request.contentType) !== 'form') throw unsupportedFormType();
  const body = request.body;
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw oauthInvalidRequest('The request body must be a form');
  }
  const repeated = (body as { [REPEATED_PARAMETERS]?: Record<string, string[]> })[REPEATED_PARAMETERS];
  return (name) => {
    if (repeated && Object.hasOwn(repeated, name)) return repeated[name];
    const value = Object.hasOwn(body, name) ? (body as Record<string, unknown>)[name] : undefined;
    if (value === undefined) return undefined;
    if (typeof value === 'string') return [value];
    if (Array.isArray(value) && value.every((item) => typeof item === 'string')) return value as string[];
    throw oauthInvalidRequest(`${name} must be a string`);
  };
}

function unsupportedFormType(): RequestBodyError {
  return new RequestBodyError(415, 'unsupported_media_type', 'Send application/x-www-form-urlencoded');
}

/**
 * `POST {prefix}/oauth/token`: RFC 8693 token exchange. 200 with the RFC 8693 §2.2.1 body
 * (`access_token`, `issued_token_type`, `token_type`, `expires_in`, and `scope` when it differs
 * from the one requested); else an RFC 6749 §5.2 error body with our `reasonCode`.
 */
export async function oauthTokenAnswer(auth: OidcAuth, request: OAuthRequest): Promise<HttpAnswer> {
  try {
    const parsed = parseExchangeRequest(parametersOf(request));
    const grant = await exchangeGrant(auth, parsed, { clientIp: request.clientIp, dpop: request.dpop });
    const body: Record<string, unknown> = {
      access_token: grant.accessToken,
      issued_token_type: issuedTokenType(parsed),
      // RFC 9449 §5: `DPoP` for a token bound to the request's proof key.
      token_type: grant.tokenType,
      expires_in: grant.expiresIn,
    };
    if (grant.scope !== undefined && grant.scope !== parsed.scopes?.join(' ')) body.scope = grant.scope;
    const headers = auth.dpop.nonces ? { ...OAUTH_NO_STORE, ...auth.dpop.answerHeaders() } : OAUTH_NO_STORE;
    return { status: 200, headers: { ...headers }, body };
  } catch (error) {
    return oauthErrorAnswer(auth, error);
  }
}

/** The `token` parameter of an introspection or revocation request; `token_type_hint` is read and checked for shape only. */
function tokenParameter(request: OAuthRequest): string {
  const params = parametersOf(request);
  const token = params('token');
  if (token === undefined || token.length === 0 || token[0] === '')
    throw oauthInvalidRequest('token is required');
  if (token.length > 1) throw oauthInvalidRequest('token must not be repeated');
  const hint = params('token_type_hint');
  if (hint !== undefined && hint.length > 1)
    throw oauthInvalidRequest('token_type_hint must not be repeated');
  // RFC 7662 §2.1 / RFC 7009 §2.1: a hint the server cannot use is ignored, and the search covers
  // every token type it issues (access tokens only, here), so the hint changes nothing.
  return token[0]!;
}

/**
 * `POST {prefix}/oauth/introspect` (RFC 7662), behind the host's guard. `{ active: false }` for
 * anything that is not a live token of ours (forged, expired, revoked, used up, of a revoked
 * identity, unknown), never saying which. A live one: `active`, `client_id` and `sub` (the
 * identity), `token_type`, `exp`, `iat`, and `scope` and `aud` when the token exchange granted them.
 */
export async function oauthIntrospectAnswer(auth: OidcAuth, request: OAuthRequest): Promise<HttpAnswer> {
  try {
    const record = await auth.introspect(tokenParameter(request));
    if (!record) return { status: 200, headers: { ...OAUTH_NO_STORE }, body: { active: false } };
    const body: Record<string, unknown> = { active: true };
    if (record.scope !== undefined) body.scope = record.scope;
    body.client_id = record.identityId;
    // RFC 9449 §6.2: a DPoP-bound token says so, with the thumbprint of its key.
    body.token_type = record.jkt === undefined ? 'Bearer' : 'DPoP';
    body.exp = Math.floor(record.expiresAt / 1000);
    body.iat = Math.floor(record.createdAt / 1000);
    body.sub = record.identityId;
    if (record.audience !== undefined)
      body.aud = record.audience.length === 1 ? record.audience[0] : record.audience;
    if (record.jkt !== undefined) body.cnf = { jkt: record.jkt };
    return { status: 200, headers: { ...OAUTH_NO_STORE }, body };
  } catch (error) {
    return oauthErrorAnswer(auth, error);
  }
}

/**
 * `POST {prefix}/oauth/revoke` (RFC 7009), behind the host's guard. 200 with an empty object for a
 * revoked token and for one that is not ours or no longer live (RFC 7009 §2.2: an invalid token is
 * not an error); 503 when the token store cannot be reached (§2.2.1), so the client retries.
 */
export async function oauthRevokeAnswer(auth: OidcAuth, request: OAuthRequest): Promise<HttpAnswer> {
  try {
    const token = tokenParameter(request);
    try {
      await auth.revoke(token, { clientIp: request.clientIp });
    } catch (error) {
      // A token that is not ours (forged, malformed) has nothing to revoke; the store being down is not that.
      if (!(error instanceof Error && 'status' in error && error.status === 401)) throw error;
    }
    return { status: 200, headers: { ...OAUTH_NO_STORE }, body: {} };
  } catch (error) {
    return oauthErrorAnswer(auth, error);
  }
}
