import Router from '@koa/router';
import Koa from 'koa';
import { oidcAuthRouter, requireAccessToken, type AuthState } from '../../adapters/koa/index.js';
import type { OidcAuth } from '../../src/index.js';
import { loadSecrets, readSecrets, workspaceGranted, type SecretsFile } from '../secrets-api/secrets.js';

/** Options of {@link createSecretsApp}. */
export interface SecretsAppOptions {
  /** The engine (identities, token store, signing keys). */
  auth: OidcAuth;
  /** Secrets served. Default: `examples/secrets-api/secrets.json`. */
  secrets?: SecretsFile;
  /**
   * One reverse proxy runs in front of the app: `ctx.ip` becomes the right-most `X-Forwarded-For`
   * hop, the one that proxy appended (`app.proxy` with `maxIpsCount: 1`). Default false: the socket
   * address, and a client-sent `X-Forwarded-For` is ignored.
   */
  behindProxy?: boolean;
}

/**
 * The secrets API of `examples/secrets-api` on Koa with `@koa/router`: the OIDC login routes under
 * `/api/v1/auth`, and `GET /api/v3/secrets/raw?environment=…&workspaceSlug=…` behind the bearer guard.
 */
export function createSecretsApp(options: SecretsAppOptions): Koa<AuthState> {
  const { auth } = options;
  const data: SecretsFile = options.secrets ?? loadSecrets();
  const app = new Koa<AuthState>({ proxy: options.behindProxy ?? false, maxIpsCount: 1 });
  const router = new Router<AuthState>();

  // Without @koa/router: app.use(oidcAuthRouter(auth)).
  const authRoutes = oidcAuthRouter(auth);
  router.post(authRoutes.paths, authRoutes);

  const guard = requireAccessToken(auth, {
    authorize: (context, ctx) => workspaceGranted(context, ctx.query.workspaceSlug),
  });
  router.get('/api/v3/secrets/raw', guard, (ctx) => {
    const secrets = readSecrets(data, ctx.query.workspaceSlug, ctx.query.environment);
    if (typeof secrets === 'string') {
      ctx.status = 400;
      ctx.body = { statusCode: 400, error: 'BadRequest', message: secrets };
      return;
    }
    ctx.set('cache-control', 'no-store');
    ctx.body = { secrets, imports: [] }; // ctx.state.auth (typed AuthContext) holds the caller
  });

  app.use(router.routes()).use(router.allowedMethods());
  app.use((ctx) => {
    ctx.status = 404;
    ctx.body = { statusCode: 404, error: 'NotFound', message: 'Not found' };
  });
  return app;
}
