import { readFileSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import express, { type Express, type Request, type Response } from 'express';
import { oidcAuthRouter, requireAccessToken } from '../../adapters/express/index.js';
import type { AuthContext, OidcAuth } from '../../src/index.js';

/** One project ("workspace" in Infisical's API) and its environments. */
export interface Workspace {
  id: string;
  slug: string;
  environments: string[];
}

/** One stored secret. */
export interface StoredSecret {
  id: string;
  /** Slug of the workspace it belongs to. */
  workspace: string;
  environment: string;
  secretKey: string;
  secretValue: string;
  secretComment: string;
}

/** The shape of `secrets.json`. */
export interface SecretsFile {
  workspaces: Workspace[];
  secrets: StoredSecret[];
}

/** A secret as Infisical's `GET /api/v3/secrets/raw` returns it. */
export interface RawSecret {
  id: string;
  _id: string;
  /** The workspace id. */
  workspace: string;
  environment: string;
  version: number;
  type: 'shared';
  secretKey: string;
  secretValue: string;
  secretComment: string;
  tags: never[];
}

/** The demo's secrets file, next to this module. */
export const SECRETS_FILE = new URL('./secrets.json', import.meta.url);

/** Read a secrets file. Default: {@link SECRETS_FILE}. */
export function loadSecrets(path: string | URL = SECRETS_FILE): SecretsFile {
  return JSON.parse(readFileSync(path, 'utf8')) as SecretsFile;
}

/**
 * The authorization pattern: an identity's `metadata.workspaces` (set in its config) lists the
 * workspace slugs it may read. A request that names no workspace is left to the route, which answers
 * 400; one naming a workspace that is not granted gets 403, whether or not the workspace exists.
 */
export function grantsWorkspace(auth: AuthContext, req: Request): boolean {
  const slug = req.query.workspaceSlug;
  if (typeof slug !== 'string' || slug === '') return true;
  const granted = auth.metadata.workspaces;
  return Array.isArray(granted) && granted.includes(slug);
}

function badRequest(res: Response, message: string): void {
  res.status(400).json({ statusCode: 400, error: 'BadRequest', message });
}

/** Options of {@link createSecretsApp}. */
export interface SecretsAppOptions {
  /** The engine (identities, token store, signing keys). */
  auth: OidcAuth;
  /** Secrets served. Default: `secrets.json` next to this module. */
  secrets?: SecretsFile;
}

/**
 * A small secrets API in the shape of Infisical's: the OIDC login routes under `/api/v1/auth`, and
 * `GET /api/v3/secrets/raw?environment=…&workspaceSlug=…` behind the bearer guard.
 */
export function createSecretsApp(options: SecretsAppOptions): Express {
  const { auth } = options;
  const data = options.secrets ?? loadSecrets();
  const workspaces = new Map(data.workspaces.map((w) => [w.slug, w]));
  const app = express();
  app.disable('x-powered-by');

  app.use('/api/v1/auth', oidcAuthRouter(auth));

  app.get(
    '/api/v3/secrets/raw',
    requireAccessToken(auth, { authorize: grantsWorkspace }),
    (req: Request, res: Response) => {
      const { environment, workspaceSlug } = req.query;
      if (typeof workspaceSlug !== 'string' || workspaceSlug === '') {
        return badRequest(res, 'workspaceSlug is required');
      }
      if (typeof environment !== 'string' || environment === '') {
        return badRequest(res, 'environment is required');
      }
      const workspace = workspaces.get(workspaceSlug);
      if (!workspace) return badRequest(res, 'Unknown workspace');
      if (!workspace.environments.includes(environment)) return badRequest(res, 'Unknown environment');
      const secrets: RawSecret[] = data.secrets
        .filter((s) => s.workspace === workspaceSlug && s.environment === environment)
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
      res.set('cache-control', 'no-store').json({ secrets, imports: [] });
    },
  );

  app.use((_req: Request, res: Response) => {
    res.status(404).json({ statusCode: 404, error: 'NotFound', message: 'Not found' });
  });
  return app;
}

/** A listening server. */
export interface RunningServer {
  /** `http://host:port`, no trailing slash. */
  url: string;
  server: Server;
  close(): Promise<void>;
}

/**
 * Listen on `host:port`.
 * @param port Default 0 (a random free port).
 * @param host Default `127.0.0.1`.
 */
export function listen(app: Express, port = 0, host = '127.0.0.1'): Promise<RunningServer> {
  return new Promise((resolve, reject) => {
    const server = app.listen(port, host, (error?: Error) => {
      if (error) return reject(error);
      const address = server.address() as AddressInfo;
      const shown = address.family === 'IPv6' ? `[${address.address}]` : address.address;
      resolve({
        url: `http://${shown}:${address.port}`,
        server,
        close: () =>
          new Promise<void>((done, fail) => {
            server.close((closeError) => (closeError ? fail(closeError) : done()));
            server.closeAllConnections();
          }),
      });
    });
  });
}
