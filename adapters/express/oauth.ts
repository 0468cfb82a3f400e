import express, { type Request, type RequestHandler, type Response, type Router } from 'express';
import {
  ConfigError,
  DEFAULT_BODY_LIMIT,
  OAUTH_ROUTES,
  oauthErrorAnswer,
  oauthIntrospectAnswer,
  oauthRevokeAnswer,
  oauthTokenAnswer,
  readRequestBody,
  recordOAuthEndpoints,
  platformDpopRequest,
  type DpopRequest,
  type HttpAnswer,
  type OAuthRequest,
  type OidcAuth,
} from '../../src/index.js';

type Answer = (auth: OidcAuth, request: OAuthRequest) => Promise<HttpAnswer>;

/**
 * The request's DPoP proof, method and URL (RFC 9449 §4.3): `req.protocol` and the authority follow
 * Express's `trust proxy` (`X-Forwarded-Proto` and `X-Forwarded-Host` count only from a trusted
 * proxy), the path is `req.originalUrl` as received. The authority is computed as Express 5's
 * `req.host` does, with the app's own `trust proxy fn`, on Express 4 too: there `req.host` is the
 * deprecated `req.hostname`, without the port (`platformDpopRequest`).
 */
export function dpopOf(req: Request): DpopRequest {
  return platformDpopRequest(req);
}

function send(res: Response, answer: HttpAnswer): void {
  res.status(answer.status).set(answer.headers).json(answer.body);
}

/** An OAuth endpoint: the body (a host parser's, else read here), answered as `answer` says, errors per RFC 6749 §5.2. */
export function oauthHandler(
  auth: OidcAuth,
  answer: Answer,
  limit: number,
  ipOf: (req: Request) => string | undefined,
): RequestHandler {
  return async function oauthEndpoint(req, res) {
    let body: unknown;
    try {
      body = req.body !== undefined ? req.body : await readRequestBody(req, limit);
    } catch (error) {
      return send(res, oauthErrorAnswer(auth, error));
    }
    send(
      res,
      await answer(auth, {
        contentType: req.headers['content-type'],
        body,
        clientIp: ipOf(req),
        dpop: dpopOf(req),
      }),
    );
  };
}

/** `POST /oauth/token` (RFC 8693), mounted by `oidcAuthRouter`. */
export function oauthTokenHandler(
  auth: OidcAuth,
  limit: number,
  ipOf: (req: Request) => string | undefined,
): RequestHandler {
  return oauthHandler(auth, oauthTokenAnswer, limit, ipOf);
}

/** Options of {@link oidcIntrospectionRouter}. */
export interface IntrospectionRouterOptions {
  /**
   * Required. Runs before both routes and must end the request unless the caller may introspect and
   * revoke tokens (a resource server, an operator), e.g.
   * `requireAccessToken(auth, { authorize: (a) => a.metadata.role === 'introspector' })`.
   */
  guard: RequestHandler | readonly RequestHandler[];
  /** Largest body read, in bytes. Default 64 KiB. Ignored when a host body parser already set `req.body`. */
  bodyLimit?: number;
  /** Client address. Default `req.ip`. */
  getClientIp?: (req: Request) => string | undefined;
}

/**
 * `POST /oauth/introspect` (RFC 7662) and `POST /oauth/revoke` (RFC 7009), each behind
 * `options.guard`. Mount it next to the auth router:
 * `app.use('/api/v1/auth', oidcIntrospectionRouter(auth, { guard }))`.
 *
 * @throws {ConfigError} `guard` when no guard is given: introspection tells whether a token is live.
 */
export function oidcIntrospectionRouter(auth: OidcAuth, options: IntrospectionRouterOptions): Router {
  const guards = [options?.guard ?? []].flat();
  if (guards.length === 0 || guards.some((g) => typeof g !== 'function')) {
    throw new ConfigError(
      'guard',
      'is required: introspection and revocation must only answer callers the host trusts; pass a middleware',
    );
  }
  // The RFC 8414 metadata now lists both endpoints (at the issuer's path, where they must be mounted).
  recordOAuthEndpoints(auth, { introspection: true, revocation: true });
  const limit = options.bodyLimit ?? DEFAULT_BODY_LIMIT;
  const ipOf = options.getClientIp ?? ((req: Request) => req.ip);
  const router = express.Router();
  router.post(OAUTH_ROUTES.introspect, ...guards, oauthHandler(auth, oauthIntrospectAnswer, limit, ipOf));
  router.post(OAUTH_ROUTES.revoke, ...guards, oauthHandler(auth, oauthRevokeAnswer, limit, ipOf));
  return router;
}
