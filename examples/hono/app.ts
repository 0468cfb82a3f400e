import { Hono } from 'hono';
import { forwardedClientIp, oidcAuthRoutes, requireAccessToken } from '../../adapters/hono/index.js';
import type { OidcAuth } from '../../src/index.js';
import { loadSecrets, readSecrets, workspaceGranted, type SecretsFile } from '../secrets-api/secrets.js';

/** Options of {@link createSecretsApp}. */
export interface SecretsAppOptions {
  /** The engine (identities, token store, signing keys). */
  auth: OidcAuth;
  /** Secrets served. Default: `examples/secrets-api/secrets.json`. */
  secrets?: SecretsFile;
  /**
   * Addresses of the reverse proxies in front of the app. When the socket peer is one of them, the
   * client address is the right-most `X-Forwarded-For` hop that is not (the left-most hops are the
   * client's to write). Default: no proxy is trusted, `X-Forwarded-For` is ignored.
   */
  isTrustedProxy?: (address: string) => boolean;
}

/**
 * The secrets API of `examples/secrets-api` on Hono (served by `@hono/node-server`): the OIDC login
 * routes under `/api/v1/auth`, and `GET /api/v3/secrets/raw?environment=…&workspaceSlug=…` behind
 * the bearer guard.
 */
export function createSecretsApp(options: SecretsAppOptions): Hono {
  const { auth } = options;
  const data: SecretsFile = options.secrets ?? loadSecrets();
  const getClientIp = options.isTrustedProxy ? forwardedClientIp(options.isTrustedProxy) : undefined;
  const app = new Hono();

  app.route('/api/v1/auth', oidcAuthRoutes(auth, { getClientIp }));

  const guard = requireAccessToken(auth, {
    getClientIp,
    authorize: (context, c) => workspaceGranted(context, c.req.query('workspaceSlug')),
  });
  app.get('/api/v3/secrets/raw', guard, (c) => {
    const secrets = readSecrets(data, c.req.query('workspaceSlug'), c.req.query('environment'));
    if (typeof secrets === 'string') {
      return c.json({ statusCode: 400, error: 'BadRequest', message: secrets }, 400);
    }
    // c.get('auth') (typed AuthContext) holds the caller.
    return c.json({ secrets, imports: [] }, 200, { 'cache-control': 'no-store' });
  });

  app.notFound((c) => c.json({ statusCode: 404, error: 'NotFound', message: 'Not found' }, 404));
  return app;
}
