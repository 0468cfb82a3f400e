import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { AccessTokenGrant, OidcAuth } from '../engine/auth.js';
import { describe } from '../engine/auth.js';
import {
  BadRequestError,
  ForbiddenError,
  OidcAuthError,
  RequestBodyError,
  UnauthorizedError,
  bearerChallenge,
  type ErrorBody,
} from '../errors.js';
import { IDENTITY_ID_PATTERN } from '../trust/config.js';
import type { AuthContext } from '../types.js';
import type { CallContext } from '../engine/auth.js';
import type { DpopRequest } from '../tokens/dpop.js';
import { extractDpopToken } from './dpop.js';
import { parseFormPairs } from './form.js';

/** A framework-neutral answer: adapters copy it onto their response. */
export interface HttpAnswer {
  status: number;
  headers: Record<string, string>;
  body: unknown;
}

/** Default largest request body for the auth routes, in bytes. A JWT is capped at 16 KiB. */
export const DEFAULT_BODY_LIMIT = 64 * 1024;

/** The route paths, relative to the prefix the host mounts them under (`/api/v1/auth` by default). */
export const ROUTES = {
  login: '/oidc-auth/login',
  renew: '/token/renew',
  revoke: '/token/revoke',
} as const;

/** The default mount prefix, Infisical's. */
export const DEFAULT_PREFIX = '/api/v1/auth';

const NO_STORE = { 'cache-control': 'no-store', pragma: 'no-cache' };

/** Which body formats the auth routes take. */
export type BodyKind = 'json' | 'form';

/** `json`, `form`, or `undefined` for a media type the routes do not take. */
export function bodyKind(contentType: string | undefined): BodyKind | undefined {
  if (!contentType) return undefined;
  // What clients send nearly always, as they send it: no copy, no case folding.
  if (contentType === 'application/json') return 'json';
  if (contentType === 'application/x-www-form-urlencoded') return 'form';
  const semicolon = contentType.indexOf(';');
  const type = (semicolon < 0 ? contentType : contentType.slice(0, semicolon)).trim().toLowerCase();
  if (type === 'application/json' || (type.startsWith('application/') && type.endsWith('+json')))
    return 'json';
  if (type === 'application/x-www-form-urlencoded') return 'form';
  return undefined;
}

/**
 * On a form body {@link parseRequestBody} parsed, when a parameter name repeats: every value of each
 * repeated name, in order (the body keeps the first). The OAuth endpoints read it (RFC 6749 §3.2).
 */
export const REPEATED_PARAMETERS: unique symbol = Symbol('oidc-machine-auth.repeatedParameters');

/**
 * Parse a raw request body for the auth routes (adapters that read bodies themselves use this).
 * JSON must be an object; forms become an object of their first values. Throws 415 or 422.
 */
export function parseRequestBody(contentType: string | undefined, raw: string): Record<string, unknown> {
  const kind = bodyKind(contentType);
  if (!kind) throw unsupportedMediaType();
  if (kind === 'form') {
    const out: Record<string | symbol, unknown> = Object.create(null);
    let repeated: Record<string, string[]> | undefined;
    for (const [key, value] of parseFormPairs(raw)) {
      if (!(key in out)) out[key] = value;
      else
        ((repeated ??= Object.create(null) as Record<string, string[]>)[key] ??= [out[key] as string]).push(
          value,
        );
    }
    if (repeated) out[REPEATED_PARAMETERS] = repeated;
    return out;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw invalidBody('Request body is not valid JSON');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw invalidBody('Request body must be a JSON object');
  }
  return parsed as Record<string, unknown>;
}

export function unsupportedMediaType(): RequestBodyError {
  return new RequestBodyError(
    415,
    'unsupported_media_type',
    'Send application/json or application/x-www-form-urlencoded',
  );
}

export function bodyTooLarge(): RequestBodyError {
  return new RequestBodyError(413, 'body_too_large', 'Request body is too large');
}

export function invalidBody(message: string): RequestBodyError {
  return new RequestBodyError(422, 'invalid_body', message);
}

function field(body: unknown, name: string, required: true): string;
function field(body: unknown, name: string, required: false): string | undefined;
function field(body: unknown, name: string, required: boolean): string | undefined {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw invalidBody('Request body must be an object');
  }
  const value = Object.hasOwn(body, name) ? (body as Record<string, unknown>)[name] : undefined;
  if (value === undefined || value === null || value === '') {
    if (required) throw invalidBody(`${name} is required`);
    return undefined;
  }
  if (typeof value !== 'string') throw invalidBody(`${name} must be a string`);
  return value;
}

function grantBody(grant: AccessTokenGrant) {
  return {
    accessToken: grant.accessToken,
    expiresIn: grant.expiresIn,
    accessTokenMaxTTL: grant.accessTokenMaxTTL,
    tokenType: grant.tokenType,
  };
}

/** `Cache-Control: no-store`, and a fresh `DPoP-Nonce` when the engine's server nonces are on (RFC 9449 §8). */
function successHeaders(auth: OidcAuth): Record<string, string> {
  return auth.dpop.nonces ? { ...NO_STORE, ...auth.dpop.answerHeaders() } : NO_STORE;
}

/**
 * `POST {prefix}/oidc-auth/login` with `{identityId, jwt, organizationSlug?}`. With a `DPoP` proof
 * (`dpop`, RFC 9449) the token is bound to its key and `tokenType` is `DPoP`.
 */
export async function loginAnswer(
  auth: OidcAuth,
  body: unknown,
  clientIp?: string,
  dpop?: DpopRequest,
): Promise<HttpAnswer> {
  try {
    const identityId = field(body, 'identityId', true);
    const jwt = field(body, 'jwt', true);
    field(body, 'organizationSlug', false); // accepted for Infisical clients; "" means absent
    if (!IDENTITY_ID_PATTERN.test(identityId)) throw invalidBody('identityId is malformed');
    const grant = await auth.login({ identityId, jwt, clientIp, dpop });
    return { status: 200, headers: successHeaders(auth), body: grantBody(grant) };
  } catch (error) {
    return errorAnswer(auth, error);
  }
}

/** `POST {prefix}/token/renew` with `{accessToken}`; a DPoP-bound token needs a proof by its key (`dpop`). */
export async function renewAnswer(
  auth: OidcAuth,
  body: unknown,
  clientIp?: string,
  dpop?: DpopRequest,
): Promise<HttpAnswer> {
  try {
    const grant = await auth.renew(field(body, 'accessToken', true), { clientIp, dpop });
    return { status: 200, headers: successHeaders(auth), body: grantBody(grant) };
  } catch (error) {
    return errorAnswer(auth, error);
  }
}

/** `POST {prefix}/token/revoke` with `{accessToken}`; a DPoP-bound token needs a proof by its key (`dpop`). */
export async function revokeAnswer(
  auth: OidcAuth,
  body: unknown,
  clientIp?: string,
  dpop?: DpopRequest,
): Promise<HttpAnswer> {
  try {
    // Always with a DpopRequest: through this public route a bound token is revoked only by its key's holder.
    await auth.revoke(field(body, 'accessToken', true), {
      clientIp,
      dpop: dpop ?? { proof: undefined, method: 'POST', url: '' },
    });
    return {
      status: 200,
      headers: successHeaders(auth),
      body: { message: 'Successfully revoked access token' },
    };
  } catch (error) {
    return errorAnswer(auth, error);
  }
}

/**
 * The answer for any error. Library errors render as themselves; anything else (a bug, a
 * framework error) is logged by name and answered as a refusal, never with its text. Every 401
 * carries a `WWW-Authenticate` challenge (RFC 9110 §11.6.1): the error's own, else
 * `Bearer realm="…", error="invalid_request"` for this refusal of the request as a whole.
 */
export function errorAnswer(
  auth: Pick<OidcAuth, 'logger'> & Partial<Pick<OidcAuth, 'realm'>>,
  error: unknown,
): HttpAnswer {
  const reqId = randomUUID();
  let known: OidcAuthError;
  if (error instanceof OidcAuthError) {
    known = error;
  } else {
    auth.logger?.error({ event: 'http.error', reqId, err: describe(error) }, 'unexpected error answered 401');
    known = new UnauthorizedError('invalid_request', 'The request could not be processed');
  }
  const body: ErrorBody = known.toBody(reqId);
  const headers: Record<string, string> = { ...NO_STORE, ...known.headers };
  if (
    known.status === 401 &&
    !Object.keys(headers).some((name) => name.toLowerCase() === 'www-authenticate')
  ) {
    headers['www-authenticate'] = bearerChallenge(auth.realm ?? 'oidc-machine-auth', 'invalid_request');
  }
  return { status: known.status, headers, body };
}

/** What the bearer guard needs from a request. */
export interface GuardRequest {
  /** Every `Authorization` header value the request carried (adapters read raw headers). */
  authorization: string | readonly string[] | undefined;
  /** True when the URL's query string carries `access_token` (RFC 6750 §2.3: refused). */
  tokenInQuery?: boolean;
  clientIp?: string | undefined;
  /** The request's DPoP proof, method and URL (RFC 9449), for `Authorization: DPoP` tokens. */
  dpop?: DpopRequest | undefined;
}

const BEARER = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i;

/**
 * Extract the bearer token (RFC 6750 §2.1): scheme case-insensitive, one token, no duplicates.
 * No credentials → 401 without `error=`, its `WWW-Authenticate` `missingChallenge` (default
 * `Bearer realm="…"`; the guard passes the engine's, which offers DPoP too when configured, RFC 9449
 * §7.1); malformed → 400 `invalid_request`.
 */
export function extractBearer(request: GuardRequest, realm: string, missingChallenge?: string): string {
  if (request.tokenInQuery) {
    throw invalidRequest(realm, 'Access tokens are not accepted in the query string');
  }
  let header = request.authorization;
  if (typeof header !== 'string') {
    if (header === undefined || header.length === 0) throw missingToken(realm, missingChallenge);
    if (header.length > 1) throw invalidRequest(realm, 'Send exactly one Authorization header');
    header = header[0]!;
  }
  const match = BEARER.exec(header);
  if (match) return match[1]!;
  if (!/^bearer(\s|$)/i.test(header)) throw missingToken(realm, missingChallenge);
  throw invalidRequest(realm, 'Malformed Bearer credentials');
}

function missingToken(realm: string, challenge = bearerChallenge(realm)): UnauthorizedError {
  return new UnauthorizedError('missing_token', 'Access token is required', {
    headers: { 'www-authenticate': challenge },
  });
}

function invalidRequest(realm: string, message: string): BadRequestError {
  return new BadRequestError('invalid_request', message, {
    headers: { 'www-authenticate': bearerChallenge(realm, 'invalid_request') },
  });
}

const NO_DPOP: DpopRequest = Object.freeze({ proof: undefined, method: '', url: '' });

/**
 * The guard, framework-neutral: resolves the caller or throws an {@link OidcAuthError}. Takes
 * `Authorization: Bearer <token>` (RFC 6750) and `Authorization: DPoP <token>` with a `DPoP` proof
 * (RFC 9449 §7.1); a DPoP-bound token only the latter way.
 */
export function guard(auth: OidcAuth, request: GuardRequest): Promise<AuthContext> {
  try {
    const header = request.authorization;
    const one = typeof header === 'string' ? header : header?.length === 1 ? header[0] : undefined;
    const dpopToken =
      one !== undefined && !request.tokenInQuery ? extractDpopToken(one, auth.realm) : undefined;
    // Every adapter's guard comes here, so a request without a token gets the engine's challenge
    // (Bearer, and DPoP beside it when the engine has a `dpop` option: RFC 9449 §7.1).
    const token = dpopToken ?? extractBearer(request, auth.realm, auth.dpop.missingTokenChallenge());
    const context: CallContext = { clientIp: request.clientIp };
    if (request.dpop !== undefined || dpopToken !== undefined) {
      context.dpop = { ...(request.dpop ?? NO_DPOP), scheme: dpopToken === undefined ? 'Bearer' : 'DPoP' };
    }
    return auth.authenticate(token, context);
  } catch (error) {
    return Promise.reject(error);
  }
}

/** Every value of a header in Node's `rawHeaders` (Node keeps only the first `Authorization`). */
export function rawHeaderValues(rawHeaders: readonly string[], lowerName: string): string[] | undefined {
  let values: string[] | undefined;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!;
    if (name.length === lowerName.length && name.toLowerCase() === lowerName) {
      (values ??= []).push(rawHeaders[i + 1]!);
    }
  }
  return values;
}

/**
 * Raw characters of a query parameter name looked at: `access_token[` percent-encoded three times
 * over (`_` → `%5F` → `%255F` → `%25255F`: at most 7 characters each) fits.
 */
const QUERY_NAME_PREFIX = 13 * 7;

/**
 * True when a request target's query string carries an `access_token` parameter (RFC 6750 §2.3: a
 * token in the URI is refused), in any spelling a server, framework or proxy on the way might read
 * as one. Names are compared after `application/x-www-form-urlencoded` decoding (`access%5Ftoken`,
 * `%61ccess_token`), repeated while it changes the name, up to three times (`access%255Ftoken`, for a
 * proxy that decodes before the app does), without regard to ASCII case (`Access_Token`), with `;`
 * as well as `&` between parameters, and with bracket suffixes (`access_token[]`, `access_token[0]`,
 * which `qs` reads as `access_token`). Duplicates change nothing: one is enough. Linear in the URL's
 * length.
 */
export function hasTokenInQuery(url: string): boolean {
  const q = url.indexOf('?');
  if (q < 0) return false;
  let start = q + 1;
  let nameEnd = -1;
  for (let i = start; i <= url.length; i++) {
    const c = i < url.length ? url.charCodeAt(i) : 38; /* & */
    if (c === 61 /* = */) {
      if (nameEnd < 0) nameEnd = i;
    } else if (c === 38 /* & */ || c === 59 /* ; */) {
      const stop = nameEnd < 0 ? i : nameEnd;
      if (
        stop - start >= 12 &&
        isAccessTokenName(url.slice(start, Math.min(stop, start + QUERY_NAME_PREFIX)))
      ) {
        return true;
      }
      start = i + 1;
      nameEnd = -1;
    }
  }
  return false;
}

/** Whether a raw (or truncated) query parameter name decodes to `access_token` or `access_token[…`. */
function isAccessTokenName(raw: string): boolean {
  let name = raw;
  for (let pass = 0; pass < 3 && (name.includes('%') || name.includes('+')); pass++) {
    const decoded = formDecode(name);
    if (decoded === name) break;
    name = decoded;
  }
  const head = name.slice(0, 13).replace(/[A-Z]/g, (c) => c.toLowerCase());
  return head === 'access_token' ? name.length === 12 : head === 'access_token[';
}

/**
 * `application/x-www-form-urlencoded` decoding as far as ASCII goes: `+` is a space, `%XX` its byte,
 * a `%` without two hex digits stays. Bytes past ASCII become Latin-1 characters, never ASCII, so the
 * result equals an ASCII name exactly when the URL standard's decoding does.
 */
function formDecode(text: string): string {
  return text.replace(/\+|%([0-9A-Fa-f]{2})/g, (match, hex: string | undefined) =>
    hex === undefined ? ' ' : String.fromCharCode(parseInt(hex, 16)),
  );
}

/** The parts of Node's `IncomingMessage` the guard reads. */
export interface NodeRequestLike {
  headers: { authorization?: string | undefined };
  rawHeaders: readonly string[];
  url?: string | undefined;
}

/**
 * The guard's view of a Node request: every `Authorization` value (Node keeps only the first in
 * `headers`, so duplicates are read from `rawHeaders`, and only when there is one at all) and whether
 * the URL carries `access_token`.
 */
export function nodeGuardRequest(
  req: NodeRequestLike,
  clientIp: string | undefined,
  dpop?: DpopRequest | (() => DpopRequest),
): GuardRequest {
  const header = req.headers.authorization;
  return {
    authorization:
      header === undefined ? undefined : (rawHeaderValues(req.rawHeaders, 'authorization') ?? header),
    tokenInQuery: hasTokenInQuery(req.url ?? ''),
    clientIp,
    // Built (a function) only for the DPoP scheme: a bearer request pays nothing for it.
    dpop: typeof dpop === 'function' ? (usesDpopScheme(header) ? dpop() : undefined) : dpop,
  };
}

/** Whether an `Authorization` value uses the DPoP scheme (RFC 9449 §7.1). */
export function usesDpopScheme(header: string | undefined): boolean {
  return header !== undefined && header.length > 5 && /^dpop\s/i.test(header);
}

/** An adapter's extra authorization: a predicate on the auth context and the framework's request. */
export type Authorize<Req> = (auth: AuthContext, req: Req) => boolean | Promise<boolean>;

/** Run an `authorize` predicate; false answers 403 `forbidden` with an `insufficient_scope` challenge. */
export async function authorizeRequest<Req>(
  auth: Pick<OidcAuth, 'realm'>,
  context: AuthContext,
  authorize: Authorize<Req> | undefined,
  req: Req,
): Promise<void> {
  if (!authorize || (await authorize(context, req))) return;
  throw new ForbiddenError('forbidden', 'Not allowed', {
    headers: { 'www-authenticate': bearerChallenge(auth.realm, 'insufficient_scope') },
  });
}

/**
 * Read a Node request body as UTF-8 up to `limit` bytes (413 past it, announced or streamed; the
 * rest is drained so the answer reaches the client). Refuses media types the routes don't take and
 * any `Content-Encoding` but identity (415).
 */
export function readRequestBody(req: IncomingMessage, limit: number): Promise<Record<string, unknown>> {
  const contentType = req.headers['content-type'];
  const encoding = req.headers['content-encoding'];
  // Compressed bodies are refused, never inflated: a small gzip bomb cannot grow past any limit.
  if (!bodyKind(contentType) || (encoding !== undefined && encoding.toLowerCase() !== 'identity')) {
    req.resume();
    return Promise.reject(unsupportedMediaType());
  }
  if (Number(req.headers['content-length']) > limit) {
    req.resume();
    return Promise.reject(bodyTooLarge());
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size <= limit) return void chunks.push(chunk);
      req.off('data', onData).off('end', onEnd).resume();
      reject(bodyTooLarge());
    };
    const onEnd = () => {
      try {
        resolve(parseRequestBody(contentType, Buffer.concat(chunks).toString('utf8')));
      } catch (error) {
        reject(error);
      }
    };
    req.on('data', onData).once('end', onEnd).once('error', reject);
  });
}

/**
 * The client address behind reverse proxies (IP-03): from the socket address, walk `X-Forwarded-For`
 * right to left past trusted proxies and return the first hop that is not one. The left-most entries
 * are the client's to write, so they are never taken blindly.
 */
export function rightmostUntrustedHop(
  socketIp: string | undefined,
  forwardedFor: string | undefined,
  isTrustedProxy: (address: string) => boolean,
): string | undefined {
  let ip = socketIp;
  if (ip === undefined || !isTrustedProxy(ip)) return ip;
  const hops = forwardedFor?.split(',') ?? [];
  for (let i = hops.length - 1; i >= 0 && ip !== undefined && isTrustedProxy(ip); i--) {
    ip = hops[i]!.trim() || undefined;
  }
  return ip;
}
