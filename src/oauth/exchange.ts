import type { JWTPayload } from 'jose';
import type { AccessTokenGrant, CallContext, OidcAuth } from '../engine/auth.js';
import { IDENTITY_ID_PATTERN } from '../trust/config.js';
import { BadRequestError, ServiceUnavailableError } from '../errors.js';
import { MAX_JWT_LENGTH } from '../trust/verify-idp-token.js';
import { describe } from '../engine/auth.js';
import { instrumentationOf, NOOP_SPAN, step, traceCall, within, type TraceSpan } from '../observe/trace.js';
import { SCOPE_TOKEN } from './config.js';
import { ClientAuthenticationError, oauthInvalidRequest } from './errors.js';
import type { TokenGrantRequest } from '../tokens/grant.js';
import { IdentitySelector } from './select.js';
import type { TrustBinding } from '../trust/engine.js';
import { TOKEN_EXCHANGE_GRANT, TOKEN_TYPE } from './urns.js';

export { TOKEN_EXCHANGE_GRANT, TOKEN_TYPE };

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
  const grantType = one(params, 'grant_type', true)!;
  if (grantType !== TOKEN_EXCHANGE_GRANT) {
    throw new BadRequestError('unsupported_grant_type', `grant_type must be ${TOKEN_EXCHANGE_GRANT}`);
  }
  for (const name of CLIENT_CREDENTIALS) {
    if (one(params, name, false) !== undefined) {
      // There is no client authentication here: the subject token is the credential. A client that
      // believes it authenticates with a secret is told so rather than ignored (RFC 6749 §5.2).
      throw new ClientAuthenticationError(
        'Client authentication is not supported; send no client credentials',
      );
    }
  }
  const subjectToken = one(params, 'subject_token', true)!;
  const subjectTokenType = one(params, 'subject_token_type', true)!;
  if (!SUBJECT_TOKEN_TYPES.includes(subjectTokenType)) {
    throw oauthInvalidRequest(
      `subject_token_type must be ${SUBJECT_TOKEN_TYPES.join(' or ')}`,
      'unsupported_token_type',
    );
  }
  if (
    one(params, 'actor_token', false) !== undefined ||
    one(params, 'actor_token_type', false) !== undefined
  ) {
    throw oauthInvalidRequest('actor_token (delegation) is not supported');
  }
  const requested = one(params, 'requested_token_type', false);
  if (requested !== undefined && !REQUESTED_TOKEN_TYPES.includes(requested)) {
    throw oauthInvalidRequest(
      `requested_token_type must be ${REQUESTED_TOKEN_TYPES.join(' or ')}`,
      'unsupported_token_type',
    );
  }
  const request: TokenExchangeRequest = { subjectToken };
  if (requested === TOKEN_TYPE.jwt) request.format = 'jwt';
  const clientId = one(params, 'client_id', false);
  if (clientId !== undefined) {
    if (!IDENTITY_ID_PATTERN.test(clientId)) throw oauthInvalidRequest('client_id is malformed');
    request.identityId = clientId;
  }
  const scope = one(params, 'scope', false);
  if (scope !== undefined) {
    const scopes = scope.split(' ');
    if (scope.length > MAX_PARAM_LENGTH || scopes.some((token) => !SCOPE_TOKEN.test(token))) {
      throw new BadRequestError('scope_not_allowed', 'scope is malformed (RFC 6749 §3.3)');
    }
    request.scopes = scopes;
  }
  const audiences = params('audience');
  const resources = params('resource');
  const targets = (audiences?.length ?? 0) + (resources?.length ?? 0);
  if (targets > MAX_TARGETS) {
    throw new BadRequestError('target_not_allowed', `at most ${MAX_TARGETS} audience and resource values`);
  }
  if (targets > 0) request.audience = checkTargets(audiences ?? [], resources ?? []);
  const ttl = one(params, 'requested_expires_in', false);
  if (ttl !== undefined) {
    if (!/^[1-9][0-9]*$/.test(ttl) || ttl.length > MAX_TTL_DIGITS) {
      throw oauthInvalidRequest('requested_expires_in must be a positive whole number of seconds');
    }
    request.ttlSeconds = Number(ttl);
  }
  return request;
}

/** Client authentication parameters (RFC 6749 §2.3.1, RFC 7523 §2.2): refused, see above. */
const CLIENT_CREDENTIALS = ['client_secret', 'client_assertion', 'client_assertion_type'] as const;

/**
 * The one value of parameter `name`. RFC 6749 §3.2: parameters sent without a value are as if
 * omitted (a missing required one is `invalid_request`); none may be repeated.
 */
function one(params: ExchangeParameters, name: string, required: boolean): string | undefined {
  const values = params(name);
  if (values === undefined || values.length === 0 || (values.length === 1 && values[0] === '')) {
    if (required) throw oauthInvalidRequest(`${name} is required`);
    return undefined;
  }
  if (values.length > 1) throw oauthInvalidRequest(`${name} must not be repeated`);
  return values[0];
}

/** `audience` then `resource` values, each well-formed (a resource an absolute URI, RFC 8707 §2). */
function checkTargets(audiences: readonly string[], resources: readonly string[]): string[] {
  const targets = [...audiences, ...resources];
  for (const value of targets) {
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
  return targets;
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
export async function exchange(
  auth: OidcAuth,
  request: TokenExchangeRequest,
  context: CallContext = {},
): Promise<TokenExchangeResult> {
  return { grant: await exchangeGrant(auth, request, context), issuedTokenType: issuedTokenType(request) };
}

/**
 * RFC 8693 §2.2.1: `issued_token_type` says what was issued in the terms the client asked in: a JWT
 * asked for as `jwt` is named so; an access token (of either format) asked for as one, or with no
 * type asked, is an `access_token`.
 */
export function issuedTokenType(request: TokenExchangeRequest): string {
  return request.format === 'jwt' ? TOKEN_TYPE.jwt : TOKEN_TYPE.accessToken;
}

/**
 * {@link exchange}'s grant alone (what the token endpoint answers with). Traced as a
 * `token_exchange` span, with the login a child of it, when the engine is traced; untraced, nothing
 * is allocated for tracing.
 */
export function exchangeGrant(
  auth: OidcAuth,
  request: TokenExchangeRequest,
  context: CallContext,
): Promise<AccessTokenGrant> {
  const instrumentation = instrumentationOf(auth.login);
  if (instrumentation === undefined) return exchangeTraced(auth, request, context, NOOP_SPAN);
  return traceCall(instrumentation, 'token_exchange', { clientIp: context.clientIp }, (span) =>
    exchangeTraced(auth, request, context, span),
  );
}

function exchangeTraced(
  auth: OidcAuth,
  request: TokenExchangeRequest,
  context: CallContext,
  span: TraceSpan,
): Promise<AccessTokenGrant> {
  if (request.identityId !== undefined) return loginAs(auth, request, request.identityId, context, span);
  return selectIdentity(auth, request, span).then((identityId) =>
    loginAs(auth, request, identityId, context, span),
  );
}

/** The identity whose issuer and bindings match the (unverified) token's claims: see {@link IdentitySelector}. */
async function selectIdentity(
  auth: OidcAuth,
  request: TokenExchangeRequest,
  span: TraceSpan,
): Promise<string> {
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
    return await step(span, 'select', undefined, () => selector.select(payload));
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

function loginAs(
  auth: OidcAuth,
  request: TokenExchangeRequest,
  identityId: string,
  context: CallContext,
  span: TraceSpan,
): Promise<AccessTokenGrant> {
  const input = {
    identityId,
    jwt: request.subjectToken,
    clientIp: context.clientIp,
    dpop: context.dpop,
    grant: grantOf(request),
  };
  return span === NOOP_SPAN ? auth.login(input) : within(span, () => auth.login(input));
}

/**
 * The request's narrowing as `auth.login()`'s `grant`, `undefined` when it narrows nothing. An
 * identity whose format is opaque refuses a JWT (grant_format_not_allowed, `invalid_request` per
 * RFC 8693 §2.2.2: the request is unacceptable by policy), never hands out the other kind.
 */
function grantOf(request: TokenExchangeRequest): TokenGrantRequest | undefined {
  const { scopes, audience, ttlSeconds, format } = request;
  if (scopes === undefined && audience === undefined && ttlSeconds === undefined && format === undefined) {
    return undefined;
  }
  const grant: TokenGrantRequest = {};
  if (scopes) grant.scopes = scopes;
  if (audience) grant.audience = audience;
  if (ttlSeconds !== undefined) grant.ttlSeconds = ttlSeconds;
  if (format !== undefined) grant.format = format;
  return grant;
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
