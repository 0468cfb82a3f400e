import { createHash } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { calculateJwkThumbprint, decodeJwt, EmbeddedJWK, jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createDpopClient,
  createDpopProof,
  dpopFetch,
  DpopClientError,
  DpopNonces,
  generateDpopKey,
  MAX_NONCE_ORIGINS,
  type DpopAlgorithm,
  type DpopKey,
} from '../../src/client/index.js';
import { dpopClientCases } from './conformance-dpop.js';
import { startStandInServer, type StandInServer } from './servers.js';

const sha256url = (text: string) => createHash('sha256').update(text).digest('base64url');

async function verified(proof: string) {
  return jwtVerify(proof, EmbeddedJWK, { typ: 'dpop+jwt' });
}

async function refusal(promise: Promise<unknown>): Promise<DpopClientError> {
  const error = await promise.then(
    () => {
      throw new Error('unexpectedly succeeded');
    },
    (err: unknown) => err,
  );
  expect(error).toBeInstanceOf(DpopClientError);
  return error as DpopClientError;
}

describe('createDpopProof: the proof JWT (RFC 9449 §4.2)', () => {
  it.each<DpopAlgorithm>(['ES256', 'ES384', 'EdDSA', 'PS256'])(
    'RFC 9449 §4.2: a %s proof has typ dpop+jwt, its alg, the public jwk only, and verifies with jose EmbeddedJWK',
    async (alg) => {
      const key = await generateDpopKey({ alg });
      const proof = await createDpopProof({ key, method: 'GET', url: 'https://api.example/x' });
      const { protectedHeader, payload } = await verified(proof);
      expect(Object.keys(protectedHeader).sort()).toEqual(['alg', 'jwk', 'typ']);
      expect(protectedHeader).toMatchObject({ typ: 'dpop+jwt', alg });
      for (const secret of ['d', 'p', 'q', 'dp', 'dq', 'qi', 'k'])
        expect(protectedHeader.jwk).not.toHaveProperty(secret);
      expect(Object.keys(payload).sort()).toEqual(['htm', 'htu', 'iat', 'jti']);
      expect(key.privateKey.extractable).toBe(false);
    },
  );

  it('RFC 7638: the key thumbprint is the SHA-256 thumbprint of the jwk the proof carries (the cnf.jkt a server binds)', async () => {
    const key = await generateDpopKey();
    const { protectedHeader } = await verified(
      await createDpopProof({ key, method: 'GET', url: 'https://a.example/' }),
    );
    expect(key.thumbprint).toBe(await calculateJwkThumbprint(protectedHeader.jwk!, 'sha256'));
    expect(Object.keys(protectedHeader.jwk!).sort()).toEqual(['crv', 'kty', 'x', 'y']);
  });

  it('RFC 9449 §4.2: htm is the method; htu is the URL without query, fragment or user info', async () => {
    const key = await generateDpopKey();
    const proof = await createDpopProof({
      key,
      method: 'POST',
      url: 'HTTPS://user:pw@API.Example:443/a/b%20c?token=secret#frag',
    });
    expect(decodeJwt(proof)).toMatchObject({ htm: 'POST', htu: 'https://api.example/a/b%20c' });
    expect(proof).not.toContain('secret');
  });

  it('RFC 9449 §4.2: ath is base64url(SHA-256(access token)) and only with a token; nonce only when given', async () => {
    const key = await generateDpopKey();
    const token = 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln';
    const withToken = decodeJwt(
      await createDpopProof({
        key,
        method: 'GET',
        url: 'https://a.example/r',
        accessToken: token,
        nonce: 'n-1',
      }),
    );
    expect(withToken.ath).toBe(sha256url(token));
    expect(withToken.nonce).toBe('n-1');
    expect(JSON.stringify(withToken)).not.toContain(token);
    const bare = decodeJwt(await createDpopProof({ key, method: 'GET', url: 'https://a.example/r' }));
    expect(bare).not.toHaveProperty('ath');
    expect(bare).not.toHaveProperty('nonce');
  });

  it('RFC 9449 §4.2: jti carries 128 random bits and differs per proof; iat is the given time in seconds', async () => {
    const key = await generateDpopKey();
    const make = () =>
      createDpopProof({ key, method: 'GET', url: 'https://a.example/', now: 1_700_000_000_999 });
    const [a, b] = [decodeJwt(await make()), decodeJwt(await make())];
    expect(Buffer.from(a.jti!, 'base64url')).toHaveLength(16);
    expect(a.jti).not.toBe(b.jti);
    expect(a.iat).toBe(1_700_000_000);
  });

  it.each<[string, Parameters<typeof createDpopProof>[0] extends infer I ? Partial<I> : never]>([
    ['a relative URL', { url: '/x' }],
    ['an ftp URL', { url: 'ftp://a.example/x' }],
    ['a method with a space', { method: 'GET X' }],
    ['a nonce with a quote (not NQCHAR, RFC 9449 §8.1)', { nonce: 'a"b' }],
    ['an empty nonce', { nonce: '' }],
  ])('refuses %s with invalid_argument', async (_name, change) => {
    const key = await generateDpopKey();
    const error = await refusal(
      createDpopProof({ key, method: 'GET', url: 'https://a.example/', ...change }),
    );
    expect(error.code).toBe('invalid_argument');
  });

  it('RFC 9449 §4.2: generateDpopKey refuses a symmetric algorithm', async () => {
    const error = await refusal(generateDpopKey({ alg: 'HS256' as DpopAlgorithm }));
    expect(error.code).toBe('invalid_argument');
  });
});

describe('against express-oauth2-jwt-bearer in DPoP mode (a resource server nobody here wrote)', () => {
  let server: StandInServer;
  beforeAll(async () => {
    server = await startStandInServer();
  });
  afterAll(() => server?.close());

  it('RFC 9449 §7.1: dpopFetch GET (query string dropped from htu) and POST with a bound token pass its guard', async () => {
    const key = await generateDpopKey();
    const accessToken = await server.mintAccessToken(key.thumbprint);
    const get = await dpopFetch(`${server.url}/resource?page=2`, {}, { key, accessToken });
    expect(get.status).toBe(200);
    expect(await get.json()).toEqual({ sub: 'deployer', method: 'GET' });
    const post = await dpopFetch(
      `${server.url}/resource`,
      { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"a":1}' },
      { key, accessToken },
    );
    expect(post.status).toBe(200);
    expect(await post.json()).toEqual({ sub: 'deployer', method: 'POST' });
  });

  it.each<DpopAlgorithm>(['EdDSA', 'ES384', 'PS256'])(
    'RFC 9449 §7.1: a %s key passes its guard too',
    async (alg) => {
      const key = await generateDpopKey({ alg });
      const res = await dpopFetch(
        `${server.url}/resource`,
        {},
        { key, accessToken: await server.mintAccessToken(key.thumbprint) },
      );
      expect(res.status).toBe(200);
    },
  );

  it('RFC 9449 §6.1: it refuses the same call made with another key (cnf.jkt mismatch), so the passes above mean something', async () => {
    const [owner, thief] = [await generateDpopKey(), await generateDpopKey()];
    const res = await dpopFetch(
      `${server.url}/resource`,
      {},
      { key: thief, accessToken: await server.mintAccessToken(owner.thumbprint) },
    );
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toMatch(/^.*DPoP error="invalid_token"/);
  });

  it('RFC 9449 §5: the login request carries a proof with htm POST, htu the login URL, no ath, the client key', async () => {
    const client = createDpopClient({ authUrl: `${server.authUrl}/` });
    server.proofs.length = 0;
    await client.login({ identityId: 'deployer', jwt: await server.mintIdpToken() });
    expect(server.proofs).toHaveLength(1);
    expect(server.proofs[0]!.claims).toMatchObject({ htm: 'POST', htu: `${server.authUrl}/oidc-auth/login` });
    expect(server.proofs[0]!.claims).not.toHaveProperty('ath');
    expect(await calculateJwkThumbprint(server.proofs[0]!.header.jwk as object)).toBe(
      (await client.key()).thumbprint,
    );
  });

  it('RFC 9449 §5: a server that answers token type Bearer (it ignored the proof) is refused: token_not_bound, and fetch has no token', async () => {
    const client = createDpopClient({ authUrl: server.authUrl });
    server.answerBearer = true;
    try {
      const error = await refusal(client.login({ identityId: 'deployer', jwt: await server.mintIdpToken() }));
      expect(error.code).toBe('token_not_bound');
    } finally {
      server.answerBearer = false;
    }
    expect((await refusal(client.fetch(`${server.url}/resource`))).code).toBe('not_logged_in');
  });

  it('a refused login throws login_refused with the status and reason code, never the IdP token', async () => {
    const client = createDpopClient({ authUrl: server.authUrl });
    const jwt = await server.mintIdpToken();
    const error = await refusal(client.login({ identityId: 'someone-else', jwt }));
    expect(error).toMatchObject({ code: 'login_refused', status: 401, reasonCode: 'invalid_credentials' });
    expect(`${error.message} ${JSON.stringify(error)}`).not.toContain(jwt);
    const exchange = await refusal(client.exchange({ subjectToken: 'not-a-jwt' }));
    expect(exchange).toMatchObject({ code: 'login_refused', status: 400, reasonCode: 'invalid_grant' });
  });

  describe('the client conformance cases (run against our own server by test/adapters/conformance.ts)', () => {
    dpopClientCases(
      () => ({
        authUrl: server.authUrl,
        guardedUrl: `${server.url}/resource`,
        identityId: 'deployer',
        mintIdpToken: () => server.mintIdpToken(),
        exchangeClientId: 'deployer',
      }),
      { refusesReplayedProofs: false },
    );
  });

  describe('the same cases with a token service that demands nonces (RFC 9449 §8)', () => {
    beforeAll(() => {
      server.requireNonce = 'as-nonce-1';
    });
    afterAll(() => {
      server.requireNonce = undefined;
    });
    dpopClientCases(
      () => ({
        authUrl: server.authUrl,
        guardedUrl: `${server.url}/resource`,
        identityId: 'deployer',
        mintIdpToken: () => server.mintIdpToken(),
        exchangeClientId: 'deployer',
      }),
      { refusesReplayedProofs: false },
    );
  });
});

// ---------------------------------------------------------------------------------------------
// Nonces, against a tiny server that plays the part RFC 9449 §8 and §9 describe.

interface Seen {
  nonce: unknown;
  jti: unknown;
  body: string;
}

async function nonceServer(
  answer: (seen: Seen, count: number, res: http.ServerResponse) => void,
): Promise<{ url: string; seen: Seen[]; close(): Promise<void> }> {
  const seen: Seen[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const proof = typeof req.headers.dpop === 'string' ? decodeJwt(req.headers.dpop) : {};
      const entry = { nonce: proof.nonce, jti: proof.jti, body: Buffer.concat(chunks).toString() };
      seen.push(entry);
      answer(entry, seen.length, res);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    // Keep-alive connections a client still holds would keep close() waiting (Deno's fetch keeps
    // them longer than a test's timeout): they are closed with the server.
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections?.();
      }),
  };
}

/** 401 `DPoP error="use_dpop_nonce"` with a `DPoP-Nonce` until the proof carries `nonce`; then 200. */
const resourceWanting = (nonce: string) => (seen: Seen, _count: number, res: http.ServerResponse) => {
  if (seen.nonce === nonce) {
    res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
    return;
  }
  res
    .writeHead(401, {
      'www-authenticate':
        'Bearer realm="api", DPoP error="use_dpop_nonce", error_description="Resend with the nonce", algs="ES256"',
      'dpop-nonce': nonce,
    })
    .end();
};

describe('server nonces (RFC 9449 §8, §9)', () => {
  let key: DpopKey;
  beforeAll(async () => {
    key = await generateDpopKey();
  });

  it('RFC 9449 §9: a 401 DPoP use_dpop_nonce challenge is answered by one retry whose proof has the nonce and a new jti; a POST body is sent again', async () => {
    const rs = await nonceServer(resourceWanting('rs-nonce-1'));
    try {
      const res = await dpopFetch(
        `${rs.url}/r`,
        { method: 'POST', body: 'payload' },
        { key, accessToken: 'tok' },
      );
      expect(res.status).toBe(200);
      expect(rs.seen.map((s) => [s.nonce, s.body])).toEqual([
        [undefined, 'payload'],
        ['rs-nonce-1', 'payload'],
      ]);
      expect(rs.seen[0]!.jti).not.toBe(rs.seen[1]!.jti);
    } finally {
      await rs.close();
    }
  });

  it('RFC 9449 §8: a 400 JSON error use_dpop_nonce from a token endpoint is answered by one retry with the nonce', async () => {
    const as = await nonceServer((seen, _count, res) => {
      if (seen.nonce === 'as-1') res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      else
        res
          .writeHead(400, { 'content-type': 'application/json', 'dpop-nonce': 'as-1' })
          .end('{"error":"use_dpop_nonce"}');
    });
    try {
      const res = await dpopFetch(`${as.url}/token`, { method: 'POST', body: 'grant_type=x' }, { key });
      expect(res.status).toBe(200);
      expect(as.seen.map((s) => s.nonce)).toEqual([undefined, 'as-1']);
    } finally {
      await as.close();
    }
  });

  it('RFC 9449 §9: the client retries once only: a server that asks again gets its second answer back', async () => {
    const rs = await nonceServer((_seen, count, res) => {
      res
        .writeHead(401, { 'www-authenticate': 'DPoP error="use_dpop_nonce"', 'dpop-nonce': `n-${count}` })
        .end();
    });
    try {
      const res = await dpopFetch(`${rs.url}/r`, {}, { key, accessToken: 'tok' });
      expect(res.status).toBe(401);
      expect(rs.seen.map((s) => s.nonce)).toEqual([undefined, 'n-1']);
    } finally {
      await rs.close();
    }
  });

  it.each<[string, Record<string, string>]>([
    [
      'a 401 use_dpop_nonce challenge without a DPoP-Nonce header',
      { 'www-authenticate': 'DPoP error="use_dpop_nonce"' },
    ],
    [
      'a DPoP-Nonce with another error',
      { 'www-authenticate': 'DPoP error="invalid_dpop_proof"', 'dpop-nonce': 'n' },
    ],
    [
      'use_dpop_nonce in the Bearer challenge only',
      { 'www-authenticate': 'Bearer error="use_dpop_nonce", DPoP algs="ES256"', 'dpop-nonce': 'n' },
    ],
  ])('RFC 9449 §9: %s is not retried', async (_name, headers) => {
    const rs = await nonceServer((_seen, _count, res) => res.writeHead(401, headers).end());
    try {
      expect((await dpopFetch(`${rs.url}/r`, {}, { key, accessToken: 'tok' })).status).toBe(401);
      expect(rs.seen).toHaveLength(1);
    } finally {
      await rs.close();
    }
  });

  it('RFC 9449 §8.2: a nonce from a 200 answer goes into the next proof to that server, and not to another server', async () => {
    const first = await nonceServer((_seen, count, res) =>
      res.writeHead(200, { 'dpop-nonce': `fresh-${count}` }).end(),
    );
    const second = await nonceServer((_seen, _count, res) => res.writeHead(200).end());
    const nonces = new DpopNonces();
    try {
      await dpopFetch(`${first.url}/a`, {}, { key, nonces });
      await dpopFetch(`${first.url}/b?x=1`, {}, { key, nonces });
      await dpopFetch(`${second.url}/c`, {}, { key, nonces });
      expect(first.seen.map((s) => s.nonce)).toEqual([undefined, 'fresh-1']);
      expect(second.seen.map((s) => s.nonce)).toEqual([undefined]);
      expect(nonces.get(`${first.url}/anything`)).toBe('fresh-2');
    } finally {
      await first.close();
      await second.close();
    }
  });

  it('the nonce store is bounded: it keeps the latest MAX_NONCE_ORIGINS servers and ignores malformed nonces', () => {
    const nonces = new DpopNonces();
    for (let i = 0; i <= MAX_NONCE_ORIGINS; i++) {
      nonces.update(`https://s${i}.example/`, new Headers({ 'dpop-nonce': `n${i}` }));
    }
    expect(nonces.get('https://s0.example/')).toBeUndefined();
    expect(nonces.get(`https://s${MAX_NONCE_ORIGINS}.example/`)).toBe(`n${MAX_NONCE_ORIGINS}`);
    expect(nonces.update('https://x.example/', new Headers({ 'dpop-nonce': 'a b' }))).toBeUndefined();
    expect(
      nonces.update('https://x.example/', new Headers({ 'dpop-nonce': 'x'.repeat(2000) })),
    ).toBeUndefined();
  });

  it('createDpopClient: login, then a guarded call, through a login route and a resource that both demand nonces', async () => {
    const jwt = 'idp.jwt.value';
    const both = await nonceServer((seen, _count, res) => {
      if (seen.nonce !== 'srv-1') {
        res
          .writeHead(401, {
            'content-type': 'application/json',
            'www-authenticate': 'DPoP error="use_dpop_nonce"',
            'dpop-nonce': 'srv-1',
          })
          .end('{"reasonCode":"use_dpop_nonce"}');
      } else if (seen.body.includes(jwt)) {
        res
          .writeHead(200, { 'content-type': 'application/json' })
          .end('{"accessToken":"at-1","expiresIn":60,"tokenType":"DPoP"}');
      } else {
        res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
      }
    });
    try {
      const client = createDpopClient({ authUrl: `${both.url}/api/v1/auth` });
      expect(await client.login({ identityId: 'deployer', jwt })).toEqual({
        accessToken: 'at-1',
        tokenType: 'DPoP',
        expiresIn: 60,
      });
      expect((await client.fetch(`${both.url}/resource`)).status).toBe(200);
      // One retry for the login; the resource call reused the nonce the login learnt.
      expect(both.seen.map((s) => s.nonce)).toEqual([undefined, 'srv-1', 'srv-1']);
    } finally {
      await both.close();
    }
  });
});
