import Fastify, { type FastifyInstance } from 'fastify';
import { oidcAuthPlugin, requireAccessToken } from '../../adapters/fastify/index.js';
import type { OidcAuth } from '../../src/index.js';
import { loadSecrets, readSecrets, workspaceGranted, type SecretsFile } from '../secrets-api/secrets.js';

/** Options of {@link createSecretsApp}. */
export interface SecretsAppOptions {
  /** The engine (identities, token store, signing keys). */
  auth: OidcAuth;
  /** Secrets served. Default: `examples/secrets-api/secrets.json`. */
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

/**
 * The secrets API of `examples/secrets-api` on Fastify: the OIDC login routes under `/api/v1/auth`,
 * and `GET /api/v3/secrets/raw?environment=…&workspaceSlug=…` behind the bearer guard.
 */
export async function createSecretsApp(options: SecretsAppOptions): Promise<FastifyInstance> {
  const { auth } = options;
  const data: SecretsFile = options.secrets ?? loadSecrets();
  const app = Fastify({ trustProxy: options.trustProxy ?? false });

  await app.register(oidcAuthPlugin, { auth, prefix: '/api/v1/auth' });

  const guard = requireAccessToken(auth, {
    authorize: (context, request) =>
      workspaceGranted(context, (request.query as SecretsQuery['Querystring']).workspaceSlug),
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
