import type { AddressInfo } from 'node:net';
import express from 'express';
import * as oauth from 'oauth4webapi';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { oidcAuthRouter, oidcIntrospectionRouter, requireAccessToken } from '../../adapters/express/index.js';
import { TOKEN_EXCHANGE_GRANT, TOKEN_TYPE, createOidcAuth, type OidcAuth } from '../../src/index.js';
import { FakeClock, Recorder, SIGNING_KEYS, githubIdentity } from '../helpers/engine.js';
import { postForm, postJson, request, type RawResponse } from '../helpers/http.js';
import { githubClaims, makeKey, sign } from '../helpers/jwt.js';

const PREFIX = '/api/v1/auth';
const TOKEN = `${PREFIX}/oauth/token`;
const INTROSPECT = `${PREFIX}/oauth/introspect`;
const REVOKE = `${PREFIX}/oauth/revoke`;
const SCOPED_SUBJECT = 'repo:acme-corp/billing:ref:refs/heads/main';
const RS_ID = 'resource-server';
const RS_SECRET = 'a-resource-server-secret';
/** RFC 6749 §2.3.1: HTTP Basic with the client id and secret each form-urlencoded first. */
function basicCredentials(header: string): string {
  const [id = '', secret = ''] = Buffer.from(header.slice(6), 'base64').toString('utf8').split(':');
  const decode = (text: string) => decodeURIComponent(text.replace(/\+/g, ' '));
  return `${decode(id)}:${decode(secret)}`;
}

const key = makeKey('RS256');
const clock = new FakeClock();
const rec = new Recorder();
let auth: OidcAuth;
let url: string;
let close: () => Promise<void>;
let adminToken: string;

const idpToken = (claims = {}) => sign(key, githubClaims(clock.ms, claims));
const scopedToken = () => idpToken({ sub: SCOPED_SUBJECT });
const exchangeForm = async (fields: Record<string, string> = {}) => ({
  grant_type: TOKEN_EXCHANGE_GRANT,
  subject_token: await scopedToken(),
  subject_token_type: TOKEN_TYPE.jwt,
  ...fields,
});

function expectOAuthError(res: RawResponse, status: number, error: string, reasonCode?: string): void {
  expect(res.status).toBe(status);
  expect(res.headers['content-type']).toMatch(/application\/json/);
  expect(res.headers['cache-control']).toBe('no-store');
  expect(res.json.error).toBe(error);
  expect(typeof res.json.error_description).toBe('string');
  if (reasonCode) expect(res.json.reasonCode).toBe(reasonCode);
}

beforeAll(async () => {
  auth = createOidcAuth({
    identities: [
      githubIdentity(key, { metadata: { role: 'admin' } }),
      githubIdentity(key, {
        identityId: 'billing',
        boundSubject: SCOPED_SUBJECT,
        scopes: ['secrets:read', 'secrets:write', 'deploy'],
        accessTokenAudiences: ['https://api.example', 'https://other.example/'],
        accessTokenTTL: 600,
        accessTokenMaxTTL: 1200,
      }),
    ],
    signingKeys: SIGNING_KEYS,
    clock: clock.now,
    onEvent: rec.onEvent,
    logger: rec.logger,
  });
  const app = express();
  app.use(PREFIX, oidcAuthRouter(auth));
  app.use(
    PREFIX,
    oidcIntrospectionRouter(auth, {
      // Either an admin access token, or the resource server's client credentials (HTTP Basic).
      guard: (req, res, next) => {
        if (req.headers.authorization?.startsWith('Basic ')) {
          if (basicCredentials(req.headers.authorization) === `${RS_ID}:${RS_SECRET}`) return next();
          return void res.status(401).set('www-authenticate', 'Basic').json({ error: 'invalid_client' });
        }
        return requireAccessToken(auth, { authorize: (a) => a.metadata.role === 'admin' })(req, res, next);
      },
    }),
  );
  const server = app.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  close = () => new Promise<void>((resolve) => server.close(() => resolve()));
  adminToken = (await auth.login({ identityId: 'gh-deployer', jwt: await idpToken() })).accessToken;
});

afterAll(async () => {
  await close?.();
  await auth?.close();
});

describe('oauth4webapi (a real OAuth client, used as its docs say)', () => {
  const as = (): oauth.AuthorizationServer => ({
    issuer: `${url}${PREFIX}`,
    token_endpoint: `${url}${TOKEN}`,
    introspection_endpoint: `${url}${INTROSPECT}`,
    revocation_endpoint: `${url}${REVOKE}`,
  });
  const client: oauth.Client = { client_id: 'billing' };
  // The introspecting resource server authenticates as a client (RFC 7662 §2.1), checked by the host's guard.
  const resourceServer: oauth.Client = { client_id: RS_ID };
  const rsAuth = () => oauth.ClientSecretBasic(RS_SECRET);
  // oauth4webapi refuses http:// unless told; its documented option, for a test server on loopback.
  const insecure = { [oauth.allowInsecureRequests]: true } as const;

  it('RFC 8693 §2.1/§2.2.1: genericTokenEndpointRequest + processGenericTokenEndpointResponse', async () => {
    const response = await oauth.genericTokenEndpointRequest(
      as(),
      client,
      oauth.None(),
      TOKEN_EXCHANGE_GRANT,
      {
        subject_token: await scopedToken(),
        subject_token_type: TOKEN_TYPE.jwt,
        scope: 'secrets:read',
        audience: 'https://api.example',
      },
      insecure,
    );
    const result = await oauth.processGenericTokenEndpointResponse(as(), client, response);
    expect(result.token_type).toBe('bearer'); // oauth4webapi lower-cases it
    expect(result.issued_token_type).toBe(TOKEN_TYPE.accessToken);
    expect(result.expires_in).toBe(600);
    expect(result.scope).toBeUndefined(); // granted as requested: RFC 8693 §2.2.1 leaves it out
    const context = await auth.authenticate(result.access_token);
    expect(context.identityId).toBe('billing');
    expect(context.scope).toBe('secrets:read');
    expect(context.audience).toEqual(['https://api.example']);
  });

  it('RFC 8693 §2.2.2: an invalid subject token is an OAuth error the client library raises as invalid_grant', async () => {
    const response = await oauth.genericTokenEndpointRequest(
      as(),
      client,
      oauth.None(),
      TOKEN_EXCHANGE_GRANT,
      { subject_token: 'a.b.c', subject_token_type: TOKEN_TYPE.jwt },
      insecure,
    );
    const error = await oauth
      .processGenericTokenEndpointResponse(as(), client, response)
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(oauth.ResponseBodyError);
    expect((error as oauth.ResponseBodyError).error).toBe('invalid_grant');
    expect((error as oauth.ResponseBodyError).status).toBe(400);
  });

  it('RFC 7662 §2.1/§2.2: introspectionRequest + processIntrospectionResponse, active then inactive after RFC 7009 revocationRequest', async () => {
    const issued = await auth.login({
      identityId: 'billing',
      jwt: await scopedToken(),
      grant: { scopes: ['deploy'] },
    });
    const introspect = async () =>
      oauth.processIntrospectionResponse(
        as(),
        resourceServer,
        await oauth.introspectionRequest(as(), resourceServer, rsAuth(), issued.accessToken, insecure),
      );
    const live = await introspect();
    expect(live.active).toBe(true);
    expect(live.client_id).toBe('billing');
    expect(live.sub).toBe('billing');
    expect(live.scope).toBe('deploy');
    expect(live.token_type).toBe('Bearer');
    expect(live.exp).toBe(Math.floor(issued.expiresAt / 1000));
    expect(live.iat).toBe(Math.floor(clock.ms / 1000));
    const wrongSecret = await oauth.introspectionRequest(
      as(),
      resourceServer,
      oauth.ClientSecretBasic('wrong'),
      issued.accessToken,
      insecure,
    );
    expect(wrongSecret.status).toBe(401);
    const revoked = await oauth.revocationRequest(
      as(),
      resourceServer,
      rsAuth(),
      issued.accessToken,
      insecure,
    );
    await expect(oauth.processRevocationResponse(revoked)).resolves.toBeUndefined();
    expect(await introspect()).toEqual({ active: false });
  });
});

describe('RFC 8693 token exchange: parameters (§2.1)', () => {
  it('§2.1: the identity is named by client_id; the default scope is every scope it declares, returned because none was requested', async () => {
    const res = await postForm(url, TOKEN, await exchangeForm({ client_id: 'billing' }));
    expect(res.status).toBe(200);
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.headers['pragma']).toBe('no-cache');
    expect(Object.keys(res.json).sort()).toEqual([
      'access_token',
      'expires_in',
      'issued_token_type',
      'scope',
      'token_type',
    ]);
    expect(res.json.scope).toBe('secrets:read secrets:write deploy');
    expect(res.json.token_type).toBe('Bearer');
  });

  it('§2.1: without client_id the identity is selected by the token issuer and subject', async () => {
    const res = await postForm(url, TOKEN, await exchangeForm());
    expect(res.status).toBe(200);
    expect((await auth.authenticate(res.json.access_token)).identityId).toBe('billing');
  });

  it('§2.1: subject_token_type id_token is taken as well as jwt', async () => {
    const res = await postForm(url, TOKEN, await exchangeForm({ subject_token_type: TOKEN_TYPE.idToken }));
    expect(res.status).toBe(200);
  });

  it('§2.1: requested_token_type access_token is honoured; a type other than access_token or jwt is invalid_request', async () => {
    const ok = await postForm(
      url,
      TOKEN,
      await exchangeForm({ requested_token_type: TOKEN_TYPE.accessToken }),
    );
    expect(ok.status).toBe(200);
    expect(ok.json.issued_token_type).toBe(TOKEN_TYPE.accessToken);
    const refused = await postForm(
      url,
      TOKEN,
      await exchangeForm({ requested_token_type: 'urn:ietf:params:oauth:token-type:refresh_token' }),
    );
    expectOAuthError(refused, 400, 'invalid_request', 'unsupported_token_type');
  });

  it('§2.1: a subject_token_type other than jwt / id_token is invalid_request', async () => {
    const res = await postForm(
      url,
      TOKEN,
      await exchangeForm({ subject_token_type: TOKEN_TYPE.accessToken }),
    );
    expectOAuthError(res, 400, 'invalid_request', 'unsupported_token_type');
  });

  it('§2.1: actor_token (delegation) is refused as invalid_request', async () => {
    const res = await postForm(
      url,
      TOKEN,
      await exchangeForm({ actor_token: await scopedToken(), actor_token_type: TOKEN_TYPE.jwt }),
    );
    expectOAuthError(res, 400, 'invalid_request', 'invalid_request');
  });

  it('§2.1: several audience and resource values are taken (each must be allowed)', async () => {
    const body =
      new URLSearchParams(await exchangeForm({ client_id: 'billing' })).toString() +
      '&audience=https%3A%2F%2Fapi.example&resource=https%3A%2F%2Fother.example%2F';
    const res = await request(url, 'POST', TOKEN, {
      headers: ['content-type', 'application/x-www-form-urlencoded'],
      body,
    });
    expect(res.status).toBe(200);
    const context = await auth.authenticate(res.json.access_token);
    expect(context.audience).toEqual(['https://api.example', 'https://other.example/']);
  });
});

describe('RFC 6749 §5.2 error responses of the token endpoint', () => {
  it('§5.2 invalid_request: each required parameter missing', async () => {
    for (const missing of ['grant_type', 'subject_token', 'subject_token_type']) {
      const fields = await exchangeForm();
      delete (fields as Record<string, string>)[missing];
      const res = await postForm(url, TOKEN, fields);
      expectOAuthError(res, 400, 'invalid_request', 'invalid_request');
      expect(res.json.error_description).toBe(`${missing} is required`);
    }
  });

  it('§5.2 invalid_request (RFC 6749 §3.2): a repeated parameter', async () => {
    const body = new URLSearchParams(await exchangeForm()).toString() + '&subject_token_type=x';
    const res = await request(url, 'POST', TOKEN, {
      headers: ['content-type', 'application/x-www-form-urlencoded'],
      body,
    });
    expectOAuthError(res, 400, 'invalid_request');
    expect(res.json.error_description).toBe('subject_token_type must not be repeated');
  });

  it('§5.2 unsupported_grant_type: another grant type', async () => {
    for (const grant_type of ['client_credentials', 'authorization_code', 'password']) {
      const res = await postForm(url, TOKEN, await exchangeForm({ grant_type }));
      expectOAuthError(res, 400, 'unsupported_grant_type', 'unsupported_grant_type');
    }
  });

  it('§5.2 invalid_scope: a scope the identity does not declare, a malformed scope', async () => {
    const notDeclared = await postForm(url, TOKEN, await exchangeForm({ scope: 'secrets:read admin' }));
    expectOAuthError(notDeclared, 400, 'invalid_scope', 'scope_not_allowed');
    const malformed = await postForm(url, TOKEN, await exchangeForm({ scope: 'a  b' }));
    expectOAuthError(malformed, 400, 'invalid_scope', 'scope_not_allowed');
    const quote = await postForm(url, TOKEN, await exchangeForm({ scope: 'a"b' }));
    expectOAuthError(quote, 400, 'invalid_scope', 'scope_not_allowed');
  });

  it('§5.2 invalid_client: client credentials this endpoint does not check are refused', async () => {
    const res = await postForm(
      url,
      TOKEN,
      await exchangeForm({ client_id: 'billing', client_secret: 's3cret' }),
    );
    expectOAuthError(res, 401, 'invalid_client');
    expect(res.text).not.toContain('s3cret');
  });

  it('§5.2 invalid_grant: a forged, expired or unaccepted subject token; answers never echo it', async () => {
    const other = makeKey('RS256');
    const forged = await sign(other, githubClaims(clock.ms, { sub: SCOPED_SUBJECT }));
    const expired = await idpToken({ sub: SCOPED_SUBJECT, iat: 1, nbf: 1, exp: 2 });
    const wrongSubject = await idpToken({ sub: 'repo:evil/x:ref:refs/heads/main' });
    for (const subject_token of [forged, expired, wrongSubject, 'garbage']) {
      const res = await postForm(url, TOKEN, await exchangeForm({ client_id: 'billing', subject_token }));
      expectOAuthError(res, 400, 'invalid_grant');
      expect(res.text).not.toContain(subject_token.slice(-20));
    }
  });
});

describe('RFC 8693 §2.2.2 errors', () => {
  it('§2.2.2 invalid_target: an audience or resource the identity does not allow, or a malformed resource', async () => {
    const audience = await postForm(url, TOKEN, await exchangeForm({ audience: 'https://evil.example' }));
    expectOAuthError(audience, 400, 'invalid_target', 'target_not_allowed');
    const resource = await postForm(url, TOKEN, await exchangeForm({ resource: 'not a uri' }));
    expectOAuthError(resource, 400, 'invalid_target', 'target_not_allowed');
    const fragment = await postForm(url, TOKEN, await exchangeForm({ resource: 'https://api.example#x' }));
    expectOAuthError(fragment, 400, 'invalid_target', 'target_not_allowed');
  });

  it('§2.2.2 invalid_grant: an identity with no declared audiences refuses every audience as invalid_target, never widens', async () => {
    const res = await postForm(url, TOKEN, {
      grant_type: TOKEN_EXCHANGE_GRANT,
      subject_token: await idpToken(),
      subject_token_type: TOKEN_TYPE.jwt,
      client_id: 'gh-deployer',
      audience: 'https://api.example',
    });
    expectOAuthError(res, 400, 'invalid_target', 'target_not_allowed');
  });
});

describe('downscoping only narrows', () => {
  it('requested_expires_in shorter than the identity TTL shortens the token, and caps its renewal; longer is capped at the TTL', async () => {
    const short = await postForm(url, TOKEN, await exchangeForm({ requested_expires_in: '60' }));
    expect(short.status).toBe(200);
    expect(short.json.expires_in).toBe(60);
    // Its max TTL is the requested one too: a renewal cannot stretch it back to the identity's.
    await expect(auth.renew(short.json.access_token)).rejects.toMatchObject({ code: 'max_ttl_reached' });
    const long = await postForm(url, TOKEN, await exchangeForm({ requested_expires_in: '999999' }));
    expect(long.json.expires_in).toBe(600);
    for (const bad of ['0', '-5', '1.5', 'abc', '1e3']) {
      const res = await postForm(url, TOKEN, await exchangeForm({ requested_expires_in: bad }));
      expectOAuthError(res, 400, 'invalid_request');
    }
  });

  it('a requested subset of scopes is what the token carries', async () => {
    const res = await postForm(url, TOKEN, await exchangeForm({ scope: 'deploy secrets:read' }));
    expect(res.status).toBe(200);
    expect(res.json.scope).toBeUndefined();
    expect((await auth.authenticate(res.json.access_token)).scope).toBe('deploy secrets:read');
  });

  it('an identity without scopes grants none and refuses any', async () => {
    const base = {
      grant_type: TOKEN_EXCHANGE_GRANT,
      subject_token: await idpToken(),
      subject_token_type: TOKEN_TYPE.jwt,
      client_id: 'gh-deployer',
    };
    const plain = await postForm(url, TOKEN, base);
    expect(plain.status).toBe(200);
    expect(plain.json.scope).toBeUndefined();
    expect((await auth.authenticate(plain.json.access_token)).scope).toBeUndefined();
    const res = await postForm(url, TOKEN, { ...base, scope: 'secrets:read' });
    expectOAuthError(res, 400, 'invalid_scope', 'scope_not_allowed');
  });
});

describe('request shape', () => {
  it('RFC 8693 §2.1 takes application/x-www-form-urlencoded only: JSON and others are 415 invalid_request', async () => {
    const json = await postJson(url, TOKEN, await exchangeForm());
    expectOAuthError(json, 415, 'invalid_request', 'unsupported_media_type');
    const text = await request(url, 'POST', TOKEN, { headers: ['content-type', 'text/plain'], body: 'x' });
    expectOAuthError(text, 415, 'invalid_request', 'unsupported_media_type');
  });

  it('a body over the limit is 413 invalid_request', async () => {
    const res = await postForm(url, TOKEN, await exchangeForm({ subject_token: 'a'.repeat(70_000) }));
    expectOAuthError(res, 413, 'invalid_request', 'body_too_large');
  });

  it('an oversized subject token is invalid_grant token_too_large (after the signature could not verify: invalid_credentials)', async () => {
    const res = await postForm(url, TOKEN, await exchangeForm({ subject_token: 'a.'.repeat(9000) + 'a' }));
    expectOAuthError(res, 400, 'invalid_grant');
    expect(['token_too_large', 'invalid_credentials']).toContain(res.json.reasonCode);
  });
});

describe('RFC 7662 introspection and RFC 7009 revocation', () => {
  const asAdmin = (fields: Record<string, string>, path: string) =>
    postForm(url, path, fields, ['authorization', `Bearer ${adminToken}`]);

  it('refuse to mount without a guard', () => {
    // @ts-expect-error: guard is required
    expect(() => oidcIntrospectionRouter(auth, {})).toThrow(/guard/);
  });

  it('the host guard runs first: no token 401, a non-admin token 403, and nothing is revoked', async () => {
    const issued = await auth.login({ identityId: 'billing', jwt: await scopedToken() });
    const none = await postForm(url, INTROSPECT, { token: issued.accessToken });
    expect(none.status).toBe(401);
    const notAdmin = await postForm(url, REVOKE, { token: issued.accessToken }, [
      'authorization',
      `Bearer ${issued.accessToken}`,
    ]);
    expect(notAdmin.status).toBe(403);
    expect((await asAdmin({ token: issued.accessToken }, INTROSPECT)).json.active).toBe(true);
  });

  it('RFC 7662 §2.1: token is required (invalid_request); §2.2: a live token is active with its members', async () => {
    expectOAuthError(await asAdmin({}, INTROSPECT), 400, 'invalid_request');
    const issued = await auth.login({
      identityId: 'billing',
      jwt: await scopedToken(),
      grant: { scopes: ['deploy'], audience: ['https://api.example'] },
    });
    const res = await asAdmin({ token: issued.accessToken, token_type_hint: 'access_token' }, INTROSPECT);
    expect(res.status).toBe(200);
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.json).toEqual({
      active: true,
      scope: 'deploy',
      client_id: 'billing',
      token_type: 'Bearer',
      exp: Math.floor(issued.expiresAt / 1000),
      iat: Math.floor(clock.ms / 1000),
      sub: 'billing',
      aud: 'https://api.example',
    });
  });

  it('RFC 7662 §2.2: anything not live is exactly { active: false } (forged, garbage, expired, revoked, used up, identity revoked), and introspection counts no use', async () => {
    const forged =
      (await auth.login({ identityId: 'billing', jwt: await scopedToken() })).accessToken.slice(0, -2) + 'xx';
    const expired = await auth.login({
      identityId: 'billing',
      jwt: await scopedToken(),
      grant: { ttlSeconds: 1 },
    });
    const revoked = await auth.login({ identityId: 'billing', jwt: await scopedToken() });
    await auth.revoke(revoked.accessToken);
    const limited = createOidcAuth({
      identities: [githubIdentity(key, { identityId: 'one-use', accessTokenNumUsesLimit: 1 })],
      signingKeys: SIGNING_KEYS,
      clock: clock.now,
    });
    const oneUse = await limited.login({ identityId: 'one-use', jwt: await idpToken() });
    expect(await limited.introspect(oneUse.accessToken)).toBeDefined();
    expect(await limited.introspect(oneUse.accessToken)).toBeDefined(); // no use counted
    await limited.authenticate(oneUse.accessToken);
    expect(await limited.introspect(oneUse.accessToken)).toBeUndefined();
    await limited.close();
    clock.advance(2000);
    const identityRevoked = await auth.login({ identityId: 'billing', jwt: await scopedToken() });
    for (const token of [forged, 'garbage', expired.accessToken, revoked.accessToken]) {
      const res = await asAdmin({ token }, INTROSPECT);
      expect(res.status).toBe(200);
      expect(res.json).toEqual({ active: false });
    }
    expect((await asAdmin({ token: identityRevoked.accessToken }, INTROSPECT)).json.active).toBe(true);
    await auth.revokeIdentity('billing');
    expect((await asAdmin({ token: identityRevoked.accessToken }, INTROSPECT)).json).toEqual({
      active: false,
    });
  });

  it('RFC 7009 §2.1: token is required; token_type_hint (any value) is accepted; §2.2: 200 for revoked and for unknown tokens', async () => {
    expectOAuthError(await asAdmin({}, REVOKE), 400, 'invalid_request');
    const issued = await auth.login({ identityId: 'gh-deployer', jwt: await idpToken() });
    for (const token_type_hint of ['access_token', 'refresh_token', 'something_else']) {
      const res = await asAdmin({ token: 'not-one-of-ours', token_type_hint }, REVOKE);
      expect(res.status).toBe(200);
    }
    const res = await asAdmin({ token: issued.accessToken, token_type_hint: 'refresh_token' }, REVOKE);
    expect(res.status).toBe(200);
    expect(res.headers['cache-control']).toBe('no-store');
    await expect(auth.authenticate(issued.accessToken)).rejects.toMatchObject({ code: 'token_revoked' });
    expect((await asAdmin({ token: issued.accessToken }, REVOKE)).status).toBe(200);
  });

  it('RFC 7009 §2.2.1 / RFC 7662: a token store that fails answers 503 temporarily_unavailable, never active and never a silent 200', async () => {
    const down = createOidcAuth({
      identities: [githubIdentity(key)],
      signingKeys: SIGNING_KEYS,
      clock: clock.now,
    });
    const issued = await down.login({ identityId: 'gh-deployer', jwt: await idpToken() });
    const fail = () => Promise.reject(new Error('connection refused'));
    Object.assign(down.tokens, { get: fail, revoke: fail });
    const { oauthIntrospectAnswer, oauthRevokeAnswer } = await import('../../src/index.js');
    const form = 'application/x-www-form-urlencoded';
    const introspected = await oauthIntrospectAnswer(down, {
      contentType: form,
      body: { token: issued.accessToken },
    });
    expect(introspected.status).toBe(503);
    expect(introspected.body).toMatchObject({
      error: 'temporarily_unavailable',
      reasonCode: 'store_unavailable',
    });
    const revoked = await oauthRevokeAnswer(down, { contentType: form, body: { token: issued.accessToken } });
    expect(revoked.status).toBe(503);
    await down.close();
  });
});
