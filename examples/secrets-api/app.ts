import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import express, { type Express, type Request, type Response } from 'express';
import { oidcAuthRouter, requireAccessToken } from '../../adapters/express/index.js';
import type { AuthContext, OidcAuth } from '../../src/index.js';
import { loadSecrets, readSecrets, workspaceGranted, type SecretsFile } from './secrets.js';

export * from './secrets.js';

/** The authorize predicate of the secrets route (see {@link workspaceGranted}). */
export function grantsWorkspace(auth: AuthContext, req: Request): boolean {
  return workspaceGranted(auth, req.query.workspaceSlug);
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
  const app = express();
  app.disable('x-powered-by');

  app.use('/api/v1/auth', oidcAuthRouter(auth));

  app.get(
    '/api/v3/secrets/raw',
    requireAccessToken(auth, { authorize: grantsWorkspace }),
    (req: Request, res: Response) => {
      const secrets = readSecrets(data, req.query.workspaceSlug, req.query.environment);
      if (typeof secrets === 'string') return badRequest(res, secrets);
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
