import { deflateSync, gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_BODY_LIMIT } from '../../src/index.js';
import { makeEngine } from '../helpers/engine.js';
import { postJson, request, type RawResponse } from '../helpers/http.js';
import { ISSUER, githubClaims, makeKey, sign } from '../helpers/jwt.js';
import { applyStringEdits, hostileValue, sameMeaning, stringEdit, tokenTexts } from './arbitraries.js';
import { expectedVerdict } from './oracle.js';
import {
  LOGIN,
  RENEW,
  REVOKE,
  SECRETS,
  expectSafeAnswer,
  failOnUnhandled,
  runs,
  mountExpress,
  objectText,
  signText,
  stringLeaves,
  tryJson,
  type MountedApp,
} from './support.js';

failOnUnhandled();

const key = makeKey('RS256');
const e = makeEngine({ key });
const texts = tokenTexts(key.kid, githubClaims(e.clock.ms));
let app: MountedApp;
let idpToken: string;
let accessToken: string;

beforeAll(async () => {
  app = await mountExpress(e.auth);
  idpToken = await sign(key, githubClaims(e.clock.ms));
  accessToken = (await e.auth.login({ identityId: 'gh-deployer', jwt: idpToken })).accessToken;
});
afterAll(async () => {
  await app.close();
  await e.auth.close();
});

/** Strings of a request body an answer must never echo. */
function secretsOfBody(text: string): string[] {
  const parsed = tryJson(text);
  const leaves = parsed === undefined ? [text] : stringLeaves(parsed);
  return leaves.filter((s) => s.length >= 8);
}

const ROUTE = fc.constantFrom(LOGIN, RENEW, REVOKE);
const field = fc.oneof(
  fc.constant('"gh-deployer"'),
  hostileValue,
  fc.string({ maxLength: 64 }).map((s) => JSON.stringify(s)),
);
const fields = fc.array(
  fc.tuple(
    fc.constantFrom('identityId', 'jwt', 'organizationSlug', 'accessToken', '__proto__', 'constructor', 'x'),
    field,
  ),
  { maxLength: 5 },
);
const jsonBody = fc.oneof(
  fields.map(objectText),
  fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)),
  hostileValue,
  fc.string({ maxLength: 200 }),
);

function post(path: string, contentType: string | undefined, body: Buffer | string, extra: string[] = []) {
  const headers = contentType === undefined ? [] : ['content-type', contentType];
  headers.push('content-length', String(Buffer.byteLength(body)), ...extra);
  return request(app.url, 'POST', path, { headers, body });
}

describe('FUZZ-HTTP: request bodies through the Express adapter', () => {
  it('FUZZ-HTTP-01 (HTTP-01/03/04/06): random JSON bodies never give a 5xx, access, an odd shape or an echo', async () => {
    await fc.assert(
      fc.asyncProperty(ROUTE, jsonBody, async (route, body) => {
        const res = await post(route, 'application/json', body);
        expectSafeAnswer(res, secretsOfBody(body));
        expect(res.status).not.toBe(200);
        expect(({} as Record<string, unknown>).admin).toBeUndefined();
      }),
      { numRuns: runs(250) },
    );
  });

  it('FUZZ-HTTP-02 (HTTP-02): random content types, encodings and bodies never give a 5xx or access', async () => {
    const contentType = fc.oneof(
      fc.constantFrom(
        undefined,
        'application/json',
        'application/json; charset=utf-8',
        'application/json; charset=latin1',
        'application/json; charset=utf-16',
        'application/x-www-form-urlencoded',
        'application/x-www-form-urlencoded; charset=iso-8859-1',
        'text/plain',
        'text/json',
        'multipart/form-data; boundary=x',
        'application/xml',
        'application/vnd.api+json',
        'application/json, text/plain',
        'APPLICATION/JSON',
        '*/*',
        '',
      ),
      fc.string({ unit: fc.constantFrom(...'abcjson/;=+-*. '), maxLength: 40 }),
    );
    const body = fc.oneof(
      jsonBody,
      fields.map((f) => new URLSearchParams(f.map(([k, v]): [string, string] => [k, v])).toString()),
      fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b).toString('latin1')),
    );
    const encoding = fc.constantFrom('', 'identity', 'gzip', 'deflate', 'x-unknown', 'zstd');
    await fc.assert(
      fc.asyncProperty(ROUTE, contentType, body, encoding, async (route, type, text, enc) => {
        let bytes: Buffer = Buffer.from(text, 'utf8');
        if (enc === 'gzip') bytes = gzipSync(bytes);
        if (enc === 'deflate') bytes = deflateSync(bytes);
        const res = await post(route, type, bytes, enc ? ['content-encoding', enc] : []);
        expectSafeAnswer(res, secretsOfBody(text));
        expect(res.status).not.toBe(200);
      }),
      { numRuns: runs(250) },
    );
  });

  it('FUZZ-HTTP-03 (HTTP-05): bodies around the limit are 413 exactly when over it, with or without a length', async () => {
    const limit = DEFAULT_BODY_LIMIT;
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: limit - 64, max: limit + 64 }),
        fc.constantFrom('json', 'form'),
        fc.boolean(),
        async (size, kind, chunked) => {
          const head =
            kind === 'json' ? '{"identityId":"gh-deployer","jwt":"' : 'identityId=gh-deployer&jwt=';
          const tail = kind === 'json' ? '"}' : '';
          const body = head + 'a'.repeat(size - head.length - tail.length) + tail;
          expect(body.length).toBe(size);
          const type = kind === 'json' ? 'application/json' : 'application/x-www-form-urlencoded';
          const headers = chunked
            ? ['content-type', type, 'transfer-encoding', 'chunked']
            : ['content-type', type, 'content-length', String(size)];
          const res = await request(app.url, 'POST', LOGIN, { headers, body });
          expectSafeAnswer(res);
          if (size > limit) expect(res.json.reasonCode).toBe('body_too_large');
          else expect(res.json.reasonCode).toBe('invalid_credentials');
        },
      ),
      { numRuns: runs(60) },
    );
  });

  it('FUZZ-HTTP-04 (STR-02, ENUM-01): mutated IdP tokens over HTTP, as JSON or form, never log in unless byte-identical in meaning', async () => {
    let uniform: unknown;
    await fc.assert(
      fc.asyncProperty(
        fc.array(stringEdit(texts.headerText, texts.payloadText), { minLength: 1, maxLength: 3 }),
        fc.boolean(),
        async (edits, asForm) => {
          const jwt = applyStringEdits(idpToken, edits);
          fc.pre(jwt !== ''); // an empty jwt is a missing field (422), checked by the body rules
          const res = asForm
            ? await post(
                LOGIN,
                'application/x-www-form-urlencoded',
                new URLSearchParams({ identityId: 'gh-deployer', jwt }).toString(),
              )
            : await postJson(app.url, LOGIN, { identityId: 'gh-deployer', jwt });
          expectSafeAnswer(res, [jwt, ...jwt.split('.').filter((s) => s.length >= 12)]);
          if (res.status === 200) {
            expect(sameMeaning(jwt, idpToken)).toBe(true);
            return;
          }
          if (res.status === 413) {
            expect(jwt.length, 'only a body over the limit is 413').toBeGreaterThan(DEFAULT_BODY_LIMIT / 2);
            return;
          }
          const view = { status: res.status, body: { ...res.json, reqId: undefined } };
          uniform ??= view;
          expect(view, 'every refusal before the signature verified is byte-identical').toEqual(uniform);
        },
      ),
      { numRuns: runs(200) },
    );
  });

  it('FUZZ-HTTP-05 (TIME-04/05, AUD-03/04, SUB-01/02, CLM-02): re-signed mutations over HTTP log in exactly when every binding holds, and no answer echoes them', async () => {
    await fc.assert(
      fc.asyncProperty(texts.headerText, texts.payloadText, async (h, p) => {
        const jwt = signText(key, h, p);
        const res = await postJson(app.url, LOGIN, { identityId: 'gh-deployer', jwt });
        const leaves = [h, p].flatMap((text) => stringLeaves(tryJson(text)));
        expectSafeAnswer(res, [
          jwt,
          ...leaves.filter((s) => s.length >= 8 && !'accessToken tokenType'.includes(s)),
        ]);
        const expected = expectedVerdict(jwt, e.clock.ms, {
          issuer: ISSUER,
          subject: 'repo:acme-corp/payments-api:ref:refs/heads/main',
          audience: 'https://github.com/acme-corp',
          repositoryId: '612345678',
          kid: key.kid,
          skewSeconds: 60,
          maxLifetimeSeconds: 86_400,
        });
        if (expected === 'accept') expect(res.status).toBe(200);
        if (expected === 'reject') expect([401, 403, 413]).toContain(res.status);
        if (res.status === 413) expect(jwt.length).toBeGreaterThan(DEFAULT_BODY_LIMIT / 2);
      }),
      { numRuns: runs(200) },
    );
  });

  it('HTTP-05: a gzip bomb is refused (415) or cut at the body limit (413), never inflated', async () => {
    const bomb = gzipSync(Buffer.alloc(20 * 1024 * 1024, 0x20));
    expect(bomb.length).toBeLessThan(64 * 1024);
    const res = await post(LOGIN, 'application/json', bomb, ['content-encoding', 'gzip']);
    expectSafeAnswer(res);
    expect(['body_too_large', 'unsupported_media_type']).toContain(res.json.reasonCode);
  });

  it('HTTP-01: a corrupt gzip, deflate or br body gets the JSON error answer, never the framework page with a stack trace', async () => {
    for (const enc of ['gzip', 'deflate', 'br']) {
      const res = await post(LOGIN, 'application/json', 'not compressed at all', ['content-encoding', enc]);
      expect(res.status).toBeGreaterThanOrEqual(400);
      expect(res.status).toBeLessThan(500);
      expectSafeAnswer(res);
    }
  });

  it('HTTP-05: a form of 1,500 parameters is read under the body rules (422 here), never mislabelled 415', async () => {
    const body = Array.from({ length: 1_500 }, (_, i) => `k${i}=v`).join('&');
    const res = await post(LOGIN, 'application/x-www-form-urlencoded', body);
    expectSafeAnswer(res);
    expect([413, 422]).toContain(res.status);
  });
});

const HEADER_CHARS = fc.constantFrom(
  ...'ABCabcxyz0123456789-._~+/= \t,"\'\\:;'.split(''),
  '\u00e9',
  '\u00ff',
);

/**
 * RFC 6750 §2.3 as the guard applies it (#13.10), written independently of `hasTokenInQuery`: some
 * parameter (split on `&` and `;`) whose name, `decodeURIComponent`-ed up to three times, is
 * `access_token` or `access_token[…` in any ASCII case.
 */
function oracleTokenInQuery(search: string): boolean {
  if (!search.startsWith('?')) return false;
  return search
    .slice(1)
    .split(/[&;]/)
    .some((pair) => {
      let name = pair.split('=')[0]!;
      for (let i = 0; i < 3; i++) {
        try {
          name = decodeURIComponent(name.replace(/\+/g, ' '));
        } catch {
          break; // a malformed escape stays as it is
        }
      }
      const lower = name.replace(/[A-Z]/g, (c) => c.toLowerCase());
      return lower === 'access_token' || lower.startsWith('access_token[');
    });
}

/** What the guard answers for these Authorization values (as the server sees them: trimmed). */
function expectedGuard(values: string[], tokenInQuery: boolean): { status: number; reason: string } {
  if (tokenInQuery) return { status: 400, reason: 'invalid_request' };
  if (values.length === 0) return { status: 401, reason: 'missing_token' };
  if (values.length > 1) return { status: 400, reason: 'invalid_request' };
  const value = values[0]!.replace(/^[ \t]+|[ \t]+$/g, '');
  if (/^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i.test(value)) return { status: 401, reason: 'invalid_token' };
  if (!/^bearer(\s|$)/i.test(value)) return { status: 401, reason: 'missing_token' };
  return { status: 400, reason: 'invalid_request' };
}

describe('FUZZ-GUARD: Authorization headers and access tokens through the Express adapter', () => {
  it('FUZZ-GUARD-01 (TOK-09, HTTP-07): random and duplicated Authorization headers answer per RFC 6750, never access', async () => {
    const value = fc.oneof(
      fc.string({ unit: HEADER_CHARS, maxLength: 80 }),
      fc
        .tuple(
          fc.constantFrom('Bearer', 'bearer', 'BEARER', 'Basic', 'Bearer:', 'Token', ''),
          fc.constantFrom(' ', '  ', '\t', ''),
          fc.string({ unit: HEADER_CHARS, maxLength: 80 }),
        )
        .map(([scheme, gap, rest]) => `${scheme}${gap}${rest}`),
      fc.constantFrom(`Bearer ${'omat_'}k1.x.y.z`, 'Bearer omat_', 'Bearer =', 'Bearer a==', 'Bearer a=b'),
    );
    const query = fc.constantFrom(
      '',
      '?x=1',
      '?access_token=abc',
      '?a=1&access_token',
      '?ACCESS_TOKEN=x',
      '?access%5Ftoken=x',
      '?x=1;%61ccess_token=y',
      '?access_tokens=1&x=access_token',
    );
    await fc.assert(
      fc.asyncProperty(fc.array(value, { maxLength: 3 }), query, async (values, q) => {
        const headers = values.flatMap((v) => ['authorization', v]);
        const res = await request(app.url, 'GET', `${SECRETS}${q}`, { headers });
        expectSafeAnswer(
          res,
          values.map((v) => v.trim()).filter((v) => v.length >= 8),
        );
        const expected = expectedGuard(values, oracleTokenInQuery(q));
        expect({ status: res.status, reason: res.json.reasonCode }).toEqual(expected);
        const challenge = res.headers['www-authenticate'];
        expect(challenge).toMatch(/^Bearer realm="oidc-machine-auth"/);
        if (expected.reason === 'missing_token') expect(challenge).not.toContain('error=');
      }),
      { numRuns: runs(300) },
    );
  });

  it('#13.10 every spelling of a query token is refused (RFC 6750 §2.3): random parameter names built from encoded, re-encoded and re-cased pieces of access_token answer 400 exactly when the name decodes to it', async () => {
    const piece = fc.constantFrom(
      'a',
      'A',
      '%61',
      '%2561',
      'c',
      'C',
      '%63',
      'e',
      's',
      'S',
      '%73',
      '_',
      '%5F',
      '%5f',
      '%255F',
      '%25255F',
      't',
      'T',
      'o',
      'k',
      'K',
      'n',
      '%6E',
      '[',
      ']',
      '%5B',
      '%5D',
      '0',
      '+',
      '%2B',
      '%20',
      '%',
      'x',
      '-',
    );
    const name = fc.oneof(
      fc.array(piece, { maxLength: 20 }).map((p) => p.join('')),
      fc
        .tuple(
          fc.constantFrom(...'access_token'.split('').map((_, i) => i)),
          fc.constantFrom('%', '%25', 'X', ''),
        )
        .map(([at, extra]) => `${'access_token'.slice(0, at)}${extra}${'access_token'.slice(at)}`),
      fc
        .array(fc.constantFrom(...'access_token'.split('')), { minLength: 12, maxLength: 12 })
        .map((chars) => chars.join('')),
      fc.constant('access_token').chain((n) =>
        fc.array(fc.boolean(), { minLength: 12, maxLength: 12 }).map((flags) =>
          n
            .split('')
            .map((c, i) => (flags[i] ? `%${c.charCodeAt(0).toString(16)}` : c))
            .join(''),
        ),
      ),
    );
    const separator = fc.constantFrom('&', ';');
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(separator, name), { minLength: 1, maxLength: 3 }),
        async (params) => {
          const search = `?x=1${params.map(([sep, n]) => `${sep}${n}=v`).join('')}`;
          const res = await request(app.url, 'GET', `/api/v3/secrets/raw${search}`, {
            headers: ['authorization', `Bearer ${accessToken}`],
          });
          expectSafeAnswer(res, [accessToken]);
          const refused = oracleTokenInQuery(search);
          expect({ search, status: res.status }).toEqual({ search, status: refused ? 400 : 200 });
          if (refused) expect(res.json.reasonCode).toBe('invalid_request');
        },
      ),
      { numRuns: runs(300) },
    );
  });

  it('FUZZ-GUARD-02 (TOK-02/03, TOK-09): a valid access token sent twice is 400, never a use', async () => {
    const before = await e.auth.tokens.get((await e.auth.authenticate(accessToken)).tokenId, e.clock.ms);
    const res = await request(app.url, 'GET', SECRETS, {
      headers: ['authorization', `Bearer ${accessToken}`, 'authorization', `Bearer ${accessToken}`],
    });
    expectSafeAnswer(res, [accessToken]);
    expect(res.status).toBe(400);
    const after = await e.auth.tokens.get(before!.tokenId, e.clock.ms);
    expect(after?.usesCount).toBe(before?.usesCount);
  });

  it('FUZZ-GUARD-03 (TOK-02/03, TOK-11): mutated access tokens never pass the guard, renew or revoke', async () => {
    const latin1 = /^[\t\x20-\x7e\x80-\xff]*$/;
    await fc.assert(
      fc.asyncProperty(
        fc.array(stringEdit(fc.constant('{}'), fc.constant('{}')), { minLength: 1, maxLength: 3 }),
        async (edits) => {
          const token = applyStringEdits(accessToken, edits);
          fc.pre(token !== accessToken);
          const secrets = [token, accessToken].filter((s) => s.length >= 8);
          if (latin1.test(token) && !/^[ \t]|[ \t]$/.test(token)) {
            const guarded = await request(app.url, 'GET', SECRETS, {
              headers: ['authorization', `Bearer ${token}`],
            });
            expectSafeAnswer(guarded, secrets);
            expect([400, 401]).toContain(guarded.status);
          }
          for (const route of [RENEW, REVOKE]) {
            const res = await postJson(app.url, route, { accessToken: token });
            expectSafeAnswer(res, secrets);
            expect([401, 422]).toContain(res.status);
          }
        },
      ),
      { numRuns: runs(200) },
    );
    const still = await request(app.url, 'GET', SECRETS, {
      headers: ['authorization', `Bearer ${accessToken}`],
    });
    expect(still.status).toBe(200);
  });

  it('TOK-11: an IdP JWT as the bearer token, and an access token as the login jwt, are refused', async () => {
    const asBearer = await request(app.url, 'GET', SECRETS, {
      headers: ['authorization', `Bearer ${idpToken}`],
    });
    expectSafeAnswer(asBearer, [idpToken]);
    expect(asBearer.json.reasonCode).toBe('invalid_token');
    const asJwt: RawResponse = await postJson(app.url, LOGIN, {
      identityId: 'gh-deployer',
      jwt: accessToken,
    });
    expectSafeAnswer(asJwt, [accessToken]);
    expect(asJwt.json.reasonCode).toBe('invalid_credentials');
  });
});
