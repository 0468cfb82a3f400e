import type { AddressInfo } from 'node:net';
import express from 'express';
import {
  oauthMetadataHandler,
  oidcAuthRouter,
  oidcIntrospectionRouter,
  requireAccessToken,
  type AuthenticatedRequest,
} from '../../adapters/express/index.js';
import { answerClientErrors } from '../helpers/http.js';
import { describeAdapterConformance } from './conformance.js';

describeAdapterConformance('express', async (auth, { trustProxy }) => {
  const app = express();
  if (trustProxy) app.set('trust proxy', 'loopback');
  app.use(oauthMetadataHandler(auth));
  app.use('/api/v1/auth', oidcAuthRouter(auth));
  app.use(
    '/api/v1/auth',
    oidcIntrospectionRouter(auth, {
      guard: requireAccessToken(auth, { authorize: (a) => a.metadata.role === 'introspector' }),
    }),
  );
  app.get('/api/v3/secrets/raw', requireAccessToken(auth), (req, res) => {
    const { identityId, clientIp, metadata } = (req as AuthenticatedRequest).auth;
    res.json({ identityId, clientIp, metadata });
  });
  app.get(
    '/admin',
    requireAccessToken(auth, { authorize: (ctx) => ctx.metadata.role === 'admin' }),
    (_req, res) => {
      res.json({ ok: true });
    },
  );
  const server = answerClientErrors(app.listen(0, '127.0.0.1'));
  await new Promise((resolve) => server.once('listening', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
});
