import { generateKeyPairSync } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { decodeProtectedHeader } from 'jose';
import * as oauth from 'oauth4webapi';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { oidcAuthRouter } from '../../adapters/express/index.js';
import { TOKEN_EXCHANGE_GRANT, TOKEN_TYPE, createOidcAuth, type OidcAuth } from '../../src/index.js';
import { FakeClock, Recorder, SIGNING_KEYS, githubIdentity } from '../helpers/engine.js';
import { postForm, type RawResponse } from '../helpers/http.js';
import { githubClaims, makeKey, sign } from '../helpers/jwt.js';

// RFC 8693 §2.1 requested_token_type / §2.2.1 issued_token_type with both kinds of access token.
const PREFIX = '/api/v1/auth';
const TOKEN = `${PREFIX}/oauth/token`;
const OUR_ISSUER = 'https://app.example/api/v1/auth';
const OPAQUE_SUBJECT = 'repo:acme-corp/opaque:ref:refs/heads/main';
const JWT_SHAPE = /^[\w-]+\.[\w-]+\.[\w-]+$/;

const key = makeKey('RS256');
const clock = new FakeClock();
const rec = new Recorder();
let auth: OidcAuth;
let url: string;
let close: () => Promise<void>;

const idpToken = (claims = {}) => sign(key, githubClaims(clock.ms, claims));
const form = async (fields: Record<string, string>, claims = {}) => ({
  grant_type: TOKEN_EXCHANGE_GRANT,
  subject_token: await idpToken(claims),
  subject_token_type: TOKEN_TYPE.jwt,
  ...fields,
});

function expectOAuthError(res: RawResponse, error: string, reasonCode: string): void {
  expect(res.status).toBe(400);
  expect(res.headers['cache-control']).toBe('no-store');
  expect(res.json.error).toBe(error);
  expect(res.json.reasonCode).toBe(reasonCode);
  expect(res.json.access_token).toBeUndefined();
}

beforeAll(async () => {
  auth = createOidcAuth({
    identities: [
      // Mints RFC 9068 JWT access tokens by default.
      githubIdentity(key, { identityId: 'jwt-id', accessTokenFormat: 'jwt' }),
      // Mints opaque tokens (the default format).
      githubIdentity(key, { identityId: 'opaque-id', boundSubject: OPAQUE_SUBJECT }),
    ],
    signingKeys: SIGNING_KEYS,
    issuer: OUR_ISSUER,
    accessTokens: {
      signingKeys: [{ privateKey: generateKeyPairSync('ed25519').privateKey, kid: 'ed-1' }],
    },
    clock: clock.now,
    onEvent: rec.onEvent,
  });
  const app = express();
  app.use(PREFIX, oidcAuthRouter(auth));
  const server = app.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  close = () => new Promise<void>((resolve) => server.close(() => resolve()));
});

afterAll(async () => {
  await close?.();
  await auth?.close();
});

describe('RFC 8693 requested_token_type urn:ietf:params:oauth:token-type:jwt', () => {
  it('§2.1/§2.2.1: jwt asked of an identity that mints JWTs issues an RFC 9068 JWT access token, issued_token_type jwt', async () => {
    const res = await postForm(
      url,
      TOKEN,
      await form({ client_id: 'jwt-id', requested_token_type: TOKEN_TYPE.jwt }),
    );
    expect(res.status).toBe(200);
    expect(res.json.issued_token_type).toBe(TOKEN_TYPE.jwt);
    expect(res.json.token_type).toBe('Bearer');
    expect(res.json.access_token).toMatch(JWT_SHAPE);
    expect(decodeProtectedHeader(res.json.access_token).typ).toBe('at+jwt');
    const context = await auth.authenticate(res.json.access_token);
    expect(context.identityId).toBe('jwt-id');
  });

  it('§2.1: jwt works with the identity selected by the token (no client_id) too', async () => {
    const res = await postForm(url, TOKEN, await form({ requested_token_type: TOKEN_TYPE.jwt }));
    expect(res.status).toBe(200);
    expect(res.json.issued_token_type).toBe(TOKEN_TYPE.jwt);
    expect((await auth.authenticate(res.json.access_token)).identityId).toBe('jwt-id');
  });

  it('§2.2.2: jwt asked of an identity that mints opaque tokens is invalid_request (grant_format_not_allowed), and no token is issued', async () => {
    const before = rec.events.filter((e) => e.type === 'login.success').length;
    const res = await postForm(
      url,
      TOKEN,
      await form({ client_id: 'opaque-id', requested_token_type: TOKEN_TYPE.jwt }, { sub: OPAQUE_SUBJECT }),
    );
    expectOAuthError(res, 'invalid_request', 'grant_format_not_allowed');
    expect(rec.events.filter((e) => e.type === 'login.success').length).toBe(before);
  });

  it('§2.1/§2.2.1: access_token (or no requested_token_type) keeps the identity format, issued_token_type access_token', async () => {
    const jwtDefault = await postForm(
      url,
      TOKEN,
      await form({ client_id: 'jwt-id', requested_token_type: TOKEN_TYPE.accessToken }),
    );
    expect(jwtDefault.json.issued_token_type).toBe(TOKEN_TYPE.accessToken);
    expect(jwtDefault.json.access_token).toMatch(JWT_SHAPE);
    const opaque = await postForm(
      url,
      TOKEN,
      await form({ client_id: 'opaque-id' }, { sub: OPAQUE_SUBJECT }),
    );
    expect(opaque.status).toBe(200);
    expect(opaque.json.issued_token_type).toBe(TOKEN_TYPE.accessToken);
    expect(opaque.json.access_token).not.toMatch(JWT_SHAPE);
    expect((await auth.authenticate(opaque.json.access_token)).identityId).toBe('opaque-id');
  });

  it('§2.1: other token types (refresh_token, id_token, saml2) stay invalid_request unsupported_token_type', async () => {
    for (const type of [
      'urn:ietf:params:oauth:token-type:refresh_token',
      TOKEN_TYPE.idToken,
      'urn:ietf:params:oauth:token-type:saml2',
    ]) {
      const res = await postForm(url, TOKEN, await form({ client_id: 'jwt-id', requested_token_type: type }));
      expectOAuthError(res, 'invalid_request', 'unsupported_token_type');
    }
  });

  it('RFC 8693 §2.2.1 through oauth4webapi (a real client): requested_token_type jwt, issued_token_type jwt', async () => {
    const as: oauth.AuthorizationServer = { issuer: OUR_ISSUER, token_endpoint: `${url}${TOKEN}` };
    const client: oauth.Client = { client_id: 'jwt-id' };
    const response = await oauth.genericTokenEndpointRequest(
      as,
      client,
      oauth.None(),
      TOKEN_EXCHANGE_GRANT,
      {
        subject_token: await idpToken(),
        subject_token_type: TOKEN_TYPE.jwt,
        requested_token_type: TOKEN_TYPE.jwt,
      },
      { [oauth.allowInsecureRequests]: true },
    );
    const result = await oauth.processGenericTokenEndpointResponse(as, client, response);
    expect(result.issued_token_type).toBe(TOKEN_TYPE.jwt);
    expect((await auth.authenticate(result.access_token)).identityId).toBe('jwt-id');
  });
});
