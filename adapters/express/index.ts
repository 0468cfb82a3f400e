import express, { type Request, type RequestHandler, type Response, type Router } from 'express';
import {
  DEFAULT_BODY_LIMIT,
  OAUTH_ROUTES,
  ROUTES,
  authorizeRequest,
  errorAnswer,
  guard,
  loginAnswer,
  nodeGuardRequest,
  readRequestBody,
  renewAnswer,
  revokeAnswer,
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
import { dpopOf, oauthTokenHandler } from './oauth.js';

declare module 'express-serve-static-core' {
  interface Request {
    /** Set by `requireAccessToken` on guarded routes. */
    auth?: AuthContext;
  }
}

/** A request that passed `requireAccessToken`: `req.auth` is set. */
export type AuthenticatedRequest = Request & { auth: AuthContext };

export interface RouterOptions {
  /** Largest body read, in bytes. Default 64 KiB. Ignored when a host body parser already set `req.body`. */
  bodyLimit?: number;
  /** Client address. Default `req.ip`, so Express's `trust proxy` setting decides. */
  getClientIp?: (req: Request) => string | undefined;
  /** Overrides which OAuth endpoints the RFC 8414 metadata lists. Default: the token endpoint, and introspection and revocation once this engine's introspection router is built. */
  oauthEndpoints?: OAuthEndpoints;
}

export interface GuardOptions {
  /** Extra authorization: return false to answer 403 `forbidden`. */
  authorize?: Authorize<Request>;
  /** Client address. Default `req.ip`, so Express's `trust proxy` setting decides. */
  getClientIp?: (req: Request) => string | undefined;
  /** Pass errors to `next(err)` (they carry `status` and `headers`) instead of answering JSON. */
  passErrors?: boolean;
}

function send(res: Response, answer: HttpAnswer): void {
  res.status(answer.status).set(answer.headers).json(answer.body);
}

/** `req.ip`, read straight from the socket when `trust proxy` is off (what `req.ip` returns then, cheaper). */
const defaultIp = (req: Request) => (req.app.get('trust proxy') ? req.ip : req.socket.remoteAddress);

/** Mounts `POST /oidc-auth/login`, `/token/renew`, `/token/revoke` and `/oauth/token` (RFC 8693). Use: `app.use('/api/v1/auth', oidcAuthRouter(auth))`. */
export function oidcAuthRouter(auth: OidcAuth, options: RouterOptions = {}): Router {
  const limit = options.bodyLimit ?? DEFAULT_BODY_LIMIT;
  const ipOf = options.getClientIp ?? defaultIp;
  const router = express.Router();
  const route = (handle: typeof loginAnswer) => async (req: Request, res: Response) => {
    let body: unknown;
    try {
      body = req.body !== undefined ? req.body : await readRequestBody(req, limit);
    } catch (error) {
      return send(res, errorAnswer(auth, error));
    }
    send(res, await handle(auth, body, ipOf(req), dpopOf(req)));
  };
  router.post(ROUTES.login, route(loginAnswer));
  router.post(ROUTES.renew, route(renewAnswer));
  router.post(ROUTES.revoke, route(revokeAnswer));
  router.post(OAUTH_ROUTES.token, oauthTokenHandler(auth, limit, ipOf));
  const endpoints = options.oauthEndpoints;
  router.get(WELL_KNOWN_ROUTES.jwks, (_req, res) => send(res, jwksAnswer(auth)));
  router.get(WELL_KNOWN_ROUTES.metadata, (_req, res) => send(res, metadataAnswer(auth, endpoints)));
  return router;
}

/**
 * RFC 8414 §3.1 metadata at the host root (`/.well-known/oauth-authorization-server/api/v1/auth` for
 * the issuer `https://app.example/api/v1/auth`), which a router under the prefix cannot answer.
 * Use: `app.use(oauthMetadataHandler(auth))`. Needs the engine's `issuer`.
 */
export function oauthMetadataHandler(
  auth: OidcAuth,
  options: { oauthEndpoints?: OAuthEndpoints } = {},
): RequestHandler {
  const path = requireRootMetadataPath(auth);
  const endpoints = options.oauthEndpoints;
  return function oauthMetadataMiddleware(req, res, next) {
    if ((req.method === 'GET' || req.method === 'HEAD') && req.path === path) {
      return send(res, metadataAnswer(auth, endpoints));
    }
    next();
  };
}

/** Bearer guard: sets `req.auth`, or answers 401/400/403/503 with an RFC 6750 challenge. */
export function requireAccessToken(auth: OidcAuth, options: GuardOptions = {}): RequestHandler {
  const ipOf = options.getClientIp ?? defaultIp;
  const { authorize, passErrors } = options;
  return async function requireAccessTokenMiddleware(req, res, next) {
    try {
      req.auth = await guard(
        auth,
        nodeGuardRequest(req, ipOf(req), () => dpopOf(req)),
      );
      if (auth.dpop.nonces) res.set(auth.dpop.answerHeaders());
      if (authorize) await authorizeRequest(auth, req.auth, authorize, req);
    } catch (error) {
      if (passErrors) return next(error);
      return send(res, errorAnswer(auth, error));
    }
    next();
  };
}

export { oidcAdminRouter, type AdminRouterOptions } from './admin.js';
export { oidcIntrospectionRouter, type IntrospectionRouterOptions } from './oauth.js';
