import type { FastifyPluginAsync, FastifyReply, FastifyRequest, preHandlerAsyncHookHandler } from 'fastify';
import {
  ROUTES,
  authorizeRequest,
  errorAnswer,
  guard,
  loginAnswer,
  nodeGuardRequest,
  renewAnswer,
  revokeAnswer,
  unsupportedMediaType,
  type AuthContext,
  type Authorize,
  type OidcAuth,
  WELL_KNOWN_ROUTES,
  jwksAnswer,
  metadataAnswer,
  requireRootMetadataPath,
  type OAuthEndpoints,
} from '../../src/index.js';
import { readAuthBodies, send } from './bodies.js';
import { dpopOf, oauthTokenPlugin } from './oauth.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** Set by `requireAccessToken` on guarded routes. */
    auth?: AuthContext;
  }
}

/** Options of {@link oidcAuthPlugin} (Fastify's own `prefix` goes alongside). */
export interface OidcAuthPluginOptions {
  /** The engine. */
  auth: OidcAuth;
  /** Largest body accepted, in bytes. Default 64 KiB. */
  bodyLimit?: number;
  /** Client address. Default `request.ip`, so Fastify's `trustProxy` decides. */
  getClientIp?: (request: FastifyRequest) => string | undefined;
  /** Overrides which OAuth endpoints the RFC 8414 metadata lists. Default: the token endpoint, and introspection and revocation once this engine's introspection router is built. */
  oauthEndpoints?: OAuthEndpoints;
}

/** Options of {@link requireAccessToken}. */
export interface GuardOptions {
  /** Extra authorization: return false to answer 403 `forbidden`. */
  authorize?: Authorize<FastifyRequest>;
  /** Client address. Default `request.ip`, so Fastify's `trustProxy` decides. */
  getClientIp?: (request: FastifyRequest) => string | undefined;
}

const defaultIp = (request: FastifyRequest) => request.ip;

/**
 * The three auth routes as an encapsulated plugin, with their own JSON and form parsers (prototype
 * keys are kept as data, never merged) and body errors answered as 413/415/422. Use:
 * `app.register(oidcAuthPlugin, { auth, prefix: '/api/v1/auth' })`; without `prefix` the routes
 * sit at the root.
 */
export const oidcAuthPlugin: FastifyPluginAsync<OidcAuthPluginOptions> = async function oidcAuthPlugin(
  app,
  options,
) {
  const { auth } = options;
  const ipOf = options.getClientIp ?? defaultIp;
  readAuthBodies(app, options.bodyLimit, (error) => errorAnswer(auth, error));
  const route = (handle: typeof loginAnswer) => async (request: FastifyRequest, reply: FastifyReply) => {
    if (request.body === undefined) return send(reply, errorAnswer(auth, unsupportedMediaType()));
    return send(reply, await handle(auth, request.body, ipOf(request), dpopOf(request)));
  };
  app.post(ROUTES.login, route(loginAnswer));
  app.post(ROUTES.renew, route(renewAnswer));
  app.post(ROUTES.revoke, route(revokeAnswer));
  // Its own context (RFC 6749 §5.2 error bodies); not `options`, which may carry Fastify's `prefix`.
  await app.register(oauthTokenPlugin, { auth, bodyLimit: options.bodyLimit, getClientIp: ipOf });
  const endpoints = options.oauthEndpoints;
  app.get(WELL_KNOWN_ROUTES.jwks, async (_request, reply) => send(reply, jwksAnswer(auth)));
  app.get(WELL_KNOWN_ROUTES.metadata, async (_request, reply) =>
    send(reply, metadataAnswer(auth, endpoints)),
  );
};

/** Options of {@link oauthMetadataPlugin}. */
export interface OAuthMetadataPluginOptions {
  auth: OidcAuth;
  /** Overrides which OAuth endpoints the RFC 8414 metadata lists. Default: the token endpoint, and introspection and revocation once this engine's introspection router is built. */
  oauthEndpoints?: OAuthEndpoints;
}

/**
 * RFC 8414 §3.1 metadata at the host root (`/.well-known/oauth-authorization-server/api/v1/auth` for
 * the issuer `https://app.example/api/v1/auth`). Register without a prefix:
 * `app.register(oauthMetadataPlugin, { auth })`. Needs the engine's `issuer`.
 */
export const oauthMetadataPlugin: FastifyPluginAsync<OAuthMetadataPluginOptions> =
  async function oauthMetadataPlugin(app, options) {
    const { auth } = options;
    const endpoints = options.oauthEndpoints;
    app.get(requireRootMetadataPath(auth), async (_request, reply) =>
      send(reply, metadataAnswer(auth, endpoints)),
    );
  };

/** Bearer guard as a `preHandler`: sets `request.auth`, or answers 401/400/403/503 with an RFC 6750 challenge. */
export function requireAccessToken(auth: OidcAuth, options: GuardOptions = {}): preHandlerAsyncHookHandler {
  const ipOf = options.getClientIp ?? defaultIp;
  const { authorize } = options;
  return async function requireAccessTokenHook(request, reply) {
    try {
      request.auth = await guard(
        auth,
        nodeGuardRequest(request.raw, ipOf(request), () => dpopOf(request)),
      );
      if (auth.dpop.nonces) reply.headers(auth.dpop.answerHeaders());
      if (authorize) await authorizeRequest(auth, request.auth, authorize, request);
    } catch (error) {
      return send(reply, errorAnswer(auth, error));
    }
  };
}

export { oidcAdminPlugin, type OidcAdminPluginOptions } from './admin.js';
export { oidcIntrospectionPlugin, type OidcIntrospectionPluginOptions } from './oauth.js';
