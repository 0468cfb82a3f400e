/**
 * The login baseline: a minimal hand-written Express login that parses JSON, verifies the IdP token
 * with jose's `jwtVerify` (cached key, issuer, RS256) and mints an HMAC-SHA256 token with node:crypto,
 * answering the same JSON shape and headers as ours. No policy, no store, no IP check.
 */
import { createHmac, randomBytes } from 'node:crypto';
import express, { type Request, type Response } from 'express';
import { jwtVerify } from 'jose';
import { expressApp } from '../lib/express-app.js';
import {
  forgeIdpToken,
  IDENTITY_ID,
  ISSUER,
  makeIdpKey,
  SIGNING_KEYS,
  signIdpToken,
} from '../lib/fixtures.js';
import { startBenchServer } from '../lib/server-kit.js';
import { jsonPost, loginSmoke } from '../lib/smoke.js';

const PATH = '/api/v1/auth/oidc-auth/login';
const TTL_SECONDS = 7200;
const NO_STORE = { 'cache-control': 'no-store', pragma: 'no-cache' };

await startBenchServer(async () => {
  const key = makeIdpKey('RS256');
  const secret = Buffer.from(SIGNING_KEYS.k1);
  const app = expressApp();
  app.post(PATH, express.json({ limit: 64 * 1024 }), async (req: Request, res: Response) => {
    const body = req.body as { identityId?: unknown; jwt?: unknown } | undefined;
    if (typeof body?.identityId !== 'string' || typeof body.jwt !== 'string' || body.jwt === '') {
      res
        .status(422)
        .set(NO_STORE)
        .json({ statusCode: 422, message: 'jwt is required', error: 'invalid_body' });
      return;
    }
    try {
      await jwtVerify(body.jwt, key.publicKey, {
        issuer: ISSUER,
        algorithms: ['RS256'],
        requiredClaims: ['exp', 'iat'],
      });
    } catch {
      res
        .status(401)
        .set(NO_STORE)
        .json({ statusCode: 401, message: 'Invalid credentials', error: 'Unauthorized' });
      return;
    }
    const exp = (Math.floor(Date.now() / 1000) + TTL_SECONDS).toString(36);
    const unsigned = `omat_k1.${randomBytes(16).toString('base64url')}.${exp}`;
    const mac = createHmac('sha256', secret).update(unsigned).digest('base64url');
    res
      .status(200)
      .set(NO_STORE)
      .json({
        accessToken: `${unsigned}.${mac}`,
        expiresIn: TTL_SECONDS,
        accessTokenMaxTTL: 86_400,
        tokenType: 'Bearer',
      });
  });
  const jwt = await signIdpToken(key);
  return {
    listener: app,
    spec: {
      request: jsonPost(PATH, { identityId: IDENTITY_ID, jwt }),
      smoke: loginSmoke(PATH, IDENTITY_ID, jwt, await forgeIdpToken(key)),
    },
  };
});
