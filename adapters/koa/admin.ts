import type { Context, Middleware } from 'koa';
import {
  ADMIN_ROUTES,
  TRUST_ADMIN_ROUTES,
  adminErrorAnswer,
  createIdentityAdmin,
  createTrustAdmin,
  type IdentityAdminOptions,
} from '../../src/http/identity-admin.js';
import {
  ConfigError,
  DEFAULT_BODY_LIMIT,
  DEFAULT_PREFIX,
  bodyKind,
  readRequestBody,
  unsupportedMediaType,
  type HttpAnswer,
  type OidcAuth,
} from '../../src/index.js';

/** Options of {@link oidcAdminRouter}. */
export interface AdminRouterOptions extends IdentityAdminOptions {
  /**
   * Required. Runs before every admin route and must end the request (or throw) unless the caller may
   * manage identities, e.g. `requireAccessToken(auth, { authorize: (a) => a.metadata.role === 'admin' })`.
   */
  guard: Middleware;
  /** Path the admin routes live under; `''` when an outer mount already strips it. Default `/api/v1/auth`. */
  prefix?: string;
  /** Largest body read, in bytes. Default 64 KiB. Ignored when a host body parser already set `ctx.request.body`. */
  bodyLimit?: number;
}

/** The admin routes as Koa middleware, plus their full paths for `@koa/router`: `router.all(admin.paths, admin)`. */
export type OidcAdminRoutes = Middleware & { readonly paths: string[] };

function send(ctx: Context, answer: HttpAnswer): void {
  ctx.status = answer.status;
  ctx.set(answer.headers);
  ctx.body = answer.body;
}

/** The JSON body: a host parser's result, else read here (JSON only: configs nest objects a form cannot). */
function readBody(ctx: Context, limit: number): Promise<unknown> {
  if (bodyKind(ctx.get('content-type')) !== 'json') return Promise.reject(unsupportedMediaType());
  const parsed = (ctx.request as { body?: unknown }).body;
  return parsed !== undefined ? Promise.resolve(parsed) : readRequestBody(ctx.req, limit);
}

const decode = (segment: string) => {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment; // refused as a malformed id
  }
};

/**
 * Infisical's identity OIDC-config routes (`POST/GET/PATCH/DELETE {prefix}/oidc-auth/identities/:identityId`,
 * plus `GET {prefix}/oidc-auth/identities` and `POST {prefix}/oidc-auth/revocations` for `auth.revokeWhere`),
 * each behind `options.guard`; every other request passes on.
 * Use: `app.use(oidcAdminRouter(auth, { guard }))`.
 *
 * @throws {ConfigError} `guard` when no guard is given: these routes decide who can log in.
 */
export function oidcAdminRouter(auth: OidcAuth, options: AdminRouterOptions): OidcAdminRoutes {
  if (typeof options?.guard !== 'function') {
    throw new ConfigError('guard', 'is required: the admin routes change who can log in; pass a middleware');
  }
  const { guard } = options;
  const admin = createIdentityAdmin(auth, options);
  const limit = options.bodyLimit ?? DEFAULT_BODY_LIMIT;
  const prefix = (options.prefix ?? DEFAULT_PREFIX).replace(/\/+$/, '');
  const list = prefix + ADMIN_ROUTES.identities;
  const revocations = prefix + ADMIN_ROUTES.revocations;
  // Trust entries (docs/TRUST.md): GET/PUT/DELETE {prefix}/oidc-auth/trust/:trustId, GET {prefix}/oidc-auth/trust.
  const trust = createTrustAdmin(auth);
  const trustList = prefix + TRUST_ADMIN_ROUTES.entries;
  const trustRoute = async (ctx: Context): Promise<boolean> => {
    const method = ctx.method === 'HEAD' ? 'GET' : ctx.method;
    const rest = ctx.path.startsWith(trustList) ? ctx.path.slice(trustList.length) : undefined;
    const segment = rest === undefined ? undefined : /^\/([^/]+)$/.exec(rest)?.[1];
    const routed =
      rest === '' ? method === 'GET' : segment !== undefined && /^(GET|PUT|DELETE)$/.test(method);
    if (!routed) return false;
    const trustId = segment === undefined ? undefined : decode(segment);
    await guard(ctx, async () => {
      let body: unknown;
      try {
        if (method === 'PUT') body = await readBody(ctx, limit);
      } catch (error) {
        return send(ctx, adminErrorAnswer(auth, error));
      }
      send(ctx, await trust.handle({ method, trustId, body }));
    });
    return true;
  };
  const middleware: Middleware = async function oidcAdminRouterMiddleware(ctx, next) {
    if (await trustRoute(ctx)) return;
    const method = ctx.method === 'HEAD' ? 'GET' : ctx.method;
    const rest = ctx.path.startsWith(list) ? ctx.path.slice(list.length) : undefined;
    const segment = rest === undefined ? undefined : /^\/([^/]+)$/.exec(rest)?.[1];
    const revoking = ctx.path === revocations && method === 'POST';
    const routed =
      revoking ||
      (rest === '' ? method === 'GET' : segment !== undefined && /^(GET|POST|PATCH|DELETE)$/.test(method));
    if (!routed) return next();
    const identityId = segment === undefined ? undefined : decode(segment);
    await guard(ctx, async () => {
      let body: unknown;
      try {
        if (method === 'POST' || method === 'PATCH') body = await readBody(ctx, limit);
      } catch (error) {
        return send(ctx, adminErrorAnswer(auth, error));
      }
      send(
        ctx,
        await admin.handle({ method, identityId, body, ...(revoking && { route: 'revocations' as const }) }),
      );
    });
  };
  return Object.assign(middleware, {
    paths: [list, prefix + ADMIN_ROUTES.identity, revocations, trustList, prefix + TRUST_ADMIN_ROUTES.entry],
  });
}
