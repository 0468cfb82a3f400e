import { Hono, type MiddlewareHandler } from 'hono';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import {
  createVerifier,
  VerifyError,
  type AccessTokenClaims,
  type Verifier,
  type VerifierOptions,
} from '../../src/verify/index.js';

/** What the middleware puts on the context. */
export type ServiceBEnv = { Variables: { claims: AccessTokenClaims } };

/**
 * A few lines around `createVerifier`: a Bearer token (RFC 6750 section 2.1) verified as one of our
 * RFC 9068 access tokens, optionally a scope (403 `insufficient_scope`, section 3.1) and an
 * introspection round trip for revocation-sensitive routes.
 */
export function requireAccessToken(
  verifier: Verifier,
  options: { scope?: string; introspect?: boolean } = {},
): MiddlewareHandler<ServiceBEnv> {
  return async function requireAccessToken(c, next) {
    const match = /^Bearer ([A-Za-z0-9._~+/-]+=*)$/i.exec(c.req.header('authorization') ?? '');
    if (!match) return c.json({ error: 'invalid_request' }, 401, { 'www-authenticate': 'Bearer' });
    try {
      c.set('claims', await verifier.verify(match[1]!, { introspect: options.introspect === true }));
    } catch (error) {
      if (!(error instanceof VerifyError)) throw error;
      const status = error.status as ContentfulStatusCode;
      const name =
        status === 401 ? 'invalid_token' : status === 503 ? 'temporarily_unavailable' : 'server_error';
      return c.json({ error: name, reasonCode: error.code }, status, error.headers);
    }
    const scopes = (c.get('claims').scope ?? '').split(' ');
    if (options.scope && !scopes.includes(options.scope)) {
      const challenge = `Bearer error="insufficient_scope", scope="${options.scope}"`;
      return c.json({ error: 'insufficient_scope' }, 403, { 'www-authenticate': challenge });
    }
    await next();
  };
}

/**
 * Service B: a reports API that trusts service A's access tokens and nothing else. It knows only
 * A's issuer URL (and which audience it is); keys come from A's RFC 8414 metadata and JWKS.
 */
export function createServiceB(options: VerifierOptions): Hono<ServiceBEnv> {
  const verifier = createVerifier(options);
  const app = new Hono<ServiceBEnv>();

  app.get('/reports', requireAccessToken(verifier, { scope: 'reports:read' }), (c) => {
    const { sub, client_id } = c.get('claims');
    return c.json({ reports: ['q1', 'q2'], caller: { sub, client_id } });
  });

  // Deleting is revocation-sensitive: ask A whether the token is still live (RFC 7662).
  app.delete(
    '/reports/:id',
    requireAccessToken(verifier, { scope: 'reports:write', introspect: true }),
    (c) => {
      return c.json({ deleted: c.req.param('id') });
    },
  );

  return app;
}
