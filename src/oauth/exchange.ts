import type { JWTPayload } from 'jose';
import type { AccessTokenGrant, CallContext, OidcAuth } from '../engine/auth.js';
import { IDENTITY_ID_PATTERN } from '../trust/config.js';
import { BadRequestError, ServiceUnavailableError } from '../errors.js';
import { MAX_JWT_LENGTH } from '../trust/verify-idp-token.js';
import { describe } from '../engine/auth.js';
import { instrumentationOf, step, traceCall, within, type TraceSpan } from '../observe/trace.js';
import { SCOPE_TOKEN } from './config.js';
import { ClientAuthenticationError, oauthInvalidRequest } from './errors.js';
import type { TokenGrantRequest } from '../tokens/grant.js';
import { IdentitySelector } from './select.js';
import type { TrustBinding } from '../trust/engine.js';

/** RFC 8693 §2.1 `grant_type`. */
export const TOKEN_EXCHANGE_GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';
/** RFC 8693 §3 token type identifiers this endpoint reads or issues. */
export const TOKEN_TYPE = {
  jwt: 'urn:ietf:params:oauth:token-type:jwt',
  idToken: 'urn:ietf:params:oauth:token-type:id_token',
  accessToken: 'urn:ietf:params:oauth:token-type:access_token',
} as const;
/** `subject_token_type` values taken: the IdP token is a JWT (an OIDC ID token is one too). */
export const SUBJECT_TOKEN_TYPES: readonly string[] = [TOKEN_TYPE.jwt, TOKEN_TYPE.idToken];
/**
 * `requested_token_type` values taken (RFC 8693 §2.1): `access_token`, an access token of the
 * identity's own format (opaque or JWT), or `jwt`, an RFC 9068 JWT access token, which only an
 * identity whose format is `jwt` is granted.
 */
export const REQUESTED_TOKEN_TYPES: readonly string[] = [TOKEN_TYPE.accessToken, TOKEN_TYPE.jwt];
/** Longest `requested_expires_in` text read (digits). */
const MAX_TTL_DIGITS = 9;
/** Most `audience` plus `resource` values one request names. */
const MAX_TARGETS = 16;
/** Longest `audience`, `resource` or `scope` value read, in characters. */
const MAX_PARAM_LENGTH = 2048;

/** A token-exchange request (RFC 8693 §2.1), validated. */
export interface TokenExchangeRequest {
  /** The IdP JWT (`subject_token`). */
  subjectToken: string;
  /** The identity, when the client named one (`client_id`); else it is selected by the token. */
  identityId?: string;
  /** `scope`, split; absent when not sent. */
  scopes?: readonly string[];
  /** `audience` and `resource` values, in order. */
  audience?: readonly string[];
  /** `requested_expires_in`, seconds. */
  ttlSeconds?: number;
  /** `jwt` when `requested_token_type` is `urn:ietf:params:oauth:token-type:jwt`; else the identity's format. */
  format?: 'jwt';
}

/** What a successful exchange issued. */
export interface TokenExchangeResult {
  grant: AccessTokenGrant;
  issuedTokenType: string;
}

/** The parameter lists of a request body: one value each, except where the RFC allows several. */
export type ExchangeParameters = (name: string) => readonly string[] | undefined;

/**
 * Validate the parameters of a token-exchange request (RFC 8693 §2.1). Throws our errors, which
 * {@link oauthErrorAnswer} renders as RFC 6749 §5.2 bodies: a missing or repeated parameter
 * `invalid_request`; another `grant_type` `unsupported_grant_type`; a malformed `scope`
 * `invalid_scope`; a malformed `resource` `invalid_target`.
 */
export function parseExchangeRequest(params: ExchangeParameters): TokenExchangeRequest {
  const one = (name: string, required: boolean): string | undefined => {
    const values = params(name);
    if (values === undefined || values.length === 0 || (values.length === 1 && values[0] === '')) {
      if (required) throw oauthInvalidRequest(`${name} is required`);
      return undefined;
    }
    // RFC 6749 §3.2: parameters sent without a value are as if omitted; none may be repeated.
    if (values.length > 1) throw oauthInvalidRequest(`${name} must not be repeated`);
    return values[0];
  };
  const grantType = one('grant_type', true)!;
  if (grantType !== TOKEN_EXCHANGE_GRANT) {
    throw new BadRequestError('unsupported_grant_type', `grant_type must be ${TOKEN_EXCHANGE_GRANT}`);
  }
  for (const name of ['client_secret', 'client_assertion', 'client_assertion_type']) {
    if (one(name, false) !== undefined) {
      // There is no client authentication here: the subject token is the credential. A client that
      // believes it authenticates with a secret is told so rather than ignored (RFC 6749 §5.2).
      throw new ClientAuthenticationError(
        'Client authentication is not supported; send no client credentials',
      );
    }
  }
  const subjectToken = one('subject_token', true)!;
  const subjectTokenType = one('subject_token_type', true)!;
  if (!SUBJECT_TOKEN_TYPES.includes(subjectTokenType)) {
    throw oauthInvalidRequest(
      `subject_token_type must be ${SUBJECT_TOKEN_TYPES.join(' or ')}`,
      'unsupported_token_type',
    );
  }
  if (one('actor_token', false) !== undefined || one('actor_token_type', false) !== undefined) {
    throw oauthInvalidRequest('actor_token (delegation) is not supported');
  }
  const requested = one('requested_token_type', false);
  if (requested !== undefined && !REQUESTED_TOKEN_TYPES.includes(requested)) {
    throw oauthInvalidRequest(
      `requested_token_type must be ${REQUESTED_TOKEN_TYPES.join(' or ')}`,
      'unsupported_token_type',
    );
  }
  const request: TokenExchangeRequest = { subjectToken };
  if (requested === TOKEN_TYPE.jwt) request.format = 'jwt';
  const clientId = one('client_id', false);
  if (clientId !== undefined) {
    if (!IDENTITY_ID_PATTERN.test(clientId)) throw oauthInvalidRequest('client_id is malformed');
    request.identityId = clientId;
  }
  const scope = one('scope', false);
  if (scope !== undefined) {
    const scopes = scope.split(' ');
    if (scope.length > MAX_PARAM_LENGTH || scopes.some((token) => !SCOPE_TOKEN.test(token))) {
      throw new BadRequestError('scope_not_allowed', 'scope is malformed (RFC 6749 §3.3)');
    }
    request.scopes = scopes;
  }
  const audiences = params('audience') ?? [];
  const resources = params('resource') ?? [];
  if (audiences.length + resources.length > MAX_TARGETS) {
    throw new BadRequestError('target_not_allowed', `at most ${MAX_TARGETS} audience and resource values`);
  }
  for (const value of [...audiences, ...resources]) {
    if (value === '' || value.length > MAX_PARAM_LENGTH || !/^[\x21-\x7E]+$/.test(value)) {
      throw new BadRequestError('target_not_allowed', 'audience or resource is malformed');
    }
  }
  for (const resource of resources) {
    // RFC 8707 §2: an absolute URI without a fragment.
    if (!URL.canParse(resource) || resource.includes('#')) {
      throw new BadRequestError('target_not_allowed', 'resource must be an absolute URI without a fragment');
    }
  }
  if (audiences.length + resources.length > 0) request.audience = [...audiences, ...resources];
  const ttl = one('requested_expires_in', false);
  if (ttl !== undefined) {
    if (!/^[1-9][0-9]*$/.test(ttl) || ttl.length > MAX_TTL_DIGITS) {
      throw oauthInvalidRequest('requested_expires_in must be a positive whole number of seconds');
    }
    request.ttlSeconds = Number(ttl);
  }
  return request;
}

const selectors = new WeakMap<OidcAuth, IdentitySelector>();

function selectorOf(auth: OidcAuth): IdentitySelector {
  let selector = selectors.get(auth);
  if (!selector)
    selectors.set(
      auth,
      (selector = new IdentitySelector(auth.identities, Date.now, auth.logger, (config) =>
        (auth.trust as TrustBinding).resolve(config),
      )),
    );
  return selector;
}

/**
 * The token exchange (RFC 8693): the identity named by `client_id`, or selected by the token's
 * issuer and bindings ({@link IdentitySelector}), logs in through `auth.login()` — the very call
 * behind the Infisical login route, so the same verification, policy, IP rules, events and
 * no-enumeration guarantees hold — with the request's narrowing as its `grant`.
 */
export function exchange(
  auth: OidcAuth,
  request: TokenExchangeRequest,
  context: CallContext = {},
): Promise<TokenExchangeResult> {
  // Traced as a `token_exchange` span, with the login a child of it, when the engine is traced.
  return traceCall(instrumentationOf(auth.login), 'token_exchange', { clientIp: context.clientIp }, (span) =>
    exchangeTraced(auth, request, context, span),
  );
}

async function exchangeTraced(
  auth: OidcAuth,
  request: TokenExchangeRequest,
  context: CallContext,
  span: TraceSpan,
): Promise<TokenExchangeResult> {
  let identityId = request.identityId;
  if (identityId === undefined) {
    const selector = selectorOf(auth);
    if (!selector.available) {
      throw oauthInvalidRequest('client_id is required: the identity store cannot list identities');
    }
    let payload: JWTPayload = {};
    try {
      payload = unverifiedPayload(request.subjectToken);
    } catch {
      // Malformed: login refuses it below, exactly as for any malformed token.
    }
    try {
      identityId = await step(span, 'select', undefined, () => selector.select(payload));
    } catch (error) {
      auth.logger?.error(
        { event: 'store.error', operation: 'identity.list', err: describe(error) },
        'identity store failed to list identities',
      );
      throw new ServiceUnavailableError('store_unavailable', 'The identity store is unavailable', {
        cause: error,
      });
    }
  }
  const grant: TokenGrantRequest = {};
  if (request.scopes) grant.scopes = request.scopes;
  if (request.audience) grant.audience = request.audience;
  if (request.ttlSeconds !== undefined) grant.ttlSeconds = request.ttlSeconds;
  // An identity whose format is opaque refuses a JWT (grant_format_not_allowed, `invalid_request`
  // per RFC 8693 §2.2.2: the request is unacceptable by policy), never hands out the other kind.
  if (request.format !== undefined) grant.format = request.format;
  const issued = await within(span, () =>
    auth.login({
      identityId,
      jwt: request.subjectToken,
      clientIp: context.clientIp,
      dpop: context.dpop,
      grant,
    }),
  );
  // RFC 8693 §2.2.1: `issued_token_type` says what was issued in the terms the client asked in: a
  // JWT asked for as `jwt` is named so; an access token (of either format) asked for as one, or with
  // no type asked, is an `access_token`.
  return {
    grant: issued,
    issuedTokenType: request.format === 'jwt' ? TOKEN_TYPE.jwt : TOKEN_TYPE.accessToken,
  };
}

/** The claims of a compact JWS, unverified (used only to pick an identity; see IdentitySelector). */
function unverifiedPayload(jwt: string): JWTPayload {
  const parts = jwt.split('.');
  if (jwt.length > MAX_JWT_LENGTH || parts.length !== 3) throw new TypeError('not a compact JWS');
  const payload: unknown = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8'));
  if (typeof payload !== 'object' || payload === null || Array.isArray(payload))
    throw new TypeError('not an object');
  return payload as JWTPayload;
}
