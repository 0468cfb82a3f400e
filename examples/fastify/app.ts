import { readFileSync } from 'node:fs';
import Fastify, { type FastifyInstance } from 'fastify';
import { oidcAuthPlugin, requireAccessToken } from '../../adapters/fastify/index.js';
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
   * Fastify's `trustProxy`: the addresses or CIDRs of the reverse proxies in front of the app (e.g.
   * `'loopback'`). `request.ip` is then the right-most `X-Forwarded-For` hop that is not one of
   * them. Default false: the socket address, and a client-sent `X-Forwarded-For` is ignored. Avoid
   * `true`: it takes the left-most hop, which the client writes.
   */
  trustProxy?: string | string[] | false;
}

type SecretsQuery = { Querystring: { workspaceSlug?: string; environment?: string } };

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
 * The secrets API of `examples/secrets-api` on Fastify: the OIDC login routes under `/api/v1/auth`,
 * and `GET /api/v3/secrets/raw?environment=…&workspaceSlug=…` behind the bearer guard.
 */
export async function createSecretsApp(options: SecretsAppOptions): Promise<FastifyInstance> {
  const { auth } = options;
  const data: SecretsFile = options.secrets ?? JSON.parse(readFileSync(SECRETS_FILE, 'utf8'));
  const app = Fastify({ trustProxy: options.trustProxy ?? false });

  await app.register(oidcAuthPlugin, { auth, prefix: '/api/v1/auth' });

  const guard = requireAccessToken(auth, {
    authorize: (context, request) =>
      grantsWorkspace(context, (request.query as SecretsQuery['Querystring']).workspaceSlug),
  });
  app.get<SecretsQuery>('/api/v3/secrets/raw', { preHandler: guard }, async (request, reply) => {
    const secrets = readSecrets(data, request.query.workspaceSlug, request.query.environment);
    if (typeof secrets === 'string') {
      return reply.code(400).send({ statusCode: 400, error: 'BadRequest', message: secrets });
    }
    // request.auth (AuthContext, set by the guard) holds the caller.
    return reply.header('cache-control', 'no-store').send({ secrets, imports: [] });
  });

  app.setNotFoundHandler((_request, reply) =>
    reply.code(404).send({ statusCode: 404, error: 'NotFound', message: 'Not found' }),
  );
  return app;
}
