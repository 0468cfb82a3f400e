import type { Context, Middleware, ParameterizedContext } from 'koa';
import {
  DEFAULT_BODY_LIMIT,
  DEFAULT_PREFIX,
  OAUTH_ROUTES,
  ROUTES,
  authorizeRequest,
  bodyKind,
  errorAnswer,
  guard,
  loginAnswer,
  nodeGuardRequest,
  readRequestBody,
  renewAnswer,
  revokeAnswer,
  unsupportedMediaType,
  type AuthContext,
  type Authorize,
  type HttpAnswer,
  type OidcAuth,
  WELL_KNOWN_ROUTES,
  jwksAnswer,
  metadataAnswer,
  requireRootMetadataPath,
  type OAuthEndpoints,
} from '../../src/index.js';
import { dpopOf, oauthTokenRoute } from './oauth.js';

/** Koa state after `requireAccessToken`: use as `Middleware<AuthState>` / `ctx.state.auth`. */
export interface AuthState {
  auth: AuthContext;
}

/** Options of {@link oidcAuthRouter}. */
export interface RouterOptions {
  /** Path the three routes live under; `''` when an outer mount already strips it. Default `/api/v1/auth`. */
  prefix?: string;
  /** Largest body read, in bytes. Default 64 KiB. Ignored when a host body parser already set `ctx.request.body`. */
  bodyLimit?: number;
  /** Client address. Default `ctx.ip`, so `app.proxy` (with `app.maxIpsCount`) decides. */
  getClientIp?: (ctx: Context) => string | undefined;
  /** Overrides which OAuth endpoints the RFC 8414 metadata lists. Default: the token endpoint, and introspection and revocation once this engine's introspection router is built. */
  oauthEndpoints?: OAuthEndpoints;
}

/** Options of {@link requireAccessToken}. */
export interface GuardOptions {
  /** Extra authorization: return false to answer 403 `forbidden`. */
  authorize?: Authorize<ParameterizedContext<AuthState>>;
  /** Client address. Default `ctx.ip`, so `app.proxy` (with `app.maxIpsCount`) decides. */
  getClientIp?: (ctx: Context) => string | undefined;
  /** Throw the error (http-errors style: `status`, `expose`, `headers`) for Koa's `onerror` instead of answering JSON. Default false. */
  throwErrors?: boolean;
}

function send(ctx: Context, answer: HttpAnswer): void {
  ctx.status = answer.status;
  ctx.set(answer.headers);
  ctx.body = answer.body;
}

const defaultIp = (ctx: Context) => ctx.ip || undefined;

async function readBody(ctx: Context, limit: number): Promise<unknown> {
  const parsed = (ctx.request as { body?: unknown }).body;
  if (parsed === undefined) return readRequestBody(ctx.req, limit);
  if (!bodyKind(ctx.get('content-type'))) throw unsupportedMediaType();
  return parsed;
}

/**
 * The auth routes as Koa middleware, plus their full paths for `@koa/router`:
 * `router.post(routes.paths, routes)` and, for the JWKS and metadata, `router.get(routes.getPaths, routes)`.
 */
export type OidcAuthRoutes = Middleware & { readonly paths: string[]; readonly getPaths: string[] };

/**
 * Answers `POST {prefix}/oidc-auth/login`, `/token/renew`, `/token/revoke`, `/oauth/token` (matched on the full
 * `ctx.path`); passes every other request on. Use: `app.use(oidcAuthRouter(auth))`.
 */
export function oidcAuthRouter(auth: OidcAuth, options: RouterOptions = {}): OidcAuthRoutes {
  const prefix = (options.prefix ?? DEFAULT_PREFIX).replace(/\/+$/, '');
  const limit = options.bodyLimit ?? DEFAULT_BODY_LIMIT;
  const ipOf = options.getClientIp ?? defaultIp;
  const routes = new Map([
    [prefix + ROUTES.login, loginAnswer],
    [prefix + ROUTES.renew, renewAnswer],
    [prefix + ROUTES.revoke, revokeAnswer],
  ]);
  const endpoints = options.oauthEndpoints;
  const reads = new Map([
    [prefix + WELL_KNOWN_ROUTES.jwks, () => jwksAnswer(auth)],
    [prefix + WELL_KNOWN_ROUTES.metadata, () => metadataAnswer(auth, endpoints)],
  ]);
  const token = prefix + OAUTH_ROUTES.token;
  const tokenRoute = oauthTokenRoute(auth, limit, ipOf);
  const middleware: Middleware = async function oidcAuthRouterMiddleware(ctx, next) {
    if (ctx.method === 'POST' && ctx.path === token) return tokenRoute(ctx);
    const read = ctx.method === 'GET' || ctx.method === 'HEAD' ? reads.get(ctx.path) : undefined;
    if (read) return send(ctx, read());
    const handle = ctx.method === 'POST' ? routes.get(ctx.path) : undefined;
    if (!handle) return next();
    let body: unknown;
    try {
      body = await readBody(ctx, limit);
    } catch (error) {
      return send(ctx, errorAnswer(auth, error));
    }
    send(ctx, await handle(auth, body, ipOf(ctx), dpopOf(ctx)));
  };
  return Object.assign(middleware, { paths: [...routes.keys(), token], getPaths: [...reads.keys()] });
}

/**
 * RFC 8414 §3.1 metadata at the host root (`/.well-known/oauth-authorization-server/api/v1/auth` for
 * the issuer `https://app.example/api/v1/auth`). Use: `app.use(oauthMetadataMiddleware(auth))`.
 * Needs the engine's `issuer`.
 */
export function oauthMetadataMiddleware(
  auth: OidcAuth,
  options: { oauthEndpoints?: OAuthEndpoints } = {},
): Middleware {
  const path = requireRootMetadataPath(auth);
  const endpoints = options.oauthEndpoints;
  return async function oauthMetadata(ctx, next) {
    if ((ctx.method === 'GET' || ctx.method === 'HEAD') && ctx.path === path) {
      return send(ctx, metadataAnswer(auth, endpoints));
    }
    return next();
  };
}

/** Bearer guard: sets `ctx.state.auth`, or answers 401/400/403/503 with an RFC 6750 challenge. */
export function requireAccessToken(auth: OidcAuth, options: GuardOptions = {}): Middleware<AuthState> {
  const ipOf = options.getClientIp ?? defaultIp;
  const { authorize, throwErrors } = options;
  return async function requireAccessTokenMiddleware(ctx, next) {
    try {
      ctx.state.auth = await guard(
        auth,
        nodeGuardRequest(ctx.req, ipOf(ctx), () => dpopOf(ctx)),
      );
      if (auth.dpop.nonces) ctx.set(auth.dpop.answerHeaders());
      if (authorize) await authorizeRequest(auth, ctx.state.auth, authorize, ctx);
    } catch (error) {
      if (throwErrors) throw error;
      return send(ctx, errorAnswer(auth, error));
    }
    return next();
  };
}

export { oidcAdminRouter, type AdminRouterOptions, type OidcAdminRoutes } from './admin.js';
export {
  oidcIntrospectionRouter,
  type IntrospectionRouterOptions,
  type OidcIntrospectionRoutes,
} from './oauth.js';
