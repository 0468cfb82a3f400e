/**
 * Issue 16, "Single-use IdP tokens": an identity with `singleUseTokens` lets each IdP token log in
 * once (Infisical route and RFC 8693 token exchange alike), keyed by `iss` + `jti` or by the token's
 * signed content, never by its raw string (SECURITY-CASES TIME-09).
 */
import { createHash } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { oidcAuthRouter } from '../../adapters/express/index.js';
import { createIdentityAdmin } from '../../src/http/identity-admin.js';
import { parseIdentityConfig } from '../../src/trust/config.js';
import {
  MemoryReplayCache,
  OidcAuthError,
  TOKEN_EXCHANGE_GRANT,
  TOKEN_TYPE,
  createOidcAuth,
  type OidcAuth,
} from '../../src/index.js';
import { MemoryTokenStore } from '../../src/stores/memory.js';
import { MAX_REPLAY_WINDOW_MS, type ReplayCache, type ReplayVerdict } from '../../src/tokens/replay.js';
import { singleUseKey } from '../../src/tokens/single-use.js';
import type { AccessTokenRecord } from '../../src/types.js';
import { FakeClock, Recorder, SIGNING_KEYS, githubIdentity, makeEngine } from '../helpers/engine.js';
import { postForm, postJson, request } from '../helpers/http.js';
import { ISSUER, githubClaims, makeKey, seconds, sign, type TestKey } from '../helpers/jwt.js';

const ID = 'gh-deployer';
const B64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
/** The order of P-256 (ES256 signatures are r ‖ s, each 32 bytes). */
const P256_N = BigInt('0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551');

/** A replay cache that records every call it gets, around a memory one. */
class RecordingCache implements ReplayCache {
  readonly inner = new MemoryReplayCache();
  readonly remembered: Array<{ key: string; expiresAt: number; now: number }> = [];
  readonly read: string[] = [];
  remember(key: string, expiresAt: number, now: number): Promise<ReplayVerdict> {
    this.remembered.push({ key, expiresAt, now });
    return this.inner.remember(key, expiresAt, now);
  }
  seenAt(key: string, now: number): Promise<number | undefined> {
    this.read.push(key);
    return this.inner.seenAt(key, now);
  }
}

/** A token store that counts the records it is asked to create. */
class CountingTokens extends MemoryTokenStore {
  created = 0;
  override async create(record: AccessTokenRecord): Promise<void> {
    this.created++;
    return super.create(record);
  }
}

function engine(
  options: { identity?: Parameters<typeof githubIdentity>[1]; replayCache?: ReplayCache; key?: TestKey } = {},
) {
  const key = options.key ?? makeKey('RS256');
  const tokens = new CountingTokens();
  const e = makeEngine({
    key,
    identities: [
      githubIdentity(key, { singleUseTokens: true, ...options.identity }),
      githubIdentity(key, { identityId: 'reusable' }),
    ],
    auth: { tokens, ...(options.replayCache ? { replayCache: options.replayCache } : {}) },
  });
  return { ...e, tokens };
}

async function refusal(promise: Promise<unknown>): Promise<OidcAuthError> {
  const error = await promise.then(
    () => expect.fail('the login was granted'),
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(OidcAuthError);
  return error as OidcAuthError;
}

const sha256 = (text: string) => createHash('sha256').update(text).digest('base64url');

/** The same token with the unused low bits of its signature's last base64url character changed. */
function trailingBitsVariant(jwt: string): string {
  const last = jwt.at(-1)!;
  return jwt.slice(0, -1) + B64URL[B64URL.indexOf(last) ^ 1];
}

/** An ES256 token with its signature's s replaced by n - s: another signature of the same content. */
function highSVariant(jwt: string): string {
  const [header, payload, signature] = jwt.split('.') as [string, string, string];
  const bytes = Buffer.from(signature, 'base64url');
  const s = BigInt(`0x${bytes.subarray(32).toString('hex')}`);
  const flipped = Buffer.from((P256_N - s).toString(16).padStart(64, '0'), 'hex');
  return `${header}.${payload}.${Buffer.concat([bytes.subarray(0, 32), flipped]).toString('base64url')}`;
}

describe('config: singleUseTokens', () => {
  const key = makeKey('RS256');

  it('is a boolean, absent from the parsed config unless true, and survives a JSON round trip (admin API, stores)', () => {
    const on = parseIdentityConfig(githubIdentity(key, { singleUseTokens: true }));
    expect(on.singleUseTokens).toBe(true);
    expect(parseIdentityConfig(JSON.parse(JSON.stringify(on)))).toEqual(on);
    expect('singleUseTokens' in parseIdentityConfig(githubIdentity(key, { singleUseTokens: false }))).toBe(
      false,
    );
    expect('singleUseTokens' in parseIdentityConfig(githubIdentity(key))).toBe(false);
  });

  it('the admin API takes it on attach, keeps it through a PATCH of another field, and null turns it off', async () => {
    const clock = new FakeClock();
    const auth = createOidcAuth({ identities: [], signingKeys: SIGNING_KEYS, clock: clock.now });
    const admin = createIdentityAdmin(auth);
    const { identityId, ...body } = githubIdentity(key, { singleUseTokens: true });
    expect((await admin.attach(identityId, body)).status).toBe(200);
    expect((await admin.update(identityId, { accessTokenTTL: 600 })).status).toBe(200);
    const jwt = await sign(key, githubClaims(clock.ms, { jti: 'admin-1' }));
    await auth.login({ identityId, jwt });
    expect((await refusal(auth.login({ identityId, jwt }))).code).toBe('token_already_used');
    expect((await admin.update(identityId, { singleUseTokens: null })).status).toBe(200);
    await auth.login({ identityId, jwt });
    await auth.login({ identityId, jwt });
    await auth.close();
  });

  it('refuses a value that is not true or false, naming the field', () => {
    expect(() => parseIdentityConfig(githubIdentity(key, { singleUseTokens: 'yes' as never }))).toThrow(
      expect.objectContaining({ code: 'invalid_config', field: 'singleUseTokens' }),
    );
  });
});

describe('SECURITY-CASES TIME-09: each IdP token logs in once on a singleUseTokens identity', () => {
  it('a second login with the same token is 401 token_already_used, with its own message and a challenge; the event says so', async () => {
    const e = engine();
    const jwt = await sign(e.key, githubClaims(e.clock.ms));
    await e.auth.login({ identityId: ID, jwt });
    e.clock.advance(5);
    const error = await refusal(e.auth.login({ identityId: ID, jwt }));
    expect(error.status).toBe(401);
    expect(error.code).toBe('token_already_used');
    expect(error.message).toBe('This IdP token was already exchanged');
    expect(error.headers['www-authenticate']).toMatch(/^Bearer /);
    expect(e.rec.last('login.failure')).toMatchObject({ reasonCode: 'token_already_used', identityId: ID });
    expect(e.tokens.created).toBe(1);
    expect(e.rec.dump()).not.toContain(jwt);
  });

  it('without singleUseTokens the same token logs in again and again (the default: IdP tokens are bearer credentials)', async () => {
    const e = engine();
    const jwt = await sign(e.key, githubClaims(e.clock.ms));
    for (let i = 0; i < 3; i++) await e.auth.login({ identityId: 'reusable', jwt });
    expect(e.tokens.created).toBe(3);
  });

  it('with revealLoginFailureReasons off the caller gets invalid_credentials; events still carry token_already_used', async () => {
    const key = makeKey('RS256');
    const rec = new Recorder();
    const clock = new FakeClock();
    const auth = createOidcAuth({
      identities: [githubIdentity(key, { singleUseTokens: true })],
      signingKeys: SIGNING_KEYS,
      clock: clock.now,
      onEvent: rec.onEvent,
      revealLoginFailureReasons: false,
    });
    const jwt = await sign(key, githubClaims(clock.ms));
    await auth.login({ identityId: ID, jwt });
    const error = await refusal(auth.login({ identityId: ID, jwt }));
    expect(error.code).toBe('invalid_credentials');
    expect(rec.last('login.failure')?.reasonCode).toBe('token_already_used');
  });

  it('a login refused by a later check (address, requested scope) does not spend the token; the next good one does', async () => {
    const e = engine({ identity: { accessTokenTrustedIps: '203.0.113.0/24' } });
    const jwt = await sign(e.key, githubClaims(e.clock.ms));
    expect((await refusal(e.auth.login({ identityId: ID, jwt, clientIp: '198.51.100.7' }))).code).toBe(
      'ip_not_allowed',
    );
    const scoped = await refusal(
      e.auth.login({ identityId: ID, jwt, clientIp: '203.0.113.5', grant: { scopes: ['deploy'] } }),
    );
    expect(scoped.code).toBe('scope_not_allowed');
    await e.auth.login({ identityId: ID, jwt, clientIp: '203.0.113.5' });
    expect((await refusal(e.auth.login({ identityId: ID, jwt, clientIp: '203.0.113.5' }))).code).toBe(
      'token_already_used',
    );
  });

  it('a token that does not verify spends nothing: the uniform refusal, no replay-cache call', async () => {
    const cache = new RecordingCache();
    const e = engine({ replayCache: cache });
    const forged = await sign(makeKey('RS256', e.key.kid), githubClaims(e.clock.ms));
    expect((await refusal(e.auth.login({ identityId: ID, jwt: forged }))).code).toBe('invalid_credentials');
    expect(cache.remembered).toEqual([]);
  });

  it('20 concurrent logins with one token: exactly one is granted, the rest are token_already_used', async () => {
    const e = engine();
    const jwt = await sign(e.key, githubClaims(e.clock.ms));
    const results = await Promise.allSettled(
      Array.from({ length: 20 }, () => e.auth.login({ identityId: ID, jwt })),
    );
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    const reasons = results.flatMap((r) =>
      r.status === 'rejected' ? [(r.reason as OidcAuthError).code] : [],
    );
    expect(new Set(reasons)).toEqual(new Set(['token_already_used']));
    expect(e.tokens.created).toBe(1);
  });

  it('two tokens of one workflow run (same claims, different jti) each log in once', async () => {
    const e = engine();
    const one = await sign(e.key, githubClaims(e.clock.ms, { jti: 'run-1-a' }));
    const two = await sign(e.key, githubClaims(e.clock.ms, { jti: 'run-1-b' }));
    await e.auth.login({ identityId: ID, jwt: one });
    await e.auth.login({ identityId: ID, jwt: two });
    expect((await refusal(e.auth.login({ identityId: ID, jwt: two }))).code).toBe('token_already_used');
  });
});

describe('SECURITY-CASES TIME-09: the key is iss + jti, or the signed content, never the raw string', () => {
  it('with a jti: idp:<iss>:<jti>, remembered until exp + clockSkewSeconds', async () => {
    const cache = new RecordingCache();
    const e = engine({ replayCache: cache, identity: { clockSkewSeconds: 30 } });
    const claims = githubClaims(e.clock.ms, { jti: 'abc-123' });
    await e.auth.login({ identityId: ID, jwt: await sign(e.key, claims) });
    expect(cache.remembered).toEqual([
      { key: `idp:${ISSUER}:abc-123`, expiresAt: ((claims.exp as number) + 30) * 1000, now: e.clock.ms },
    ]);
  });

  it('without a jti: idp:<iss>:sha256:<SHA-256 of the signing input>, and two such tokens are told apart', async () => {
    const cache = new RecordingCache();
    const e = engine({ replayCache: cache });
    const claims = githubClaims(e.clock.ms);
    delete claims.jti;
    const jwt = await sign(e.key, claims);
    await e.auth.login({ identityId: ID, jwt });
    const signingInput = jwt.slice(0, jwt.lastIndexOf('.'));
    expect(cache.remembered[0]!.key).toBe(`idp:${ISSUER}:sha256:${sha256(signingInput)}`);
    expect(cache.remembered[0]!.key).not.toContain(jwt.split('.')[1]);
    expect((await refusal(e.auth.login({ identityId: ID, jwt }))).code).toBe('token_already_used');
    e.clock.advance(1);
    const next = await sign(e.key, { ...claims, iat: seconds(e.clock.ms) });
    await e.auth.login({ identityId: ID, jwt: next });
  });

  it('a jti that is not printable ASCII goes in hashed; a very long key is hashed whole', () => {
    const payload = { iss: ISSUER, jti: 'ünï\u0000code' };
    expect(singleUseKey('a.b.c', payload)).toBe(`idp:${ISSUER}:jti-sha256:${sha256('ünï\u0000code')}`);
    const long = { iss: `https://${'x'.repeat(1100)}.example`, jti: 'j' };
    const key = singleUseKey('a.b.c', long);
    expect(key).toBe(`idp:sha256:${sha256(`idp:${long.iss}:j`)}`);
  });

  it('the same token with other unused bits in its signature verifies, and counts as the same token', async () => {
    const e = engine();
    const claims = githubClaims(e.clock.ms);
    delete claims.jti;
    const jwt = await sign(e.key, claims);
    const variant = trailingBitsVariant(jwt);
    expect(variant).not.toBe(jwt);
    // Proof the variant is a token the engine accepts, so the test below could fail.
    await e.auth.login({ identityId: 'reusable', jwt: variant });
    await e.auth.login({ identityId: ID, jwt });
    expect((await refusal(e.auth.login({ identityId: ID, jwt: variant }))).code).toBe('token_already_used');
  });

  it('an ES256 token re-signed as (r, n - s) verifies, and counts as the same token', async () => {
    const e = engine({ key: makeKey('ES256') });
    const claims = githubClaims(e.clock.ms);
    delete claims.jti;
    const jwt = await sign(e.key, claims);
    const variant = highSVariant(jwt);
    expect(variant.split('.')[2]).not.toBe(jwt.split('.')[2]);
    await e.auth.login({ identityId: 'reusable', jwt: variant });
    await e.auth.login({ identityId: ID, jwt: variant });
    expect((await refusal(e.auth.login({ identityId: ID, jwt }))).code).toBe('token_already_used');
  });

  it('padding, a trailing newline or surrounding spaces never make another token: refused as malformed, and the token stays spent', async () => {
    const e = engine();
    const jwt = await sign(e.key, githubClaims(e.clock.ms));
    await e.auth.login({ identityId: ID, jwt });
    for (const variant of [`${jwt}=`, `${jwt}==`, `${jwt}\n`, `${jwt}\r\n`, ` ${jwt}`, `${jwt} `]) {
      expect((await refusal(e.auth.login({ identityId: ID, jwt: variant }))).code).toBe(
        'invalid_credentials',
      );
      expect(e.rec.last('login.failure')?.reasonCode).toBe('token_malformed');
    }
    expect((await refusal(e.auth.login({ identityId: ID, jwt }))).code).toBe('token_already_used');
    expect(e.tokens.created).toBe(1);
  });

  it('a token a login would accept for more than a day (MAX_REPLAY_WINDOW_MS, the longest a replay cache keeps a key) is refused as token_lifetime_too_long, never remembered: it could be exchanged again once forgotten', async () => {
    const cache = new RecordingCache();
    const e = engine({ replayCache: cache, identity: { maxTokenLifetimeSeconds: 3 * 86_400 } });
    const now = seconds(e.clock.ms);
    const long = await sign(e.key, githubClaims(e.clock.ms, { exp: now + 2 * 86_400 }));
    const error = await refusal(e.auth.login({ identityId: ID, jwt: long }));
    expect(error.code).toBe('token_lifetime_too_long');
    expect(cache.remembered).toHaveLength(0);
    expect(e.tokens.created).toBe(0);
    // One that is accepted for less than a day is remembered until then.
    const day = await sign(e.key, githubClaims(e.clock.ms, { exp: now + 86_400 - 120 }));
    await e.auth.login({ identityId: ID, jwt: day });
    expect(cache.remembered[0]!.expiresAt).toBeLessThanOrEqual(e.clock.ms + MAX_REPLAY_WINDOW_MS);
  });
});

describe('replay cache outage: fail closed', () => {
  const down: ReplayCache = {
    remember: () => Promise.reject(new Error('ECONNREFUSED')),
    seenAt: () => Promise.reject(new Error('ECONNREFUSED')),
  };

  it('a replay cache that throws: 503 store_unavailable, no record stored, no token; logged by error name only', async () => {
    const e = engine({ replayCache: down });
    const jwt = await sign(e.key, githubClaims(e.clock.ms));
    const error = await refusal(e.auth.login({ identityId: ID, jwt }));
    expect(error.status).toBe(503);
    expect(error.code).toBe('store_unavailable');
    expect(e.tokens.created).toBe(0);
    expect(e.rec.logs.some((l) => (l.obj as { operation?: string }).operation === 'replay.remember')).toBe(
      true,
    );
    expect(e.rec.dump()).not.toContain('ECONNREFUSED');
    // Identities without singleUseTokens never ask the cache.
    await e.auth.login({ identityId: 'reusable', jwt });
  });

  it('a replay cache that answers neither first nor seenAt: 503, never a grant', async () => {
    const odd = { remember: async () => ({}) as ReplayVerdict, seenAt: async () => undefined };
    const e = engine({ replayCache: odd });
    const jwt = await sign(e.key, githubClaims(e.clock.ms));
    expect((await refusal(e.auth.login({ identityId: ID, jwt }))).status).toBe(503);
    expect(e.tokens.created).toBe(0);
  });

  it('a full memory replay cache refuses (503) rather than forget', async () => {
    const cache = new MemoryReplayCache({ maxEntries: 1 });
    const e = engine({ replayCache: cache });
    await e.auth.login({ identityId: ID, jwt: await sign(e.key, githubClaims(e.clock.ms, { jti: 'a' })) });
    const error = await refusal(
      e.auth.login({ identityId: ID, jwt: await sign(e.key, githubClaims(e.clock.ms, { jti: 'b' })) }),
    );
    expect(error.status).toBe(503);
  });
});

describe('explain: the single_use check', () => {
  it('says "not exchanged yet" before a login, remembers nothing, and "already exchanged at <ISO time>" after', async () => {
    const cache = new RecordingCache();
    const e = engine({ replayCache: cache });
    const jwt = await sign(e.key, githubClaims(e.clock.ms));
    const before = await e.auth.explain({ identityId: ID, jwt });
    expect(before.ok).toBe(true);
    expect(before.checks.at(-1)).toEqual({ check: 'single_use', pass: true, actual: 'not exchanged yet' });
    expect(cache.remembered).toEqual([]);
    const exchangedAt = e.clock.ms;
    await e.auth.login({ identityId: ID, jwt });
    e.clock.advance(42);
    const after = await e.auth.explain({ identityId: ID, jwt });
    expect(after.ok).toBe(false);
    expect(after.reasonCode).toBe('token_already_used');
    const iso = new Date(exchangedAt).toISOString();
    expect(after.checks.at(-1)).toEqual({
      check: 'single_use',
      pass: false,
      actual: iso,
      reason: `already exchanged at ${iso}`,
    });
    expect(cache.remembered).toHaveLength(1);
  });

  it('reports an earlier failure first, and the cache being down as a failed check, never throwing', async () => {
    const e = engine({
      identity: { accessTokenTrustedIps: '203.0.113.0/24' },
      replayCache: {
        remember: () => Promise.reject(new Error('down')),
        seenAt: () => Promise.reject(new Error('down')),
      },
    });
    const jwt = await sign(e.key, githubClaims(e.clock.ms));
    const report = await e.auth.explain({ identityId: ID, jwt, clientIp: '198.51.100.1' });
    expect(report.reasonCode).toBe('ip_not_allowed');
    expect(report.checks.at(-1)).toEqual({
      check: 'single_use',
      pass: false,
      reason: 'the replay cache is unavailable',
    });
    const fromTrusted = await e.auth.explain({ identityId: ID, jwt, clientIp: '203.0.113.1' });
    expect(fromTrusted).toMatchObject({ ok: false, reasonCode: 'store_unavailable' });
  });

  it('identities without singleUseTokens have no single_use check and never read the cache', async () => {
    const cache = new RecordingCache();
    const e = engine({ replayCache: cache });
    const report = await e.auth.explain({
      identityId: 'reusable',
      jwt: await sign(e.key, githubClaims(e.clock.ms)),
    });
    expect(report.checks.map((c) => c.check)).not.toContain('single_use');
    expect(cache.read).toEqual([]);
  });
});

describe('over HTTP (Express): the Infisical route and the RFC 8693 token exchange spend the same token', () => {
  const PREFIX = '/api/v1/auth';
  const key = makeKey('RS256');
  const clock = new FakeClock();
  let auth: OidcAuth;
  let url: string;
  let close: () => Promise<void>;

  beforeAll(async () => {
    auth = createOidcAuth({
      identities: [githubIdentity(key, { singleUseTokens: true })],
      signingKeys: SIGNING_KEYS,
      clock: clock.now,
    });
    const app = express();
    app.use(PREFIX, oidcAuthRouter(auth));
    const server = app.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    close = () => new Promise((resolve) => server.close(() => resolve()));
  });

  afterAll(async () => {
    await close?.();
    await auth?.close();
  });

  const exchange = (jwt: string) =>
    postForm(url, `${PREFIX}/oauth/token`, {
      grant_type: TOKEN_EXCHANGE_GRANT,
      subject_token: jwt,
      subject_token_type: TOKEN_TYPE.jwt,
      // The identity, as the Infisical route's body names it.
      client_id: ID,
    });

  it('Infisical login twice: 200, then 401 token_already_used', async () => {
    const jwt = await sign(key, githubClaims(clock.ms, { jti: 'http-1' }));
    const first = await postJson(url, `${PREFIX}/oidc-auth/login`, { identityId: ID, jwt });
    expect(first.status).toBe(200);
    const second = await postJson(url, `${PREFIX}/oidc-auth/login`, { identityId: ID, jwt });
    expect(second.status).toBe(401);
    expect(second.json).toMatchObject({
      reasonCode: 'token_already_used',
      message: 'This IdP token was already exchanged',
    });
    expect(second.text).not.toContain(jwt);
  });

  it('RFC 8693 §2.2.2: an exchange of a token already spent (by the Infisical route) is 400 invalid_grant, reasonCode token_already_used', async () => {
    const jwt = await sign(key, githubClaims(clock.ms, { jti: 'http-2' }));
    expect((await postJson(url, `${PREFIX}/oidc-auth/login`, { identityId: ID, jwt })).status).toBe(200);
    const res = await exchange(jwt);
    expect(res.status).toBe(400);
    expect(res.json).toMatchObject({ error: 'invalid_grant', reasonCode: 'token_already_used' });
  });

  it('an exchange spends the token for the Infisical route too', async () => {
    const jwt = await sign(key, githubClaims(clock.ms, { jti: 'http-3' }));
    const res = await exchange(jwt);
    expect(res.status, res.text).toBe(200);
    expect((await exchange(jwt)).json.reasonCode).toBe('token_already_used');
    const login = await postJson(url, `${PREFIX}/oidc-auth/login`, { identityId: ID, jwt });
    expect(login.json.reasonCode).toBe('token_already_used');
  });

  it('a JSON body whose jwt carries a trailing newline is refused as malformed, not exchanged a second time', async () => {
    const jwt = await sign(key, githubClaims(clock.ms, { jti: 'http-4' }));
    expect((await postJson(url, `${PREFIX}/oidc-auth/login`, { identityId: ID, jwt })).status).toBe(200);
    const res = await request(url, 'POST', `${PREFIX}/oidc-auth/login`, {
      headers: ['content-type', 'application/json'],
      body: JSON.stringify({ identityId: ID, jwt: `${jwt}\n` }),
    });
    expect(res.status).toBe(401);
    expect(res.json.reasonCode).toBe('invalid_credentials');
  });
});
