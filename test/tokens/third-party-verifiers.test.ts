import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { generateKeyPairSync } from 'node:crypto';
import express from 'express';
import { auth as jwtBearer } from 'express-oauth2-jwt-bearer';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { oauthMetadataHandler, oidcAuthRouter } from '../../adapters/express/index.js';
import { createOidcAuth, type OidcAuth } from '../../src/index.js';
import { SIGNING_KEYS, githubIdentity } from '../helpers/engine.js';
import { githubClaims, makeKey, sign } from '../helpers/jwt.js';

/**
 * Peer resource servers accept our JWT access tokens knowing nothing but our metadata URL: our app
 * (Express, real HTTP on 127.0.0.1) serves the RFC 8414 metadata and the JWKS; each verifier
 * discovers `jwks_uri` and `issuer` from the metadata, fetches the keys over HTTP and verifies.
 * The issuer is plain http on loopback here (both libraries allow it outside production); a real
 * deployment's issuer is https.
 */
describe('third-party verifiers accept our JWT access tokens from our metadata URL alone', () => {
  const idp = makeKey('RS256');
  let server: Server;
  let auth: OidcAuth;
  let issuer: string;
  let metadataUrl: string;
  let token: string;
  let opaque: string;

  beforeAll(async () => {
    server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    issuer = `http://127.0.0.1:${port}/api/v1/auth`;
    auth = createOidcAuth({
      identities: [
        githubIdentity(idp, { accessTokenFormat: 'jwt' }),
        githubIdentity(idp, { identityId: 'opaque-one' }),
      ],
      signingKeys: SIGNING_KEYS,
      issuer,
      accessTokens: { signingKeys: [{ privateKey: generateKeyPairSync('ed25519').privateKey }] },
    });
    const app = express();
    app.use(oauthMetadataHandler(auth));
    app.use('/api/v1/auth', oidcAuthRouter(auth));
    server.on('request', app);
    metadataUrl = `http://127.0.0.1:${port}/.well-known/oauth-authorization-server/api/v1/auth`;
    const jwt = await sign(idp, githubClaims(Date.now()));
    token = (await auth.login({ identityId: 'gh-deployer', jwt })).accessToken;
    opaque = (await auth.login({ identityId: 'opaque-one', jwt })).accessToken;
  });
  afterAll(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await auth.close();
  });

  it("RFC 9068 §4 with jose: jwtVerify + createRemoteJWKSet on the metadata's jwks_uri", async () => {
    const metadata = (await (await fetch(metadataUrl)).json()) as { issuer: string; jwks_uri: string };
    expect(metadata.issuer).toBe(issuer);
    const jwks = createRemoteJWKSet(new URL(metadata.jwks_uri));
    const { payload, protectedHeader } = await jwtVerify(token, jwks, {
      issuer: metadata.issuer,
      audience: issuer,
      typ: 'at+jwt',
      algorithms: ['EdDSA'],
      requiredClaims: ['exp', 'iat', 'jti', 'sub', 'client_id'],
    });
    expect(protectedHeader.typ).toBe('at+jwt');
    expect(payload).toMatchObject({
      sub: 'gh-deployer',
      client_id: 'gh-deployer',
      metadata: { role: 'deployer' },
    });
    // An opaque token is nothing a JWT verifier can read.
    await expect(jwtVerify(opaque, jwks)).rejects.toThrow();
  });

  /** A resource server guarded by express-oauth2-jwt-bearer, on its own port. */
  async function resourceServer(options: Parameters<typeof jwtBearer>[0]) {
    const app = express();
    app.get('/data', jwtBearer(options), (req, res) => {
      // `req.auth` is the library's result here (our adapter's type augmentation names it too).
      const result = (req as unknown as { auth: { payload: { sub?: string }; header: { typ?: string } } })
        .auth;
      res.json({ sub: result.payload.sub, typ: result.header.typ });
    });
    app.use(
      (
        err: { status?: number },
        _req: express.Request,
        res: express.Response,
        _next: express.NextFunction,
      ) => {
        res.status(err.status ?? 500).json({ refused: true });
      },
    );
    const rs = app.listen(0, '127.0.0.1');
    await new Promise((resolve) => rs.once('listening', resolve));
    const url = `http://127.0.0.1:${(rs.address() as AddressInfo).port}/data`;
    return { url, close: () => new Promise<void>((resolve) => rs.close(() => resolve())) };
  }

  it('express-oauth2-jwt-bearer auth({ issuerBaseURL, audience }) discovers RFC 8414 §3.1 metadata and accepts the token (strict RFC 9068 profile)', async () => {
    // issuerBaseURL = our issuer: the library tries {issuer}/.well-known/openid-configuration (we
    // serve none: 404), then /.well-known/oauth-authorization-server{issuer path}: our root handler.
    const rs = await resourceServer({ issuerBaseURL: issuer, audience: issuer, strict: true });
    try {
      const ok = await fetch(rs.url, { headers: { authorization: `Bearer ${token}` } });
      expect(ok.status).toBe(200);
      expect(await ok.json()).toEqual({ sub: 'gh-deployer', typ: 'at+jwt' });
      const tampered = `${token.slice(0, token.lastIndexOf('.'))}.${'A'.repeat(86)}`;
      expect((await fetch(rs.url, { headers: { authorization: `Bearer ${tampered}` } })).status).toBe(401);
      expect((await fetch(rs.url, { headers: { authorization: `Bearer ${opaque}` } })).status).toBe(401);
    } finally {
      await rs.close();
    }
  });

  it('express-oauth2-jwt-bearer given the metadata URL itself as issuerBaseURL accepts it too', async () => {
    const rs = await resourceServer({ issuerBaseURL: metadataUrl, audience: issuer, strict: true });
    try {
      const ok = await fetch(rs.url, { headers: { authorization: `Bearer ${token}` } });
      expect(ok.status).toBe(200);
      // A verifier expecting another audience refuses our token.
      const other = await resourceServer({ issuerBaseURL: metadataUrl, audience: 'https://other.example' });
      try {
        expect((await fetch(other.url, { headers: { authorization: `Bearer ${token}` } })).status).toBe(401);
      } finally {
        await other.close();
      }
    } finally {
      await rs.close();
    }
  });
});
