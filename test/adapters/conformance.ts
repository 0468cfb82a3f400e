import { createHash } from 'node:crypto';
import {
  SignJWT,
  calculateJwkThumbprint,
  decodeJwt,
  exportJWK,
  generateKeyPair,
  type CryptoKey,
  type JWK,
} from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { OidcAuth } from '../../src/index.js';
import { FakeClock, Recorder, SIGNING_KEYS, githubIdentity } from '../helpers/engine.js';
import { getWith, postForm, postJson, request, type RawResponse } from '../helpers/http.js';
import { githubClaims, makeKey, sign } from '../helpers/jwt.js';
import { describeOAuthConformance, oauthIdentities } from '../oauth/conformance-cases.js';
import { dpopClientCases } from '../client/conformance-dpop.js';
import {
  bodyTooLarge,
  createOidcAuth,
  errorAnswer,
  guard,
  loginAnswer,
  parseRequestBody,
  renewAnswer,
  unsupportedMediaType,
  type HttpAnswer,
} from '../../src/index.js';

/** A host app built with one adapter, listening on 127.0.0.1. */
export interface MountedApp {
  url: string;
  close(): Promise<void>;
}

/**
 * Build a host app with the adapter under test:
 * - the auth router under `/api/v1/auth`;
 * - `GET /api/v3/secrets/raw` behind the guard, answering `{ identityId, clientIp, metadata }` from the auth context;
 * - `GET /admin` behind the guard with an authorize predicate `metadata.role === 'admin'`;
 * - the introspection router (`/oauth/introspect`, `/oauth/revoke`) under `/api/v1/auth`, its guard
 *   the bearer guard with `authorize: metadata.role === 'introspector'`;
 * - the framework's proxy trust turned on for loopback when `trustProxy` is true.
 */
export type Mount = (auth: OidcAuth, options: { trustProxy: boolean }) => Promise<MountedApp>;

const LOGIN = '/api/v1/auth/oidc-auth/login';
const RENEW = '/api/v1/auth/token/renew';
const REVOKE = '/api/v1/auth/token/revoke';
const SECRETS = '/api/v3/secrets/raw?environment=prod&workspaceSlug=payments';
/** The issuer of the conformance engine (the metadata and JWT `iss`; not the test server's URL). */
const TOKEN_ISSUER = 'https://app.example/api/v1/auth';

function expectErrorShape(res: RawResponse, status: number, reasonCode: string): void {
  expect(res.status).toBe(status);
  expect(res.headers['content-type']).toMatch(/application\/json/);
  expect(Object.keys(res.json).sort()).toEqual(['error', 'message', 'reasonCode', 'reqId', 'statusCode']);
  expect(res.json.statusCode).toBe(status);
  expect(res.json.reasonCode).toBe(reasonCode);
}

/** Strip the per-request id so answers can be compared byte for byte. */
const comparable = (res: RawResponse) => ({
  status: res.status,
  body: { ...res.json, reqId: undefined },
  challenge: res.headers['www-authenticate'],
  retryAfter: res.headers['retry-after'],
});

/** Every adapter runs these same HTTP cases. */
export function describeAdapterConformance(name: string, mount: Mount): void {
  describe(`${name} adapter conformance`, () => {
    const key = makeKey('RS256');
    const clock = new FakeClock();
    const rec = new Recorder();
    let auth: OidcAuth;
    let app: MountedApp;
    let proxied: MountedApp;
    const bearer = (token: string) => ['authorization', `Bearer ${token}`];
    const idpToken = (claims = {}) => sign(key, githubClaims(clock.ms, claims));

    async function login(identityId = 'gh-deployer', claims = {}): Promise<string> {
      const res = await postJson(app.url, LOGIN, { identityId, jwt: await idpToken(claims) });
      expect(res.status).toBe(200);
      return res.json.accessToken;
    }

    beforeAll(async () => {
      auth = createOidcAuth({
        identities: [
          githubIdentity(key),
          githubIdentity(key, {
            identityId: 'limited',
            accessTokenNumUsesLimit: 1,
            metadata: { role: 'admin' },
          }),
          githubIdentity(key, { identityId: 'private-net', accessTokenTrustedIps: ['10.0.0.0/8'] }),
          githubIdentity(key, {
            identityId: 'loopback-only',
            accessTokenTrustedIps: ['127.0.0.1/32', '::1/128'],
          }),
          githubIdentity(key, { identityId: 'short', accessTokenTTL: 60, accessTokenMaxTTL: 120 }),
          ...oauthIdentities((overrides) => githubIdentity(key, overrides)),
          githubIdentity(key, { identityId: 'jwt-deployer', accessTokenFormat: 'jwt' }),
        ],
        signingKeys: SIGNING_KEYS,
        issuer: TOKEN_ISSUER,
        clock: clock.now,
        onEvent: rec.onEvent,
        logger: rec.logger,
      });
      app = await mount(auth, { trustProxy: false });
      proxied = await mount(auth, { trustProxy: true });
    });
    afterAll(async () => {
      await app?.close();
      await proxied?.close();
      await auth?.close();
    });

    describe('login', () => {
      it('logs in with a JSON body (Infisical answer shape, no-store)', async () => {
        const res = await postJson(app.url, LOGIN, { identityId: 'gh-deployer', jwt: await idpToken() });
        expect(res.status).toBe(200);
        expect(Object.keys(res.json).sort()).toEqual([
          'accessToken',
          'accessTokenMaxTTL',
          'expiresIn',
          'tokenType',
        ]);
        expect(res.json).toMatchObject({ expiresIn: 7200, accessTokenMaxTTL: 86400, tokenType: 'Bearer' });
        expect(res.headers['cache-control']).toBe('no-store');
      });

      it('logs in with a form-urlencoded body (Infisical GitHub action)', async () => {
        const res = await postForm(app.url, LOGIN, { identityId: 'gh-deployer', jwt: await idpToken() });
        expect(res.status).toBe(200);
        expect(res.json.tokenType).toBe('Bearer');
      });

      it('treats organizationSlug "" as absent (Infisical Go SDK)', async () => {
        const res = await postJson(app.url, LOGIN, {
          identityId: 'gh-deployer',
          jwt: await idpToken(),
          organizationSlug: '',
        });
        expect(res.status).toBe(200);
      });

      it('HTTP-01: malformed or truncated JSON is 422 ValidationFailure', async () => {
        for (const body of ['{"identityId":', 'not json', '[1,2]', '"str"', 'null']) {
          const res = await request(app.url, 'POST', LOGIN, {
            headers: ['content-type', 'application/json'],
            body,
          });
          expectErrorShape(res, 422, 'invalid_body');
          expect(res.json.error).toBe('ValidationFailure');
        }
      });

      it('HTTP-02: a wrong content type is 415', async () => {
        for (const type of ['text/plain', 'multipart/form-data; boundary=x', 'application/xml']) {
          const res = await request(app.url, 'POST', LOGIN, {
            headers: ['content-type', type],
            body: JSON.stringify({ identityId: 'gh-deployer', jwt: 'x' }),
          });
          expectErrorShape(res, 415, 'unsupported_media_type');
        }
        const none = await request(app.url, 'POST', LOGIN, { body: '{}' });
        expectErrorShape(none, 415, 'unsupported_media_type');
      });

      it('HTTP-03: missing fields and wrong types are 422 naming the field, never echoing values', async () => {
        const cases: Array<[unknown, string]> = [
          [{ jwt: 'x' }, 'identityId'],
          [{ identityId: 'gh-deployer' }, 'jwt'],
          [{ identityId: 123, jwt: 'x' }, 'identityId'],
          [{ identityId: 'gh-deployer', jwt: [] }, 'jwt'],
          [{ identityId: null, jwt: null }, 'identityId'],
          [{ identityId: 'gh-deployer', jwt: 'x', organizationSlug: 5 }, 'organizationSlug'],
        ];
        for (const [body, fieldName] of cases) {
          const res = await postJson(app.url, LOGIN, body);
          expectErrorShape(res, 422, 'invalid_body');
          expect(res.json.message).toContain(fieldName);
        }
      });

      it('HTTP-04: malformed identity ids are refused before any lookup', async () => {
        for (const identityId of ['x'.repeat(10_000), "' OR 1=1 --", '../etc/passwd', '__proto__', 'a b']) {
          const res = await postJson(app.url, LOGIN, { identityId, jwt: await idpToken() });
          expectErrorShape(res, 422, 'invalid_body');
          expect(res.text).not.toContain('OR 1=1');
        }
      });

      it('HTTP-05: a body over the limit is 413', async () => {
        const res = await postJson(app.url, LOGIN, { identityId: 'gh-deployer', jwt: 'a'.repeat(200_000) });
        expectErrorShape(res, 413, 'body_too_large');
        const chunked = await request(app.url, 'POST', LOGIN, {
          headers: ['content-type', 'application/json', 'transfer-encoding', 'chunked'],
          body: JSON.stringify({ identityId: 'gh-deployer', jwt: 'a'.repeat(200_000) }),
        });
        expectErrorShape(chunked, 413, 'body_too_large');
      });

      it('HTTP-06: prototype keys and unknown fields neither pollute nor break', async () => {
        const body = `{"identityId":"gh-deployer","jwt":${JSON.stringify(await idpToken())},"__proto__":{"polluted":1},"constructor":{"prototype":{"polluted":1}},"extra":1}`;
        const res = await request(app.url, 'POST', LOGIN, {
          headers: ['content-type', 'application/json'],
          body,
        });
        expect(res.status).toBe(200);
        expect(({} as Record<string, unknown>).polluted).toBeUndefined();
      });

      it('HTTP-07: credentials in a GET query string are never accepted', async () => {
        const res = await request(app.url, 'GET', `${LOGIN}?identityId=gh-deployer&jwt=${await idpToken()}`);
        expect([404, 405]).toContain(res.status);
      });

      it('every login reason code reaches the caller once the signature verified', async () => {
        const cases: Array<[Record<string, unknown>, string]> = [
          [{ sub: 'repo:acme-corp/other:ref:refs/heads/main' }, 'subject_not_allowed'],
          [{ aud: 'sts.amazonaws.com' }, 'audience_not_allowed'],
          [{ repository_id: '1' }, 'claim_not_allowed'],
          [{ repository_id: undefined }, 'claim_missing'],
          [
            { exp: Math.floor(clock.ms / 1000) - 3600, iat: Math.floor(clock.ms / 1000) - 4000 },
            'token_expired',
          ],
        ];
        for (const [claims, reason] of cases) {
          const res = await postJson(app.url, LOGIN, {
            identityId: 'gh-deployer',
            jwt: await idpToken(claims),
          });
          expectErrorShape(res, 401, reason);
          expect(res.json.error).toBe('UnauthorizedError');
        }
        // An issuer the identity does not bind is refused before any signature check (#13.2): the
        // uniform answer, with the detailed reason in the event.
        const foreign = await postJson(app.url, LOGIN, {
          identityId: 'gh-deployer',
          jwt: await idpToken({ iss: 'https://evil.example' }),
        });
        expectErrorShape(foreign, 401, 'invalid_credentials');
        expect(rec.last('login.failure')?.reasonCode).toBe('issuer_mismatch');
      });

      it('#13.15 the README promises exactly what the code does: every login 401 carries a WWW-Authenticate challenge (RFC 9110 §11.6.1, RFC 6750 §3), the same one whatever the reason', async () => {
        const challenge = 'Bearer realm="oidc-machine-auth", error="invalid_token"';
        const refusals = [
          await postJson(app.url, LOGIN, { identityId: 'nobody', jwt: await idpToken() }),
          await postJson(app.url, LOGIN, { identityId: 'gh-deployer', jwt: 'garbage' }),
          await postForm(app.url, LOGIN, { identityId: 'gh-deployer', jwt: 'a.b.c' }),
          await postJson(app.url, LOGIN, {
            identityId: 'gh-deployer',
            jwt: await idpToken({ sub: 'repo:acme-corp/other:ref:refs/heads/main' }),
          }),
          await postJson(app.url, LOGIN, { identityId: 'gh-deployer', jwt: await idpToken({ aud: 'x' }) }),
        ];
        expect(refusals.map((r) => r.json.reasonCode)).toEqual([
          'invalid_credentials',
          'invalid_credentials',
          'invalid_credentials',
          'subject_not_allowed',
          'audience_not_allowed',
        ]);
        for (const res of refusals) {
          expect(res.status).toBe(401);
          expect(res.headers['www-authenticate']).toBe(challenge);
        }
        // Renew and revoke 401s carry one too.
        for (const path of [RENEW, REVOKE]) {
          const res = await postJson(app.url, path, { accessToken: 'omat_nope' });
          expect(res.status).toBe(401);
          expect(res.headers['www-authenticate']).toBe(challenge);
        }
      });

      it('ENUM-01: unknown identity, garbage token and foreign signature answer byte-identically', async () => {
        const rogue = makeKey('RS256', key.kid);
        const answers = await Promise.all([
          postJson(app.url, LOGIN, { identityId: 'nobody', jwt: await idpToken() }),
          postJson(app.url, LOGIN, { identityId: 'gh-deployer', jwt: 'garbage' }),
          postJson(app.url, LOGIN, {
            identityId: 'gh-deployer',
            jwt: await sign(rogue, githubClaims(clock.ms)),
          }),
        ]);
        for (const res of answers) expectErrorShape(res, 401, 'invalid_credentials');
        expect(comparable(answers[1]!)).toEqual(comparable(answers[0]!));
        expect(comparable(answers[2]!)).toEqual(comparable(answers[0]!));
        const headerNames = answers.map((a) =>
          Object.keys(a.headers)
            .filter((h) => !['date', 'content-length'].includes(h))
            .sort(),
        );
        expect(headerNames[1]).toEqual(headerNames[0]);
        expect(headerNames[2]).toEqual(headerNames[0]);
      });
    });

    describe('guard', () => {
      it('serves the guarded route with the auth context', async () => {
        const token = await login();
        const res = await getWith(app.url, SECRETS, bearer(token));
        expect(res.status).toBe(200);
        expect(res.json).toMatchObject({ identityId: 'gh-deployer', metadata: { role: 'deployer' } });
      });

      it('TOK-09: no credentials is 401 with a challenge without error=', async () => {
        for (const headers of [[], ['authorization', 'Basic dXNlcjpwYXNz']]) {
          const res = await getWith(app.url, SECRETS, headers);
          expectErrorShape(res, 401, 'missing_token');
          expect(res.headers['www-authenticate']).toBe('Bearer realm="oidc-machine-auth"');
        }
      });

      it('TOK-09: lowercase scheme is accepted; malformed credentials are 400 invalid_request', async () => {
        const token = await login();
        expect((await getWith(app.url, SECRETS, ['authorization', `bearer ${token}`])).status).toBe(200);
        expect((await getWith(app.url, SECRETS, ['authorization', `BEARER ${token}`])).status).toBe(200);
        for (const value of ['Bearer', 'Bearer ', `Bearer ${token} extra`, `Bearer "${token}"`]) {
          const res = await getWith(app.url, SECRETS, ['authorization', value]);
          expectErrorShape(res, 400, 'invalid_request');
          expect(res.headers['www-authenticate']).toBe(
            'Bearer realm="oidc-machine-auth", error="invalid_request"',
          );
        }
      });

      it('TOK-09: two Authorization headers are 400 invalid_request', async () => {
        const token = await login();
        const res = await getWith(app.url, SECRETS, [...bearer(token), ...bearer(token)]);
        expectErrorShape(res, 400, 'invalid_request');
      });

      it('TOK-09: a token in the query string is refused', async () => {
        const token = await login();
        const res = await getWith(app.url, `${SECRETS}&access_token=${token}`);
        expectErrorShape(res, 400, 'invalid_request');
        expect(res.text).not.toContain(token);
      });

      it('#13.10 every spelling of a query token is refused (RFC 6750 §2.3): encoded, re-encoded, any case, duplicated, `;`-separated, bracketed; with a valid header too, and no use counted', async () => {
        const token = await login('limited'); // one use: a spelling that got through would spend it
        const spellings = [
          `access_token=${token}`,
          `access%5Ftoken=${token}`,
          `access%5ftoken=${token}`,
          `%61ccess_token=${token}`,
          `%61%63%63%65%73%73%5F%74%6F%6B%65%6E=${token}`,
          `access%255Ftoken=${token}`,
          `ACCESS_TOKEN=${token}`,
          `Access_Token=${token}`,
          `aCCESS%5FtOKEN=${token}`,
          `access_token=${token}&access_token=${token}`,
          `access_token[]=${token}`,
          `access_token%5B0%5D=${token}`,
          `access_token=`,
          `access_token`,
        ];
        for (const spelling of spellings) {
          for (const path of [
            `${SECRETS}&${spelling}`,
            `${SECRETS};${spelling}`,
            `/api/v3/secrets/raw?${spelling}`,
          ]) {
            const res = await getWith(app.url, path, bearer(token));
            expectErrorShape(res, 400, 'invalid_request');
            expect(res.headers['www-authenticate']).toBe(
              'Bearer realm="oidc-machine-auth", error="invalid_request"',
            );
            expect(res.text).not.toContain(token);
          }
        }
        // Names that only look alike are not tokens: the request is served (and spends the one use).
        const res = await getWith(
          app.url,
          `${SECRETS}&access+token=1&my_access_token=1&access_tokens=1`,
          bearer(token),
        );
        expect(res.status).toBe(200);
      });

      it('TOK-02: forged and foreign tokens are 401 invalid_token', async () => {
        for (const token of ['omat_k1.AAAAAAAAAAAAAAAAAAAAAA.zz.' + 'A'.repeat(43), await idpToken()]) {
          const res = await getWith(app.url, SECRETS, bearer(token));
          expectErrorShape(res, 401, 'invalid_token');
          expect(res.headers['www-authenticate']).toBe(
            'Bearer realm="oidc-machine-auth", error="invalid_token"',
          );
        }
      });

      it('TOK-06: an expired token is 401 token_expired', async () => {
        const token = await login('short');
        clock.advance(61);
        try {
          expectErrorShape(await getWith(app.url, SECRETS, bearer(token)), 401, 'token_expired');
        } finally {
          clock.advance(-61);
        }
      });

      it('TOK-08: a revoked token is 401 token_revoked', async () => {
        const token = await login();
        expect((await postJson(app.url, REVOKE, { accessToken: token })).json).toEqual({
          message: 'Successfully revoked access token',
        });
        expectErrorShape(await getWith(app.url, SECRETS, bearer(token)), 401, 'token_revoked');
      });

      it('TOK-04: a used-up token is 401 uses_exhausted', async () => {
        const token = await login('limited');
        expect((await getWith(app.url, SECRETS, bearer(token))).status).toBe(200);
        expectErrorShape(await getWith(app.url, SECRETS, bearer(token)), 401, 'uses_exhausted');
      });

      it('authorize predicate false is 403 forbidden', async () => {
        expectErrorShape(await getWith(app.url, '/admin', bearer(await login())), 403, 'forbidden');
        expect((await getWith(app.url, '/admin', bearer(await login('limited')))).status).toBe(200);
      });

      it('IP-01/02: a spoofed X-Forwarded-For does not pass when the proxy is not trusted', async () => {
        // login is checked too: from 127.0.0.1 the private-net identity cannot log in directly
        const direct = await postJson(app.url, LOGIN, { identityId: 'private-net', jwt: await idpToken() }, [
          'x-forwarded-for',
          '10.1.1.1',
        ]);
        expectErrorShape(direct, 403, 'ip_not_allowed');
        const token = await login('loopback-only');
        const spoofed = await getWith(app.url, SECRETS, [...bearer(token), 'x-forwarded-for', '10.1.1.1']);
        expect(spoofed.status).toBe(200);
        expect(spoofed.json.clientIp).toMatch(/127\.0\.0\.1|::1/);
      });

      it('IP-03: with the framework proxy setting on, the forwarded client address is used', async () => {
        const viaProxy = await postJson(
          proxied.url,
          LOGIN,
          { identityId: 'private-net', jwt: await idpToken() },
          ['x-forwarded-for', '10.1.1.1'],
        );
        expect(viaProxy.status).toBe(200);
        const token = viaProxy.json.accessToken;
        const ok = await getWith(proxied.url, SECRETS, [
          ...bearer(token),
          'x-forwarded-for',
          '6.6.6.6, 10.1.1.1',
        ]);
        expect(ok.status).toBe(200);
        expect(ok.json.clientIp).toBe('10.1.1.1');
        const outside = await getWith(proxied.url, SECRETS, [
          ...bearer(token),
          'x-forwarded-for',
          '203.0.113.9',
        ]);
        expectErrorShape(outside, 403, 'ip_not_allowed');
      });
    });

    describe('token service: JWT access tokens, JWKS, RFC 8414 metadata', () => {
      const expectedMetadata = {
        issuer: TOKEN_ISSUER,
        jwks_uri: `${TOKEN_ISSUER}/.well-known/jwks.json`,
        response_types_supported: [],
        // Every auth router mounts the RFC 8693 token endpoint, so the metadata lists it by default.
        token_endpoint: `${TOKEN_ISSUER}/oauth/token`,
        grant_types_supported: ['urn:ietf:params:oauth:grant-type:token-exchange'],
        token_endpoint_auth_methods_supported: ['none'],
        // Every mount below builds the engine's introspection router, which records both endpoints
        // on the engine: the metadata lists them without an oauthEndpoints option.
        introspection_endpoint: `${TOKEN_ISSUER}/oauth/introspect`,
        revocation_endpoint: `${TOKEN_ISSUER}/oauth/revoke`,
        // RFC 9449 §5.1: the DPoP proof algorithms the login routes and the guard take.
        dpop_signing_alg_values_supported: ['ES256', 'EdDSA', 'RS256', 'PS256'],
      };

      it('RFC 7517 §5: GET {prefix}/.well-known/jwks.json publishes our public keys, cacheable 5 minutes', async () => {
        const res = await getWith(app.url, '/api/v1/auth/.well-known/jwks.json');
        expect(res.status).toBe(200);
        expect(res.headers['content-type']).toMatch(/application\/json/);
        expect(res.headers['cache-control']).toBe('public, max-age=300');
        expect(res.json).toEqual(auth.jwks());
        expect(res.json.keys).toHaveLength(1);
        expect(res.json.keys[0]).toMatchObject({ kty: 'OKP', crv: 'Ed25519', alg: 'EdDSA', use: 'sig' });
        expect(res.json.keys[0].d).toBeUndefined();
      });

      it('RFC 8414 §3.1: metadata at the root path with the issuer path appended after the well-known suffix', async () => {
        const res = await getWith(app.url, '/.well-known/oauth-authorization-server/api/v1/auth');
        expect(res.status).toBe(200);
        expect(res.headers['cache-control']).toBe('public, max-age=300');
        expect(res.json).toEqual(expectedMetadata);
      });

      it('RFC 8414 §3: the appended form {prefix}/.well-known/oauth-authorization-server answers the same', async () => {
        const res = await getWith(app.url, '/api/v1/auth/.well-known/oauth-authorization-server');
        expect(res.status).toBe(200);
        expect(res.json).toEqual(expectedMetadata);
        // The root handler answers its one path only.
        expect((await getWith(app.url, '/.well-known/oauth-authorization-server/other')).status).toBe(404);
      });

      it('RFC 9068 §4: the login route mints a JWT for a JWT identity; the guard, renew and revoke take it', async () => {
        const token = await login('jwt-deployer');
        expect(token.split('.')).toHaveLength(3);
        const ok = await getWith(app.url, SECRETS, bearer(token));
        expect(ok.status).toBe(200);
        expect(ok.json).toMatchObject({ identityId: 'jwt-deployer', metadata: { role: 'deployer' } });
        clock.advance(5);
        const renewed = await postJson(app.url, RENEW, { accessToken: token });
        expect(renewed.status).toBe(200);
        expect(renewed.json.accessToken.split('.')).toHaveLength(3);
        expect((await getWith(app.url, SECRETS, bearer(renewed.json.accessToken))).status).toBe(200);
        expect((await postJson(app.url, REVOKE, { accessToken: renewed.json.accessToken })).status).toBe(200);
        for (const revoked of [token, renewed.json.accessToken]) {
          const res = await getWith(app.url, SECRETS, bearer(revoked));
          expectErrorShape(res, 401, 'token_revoked');
        }
      });

      it('a JWT with a broken signature is 401 invalid_token with a challenge, never echoed', async () => {
        const token = await login('jwt-deployer');
        const forged = `${token.slice(0, token.lastIndexOf('.'))}.${'A'.repeat(86)}`;
        const res = await getWith(app.url, SECRETS, bearer(forged));
        expectErrorShape(res, 401, 'invalid_token');
        expect(res.headers['www-authenticate']).toBe(
          'Bearer realm="oidc-machine-auth", error="invalid_token"',
        );
        expect(res.text).not.toContain(forged.slice(0, 30));
      });
    });

    describe('renew and revoke', () => {
      it('renews with {accessToken}: same shape, new token string, same token id', async () => {
        const token = await login();
        clock.advance(5);
        const res = await postJson(app.url, RENEW, { accessToken: token });
        expect(res.status).toBe(200);
        expect(Object.keys(res.json).sort()).toEqual([
          'accessToken',
          'accessTokenMaxTTL',
          'expiresIn',
          'tokenType',
        ]);
        expect(res.json.accessToken).not.toBe(token);
        expect(res.json.accessToken.split('.')[1]).toBe(token.split('.')[1]);
        expect((await getWith(app.url, SECRETS, bearer(res.json.accessToken))).status).toBe(200);
      });

      it('renew and revoke take form bodies too, and refuse bad bodies with 422', async () => {
        const token = await login();
        expect((await postForm(app.url, RENEW, { accessToken: token })).status).toBe(200);
        expectErrorShape(await postJson(app.url, RENEW, {}), 422, 'invalid_body');
        expectErrorShape(await postJson(app.url, REVOKE, { accessToken: 7 }), 422, 'invalid_body');
        expect((await postForm(app.url, REVOKE, { accessToken: token })).status).toBe(200);
        expectErrorShape(await postJson(app.url, RENEW, { accessToken: token }), 401, 'token_revoked');
      });

      it('renew past max TTL is 401 max_ttl_reached', async () => {
        const token = await login('short');
        clock.advance(30);
        const r1 = await postJson(app.url, RENEW, { accessToken: token });
        expect(r1.status).toBe(200);
        clock.advance(59);
        const r2 = await postJson(app.url, RENEW, { accessToken: r1.json.accessToken });
        expect(r2.status).toBe(200);
        expect(r2.json.expiresIn).toBe(31);
        const r3 = await postJson(app.url, RENEW, { accessToken: r2.json.accessToken });
        expectErrorShape(r3, 401, 'max_ttl_reached');
        clock.advance(-89);
      });

      it('revoke with a forged token is 401', async () => {
        expectErrorShape(await postJson(app.url, REVOKE, { accessToken: 'nope' }), 401, 'invalid_token');
      });
    });

    describe('parity and edges', () => {
      /** The HTTP answer carries the core's neutral answer unchanged: status, body, every header it set. */
      function expectNeutral(res: RawResponse, neutral: HttpAnswer): void {
        expect(res.status).toBe(neutral.status);
        expect(res.headers['content-type']).toMatch(/^application\/json/);
        expect(res.json.reqId).toMatch(/^[0-9a-f-]{36}$/);
        expect({ ...res.json, reqId: undefined }).toEqual({ ...(neutral.body as object), reqId: undefined });
        for (const [name, value] of Object.entries(neutral.headers)) expect(res.headers[name]).toBe(value);
      }
      const neutralGuard = (authorization: string | string[] | undefined, tokenInQuery = false) =>
        guard(auth, { authorization, tokenInQuery, clientIp: '127.0.0.1' }).then(
          () => expect.fail('the guard accepted'),
          (error: unknown) => errorAnswer(auth, error),
        );

      it('TOK-09: guard refusals are the neutral answers, identical on every framework', async () => {
        const forged = 'omat_k1.AAAAAAAAAAAAAAAAAAAAAA.zz.' + 'A'.repeat(43);
        const cases: Array<[string[], string | string[] | undefined]> = [
          [[], undefined],
          [['authorization', 'Basic dXNlcjpwYXNz'], 'Basic dXNlcjpwYXNz'],
          [['authorization', 'Bearer'], 'Bearer'],
          [
            [...bearer(forged), ...bearer(forged)],
            [`Bearer ${forged}`, `Bearer ${forged}`],
          ],
          [bearer(forged), `Bearer ${forged}`],
        ];
        for (const [headers, authorization] of cases) {
          expectNeutral(await getWith(app.url, SECRETS, headers), await neutralGuard(authorization));
        }
        expectNeutral(
          await getWith(app.url, `${SECRETS}&access_token=${forged}`),
          await neutralGuard(undefined, true),
        );
        const forbidden = await getWith(app.url, '/admin', bearer(await login()));
        expect({ ...forbidden.json, reqId: undefined }).toEqual({
          statusCode: 403,
          error: 'ForbiddenError',
          message: 'Not allowed',
          reasonCode: 'forbidden',
          reqId: undefined,
        });
        expect(forbidden.headers['www-authenticate']).toBe(
          'Bearer realm="oidc-machine-auth", error="insufficient_scope"',
        );
      });

      it('HTTP-02/03/05: body refusals are the neutral answers, identical on every framework', async () => {
        const text = await request(app.url, 'POST', LOGIN, {
          headers: ['content-type', 'text/plain'],
          body: 'x',
        });
        expectNeutral(text, errorAnswer(auth, unsupportedMediaType()));
        const huge = await postJson(app.url, LOGIN, { identityId: 'gh-deployer', jwt: 'a'.repeat(200_000) });
        expectNeutral(huge, errorAnswer(auth, bodyTooLarge()));
        expectNeutral(await postJson(app.url, LOGIN, { jwt: 'x' }), await loginAnswer(auth, { jwt: 'x' }));
        const notString = { accessToken: 7 };
        expectNeutral(await postJson(app.url, RENEW, notString), await renewAnswer(auth, notString));
        const unknown = { identityId: 'nobody', jwt: await idpToken() };
        expectNeutral(await postJson(app.url, LOGIN, unknown), await loginAnswer(auth, unknown, '127.0.0.1'));
        for (const raw of ['{"identityId":', '[1,2]']) {
          const res = await request(app.url, 'POST', LOGIN, {
            headers: ['content-type', 'application/json'],
            body: raw,
          });
          let neutral: HttpAnswer | undefined;
          try {
            parseRequestBody('application/json', raw);
          } catch (error) {
            neutral = errorAnswer(auth, error);
          }
          expectNeutral(res, neutral!);
        }
      });

      it('HTTP-07: GET, HEAD, PUT and DELETE on the POST-only auth routes are 404/405 and issue nothing', async () => {
        const body = JSON.stringify({ identityId: 'gh-deployer', jwt: await idpToken() });
        const withBody = ['content-type', 'application/json', 'content-length', String(body.length)];
        for (const path of [LOGIN, RENEW, REVOKE]) {
          for (const method of ['GET', 'HEAD', 'PUT', 'DELETE']) {
            const sendsBody = method === 'PUT' || method === 'DELETE';
            const res = await request(app.url, method, path, {
              headers: sendsBody ? withBody : [],
              body: sendsBody ? body : undefined,
            });
            expect([404, 405]).toContain(res.status);
            expect(res.text).not.toContain('accessToken');
          }
        }
      });

      it('STR-03: oversized credentials are refused, never a 500', async () => {
        const big = await getWith(app.url, SECRETS, bearer('A'.repeat(12 * 1024)));
        expectErrorShape(big, 401, 'invalid_token');
        const huge = await getWith(app.url, SECRETS, bearer('A'.repeat(64 * 1024)));
        expect([400, 401, 431]).toContain(huge.status);
        const jwt = await postJson(app.url, LOGIN, { identityId: 'gh-deployer', jwt: 'a'.repeat(20 * 1024) });
        expectErrorShape(jwt, 401, 'invalid_credentials');
      });
    });

    describeOAuthConformance(() => ({ url: app.url, auth, clock, key, rec }));

    describe('leaks', () => {
      it('LOG-01: no answer, event or log line carries a token', async () => {
        const token = await login();
        const canary = `CANARY-${crypto.randomUUID()}`;
        const bodies = [
          (await postJson(app.url, LOGIN, { identityId: 'gh-deployer', jwt: canary })).text,
          (
            await postJson(app.url, LOGIN, {
              identityId: 'gh-deployer',
              jwt: await idpToken({ repository_id: canary }),
            })
          ).text,
          (await getWith(app.url, SECRETS, bearer(`${canary}x`))).text,
          (await postJson(app.url, RENEW, { accessToken: canary })).text,
        ].join('\n');
        expect(bodies + rec.dump()).not.toContain('CANARY-');
        expect(rec.dump()).not.toContain(token);
      });
    });

    describeDpopConformance(mount);
    describe('rate limits', () => {
      // An engine of its own with small budgets, behind the framework's trusted proxy, so that
      // X-Forwarded-For gives each request its client address.
      const limitedClock = new FakeClock();
      let limited: OidcAuth;
      let behindProxy: MountedApp;
      const A = ['x-forwarded-for', '203.0.113.77'];
      const B = ['x-forwarded-for', '198.51.100.77'];
      const jwtAt = () => sign(key, githubClaims(limitedClock.ms));

      beforeAll(async () => {
        limited = createOidcAuth({
          identities: [githubIdentity(key)],
          signingKeys: SIGNING_KEYS,
          issuer: TOKEN_ISSUER,
          clock: limitedClock.now,
          rateLimits: {
            failedLoginsPerAddress: { perMinute: 6, burst: 5 },
            invalidTokensPerAddress: { perMinute: 6, burst: 5 },
          },
        });
        behindProxy = await mount(limited, { trustProxy: true });
      });
      afterAll(async () => {
        await behindProxy?.close();
        await limited?.close();
      });

      function expectThrottled(res: RawResponse): void {
        expectErrorShape(res, 429, 'rate_limited');
        expect(res.json.error).toBe('TooManyRequests');
        expect(res.headers['retry-after']).toMatch(/^[1-9][0-9]*$/);
        expect(res.headers['www-authenticate']).toBeUndefined();
      }

      it('TOK-02 / Throttled: 429: a flood of bad IdP tokens from one address gets 429 + Retry-After (login, exchange, renew), while a different address logs in fine', async () => {
        const bad = { identityId: 'gh-deployer', jwt: 'not.a.jwt' };
        const flood = [];
        for (let i = 0; i < 8; i++) flood.push((await postJson(behindProxy.url, LOGIN, bad, A)).status);
        expect(flood).toEqual([401, 401, 401, 401, 401, 429, 429, 429]);
        const valid = { identityId: 'gh-deployer', jwt: await jwtAt() };
        expectThrottled(await postJson(behindProxy.url, LOGIN, valid, A));
        const ok = await postJson(behindProxy.url, LOGIN, valid, B);
        expect(ok.status).toBe(200);
        // The RFC 8693 endpoint: the same budget, in the RFC 6749 §5.2 shape.
        const exchanged = await postForm(
          behindProxy.url,
          '/api/v1/auth/oauth/token',
          {
            grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
            subject_token: valid.jwt,
            subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
            client_id: 'gh-deployer',
          },
          A,
        );
        expect(exchanged.status).toBe(429);
        expect(exchanged.headers['retry-after']).toMatch(/^[1-9][0-9]*$/);
        expect(exchanged.json).toMatchObject({
          error: 'temporarily_unavailable',
          reasonCode: 'rate_limited',
        });
        // The budget refills with time (the engine's clock).
        limitedClock.advance(60);
        expect((await postJson(behindProxy.url, LOGIN, valid, A)).status).toBe(200);
      });

      it('TOK-02: a flood of random bearer tokens from one address gets 429 + Retry-After; valid tokens from another address pass', async () => {
        const token = (
          await postJson(behindProxy.url, LOGIN, { identityId: 'gh-deployer', jwt: await jwtAt() }, B)
        ).json.accessToken as string;
        const flood = [];
        for (let i = 0; i < 8; i++) {
          flood.push((await getWith(behindProxy.url, SECRETS, [...bearer(`omat_${i}`), ...A])).status);
        }
        expect(flood).toEqual([401, 401, 401, 401, 401, 429, 429, 429]);
        expectThrottled(await getWith(behindProxy.url, SECRETS, [...bearer(token), ...A]));
        const fine = await getWith(behindProxy.url, SECRETS, [...bearer(token), ...B]);
        expect(fine.status).toBe(200);
        expect(fine.json.clientIp).toBe('198.51.100.77');
      });
    });
  });
}

/**
 * The `examples/` secrets API, the same route on every framework: `start` builds the example app
 * with the given engine and listens on 127.0.0.1.
 */
export function describeSecretsExample(name: string, start: (auth: OidcAuth) => Promise<MountedApp>): void {
  describe(`${name} example secrets API`, () => {
    const key = makeKey('RS256');
    let auth: OidcAuth;
    let app: MountedApp;
    let token: string;
    const read = (query: string, headers = ['authorization', `Bearer ${token}`]) =>
      getWith(app.url, `/api/v3/secrets/raw${query}`, headers);

    beforeAll(async () => {
      auth = createOidcAuth({
        identities: [githubIdentity(key, { metadata: { workspaces: ['payments-api'] } })],
        signingKeys: SIGNING_KEYS,
      });
      app = await start(auth);
      const jwt = await sign(key, githubClaims(Date.now()));
      const res = await postForm(app.url, LOGIN, { identityId: 'gh-deployer', jwt });
      expect(res.status).toBe(200);
      token = res.json.accessToken;
    });
    afterAll(async () => {
      await app?.close();
      await auth?.close();
    });

    it('serves the granted workspace in the Infisical shape, never cached', async () => {
      const res = await read('?environment=prod&workspaceSlug=payments-api');
      expect(res.status).toBe(200);
      expect(res.headers['cache-control']).toBe('no-store');
      expect(res.json.imports).toEqual([]);
      expect(res.json.secrets.map((s: { secretKey: string }) => s.secretKey)).toEqual([
        'DATABASE_URL',
        'STRIPE_API_KEY',
      ]);
      expect(Object.keys(res.json.secrets[0])).toEqual([
        'id',
        '_id',
        'workspace',
        'environment',
        'version',
        'type',
        'secretKey',
        'secretValue',
        'secretComment',
        'tags',
      ]);
    });

    it('refuses other workspaces (403), bad queries (400), no token (401), unknown paths (404)', async () => {
      expectErrorShape(await read('?environment=prod&workspaceSlug=billing-worker'), 403, 'forbidden');
      const noEnv = await read('?workspaceSlug=payments-api');
      expect(noEnv.status).toBe(400);
      expect(noEnv.json.message).toBe('environment is required');
      expect((await read('?environment=qa&workspaceSlug=payments-api')).json.message).toBe(
        'Unknown environment',
      );
      expectErrorShape(await read('?environment=prod&workspaceSlug=payments-api', []), 401, 'missing_token');
      const missing = await getWith(app.url, '/nope');
      expect(missing.status).toBe(404);
      expect(missing.json).toMatchObject({ statusCode: 404, error: 'NotFound' });
    });
  });
}

/**
 * DPoP (RFC 9449) through the adapter, on its own engine: a login with a proof binds the token, the
 * guard takes it with `Authorization: DPoP` and a fresh proof naming the URL the framework sees, and
 * refuses a replayed proof and the token as Bearer.
 */
function describeDpopConformance(mount: Mount): void {
  describe('DPoP', () => {
    const key = makeKey('RS256');
    const clock = new FakeClock(Date.now());
    let auth: OidcAuth;
    let app: MountedApp;
    let proofKey: { privateKey: CryptoKey; jwk: JWK };

    beforeAll(async () => {
      auth = createOidcAuth({
        identities: [
          githubIdentity(key, { identityId: 'dpop-opaque', requireDpop: true }),
          githubIdentity(key, { identityId: 'dpop-jwt', accessTokenFormat: 'jwt' }),
          githubIdentity(key, { identityId: 'dpop-limited', accessTokenNumUsesLimit: 2 }),
        ],
        signingKeys: SIGNING_KEYS,
        issuer: TOKEN_ISSUER,
        clock: clock.now,
        // A `dpop` option: the guard offers the DPoP scheme to a request without a token.
        dpop: { proofWindowSeconds: 60 },
      });
      app = await mount(auth, { trustProxy: false });
      const pair = await generateKeyPair('ES256', { extractable: true });
      proofKey = { privateKey: pair.privateKey, jwk: await exportJWK(pair.publicKey) };
    });
    afterAll(async () => {
      await app?.close();
      await auth?.close();
    });

    /** A proof for `method` on `path` of the app (query dropped, RFC 9449 §4.3 step 9), with `ath` for `token`. */
    const proof = (method: string, path: string, token?: string, signer = proofKey) =>
      new SignJWT({
        jti: crypto.randomUUID(),
        iat: Math.floor(clock.ms / 1000),
        htm: method,
        htu: app.url + path.split('?')[0],
        ...(token ? { ath: createHash('sha256').update(token).digest('base64url') } : {}),
      })
        .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk: signer.jwk })
        .sign(signer.privateKey);
    const idpToken = () => sign(key, githubClaims(clock.ms));

    it('RFC 9449 §5, §7.1, §11.1: bound login, DPoP-guarded call, replayed proof refused, the token as Bearer refused', async () => {
      const login = await postJson(app.url, LOGIN, { identityId: 'dpop-opaque', jwt: await idpToken() }, [
        'dpop',
        await proof('POST', LOGIN),
      ]);
      expect(login.status).toBe(200);
      expect(login.json.tokenType).toBe('DPoP');
      const token = login.json.accessToken as string;
      const p = await proof('GET', SECRETS, token);
      const ok = await getWith(app.url, SECRETS, ['authorization', `DPoP ${token}`, 'dpop', p]);
      expect(ok.status).toBe(200);
      expect(ok.json.identityId).toBe('dpop-opaque');
      const replayed = await getWith(app.url, SECRETS, ['authorization', `DPoP ${token}`, 'dpop', p]);
      expectErrorShape(replayed, 401, 'invalid_dpop_proof');
      expect(replayed.headers['www-authenticate']).toMatch(
        /^DPoP realm="[^"]+", error="invalid_dpop_proof", algs="/,
      );
      const asBearer = await getWith(app.url, SECRETS, ['authorization', `Bearer ${token}`]);
      expectErrorShape(asBearer, 401, 'invalid_token');
      const renewed = await postJson(app.url, RENEW, { accessToken: token }, [
        'dpop',
        await proof('POST', RENEW, token),
      ]);
      expect(renewed.status).toBe(200);
      expect(renewed.json.tokenType).toBe('DPoP');
    });

    it('RFC 9449 §7.1: with DPoP configured, a guarded request without a token is offered both schemes (Bearer, and DPoP with algs)', async () => {
      for (const headers of [[], ['authorization', 'Basic dXNlcjpwYXNz']]) {
        const res = await getWith(app.url, SECRETS, headers);
        expectErrorShape(res, 401, 'missing_token');
        expect(res.headers['www-authenticate']).toBe(
          'Bearer realm="oidc-machine-auth", DPoP realm="oidc-machine-auth", algs="ES256 EdDSA RS256 PS256"',
        );
      }
      // A token that is refused gets the challenge of its refusal, as before.
      const asBearer = await getWith(app.url, SECRETS, ['authorization', 'Bearer omat_forged']);
      expectErrorShape(asBearer, 401, 'invalid_token');
      expect(asBearer.headers['www-authenticate']).toBe(
        'Bearer realm="oidc-machine-auth", error="invalid_token"',
      );
    });

    it('RFC 9449 §7.1: a bound opaque token used as Bearer or with another key is refused without spending a use', async () => {
      const login = await postJson(app.url, LOGIN, { identityId: 'dpop-limited', jwt: await idpToken() }, [
        'dpop',
        await proof('POST', LOGIN),
      ]);
      expect(login.status).toBe(200);
      const token = login.json.accessToken as string;
      const thiefPair = await generateKeyPair('ES256', { extractable: true });
      const thief = { privateKey: thiefPair.privateKey, jwk: await exportJWK(thiefPair.publicKey) };
      for (let i = 0; i < 3; i++) {
        expectErrorShape(
          await getWith(app.url, SECRETS, ['authorization', `Bearer ${token}`]),
          401,
          'invalid_token',
        );
        const stolen = await getWith(app.url, SECRETS, [
          'authorization',
          `DPoP ${token}`,
          'dpop',
          await proof('GET', SECRETS, token, thief),
        ]);
        expectErrorShape(stolen, 401, 'dpop_key_mismatch');
      }
      for (let use = 0; use < 2; use++) {
        const ok = await getWith(app.url, SECRETS, [
          'authorization',
          `DPoP ${token}`,
          'dpop',
          await proof('GET', SECRETS, token),
        ]);
        expect(ok.status).toBe(200);
      }
      const spent = await getWith(app.url, SECRETS, [
        'authorization',
        `DPoP ${token}`,
        'dpop',
        await proof('GET', SECRETS, token),
      ]);
      expectErrorShape(spent, 401, 'uses_exhausted');
    });

    it('requireDpop: a login without a proof is refused (dpop_required); a bad proof is 400 invalid_dpop_proof', async () => {
      const bare = await postJson(app.url, LOGIN, { identityId: 'dpop-opaque', jwt: await idpToken() });
      expectErrorShape(bare, 401, 'dpop_required');
      const wrongUrl = await postJson(app.url, LOGIN, { identityId: 'dpop-opaque', jwt: await idpToken() }, [
        'dpop',
        await proof('POST', RENEW),
      ]);
      expectErrorShape(wrongUrl, 400, 'invalid_dpop_proof');
    });

    it('RFC 9449 §5: the token endpoint binds a JWT access token (token_type DPoP, cnf.jkt) that the guard takes with a proof', async () => {
      const path = '/api/v1/auth/oauth/token';
      const res = await postForm(
        app.url,
        path,
        {
          grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
          subject_token: await idpToken(),
          subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
          client_id: 'dpop-jwt',
        },
        ['dpop', await proof('POST', path)],
      );
      expect(res.status).toBe(200);
      expect(res.json.token_type).toBe('DPoP');
      const token = res.json.access_token as string;
      expect(decodeJwt(token).cnf).toEqual({ jkt: await calculateJwkThumbprint(proofKey.jwk) });
      const ok = await getWith(app.url, SECRETS, [
        'authorization',
        `DPoP ${token}`,
        'dpop',
        await proof('GET', SECRETS, token),
      ]);
      expect(ok.status).toBe(200);
    });

    describe('the oidc-machine-auth/client against this adapter', () => {
      dpopClientCases(
        () => ({
          authUrl: `${app.url}/api/v1/auth`,
          guardedUrl: `${app.url}/api/v3/secrets/raw`,
          identityId: 'dpop-opaque',
          mintIdpToken: idpToken,
          clock: clock.now,
          exchangeClientId: 'dpop-jwt',
        }),
        { refusesReplayedProofs: true },
      );
    });
  });
}
