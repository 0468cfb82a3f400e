import { readFileSync } from 'node:fs';
import { Hono } from 'hono';
import { forwardedClientIp, oidcAuthRoutes, requireAccessToken } from '../../adapters/hono/index.js';
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
   * Addresses of the reverse proxies in front of the app. When the socket peer is one of them, the
   * client address is the right-most `X-Forwarded-For` hop that is not (the left-most hops are the
   * client's to write). Default: no proxy is trusted, `X-Forwarded-For` is ignored.
   */
  isTrustedProxy?: (address: string) => boolean;
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
 * The secrets API of `examples/secrets-api` on Hono (served by `@hono/node-server`): the OIDC login
 * routes under `/api/v1/auth`, and `GET /api/v3/secrets/raw?environment=…&workspaceSlug=…` behind
 * the bearer guard.
 */
export function createSecretsApp(options: SecretsAppOptions): Hono {
  const { auth } = options;
  const data: SecretsFile = options.secrets ?? JSON.parse(readFileSync(SECRETS_FILE, 'utf8'));
  const getClientIp = options.isTrustedProxy ? forwardedClientIp(options.isTrustedProxy) : undefined;
  const app = new Hono();

  app.route('/api/v1/auth', oidcAuthRoutes(auth, { getClientIp }));

  const guard = requireAccessToken(auth, {
    getClientIp,
    authorize: (context, c) => grantsWorkspace(context, c.req.query('workspaceSlug')),
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
