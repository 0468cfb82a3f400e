import type { IncomingMessage } from 'node:http';
import type { Context, Middleware, ParameterizedContext } from 'koa';
import {
  DEFAULT_BODY_LIMIT,
  DEFAULT_PREFIX,
  ForbiddenError,
  ROUTES,
  bearerChallenge,
  bodyKind,
  bodyTooLarge,
  errorAnswer,
  guard,
  hasTokenInQuery,
  loginAnswer,
  parseRequestBody,
  rawHeaderValues,
  renewAnswer,
  revokeAnswer,
  unsupportedMediaType,
  type AuthContext,
  type HttpAnswer,
  type OidcAuth,
} from '../../src/index.js';

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
}

/** Options of {@link requireAccessToken}. */
export interface GuardOptions {
  /** Extra authorization: return false to answer 403 `forbidden`. */
  authorize?: (auth: AuthContext, ctx: ParameterizedContext<AuthState>) => boolean | Promise<boolean>;
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

function readRaw(req: IncomingMessage, limit: number): Promise<string> {
  if (Number(req.headers['content-length']) > limit) return Promise.reject(bodyTooLarge());
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size <= limit) return void chunks.push(chunk);
      req.off('data', onData).off('end', onEnd).resume(); // discard the rest so the 413 reaches the client
      reject(bodyTooLarge());
    };
    const onEnd = () => resolve(Buffer.concat(chunks).toString('utf8'));
    req.on('data', onData).once('end', onEnd).once('error', reject);
  });
}

async function readBody(ctx: Context, limit: number): Promise<unknown> {
  const type = ctx.get('content-type');
  if (!bodyKind(type)) throw unsupportedMediaType();
  const parsed = (ctx.request as { body?: unknown }).body;
  return parsed !== undefined ? parsed : parseRequestBody(type, await readRaw(ctx.req, limit));
}

/** The auth routes as Koa middleware, plus their full paths for `@koa/router`: `router.post(routes.paths, routes)`. */
export type OidcAuthRoutes = Middleware & { readonly paths: string[] };

/**
 * Answers `POST {prefix}/oidc-auth/login`, `/token/renew`, `/token/revoke` (matched on the full
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
  const middleware: Middleware = async function oidcAuthRouterMiddleware(ctx, next) {
    const handle = ctx.method === 'POST' ? routes.get(ctx.path) : undefined;
    if (!handle) return next();
    let body: unknown;
    try {
      body = await readBody(ctx, limit);
    } catch (error) {
      return send(ctx, errorAnswer(auth, error));
    }
    send(ctx, await handle(auth, body, ipOf(ctx)));
  };
  return Object.assign(middleware, { paths: [...routes.keys()] });
}

/** Bearer guard: sets `ctx.state.auth`, or answers 401/400/403/503 with an RFC 6750 challenge. */
export function requireAccessToken(auth: OidcAuth, options: GuardOptions = {}): Middleware<AuthState> {
  const ipOf = options.getClientIp ?? defaultIp;
  const { authorize, throwErrors } = options;
  const denied = new ForbiddenError('forbidden', 'Not allowed', {
    headers: { 'www-authenticate': bearerChallenge(auth.realm, 'insufficient_scope') },
  });
  return async function requireAccessTokenMiddleware(ctx, next) {
    try {
      const header = ctx.req.headers.authorization;
      ctx.state.auth = await guard(auth, {
        authorization:
          header === undefined ? undefined : (rawHeaderValues(ctx.req.rawHeaders, 'authorization') ?? header),
        tokenInQuery: hasTokenInQuery(ctx.url),
        clientIp: ipOf(ctx),
      });
      if (authorize && !(await authorize(ctx.state.auth, ctx))) throw denied;
    } catch (error) {
      if (throwErrors) throw error;
      return send(ctx, errorAnswer(auth, error));
    }
    return next();
  };
}
