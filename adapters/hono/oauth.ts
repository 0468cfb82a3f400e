import { Hono, type Context, type MiddlewareHandler } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import {
  ConfigError,
  DEFAULT_BODY_LIMIT,
  OAUTH_ROUTES,
  bodyKind,
  bodyTooLarge,
  oauthErrorAnswer,
  oauthIntrospectAnswer,
  oauthRevokeAnswer,
  oauthTokenAnswer,
  recordOAuthEndpoints,
  parseRequestBody,
  unsupportedMediaType,
  dpopRequest,
  type DpopRequest,
  type HttpAnswer,
  type OAuthRequest,
  type OidcAuth,
} from '../../src/index.js';

type Answer = (auth: OidcAuth, request: OAuthRequest) => Promise<HttpAnswer>;

/**
 * The request's DPoP proof, method and URL (RFC 9449 §4.3), from `c.req.url` (the URL the runtime
 * built: on `@hono/node-server` from the `Host` header and the socket's protocol). Hono trusts no
 * forwarding header: behind a proxy that changes the scheme or host, rewrite the request URL to the
 * public one before these routes (docs/DPOP.md).
 */
export function dpopOf(c: Context): DpopRequest {
  const url = new URL(c.req.url);
  return dpopRequest(c.req.header('dpop'), c.req.method, url.protocol, url.host, url.pathname);
}

function reply(c: Context, answer: HttpAnswer): Response {
  return c.json(answer.body as object, answer.status as ContentfulStatusCode, answer.headers);
}

/**
 * One OAuth endpoint's handlers: refuse a media type the routes don't take or a compressed body
 * (415) and a body past `limit` (413) before reading it, then answer; errors per RFC 6749 §5.2.
 */
export function oauthHandlers(
  auth: OidcAuth,
  answer: Answer,
  maxSize: number,
  ipOf: (c: Context) => string | undefined,
): [MiddlewareHandler, MiddlewareHandler, (c: Context) => Promise<Response>] {
  const fail = (c: Context, error: unknown) => reply(c, oauthErrorAnswer(auth, error));
  const mediaType: MiddlewareHandler = async (c, next) => {
    const encoding = c.req.header('content-encoding');
    const ok = bodyKind(c.req.header('content-type')) && (!encoding || /^identity$/i.test(encoding));
    return ok ? next() : fail(c, unsupportedMediaType());
  };
  const limit = bodyLimit({ maxSize, onError: (c) => fail(c, bodyTooLarge()) });
  const handle = async (c: Context) => {
    const contentType = c.req.header('content-type');
    let body: unknown;
    try {
      body = parseRequestBody(contentType, await c.req.text());
    } catch (error) {
      return fail(c, error);
    }
    return reply(c, await answer(auth, { contentType, body, clientIp: ipOf(c), dpop: dpopOf(c) }));
  };
  return [mediaType, limit, handle];
}

/** Options of {@link oidcIntrospectionRoutes}. */
export interface IntrospectionRoutesOptions {
  /**
   * Required. Runs before both routes and must answer unless the caller may introspect and revoke
   * tokens, e.g. `requireAccessToken(auth, { authorize: (a) => a.metadata.role === 'introspector' })`.
   */
  guard: MiddlewareHandler;
  /** Largest body accepted, in bytes. Default 64 KiB. */
  bodyLimit?: number;
  /** Client address. Default: none (the routes do not need one). */
  getClientIp?: (c: Context) => string | undefined;
}

/**
 * `POST /oauth/introspect` (RFC 7662) and `POST /oauth/revoke` (RFC 7009) as a sub-app, each
 * behind `options.guard`. Use: `app.route('/api/v1/auth', oidcIntrospectionRoutes(auth, { guard }))`.
 *
 * @throws {ConfigError} `guard` when no guard is given: introspection tells whether a token is live.
 */
export function oidcIntrospectionRoutes(auth: OidcAuth, options: IntrospectionRoutesOptions): Hono {
  if (typeof options?.guard !== 'function') {
    throw new ConfigError(
      'guard',
      'is required: introspection and revocation must only answer callers the host trusts; pass a middleware',
    );
  }
  // The RFC 8414 metadata now lists both endpoints (at the issuer's path, where they must be mounted).
  recordOAuthEndpoints(auth, { introspection: true, revocation: true });
  const { guard } = options;
  const maxSize = options.bodyLimit ?? DEFAULT_BODY_LIMIT;
  const ipOf = options.getClientIp ?? (() => undefined);
  return new Hono()
    .post(OAUTH_ROUTES.introspect, guard, ...oauthHandlers(auth, oauthIntrospectAnswer, maxSize, ipOf))
    .post(OAUTH_ROUTES.revoke, guard, ...oauthHandlers(auth, oauthRevokeAnswer, maxSize, ipOf));
}

/** `POST /oauth/token` (RFC 8693) handlers, as `oidcAuthRoutes` mounts them. */
export const oauthTokenHandlers = (
  auth: OidcAuth,
  maxSize: number,
  ipOf: (c: Context) => string | undefined,
) => oauthHandlers(auth, oauthTokenAnswer, maxSize, ipOf);
