import Fastify from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  oauthMetadataPlugin,
  oidcAuthPlugin,
  oidcIntrospectionPlugin,
  requireAccessToken,
} from '../../adapters/fastify/index.js';
import { createOidcAuth, type OidcAuth } from '../../src/index.js';
import { SIGNING_KEYS, githubIdentity } from '../helpers/engine.js';
import { answerClientError, postJson, request } from '../helpers/http.js';
import { makeKey } from '../helpers/jwt.js';
import { createSecretsApp } from '../../examples/fastify/app.js';
import { describeAdapterConformance, describeSecretsExample } from './conformance.js';

describeAdapterConformance('fastify', async (auth, { trustProxy }) => {
  const app = Fastify({
    clientErrorHandler: answerClientError,
    ...(trustProxy ? { trustProxy: 'loopback' } : {}),
  });
  await app.register(oauthMetadataPlugin, { auth });
  await app.register(oidcAuthPlugin, { auth, prefix: '/api/v1/auth' });
  await app.register(oidcIntrospectionPlugin, {
    auth,
    guard: requireAccessToken(auth, { authorize: (a) => a.metadata.role === 'introspector' }),
    prefix: '/api/v1/auth',
  });
  app.get('/api/v3/secrets/raw', { preHandler: requireAccessToken(auth) }, async (request) => {
    const { identityId, clientIp, metadata } = request.auth!;
    return { identityId, clientIp, metadata };
  });
  app.get(
    '/admin',
    { preHandler: requireAccessToken(auth, { authorize: (ctx) => ctx.metadata.role === 'admin' }) },
    async () => ({ ok: true }),
  );
  const url = await app.listen({ port: 0, host: '127.0.0.1' });
  return { url, close: () => app.close() };
});

describe('fastify adapter specifics', () => {
  const key = makeKey('RS256');
  let auth: OidcAuth;
  beforeAll(() => {
    auth = createOidcAuth({ identities: [githubIdentity(key)], signingKeys: SIGNING_KEYS });
  });
  afterAll(() => auth?.close());

  it('keeps its parsers and error handler inside the plugin: host routes parse and fail as before', async () => {
    const app = Fastify();
    await app.register(oidcAuthPlugin, { auth, prefix: '/api/v1/auth' });
    app.post('/echo', async (req) => req.body);
    app.post('/boom', async () => {
      throw Object.assign(new Error('host failure'), { statusCode: 418 });
    });
    const url = await app.listen({ port: 0, host: '127.0.0.1' });
    try {
      const echoed = await postJson(url, '/echo', { a: 1 });
      expect(echoed.json).toEqual({ a: 1 });
      const text = await request(url, 'POST', '/echo', {
        headers: ['content-type', 'text/plain'],
        body: 'hi',
      });
      expect(text.text).toBe('hi');
      const boom = await postJson(url, '/boom', {});
      expect(boom.status).toBe(418);
      expect(boom.json.message).toBe('host failure');
    } finally {
      await app.close();
    }
  });

  it('leaves non-body errors of its own routes to the host error handler', async () => {
    const app = Fastify();
    app.setErrorHandler((_error, _req, reply) => reply.code(599).send({ host: true }));
    await app.register(oidcAuthPlugin, { auth, prefix: '/auth' });
    app.addHook('onRequest', async (req) => {
      if (req.url === '/auth/token/renew') throw new Error('host hook failure');
    });
    const res = await app.inject({ method: 'POST', url: '/auth/token/renew', payload: {} });
    expect(res.statusCode).toBe(599);
    expect(res.json()).toEqual({ host: true });
    await app.close();
  });
});

describeSecretsExample('fastify', async (auth) => {
  const app = await createSecretsApp({ auth });
  const url = await app.listen({ port: 0, host: '127.0.0.1' });
  return { url, close: () => app.close() };
});
