import type { FastifyPluginAsync, FastifyReply, FastifyRequest, preHandlerAsyncHookHandler } from 'fastify';
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
  type HttpAnswer,
  type OidcAuth,
} from '../../src/index.js';

/** Options of {@link oidcAdminPlugin} (Fastify's own `prefix` goes alongside). */
export interface OidcAdminPluginOptions extends IdentityAdminOptions {
  /** The engine. */
  auth: OidcAuth;
  /**
   * Required. A `preHandler` run before every admin route that must answer (or throw) unless the caller
   * may manage identities, e.g. `requireAccessToken(auth, { authorize: (a) => a.metadata.role === 'admin' })`.
   */
  guard: preHandlerAsyncHookHandler;
  /** Largest body accepted, in bytes. Default 64 KiB. */
  bodyLimit?: number;
}

function send(reply: FastifyReply, answer: HttpAnswer): FastifyReply {
  return reply.code(answer.status).headers(answer.headers).send(answer.body);
}

/**
 * Infisical's identity OIDC-config routes (`POST/GET/PATCH/DELETE /oidc-auth/identities/:identityId`,
 * plus `GET /oidc-auth/identities`, and `POST /oidc-auth/revocations` for `auth.revokeWhere`) as an
 * encapsulated plugin, each behind `options.guard`. Use:
 * `app.register(oidcAdminPlugin, { auth, guard, prefix: '/api/v1/auth' })`.
 *
 * @throws {ConfigError} `guard` (at registration) when no guard is given: these routes decide who can log in.
 */
export const oidcAdminPlugin: FastifyPluginAsync<OidcAdminPluginOptions> = async function oidcAdminPlugin(
  app,
  options,
) {
  if (typeof options?.guard !== 'function') {
    throw new ConfigError('guard', 'is required: the admin routes change who can log in; pass a preHandler');
  }
  const { auth, guard } = options;
  const admin = createIdentityAdmin(auth, options);
  const limit = options.bodyLimit ?? DEFAULT_BODY_LIMIT;
  // Bodies are read in the handler, after the guard: a refused caller's body is never parsed.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_request, _payload, done) => done(null));
  const answer = async (request: FastifyRequest, reply: FastifyReply) => {
    // A wildcard, not `:identityId`: Fastify 404s params over `maxParamLength` (100), ids reach 128.
    // Like a `:param` it must be one non-empty segment of the raw path (an encoded `/` stays in it).
    const identityId = (request.params as { '*'?: string })['*'];
    const segments = (path: string | undefined) => path?.split('?', 1)[0]!.split('/').length;
    if (identityId === '' || segments(request.url) !== segments(request.routeOptions.url)) {
      return reply.callNotFound();
    }
    const method = request.method === 'HEAD' ? 'GET' : request.method;
    let body: unknown;
    try {
      if (method !== 'POST' && method !== 'PATCH') body = undefined;
      else if (bodyKind(request.headers['content-type']) === 'json')
        body = await readRequestBody(request.raw, limit);
      else throw unsupportedMediaType();
    } catch (error) {
      return send(reply, adminErrorAnswer(auth, error));
    }
    return send(reply, await admin.handle({ method, identityId, body }));
  };
  const revocations = async (request: FastifyRequest, reply: FastifyReply) => {
    let body: unknown;
    try {
      if (bodyKind(request.headers['content-type']) !== 'json') throw unsupportedMediaType();
      body = await readRequestBody(request.raw, limit);
    } catch (error) {
      return send(reply, adminErrorAnswer(auth, error));
    }
    return send(reply, await admin.handle({ method: 'POST', route: 'revocations', body }));
  };
  app.route({ method: 'POST', url: ADMIN_ROUTES.revocations, preHandler: guard, handler: revocations });
  const identity = ADMIN_ROUTES.identities + '/*';
  app.route({ method: 'GET', url: ADMIN_ROUTES.identities, preHandler: guard, handler: answer });
  app.route({
    method: ['GET', 'POST', 'PATCH', 'DELETE'],
    url: identity,
    preHandler: guard,
    handler: answer,
  });
  // Trust entries (docs/TRUST.md): GET/PUT/DELETE /oidc-auth/trust/:trustId, GET /oidc-auth/trust.
  const trust = createTrustAdmin(auth);
  const trustAnswer = async (request: FastifyRequest, reply: FastifyReply) => {
    const trustId = (request.params as { '*'?: string })['*'];
    const segments = (path: string | undefined) => path?.split('?', 1)[0]!.split('/').length;
    if (trustId === '' || segments(request.url) !== segments(request.routeOptions.url)) {
      return reply.callNotFound();
    }
    const method = request.method === 'HEAD' ? 'GET' : request.method;
    let body: unknown;
    try {
      if (method !== 'PUT') body = undefined;
      else if (bodyKind(request.headers['content-type']) === 'json')
        body = await readRequestBody(request.raw, limit);
      else throw unsupportedMediaType();
    } catch (error) {
      return send(reply, adminErrorAnswer(auth, error));
    }
    return send(reply, await trust.handle({ method, trustId, body }));
  };
  app.route({ method: 'GET', url: TRUST_ADMIN_ROUTES.entries, preHandler: guard, handler: trustAnswer });
  app.route({
    method: ['GET', 'PUT', 'DELETE'],
    url: TRUST_ADMIN_ROUTES.entries + '/*',
    preHandler: guard,
    handler: trustAnswer,
  });
};
