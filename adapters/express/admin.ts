import express, { type Request, type RequestHandler, type Response, type Router } from 'express';
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
  readRequestBody,
  unsupportedMediaType,
} from '../../src/index.js';
import type { HttpAnswer, OidcAuth } from '../../src/index.js';

/** Options of {@link oidcAdminRouter}. */
export interface AdminRouterOptions extends IdentityAdminOptions {
  /**
   * Required. Runs before every admin route and must end the request unless the caller may manage
   * identities, e.g. `requireAccessToken(auth, { authorize: (a) => a.metadata.role === 'admin' })`.
   */
  guard: RequestHandler | readonly RequestHandler[];
  /** Largest body read, in bytes. Default 64 KiB. Ignored when a host body parser already set `req.body`. */
  bodyLimit?: number;
}

function send(res: Response, answer: HttpAnswer): void {
  res.status(answer.status).set(answer.headers).json(answer.body);
}

/**
 * Infisical's identity OIDC-config routes (`POST/GET/PATCH/DELETE /oidc-auth/identities/:identityId`,
 * plus `GET /oidc-auth/identities`, and `POST /oidc-auth/revocations` for `auth.revokeWhere`), each
 * behind `options.guard`. Mount it next to the login router:
 * `app.use('/api/v1/auth', oidcAdminRouter(auth, { guard }))`; other paths pass through untouched.
 *
 * @throws {ConfigError} `guard` when no guard is given: these routes decide who can log in.
 */
export function oidcAdminRouter(auth: OidcAuth, options: AdminRouterOptions): Router {
  const guards = [options?.guard ?? []].flat();
  if (guards.length === 0 || guards.some((g) => typeof g !== 'function')) {
    throw new ConfigError('guard', 'is required: the admin routes change who can log in; pass a middleware');
  }
  const admin = createIdentityAdmin(auth, options);
  const limit = options.bodyLimit ?? DEFAULT_BODY_LIMIT;
  const answer = async (req: Request, res: Response) => {
    const method = req.method === 'HEAD' ? 'GET' : req.method;
    let body: unknown;
    try {
      // Read after the guard, JSON only (configs nest objects a form cannot), as every adapter reads it.
      if (method === 'POST' || method === 'PATCH') {
        if (bodyKind(req.headers['content-type']) !== 'json') throw unsupportedMediaType();
        body = req.body !== undefined ? req.body : await readRequestBody(req, limit);
      }
    } catch (error) {
      return send(res, adminErrorAnswer(auth, error));
    }
    const identityId = req.params.identityId as string | undefined;
    const route = req.route?.path === ADMIN_ROUTES.revocations ? ('revocations' as const) : undefined;
    send(res, await admin.handle({ method, identityId, body, ...(route && { route }) }));
  };
  const router = express.Router();
  router.get(ADMIN_ROUTES.identities, ...guards, answer);
  router.post(ADMIN_ROUTES.revocations, ...guards, answer);
  router
    .route(ADMIN_ROUTES.identity)
    .all(...guards)
    .get(answer)
    .post(answer)
    .patch(answer)
    .delete(answer);
  // Trust entries (docs/TRUST.md): GET/PUT/DELETE /oidc-auth/trust/:trustId, GET /oidc-auth/trust.
  const trust = createTrustAdmin(auth);
  const trustAnswer = async (req: Request, res: Response) => {
    const method = req.method === 'HEAD' ? 'GET' : req.method;
    let body: unknown;
    try {
      if (method === 'PUT') {
        if (bodyKind(req.headers['content-type']) !== 'json') throw unsupportedMediaType();
        body = req.body !== undefined ? req.body : await readRequestBody(req, limit);
      }
    } catch (error) {
      return send(res, adminErrorAnswer(auth, error));
    }
    send(res, await trust.handle({ method, trustId: req.params.trustId as string | undefined, body }));
  };
  router.get(TRUST_ADMIN_ROUTES.entries, ...guards, trustAnswer);
  router
    .route(TRUST_ADMIN_ROUTES.entry)
    .all(...guards)
    .get(trustAnswer)
    .put(trustAnswer)
    .delete(trustAnswer);
  return router;
}
