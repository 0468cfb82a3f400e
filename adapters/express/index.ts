import express, {
  type NextFunction,
  type Request,
  type RequestHandler,
  type Response,
  type Router,
} from 'express';
import {
  DEFAULT_BODY_LIMIT,
  ForbiddenError,
  ROUTES,
  bearerChallenge,
  bodyTooLarge,
  errorAnswer,
  guard,
  hasTokenInQuery,
  invalidBody,
  loginAnswer,
  rawHeaderValues,
  renewAnswer,
  revokeAnswer,
  unsupportedMediaType,
  type AuthContext,
  type HttpAnswer,
  type OidcAuth,
} from '../../src/index.js';

declare module 'express-serve-static-core' {
  interface Request {
    /** Set by `requireAccessToken` on guarded routes. */
    auth?: AuthContext;
  }
}

/** A request that passed `requireAccessToken`: `req.auth` is set. */
export type AuthenticatedRequest = Request & { auth: AuthContext };

export interface RouterOptions {
  /** Largest body accepted, in bytes. Default 64 KiB. */
  bodyLimit?: number;
  /** Client address. Default `req.ip`, so Express's `trust proxy` setting decides. */
  getClientIp?: (req: Request) => string | undefined;
}

export interface GuardOptions {
  /** Extra authorization: return false to answer 403 `forbidden`. */
  authorize?: (auth: AuthContext, req: Request) => boolean | Promise<boolean>;
  /** Client address. Default `req.ip`, so Express's `trust proxy` setting decides. */
  getClientIp?: (req: Request) => string | undefined;
  /** Pass errors to `next(err)` (they carry `status` and `headers`) instead of answering JSON. */
  passErrors?: boolean;
}

function send(res: Response, answer: HttpAnswer): void {
  res.status(answer.status).set(answer.headers).json(answer.body);
}

const defaultIp = (req: Request) => req.ip;

/** Mounts `POST /oidc-auth/login`, `/token/renew`, `/token/revoke`. Use: `app.use('/api/v1/auth', oidcAuthRouter(auth))`. */
export function oidcAuthRouter(auth: OidcAuth, options: RouterOptions = {}): Router {
  const limit = options.bodyLimit ?? DEFAULT_BODY_LIMIT;
  const ipOf = options.getClientIp ?? defaultIp;
  const router = express.Router();
  router.use(express.json({ limit, strict: true }), express.urlencoded({ extended: false, limit }));
  const route = (handle: typeof loginAnswer) => async (req: Request, res: Response) => {
    if (req.body === undefined) return send(res, errorAnswer(auth, unsupportedMediaType()));
    send(res, await handle(auth, req.body, ipOf(req)));
  };
  router.post(ROUTES.login, route(loginAnswer));
  router.post(ROUTES.renew, route(renewAnswer));
  router.post(ROUTES.revoke, route(revokeAnswer));
  router.use((err: unknown, _req: Request, res: Response, next: NextFunction) => {
    const type = (err as { type?: unknown })?.type;
    if (type === 'entity.too.large') return send(res, errorAnswer(auth, bodyTooLarge()));
    if (type === 'entity.parse.failed') return send(res, errorAnswer(auth, invalidBody('Malformed body')));
    if (typeof type === 'string') return send(res, errorAnswer(auth, unsupportedMediaType()));
    next(err);
  });
  return router;
}

/** Bearer guard: sets `req.auth`, or answers 401/400/403/503 with an RFC 6750 challenge. */
export function requireAccessToken(auth: OidcAuth, options: GuardOptions = {}): RequestHandler {
  const ipOf = options.getClientIp ?? defaultIp;
  const { authorize, passErrors } = options;
  const denied = new ForbiddenError('forbidden', 'Not allowed', {
    headers: { 'www-authenticate': bearerChallenge(auth.realm, 'insufficient_scope') },
  });
  return async function requireAccessTokenMiddleware(req, res, next) {
    try {
      const header = req.headers.authorization;
      req.auth = await guard(auth, {
        authorization:
          header === undefined ? undefined : (rawHeaderValues(req.rawHeaders, 'authorization') ?? header),
        tokenInQuery: hasTokenInQuery(req.url),
        clientIp: ipOf(req),
      });
      if (authorize && !(await authorize(req.auth, req))) throw denied;
    } catch (error) {
      if (passErrors) return next(error);
      return send(res, errorAnswer(auth, error));
    }
    next();
  };
}
