import { readFileSync } from 'node:fs';
import Router from '@koa/router';
import Koa from 'koa';
import { oidcAuthRouter, requireAccessToken, type AuthState } from '../../adapters/koa/index.js';
import type { AuthContext, OidcAuth } from '../../src/index.js';
import type { RawSecret, SecretsFile } from '../secrets-api/app.js';

/** The secrets the Express example serves; every framework's example serves the same. */
export const SECRETS_FILE = new URL('../secrets-api/secrets.json', import.meta.url);

/** Options of {@link createSecretsApp}. */
export interface SecretsAppOptions {
  /** The engine (identities, token store, signing keys). */
  auth: OidcAuth;
  /** Secrets served. Default: {@link SECRETS_FILE}. */
  secrets?: SecretsFile;
  /**
   * One reverse proxy runs in front of the app: `ctx.ip` becomes the right-most `X-Forwarded-For`
   * hop, the one that proxy appended (`app.proxy` with `maxIpsCount: 1`). Default false: the socket
   * address, and a client-sent `X-Forwarded-For` is ignored.
   */
  behindProxy?: boolean;
}

/** `metadata.workspaces` (set in the identity's config) lists the workspace slugs it may read. */
function grantsWorkspace(auth: AuthContext, slug: unknown): boolean {
  if (typeof slug !== 'string' || slug === '') return true; // the route answers 400
  const granted = auth.metadata.workspaces;
  return Array.isArray(granted) && granted.includes(slug);
}

/** Infisical's `GET /api/v3/secrets/raw` answer, or the 400 message. */
function readSecrets(data: SecretsFile, slug: unknown, environment: unknown): RawSecret[] | string {
  if (typeof slug !== 'string' || slug === '') return 'workspaceSlug is required';
  if (typeof environment !== 'string' || environment === '') return 'environment is required';
  const workspace = data.workspaces.find((w) => w.slug === slug);
  if (!workspace) return 'Unknown workspace';
  if (!workspace.environments.includes(environment)) return 'Unknown environment';
  return data.secrets
    .filter((s) => s.workspace === slug && s.environment === environment)
    .map((s) => ({
      id: s.id,
      _id: s.id,
      workspace: workspace.id,
      environment: s.environment,
      version: 1,
      type: 'shared',
      secretKey: s.secretKey,
      secretValue: s.secretValue,
      secretComment: s.secretComment,
      tags: [],
    }));
}

/**
 * The secrets API of `examples/secrets-api` on Koa with `@koa/router`: the OIDC login routes under
 * `/api/v1/auth`, and `GET /api/v3/secrets/raw?environment=…&workspaceSlug=…` behind the bearer guard.
 */
export function createSecretsApp(options: SecretsAppOptions): Koa<AuthState> {
  const { auth } = options;
  const data: SecretsFile = options.secrets ?? JSON.parse(readFileSync(SECRETS_FILE, 'utf8'));
  const app = new Koa<AuthState>({ proxy: options.behindProxy ?? false, maxIpsCount: 1 });
  const router = new Router<AuthState>();

  // Without @koa/router: app.use(oidcAuthRouter(auth)).
  const authRoutes = oidcAuthRouter(auth);
  router.post(authRoutes.paths, authRoutes);

  const guard = requireAccessToken(auth, {
    authorize: (context, ctx) => grantsWorkspace(context, ctx.query.workspaceSlug),
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
