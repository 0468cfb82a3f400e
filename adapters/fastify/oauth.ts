import type { FastifyPluginAsync, FastifyReply, FastifyRequest, preHandlerAsyncHookHandler } from 'fastify';
import {
  ConfigError,
  OAUTH_ROUTES,
  oauthErrorAnswer,
  oauthIntrospectAnswer,
  oauthRevokeAnswer,
  oauthTokenAnswer,
  recordOAuthEndpoints,
  unsupportedMediaType,
  dpopRequest,
  type DpopRequest,
  type HttpAnswer,
  type OAuthRequest,
  type OidcAuth,
} from '../../src/index.js';
import { readAuthBodies, send } from './bodies.js';

type Answer = (auth: OidcAuth, request: OAuthRequest) => Promise<HttpAnswer>;

/**
 * The request's DPoP proof, method and URL (RFC 9449 §4.3): `request.protocol` and `request.host`
 * follow Fastify's `trustProxy` (`X-Forwarded-Proto` and `X-Forwarded-Host` count only from a trusted
 * proxy), the path is `request.url` as received.
 */
export function dpopOf(request: FastifyRequest): DpopRequest {
  return dpopRequest(request.headers.dpop, request.method, request.protocol, request.host, request.url);
}

interface OAuthRoutesOptions {
  auth: OidcAuth;
  bodyLimit?: number;
  getClientIp?: (request: FastifyRequest) => string | undefined;
  /** Which routes, each with the `preHandler` run before it (none: unguarded). */
  routes: ReadonlyArray<{ url: string; answer: Answer; preHandler?: preHandlerAsyncHookHandler }>;
}

/** OAuth endpoints in their own encapsulated context: form/JSON parser, errors per RFC 6749 §5.2. */
const oauthRoutes: FastifyPluginAsync<OAuthRoutesOptions> = async function oauthRoutes(app, options) {
  const { auth } = options;
  const ipOf = options.getClientIp ?? ((request: FastifyRequest) => request.ip);
  readAuthBodies(app, options.bodyLimit, (error) => oauthErrorAnswer(auth, error));
  for (const { url, answer, preHandler } of options.routes) {
    app.route({
      method: 'POST',
      url,
      ...(preHandler ? { preHandler } : {}),
      handler: async (request: FastifyRequest, reply: FastifyReply) => {
        if (request.body === undefined) return send(reply, oauthErrorAnswer(auth, unsupportedMediaType()));
        const contentType = request.headers['content-type'];
        return send(
          reply,
          await answer(auth, {
            contentType,
            body: request.body,
            clientIp: ipOf(request),
            dpop: dpopOf(request),
          }),
        );
      },
    });
  }
};

/** `POST /oauth/token` (RFC 8693); `oidcAuthPlugin` registers it. */
export const oauthTokenPlugin: FastifyPluginAsync<Omit<OAuthRoutesOptions, 'routes'>> = async (
  app,
  options,
) => oauthRoutes(app, { ...options, routes: [{ url: OAUTH_ROUTES.token, answer: oauthTokenAnswer }] });

/** Options of {@link oidcIntrospectionPlugin} (Fastify's own `prefix` goes alongside). */
export interface OidcIntrospectionPluginOptions {
  auth: OidcAuth;
  /**
   * Required. A `preHandler` run before both routes that must answer (or throw) unless the caller may
   * introspect and revoke tokens, e.g. `requireAccessToken(auth, { authorize: (a) => a.metadata.role === 'introspector' })`.
   */
  guard: preHandlerAsyncHookHandler;
  /** Largest body accepted, in bytes. Default 64 KiB. */
  bodyLimit?: number;
  /** Client address. Default `request.ip`. */
  getClientIp?: (request: FastifyRequest) => string | undefined;
}

/**
 * `POST /oauth/introspect` (RFC 7662) and `POST /oauth/revoke` (RFC 7009) as an encapsulated
 * plugin, each behind `options.guard`. Use:
 * `app.register(oidcIntrospectionPlugin, { auth, guard, prefix: '/api/v1/auth' })`.
 *
 * @throws {ConfigError} `guard` (at registration) when no guard is given.
 */
export const oidcIntrospectionPlugin: FastifyPluginAsync<OidcIntrospectionPluginOptions> =
  async function oidcIntrospectionPlugin(app, options) {
    if (typeof options?.guard !== 'function') {
      throw new ConfigError(
        'guard',
        'is required: introspection and revocation must only answer callers the host trusts; pass a preHandler',
      );
    }
    // The RFC 8414 metadata now lists both endpoints (at the issuer's path, where they must be mounted).
    recordOAuthEndpoints(options.auth, { introspection: true, revocation: true });
    const { guard, ...rest } = options;
    await oauthRoutes(app, {
      ...rest,
      routes: [
        { url: OAUTH_ROUTES.introspect, answer: oauthIntrospectAnswer, preHandler: guard },
        { url: OAUTH_ROUTES.revoke, answer: oauthRevokeAnswer, preHandler: guard },
      ],
    });
  };
