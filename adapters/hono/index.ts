import type { IncomingMessage } from 'node:http';
import { Hono, type Context, type MiddlewareHandler } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import {
  DEFAULT_BODY_LIMIT,
  OAUTH_ROUTES,
  ROUTES,
  authorizeRequest,
  bodyKind,
  bodyTooLarge,
  errorAnswer,
  guard,
  hasTokenInQuery,
  usesDpopScheme,
  loginAnswer,
  nodeGuardRequest,
  parseRequestBody,
  renewAnswer,
  revokeAnswer,
  rightmostUntrustedHop,
  unsupportedMediaType,
  type AuthContext,
  type Authorize,
  type GuardRequest,
  type HttpAnswer,
  type OidcAuth,
  WELL_KNOWN_ROUTES,
  jwksAnswer,
  metadataAnswer,
  requireRootMetadataPath,
  type OAuthEndpoints,
} from '../../src/index.js';
import { dpopOf, oauthTokenHandlers } from './oauth.js';

/** The Hono env `requireAccessToken` provides: `c.get('auth')`. */
export type AuthEnv = { Variables: { auth: AuthContext } };

/** Where the client address comes from. Default: the socket address on `@hono/node-server`, else undefined. */
export type GetClientIp = (c: Context) => string | undefined;

/** Options of {@link oidcAuthRoutes}. */
export interface RoutesOptions {
  /** Largest body accepted, in bytes. Default 64 KiB. */
  bodyLimit?: number;
  /** Client address. Default: the socket address (`@hono/node-server`'s `getConnInfo`); proxies are not trusted. */
  getClientIp?: GetClientIp;
  /** Overrides which OAuth endpoints the RFC 8414 metadata lists. Default: the token endpoint, and introspection and revocation once this engine's introspection router is built. */
  oauthEndpoints?: OAuthEndpoints;
}

/** Options of {@link requireAccessToken}. */
export interface GuardOptions {
  /** Extra authorization: return false to answer 403 `forbidden`. */
  authorize?: Authorize<Context<AuthEnv>>;
  /** Client address. Default: the socket address (`@hono/node-server`'s `getConnInfo`); proxies are not trusted. */
  getClientIp?: GetClientIp;
}

/** `c.env` on `@hono/node-server` (`HttpBindings`), typed here so the adapter needs no import of it. */
type NodeEnv = { incoming?: IncomingMessage; server?: { incoming?: IncomingMessage } };
const incomingOf = (c: Context) => {
  const env = c.env as NodeEnv | undefined;
  return (env?.server ?? env)?.incoming;
};

/** The socket address on `@hono/node-server` (what its `getConnInfo(c).remote.address` reads). */
export const socketAddress: GetClientIp = (c) => incomingOf(c)?.socket?.remoteAddress;

/**
 * A `getClientIp` for an app behind reverse proxies: walks `X-Forwarded-For` from the socket address
 * leftwards past trusted proxies and returns the right-most hop that is not one (IP-03). The
 * left-most entries are the client's to write, so they are never taken blindly.
 * @param isTrustedProxy True for your proxies' addresses (e.g. loopback when one runs on the host).
 */
export function forwardedClientIp(isTrustedProxy: (address: string) => boolean): GetClientIp {
  return (c) => rightmostUntrustedHop(socketAddress(c), c.req.header('x-forwarded-for'), isTrustedProxy);
}

function reply(c: Context, answer: HttpAnswer): Response {
  return c.json(answer.body as object, answer.status as ContentfulStatusCode, answer.headers);
}

/** What the guard reads: on `@hono/node-server` straight from Node's request (duplicates kept), else the Fetch one. */
function guardRequest(c: Context, clientIp: string | undefined): GuardRequest {
  const incoming = incomingOf(c);
  if (!incoming) {
    return {
      authorization: c.req.header('authorization'),
      tokenInQuery: hasTokenInQuery(c.req.url),
      clientIp,
      dpop: usesDpopScheme(c.req.header('authorization')) ? dpopOf(c) : undefined,
    };
  }
  return nodeGuardRequest(incoming, clientIp, () => dpopOf(c));
}

/** The auth routes (and `POST /oauth/token`, RFC 8693) as a sub-app. Use: `app.route('/api/v1/auth', oidcAuthRoutes(auth))`. */
export function oidcAuthRoutes(auth: OidcAuth, options: RoutesOptions = {}): Hono {
  const ipOf = options.getClientIp ?? socketAddress;
  const limit = bodyLimit({
    maxSize: options.bodyLimit ?? DEFAULT_BODY_LIMIT,
    onError: (c) => reply(c, errorAnswer(auth, bodyTooLarge())),
  });
  const mediaType: MiddlewareHandler = async (c, next) =>
    bodyKind(c.req.header('content-type')) ? next() : reply(c, errorAnswer(auth, unsupportedMediaType()));
  const route = (handle: typeof loginAnswer) => async (c: Context) => {
    let body: unknown;
    try {
      body = parseRequestBody(c.req.header('content-type'), await c.req.text());
    } catch (error) {
      return reply(c, errorAnswer(auth, error));
    }
    return reply(c, await handle(auth, body, ipOf(c), dpopOf(c)));
  };
  return new Hono()
    .post(ROUTES.login, mediaType, limit, route(loginAnswer))
    .post(ROUTES.renew, mediaType, limit, route(renewAnswer))
    .post(ROUTES.revoke, mediaType, limit, route(revokeAnswer))
    .post(OAUTH_ROUTES.token, ...oauthTokenHandlers(auth, options.bodyLimit ?? DEFAULT_BODY_LIMIT, ipOf))
    .get(WELL_KNOWN_ROUTES.jwks, (c) => reply(c, jwksAnswer(auth)))
    .get(WELL_KNOWN_ROUTES.metadata, (c) => reply(c, metadataAnswer(auth, options.oauthEndpoints)));
}

/**
 * RFC 8414 §3.1 metadata at the host root (`/.well-known/oauth-authorization-server/api/v1/auth` for
 * the issuer `https://app.example/api/v1/auth`). Use: `app.route('/', oauthMetadataRoutes(auth))`.
 * Needs the engine's `issuer`.
 */
export function oauthMetadataRoutes(auth: OidcAuth, options: { oauthEndpoints?: OAuthEndpoints } = {}): Hono {
  const endpoints = options.oauthEndpoints;
  return new Hono().get(requireRootMetadataPath(auth), (c) => reply(c, metadataAnswer(auth, endpoints)));
}

/** Bearer guard: sets `c.get('auth')`, or answers 401/400/403/503 with an RFC 6750 challenge. */
export function requireAccessToken(auth: OidcAuth, options: GuardOptions = {}): MiddlewareHandler<AuthEnv> {
  const ipOf = options.getClientIp ?? socketAddress;
  const { authorize } = options;
  return async function requireAccessTokenMiddleware(c, next) {
    let context: AuthContext;
    try {
      context = await guard(auth, guardRequest(c, ipOf(c)));
      if (authorize) await authorizeRequest(auth, context, authorize, c);
    } catch (error) {
      return reply(c, errorAnswer(auth, error));
    }
    c.set('auth', context);
    if (auth.dpop.nonces) c.header('dpop-nonce', auth.dpop.nonce());
    await next();
  };
}

export { oidcAdminRoutes, type AdminRoutesOptions } from './admin.js';
export { oidcIntrospectionRoutes, type IntrospectionRoutesOptions } from './oauth.js';
