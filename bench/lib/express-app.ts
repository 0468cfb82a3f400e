import express, { type Express, type NextFunction, type Request, type Response } from 'express';

/** The JSON every guarded `GET /hello` answers. */
export const HELLO = Object.freeze({ ok: true, message: 'hello' });

/** The route handler behind every guard. */
export function hello(_req: Request, res: Response): void {
  res.json(HELLO);
}

/** A fresh Express app with the same settings for every candidate. */
export function expressApp(): Express {
  const app = express();
  app.set('env', 'production');
  return app;
}

/**
 * Terminal error handler: answers `err.status` (401 for peers' auth errors) as JSON without logging,
 * so refused smoke requests do not print stacks.
 */
export function jsonErrors(app: Express): void {
  app.use((err: unknown, _req: Request, res: Response, _next: NextFunction) => {
    const e = err as { status?: unknown; statusCode?: unknown; code?: unknown };
    const status =
      typeof e.status === 'number' ? e.status : typeof e.statusCode === 'number' ? e.statusCode : 500;
    res.status(status).json({ error: typeof e.code === 'string' ? e.code : 'error' });
  });
}
