import type { Context, Middleware, Next } from 'koa';
import {
  ConfigError,
  DEFAULT_BODY_LIMIT,
  DEFAULT_PREFIX,
  OAUTH_ROUTES,
  oauthErrorAnswer,
  oauthIntrospectAnswer,
  oauthRevokeAnswer,
  oauthTokenAnswer,
  readRequestBody,
  recordOAuthEndpoints,
  dpopRequest,
  type DpopRequest,
  type HttpAnswer,
  type OAuthRequest,
  type OidcAuth,
} from '../../src/index.js';

type Answer = (auth: OidcAuth, request: OAuthRequest) => Promise<HttpAnswer>;

/**
 * The request's DPoP proof, method and URL (RFC 9449 §4.3): `ctx.protocol` and `ctx.host` follow
 * Koa's `app.proxy` (`X-Forwarded-Proto` and `X-Forwarded-Host` count only with it), the path is
 * `ctx.originalUrl` as received.
 */
export function dpopOf(ctx: Context): DpopRequest {
  return dpopRequest(ctx.get('dpop') || undefined, ctx.method, ctx.protocol, ctx.host, ctx.originalUrl);
}

function send(ctx: Context, answer: HttpAnswer): void {
  ctx.status = answer.status;
  ctx.set(answer.headers);
  ctx.body = answer.body;
}

/** Answer one OAuth endpoint: the body (a host parser's, else read here), errors per RFC 6749 §5.2. */
export async function answerOAuth(
  ctx: Context,
  auth: OidcAuth,
  answer: Answer,
  limit: number,
  clientIp: string | undefined,
): Promise<void> {
  let body: unknown;
  try {
    const parsed = (ctx.request as { body?: unknown }).body;
    body = parsed !== undefined ? parsed : await readRequestBody(ctx.req, limit);
  } catch (error) {
    return send(ctx, oauthErrorAnswer(auth, error));
  }
  send(
    ctx,
    await answer(auth, {
      contentType: ctx.get('content-type') || undefined,
      body,
      clientIp,
      dpop: dpopOf(ctx),
    }),
  );
}

/** `POST {prefix}/oauth/token` (RFC 8693), as `oidcAuthRouter` routes it. */
export const oauthTokenRoute =
  (auth: OidcAuth, limit: number, ipOf: (ctx: Context) => string | undefined) => (ctx: Context) =>
    answerOAuth(ctx, auth, oauthTokenAnswer, limit, ipOf(ctx));

/** Options of {@link oidcIntrospectionRouter}. */
export interface IntrospectionRouterOptions {
  /**
   * Required. Runs before both routes and must end the request (or throw) unless the caller may
   * introspect and revoke tokens, e.g. `requireAccessToken(auth, { authorize: (a) => a.metadata.role === 'introspector' })`.
   */
  guard: Middleware;
  /** Path the routes live under; `''` when an outer mount already strips it. Default `/api/v1/auth`. */
  prefix?: string;
  /** Largest body read, in bytes. Default 64 KiB. Ignored when a host body parser already set `ctx.request.body`. */
  bodyLimit?: number;
  /** Client address. Default `ctx.ip`. */
  getClientIp?: (ctx: Context) => string | undefined;
}

/** The introspection routes as Koa middleware, plus their full paths for `@koa/router`. */
export type OidcIntrospectionRoutes = Middleware & { readonly paths: string[] };

/**
 * `POST {prefix}/oauth/introspect` (RFC 7662) and `POST {prefix}/oauth/revoke` (RFC 7009), each
 * behind `options.guard`; every other request passes on. Use: `app.use(oidcIntrospectionRouter(auth, { guard }))`.
 *
 * @throws {ConfigError} `guard` when no guard is given: introspection tells whether a token is live.
 */
export function oidcIntrospectionRouter(
  auth: OidcAuth,
  options: IntrospectionRouterOptions,
): OidcIntrospectionRoutes {
  if (typeof options?.guard !== 'function') {
    throw new ConfigError(
      'guard',
      'is required: introspection and revocation must only answer callers the host trusts; pass a middleware',
    );
  }
  // The RFC 8414 metadata now lists both endpoints (at the issuer's path, where they must be mounted).
  recordOAuthEndpoints(auth, { introspection: true, revocation: true });
  const { guard } = options;
  const limit = options.bodyLimit ?? DEFAULT_BODY_LIMIT;
  const ipOf = options.getClientIp ?? ((ctx: Context) => ctx.ip || undefined);
  const prefix = (options.prefix ?? DEFAULT_PREFIX).replace(/\/+$/, '');
  const routes = new Map<string, Answer>([
    [prefix + OAUTH_ROUTES.introspect, oauthIntrospectAnswer],
    [prefix + OAUTH_ROUTES.revoke, oauthRevokeAnswer],
  ]);
  const middleware: Middleware = async function oidcIntrospectionMiddleware(ctx: Context, next: Next) {
    const answer = ctx.method === 'POST' ? routes.get(ctx.path) : undefined;
    if (!answer) return next();
    await guard(ctx, () => answerOAuth(ctx, auth, answer, limit, ipOf(ctx)));
  };
  return Object.assign(middleware, { paths: [...routes.keys()] });
}
