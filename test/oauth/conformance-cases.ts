import { describe, expect, it } from 'vitest';
import type { IdentityConfigInput, OidcAuth } from '../../src/index.js';
import {
  TOKEN_EXCHANGE_GRANT,
  TOKEN_TYPE,
  oauthErrorAnswer,
  oauthTokenAnswer,
  unsupportedMediaType,
} from '../../src/index.js';
import type { FakeClock, Recorder } from '../helpers/engine.js';
import { getWith, postForm, postJson, request, type RawResponse } from '../helpers/http.js';
import { githubClaims, makeKey, sign, type TestKey } from '../helpers/jwt.js';

const TOKEN = '/api/v1/auth/oauth/token';
const INTROSPECT = '/api/v1/auth/oauth/introspect';
const REVOKE = '/api/v1/auth/oauth/revoke';
const FORM = 'application/x-www-form-urlencoded';

/** The identities these cases need beside the conformance suite's own (same key, GitHub-like claims). */
export const OAUTH_SUBJECT = 'repo:acme-corp/billing:ref:refs/heads/main';
export const oauthIdentities = <T>(identity: (overrides: Partial<IdentityConfigInput>) => T): T[] => [
  identity({
    identityId: 'billing',
    boundSubject: OAUTH_SUBJECT,
    scopes: ['secrets:read', 'deploy'],
    accessTokenAudiences: ['https://api.example'],
  }),
  identity({ identityId: 'introspector', metadata: { role: 'introspector' } }),
];

export interface OAuthCaseContext {
  url: string;
  auth: OidcAuth;
  clock: FakeClock;
  key: TestKey;
  rec: Recorder;
}

function expectOAuthError(res: RawResponse, status: number, error: string, reasonCode?: string): void {
  expect(res.status).toBe(status);
  expect(res.headers['content-type']).toMatch(/application\/json/);
  expect(res.headers['cache-control']).toBe('no-store');
  expect(Object.keys(res.json).sort()).toEqual(['error', 'error_description', 'reasonCode', 'reqId']);
  expect(res.json.error).toBe(error);
  if (reasonCode) expect(res.json.reasonCode).toBe(reasonCode);
}

const comparable = (res: RawResponse) => ({
  status: res.status,
  body: { ...res.json, reqId: undefined },
  headers: Object.keys(res.headers)
    .filter((h) => !['date', 'content-length'].includes(h))
    .sort(),
});

/**
 * The login route's guarantees, re-run through `POST {prefix}/oauth/token` (RFC 8693), and the
 * introspection (RFC 7662) and revocation (RFC 7009) routes behind the host's guard, on one adapter.
 */
export function describeOAuthConformance(context: () => OAuthCaseContext): void {
  describe('OAuth endpoints', () => {
    const idpToken = (claims = {}) => sign(context().key, githubClaims(context().clock.ms, claims));
    const form = async (fields: Record<string, string | undefined> = {}) => {
      const out: Record<string, string> = {};
      const all = {
        grant_type: TOKEN_EXCHANGE_GRANT,
        subject_token: await idpToken({ sub: OAUTH_SUBJECT }),
        subject_token_type: TOKEN_TYPE.jwt,
        ...fields,
      };
      for (const [name, value] of Object.entries(all)) if (value !== undefined) out[name] = value;
      return out;
    };
    const introspector = async () =>
      (await context().auth.login({ identityId: 'introspector', jwt: await idpToken() })).accessToken;

    it('RFC 8693 §2.2.1: a form exchange answers access_token, issued_token_type, token_type, expires_in; no-store', async () => {
      const res = await postForm(context().url, TOKEN, await form({ scope: 'deploy' }));
      expect(res.status).toBe(200);
      expect(res.headers['cache-control']).toBe('no-store');
      expect(Object.keys(res.json).sort()).toEqual([
        'access_token',
        'expires_in',
        'issued_token_type',
        'token_type',
      ]);
      expect(res.json).toMatchObject({
        issued_token_type: TOKEN_TYPE.accessToken,
        token_type: 'Bearer',
        expires_in: 7200,
      });
      const granted = await context().auth.authenticate(res.json.access_token);
      expect(granted).toMatchObject({ identityId: 'billing', scope: 'deploy' });
    });

    it('RFC 8693 §2.1: wrong content types (JSON, text, multipart, none) are 415 invalid_request, the neutral answer', async () => {
      const { url, auth } = context();
      const json = await postJson(url, TOKEN, await form());
      const neutral = oauthErrorAnswer(auth, unsupportedMediaType());
      expectOAuthError(json, 415, 'invalid_request', 'unsupported_media_type');
      for (const type of ['text/plain', 'multipart/form-data; boundary=x']) {
        const res = await request(url, 'POST', TOKEN, {
          headers: ['content-type', type],
          body: 'grant_type=x',
        });
        expectOAuthError(res, 415, 'invalid_request', 'unsupported_media_type');
        expect(res.json.reasonCode).toBe((neutral.body as { reasonCode: string }).reasonCode);
      }
      const none = await request(url, 'POST', TOKEN, { body: 'grant_type=x' });
      expectOAuthError(none, 415, 'invalid_request', 'unsupported_media_type');
    });

    it('RFC 6749 §5.2: missing fields are 400 invalid_request naming the field, as the framework-neutral answer', async () => {
      for (const missing of ['grant_type', 'subject_token', 'subject_token_type']) {
        const fields = await form({ [missing]: undefined });
        const res = await postForm(context().url, TOKEN, fields);
        expectOAuthError(res, 400, 'invalid_request', 'invalid_request');
        expect(res.json.error_description).toBe(`${missing} is required`);
        const neutral = await oauthTokenAnswer(context().auth, { contentType: FORM, body: fields });
        expect({ ...res.json, reqId: undefined }).toEqual({ ...(neutral.body as object), reqId: undefined });
      }
    });

    it('HTTP-05: a body over the limit is 413, announced or chunked; an oversized subject token is invalid_grant, never a 500', async () => {
      const { url } = context();
      const big = new URLSearchParams(await form({ subject_token: 'a'.repeat(200_000) })).toString();
      const announced = await request(url, 'POST', TOKEN, {
        headers: ['content-type', FORM, 'content-length', String(big.length)],
        body: big,
      });
      expectOAuthError(announced, 413, 'invalid_request', 'body_too_large');
      const chunked = await request(url, 'POST', TOKEN, {
        headers: ['content-type', FORM, 'transfer-encoding', 'chunked'],
        body: big,
      });
      expectOAuthError(chunked, 413, 'invalid_request', 'body_too_large');
      const jwt = await postForm(
        url,
        TOKEN,
        await form({ client_id: 'billing', subject_token: 'a'.repeat(20 * 1024) }),
      );
      expectOAuthError(jwt, 400, 'invalid_grant', 'invalid_credentials');
    });

    it('HTTP-06: hostile form bodies (prototype keys, brackets, repeated names) neither pollute nor pass', async () => {
      const { url } = context();
      const base = new URLSearchParams(await form()).toString();
      const polluted = await request(url, 'POST', TOKEN, {
        headers: ['content-type', FORM],
        body: `${base}&__proto__[polluted]=1&constructor[prototype][polluted]=1&__proto__=x`,
      });
      expect(polluted.status).toBe(200);
      expect(({} as Record<string, unknown>).polluted).toBeUndefined();
      const repeated = await request(url, 'POST', TOKEN, {
        headers: ['content-type', FORM],
        body: `${base}&grant_type=${encodeURIComponent(TOKEN_EXCHANGE_GRANT)}`,
      });
      expectOAuthError(repeated, 400, 'invalid_request');
      const garbage = await request(url, 'POST', TOKEN, {
        headers: ['content-type', FORM],
        body: '%%%&&&==',
      });
      expectOAuthError(garbage, 400, 'invalid_request');
    });

    it('HTTP-07: GET, PUT and DELETE on the token endpoint are 404/405 and issue nothing', async () => {
      const { url } = context();
      const body = new URLSearchParams(await form()).toString();
      for (const method of ['GET', 'PUT', 'DELETE']) {
        const sendsBody = method !== 'GET';
        const res = await request(url, method, sendsBody ? TOKEN : `${TOKEN}?${body}`, {
          headers: sendsBody ? ['content-type', FORM, 'content-length', String(body.length)] : [],
          body: sendsBody ? body : undefined,
        });
        expect([404, 405]).toContain(res.status);
        expect(res.text).not.toContain('access_token');
      }
    });

    it('ENUM-01 through the exchange: unknown client_id, garbage token, foreign signature, and a token no identity (or several) would select answer byte-identically', async () => {
      const { url, key, clock } = context();
      const rogue = makeKey('RS256', key.kid);
      const answers = await Promise.all([
        postForm(url, TOKEN, await form({ client_id: 'nobody' })),
        postForm(url, TOKEN, await form({ client_id: 'billing', subject_token: 'garbage' })),
        postForm(
          url,
          TOKEN,
          await form({
            client_id: 'billing',
            subject_token: await sign(rogue, githubClaims(clock.ms, { sub: OAUTH_SUBJECT })),
          }),
        ),
        // No client_id: a verified token whose subject no identity binds, a forged one that would select, and one several identities accept.
        postForm(
          url,
          TOKEN,
          await form({ subject_token: await idpToken({ sub: 'repo:nobody/x:ref:refs/heads/main' }) }),
        ),
        postForm(
          url,
          TOKEN,
          await form({ subject_token: await sign(rogue, githubClaims(clock.ms, { sub: OAUTH_SUBJECT })) }),
        ),
        postForm(url, TOKEN, await form({ subject_token: await idpToken() })),
      ]);
      for (const res of answers) expectOAuthError(res, 400, 'invalid_grant', 'invalid_credentials');
      for (const res of answers.slice(1)) expect(comparable(res)).toEqual(comparable(answers[0]!));
    });

    it('every login reason code reaches the caller through the exchange once the signature verified, as invalid_grant', async () => {
      const { url, clock } = context();
      const cases: Array<[Record<string, unknown>, string]> = [
        [{ sub: 'repo:acme-corp/other:ref:refs/heads/main' }, 'subject_not_allowed'],
        [{ sub: OAUTH_SUBJECT, aud: 'sts.amazonaws.com' }, 'audience_not_allowed'],
        [{ sub: OAUTH_SUBJECT, repository_id: '1' }, 'claim_not_allowed'],
        [
          {
            sub: OAUTH_SUBJECT,
            exp: Math.floor(clock.ms / 1000) - 3600,
            iat: Math.floor(clock.ms / 1000) - 4000,
          },
          'token_expired',
        ],
      ];
      for (const [claims, reason] of cases) {
        const res = await postForm(
          url,
          TOKEN,
          await form({ client_id: 'billing', subject_token: await idpToken(claims) }),
        );
        expectOAuthError(res, 400, 'invalid_grant', reason);
      }
      const ip = await postForm(
        url,
        TOKEN,
        await form({ client_id: 'private-net', subject_token: await idpToken() }),
      );
      expectOAuthError(ip, 400, 'invalid_grant', 'ip_not_allowed');
    });

    it('downscoping only narrows on every framework: undeclared scope invalid_scope, undeclared audience invalid_target', async () => {
      const { url } = context();
      expectOAuthError(
        await postForm(url, TOKEN, await form({ scope: 'admin' })),
        400,
        'invalid_scope',
        'scope_not_allowed',
      );
      expectOAuthError(
        await postForm(url, TOKEN, await form({ audience: 'https://evil.example' })),
        400,
        'invalid_target',
        'target_not_allowed',
      );
      const ok = await postForm(
        url,
        TOKEN,
        await form({ audience: 'https://api.example', requested_expires_in: '30' }),
      );
      expect(ok.json.expires_in).toBe(30);
    });

    it('LOG-01: no exchange answer, event or log line carries the subject token or the issued token', async () => {
      const { url, rec } = context();
      const canary = `CANARY${crypto.randomUUID().replaceAll('-', '')}`;
      const refused = await postForm(
        url,
        TOKEN,
        await form({ client_id: 'billing', subject_token: `${canary}.${canary}.${canary}` }),
      );
      expect(refused.text).not.toContain(canary);
      const ok = await postForm(url, TOKEN, await form());
      const issued: string = ok.json.access_token;
      const logged = JSON.stringify([rec.events, rec.logs]);
      expect(logged).not.toContain(canary);
      expect(logged).not.toContain(issued);
    });

    it('RFC 7662 / RFC 7009 routes are behind the host guard: no credentials 401, another role 403', async () => {
      const { url, auth } = context();
      const token = (await auth.login({ identityId: 'gh-deployer', jwt: await idpToken() })).accessToken;
      expect((await postForm(url, INTROSPECT, { token })).status).toBe(401);
      expect((await postForm(url, REVOKE, { token }, ['authorization', `Bearer ${token}`])).status).toBe(403);
      await expect(auth.authenticate(token)).resolves.toMatchObject({ identityId: 'gh-deployer' });
    });

    it('RFC 7662 §2.2 active / { active: false } and RFC 7009 §2.2 200 for known and unknown tokens', async () => {
      const { url } = context();
      const guardHeader = ['authorization', `Bearer ${await introspector()}`];
      const exchanged = await postForm(url, TOKEN, await form({ scope: 'secrets:read' }));
      const token: string = exchanged.json.access_token;
      const live = await postForm(url, INTROSPECT, { token, token_type_hint: 'access_token' }, guardHeader);
      expect(live.status).toBe(200);
      expect(live.headers['cache-control']).toBe('no-store');
      expect(live.json).toMatchObject({
        active: true,
        client_id: 'billing',
        sub: 'billing',
        scope: 'secrets:read',
        token_type: 'Bearer',
      });
      expect((await postForm(url, REVOKE, { token: 'not-ours' }, guardHeader)).status).toBe(200);
      expect(
        (await postForm(url, REVOKE, { token, token_type_hint: 'refresh_token' }, guardHeader)).status,
      ).toBe(200);
      for (const t of [token, 'not-ours', token.slice(0, -3) + 'abc']) {
        const res = await postForm(url, INTROSPECT, { token: t }, guardHeader);
        expect(res.status).toBe(200);
        expect(res.json).toEqual({ active: false });
      }
      expectOAuthError(await postForm(url, INTROSPECT, {}, guardHeader), 400, 'invalid_request');
      expectOAuthError(await postJson(url, REVOKE, { token }, guardHeader), 415, 'invalid_request');
      expect((await getWith(url, INTROSPECT, guardHeader)).status).toBeGreaterThanOrEqual(404);
    });
  });
}
