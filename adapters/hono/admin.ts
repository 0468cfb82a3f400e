import { Hono, type Context, type MiddlewareHandler } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
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
  bodyKind,
  bodyTooLarge,
  parseRequestBody,
  unsupportedMediaType,
  type HttpAnswer,
  type OidcAuth,
} from '../../src/index.js';

/** Options of {@link oidcAdminRoutes}. */
export interface AdminRoutesOptions extends IdentityAdminOptions {
  /**
   * Required. Runs before every admin route and must answer (or throw) unless the caller may manage
   * identities, e.g. `requireAccessToken(auth, { authorize: (a) => a.metadata.role === 'admin' })`.
   */
  guard: MiddlewareHandler;
  /** Largest body accepted, in bytes. Default 64 KiB. */
  bodyLimit?: number;
}

function reply(c: Context, answer: HttpAnswer): Response {
  return c.json(answer.body as object, answer.status as ContentfulStatusCode, answer.headers);
}

/**
 * Infisical's identity OIDC-config routes (`POST/GET/PATCH/DELETE /oidc-auth/identities/:identityId`,
 * plus `GET /oidc-auth/identities`, and `POST /oidc-auth/revocations` for `auth.revokeWhere`) as a
 * sub-app, each behind `options.guard`. Use:
 * `app.route('/api/v1/auth', oidcAdminRoutes(auth, { guard }))`.
 *
 * @throws {ConfigError} `guard` when no guard is given: these routes decide who can log in.
 */
export function oidcAdminRoutes(auth: OidcAuth, options: AdminRoutesOptions): Hono {
  if (typeof options?.guard !== 'function') {
    throw new ConfigError('guard', 'is required: the admin routes change who can log in; pass a middleware');
  }
  const { guard } = options;
  const admin = createIdentityAdmin(auth, options);
  const fail = (c: Context, error: unknown) => reply(c, adminErrorAnswer(auth, error));
  // What readRequestBody refuses (415) before the size check, and JSON only: configs nest objects.
  const json: MiddlewareHandler = async (c, next) => {
    const encoding = c.req.header('content-encoding');
    const ok =
      bodyKind(c.req.header('content-type')) === 'json' && (!encoding || /^identity$/i.test(encoding));
    return ok ? next() : fail(c, unsupportedMediaType());
  };
  const limit = bodyLimit({
    maxSize: options.bodyLimit ?? DEFAULT_BODY_LIMIT,
    onError: (c) => fail(c, bodyTooLarge()),
  });
  const answerAt = (route?: 'revocations') => async (c: Context) => {
    const method = c.req.method === 'HEAD' ? 'GET' : c.req.method;
    let body: unknown;
    try {
      if (method === 'POST' || method === 'PATCH')
        body = parseRequestBody('application/json', await c.req.text());
    } catch (error) {
      return fail(c, error);
    }
    return reply(
      c,
      await admin.handle({ method, identityId: c.req.param('identityId'), body, ...(route && { route }) }),
    );
  };
  const answer = answerAt();
  // Trust entries (docs/TRUST.md): GET/PUT/DELETE /oidc-auth/trust/:trustId, GET /oidc-auth/trust.
  const trust = createTrustAdmin(auth);
  const trustAnswer = async (c: Context) => {
    const method = c.req.method === 'HEAD' ? 'GET' : c.req.method;
    let body: unknown;
    try {
      if (method === 'PUT') body = parseRequestBody('application/json', await c.req.text());
    } catch (error) {
      return fail(c, error);
    }
    return reply(c, await trust.handle({ method, trustId: c.req.param('trustId'), body }));
  };
  return new Hono()
    .get(ADMIN_ROUTES.identities, guard, answer)
    .on(['GET', 'DELETE'], ADMIN_ROUTES.identity, guard, answer)
    .on(['POST', 'PATCH'], ADMIN_ROUTES.identity, guard, json, limit, answer)
    .post(ADMIN_ROUTES.revocations, guard, json, limit, answerAt('revocations'))
    .get(TRUST_ADMIN_ROUTES.entries, guard, trustAnswer)
    .on(['GET', 'DELETE'], TRUST_ADMIN_ROUTES.entry, guard, trustAnswer)
    .put(TRUST_ADMIN_ROUTES.entry, guard, json, limit, trustAnswer);
}
