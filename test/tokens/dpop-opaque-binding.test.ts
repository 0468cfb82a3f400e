import { createHmac, randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import pg from 'pg';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrate, PostgresTokenStore } from '../../adapters/postgres/index.js';
import { RedisTokenStore } from '../../adapters/redis/index.js';
import {
  AccessTokenCodec,
  MemoryTokenStore,
  OidcAuthError,
  createOidcAuth,
  guard,
  renewAnswer,
  revokeAnswer,
  type DpopRequest,
  type OidcAuth,
  type TokenStore,
} from '../../src/index.js';
import { accessTokenHash } from '../../src/tokens/dpop.js';
import { FakeClock, SIGNING_KEYS, githubIdentity } from '../helpers/engine.js';
import { githubClaims, makeKey, seconds, sign } from '../helpers/jwt.js';
import { sharedPgConfig, sharedRedisOptions, uniqueName } from '../helpers/servers.js';
import {
  API_URL,
  ISSUER_URL,
  LOGIN_URL,
  RENEW_URL,
  REVOKE_URL,
  proofKey,
  refusal,
  type ProofKey,
} from '../helpers/dpop.js';

/**
 * A DPoP-bound opaque token says its key's thumbprint in the MAC-protected string
 * (`omat_<kid>.<id>.<exp>.<nonce>.<jkt>.<mac>`), so the guard refuses it as Bearer or with another
 * key's proof before the token store is asked anything: a thief holding only the string cannot
 * spend the uses of a token with a uses limit (RFC 9449 §7.1).
 */

const USES = 3;

const shape = (e: OidcAuthError) => ({
  status: e.status,
  code: e.code,
  challenge: e.headers['www-authenticate'],
});

/** A token store that counts the engine's calls to it. */
function counted(store: TokenStore): { store: TokenStore; calls: string[] } {
  const calls: string[] = [];
  const wrapped = new Proxy(store, {
    get(target, name, receiver) {
      const value = Reflect.get(target, name, receiver) as unknown;
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        calls.push(String(name));
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
  return { store: wrapped, calls };
}

/** The bound string as an engine minted it before the jkt was in the string: `omat_<kid>.<id>.<exp>.<nonce>.<mac>`. */
function withoutJkt(token: string): string {
  const [head, id, exp, nonce] = token.split('.') as [string, string, string, string];
  const unsigned = `${head}.${id}.${exp}.${nonce}`;
  return `${unsigned}.${createHmac('sha256', SIGNING_KEYS.k1).update(unsigned).digest('base64url')}`;
}

describe('the bound opaque token string (omat_<kid>.<id>.<exp>.<nonce>.<jkt>.<mac>)', () => {
  const codec = new AccessTokenCodec({ a: 'x'.repeat(32) });
  const jkt = 'NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs';
  const id = 'AAAAAAAAAAAAAAAAAAAAAA';
  const exp = Date.UTC(2030, 0, 1);
  const mac = (unsigned: string) => createHmac('sha256', 'x'.repeat(32)).update(unsigned).digest('base64url');

  it('carries the jkt under the MAC; an unbound string is as before (four parts)', () => {
    const bound = codec.mint(id, exp, jkt);
    expect(bound.split('.')).toHaveLength(6);
    expect(bound.split('.')[4]).toBe(jkt);
    expect(codec.parse(bound)).toEqual({ tokenId: id, expiresAt: exp, kid: 'a', jkt });
    const unbound = codec.mint(id, exp);
    expect(unbound.split('.')).toHaveLength(5);
    expect(codec.parse(unbound)).toEqual({ tokenId: id, expiresAt: exp, kid: 'a' });
    expect(codec.parse(unbound)).not.toHaveProperty('jkt');
  });

  it('a string that flips, replaces or strips the jkt part fails the MAC', () => {
    for (const verifiedCacheSize of [10, 0]) {
      const c = new AccessTokenCodec({ a: 'x'.repeat(32) }, { verifiedCacheSize });
      const bound = c.mint(id, exp, jkt);
      expect(c.parse(bound)?.jkt).toBe(jkt);
      const [head, tid, e, nonce, j, m] = bound.split('.') as [
        string,
        string,
        string,
        string,
        string,
        string,
      ];
      const flipped = (j[0] === 'A' ? 'B' : 'A') + j.slice(1);
      for (const forged of [
        `${head}.${tid}.${e}.${nonce}.${flipped}.${m}`,
        `${head}.${tid}.${e}.${nonce}.${'A'.repeat(43)}.${m}`,
        `${head}.${tid}.${e}.${nonce}.${m}`, // stripped: a bound token passed off as unbound
        `${head}.${tid}.${e}.${nonce}.${j}.${j}.${m}`,
      ]) {
        expect(c.parse(forged)).toBeUndefined();
      }
      // The genuine one still verifies after the forgeries.
      expect(c.parse(bound)?.jkt).toBe(jkt);
    }
  });

  it('a jkt part that is not 43 base64url characters is an invalid token, even under a valid MAC', () => {
    for (const bad of [jkt.slice(1), `${jkt}A`, `${jkt.slice(1)}=`, `${jkt.slice(1)}+`, '']) {
      const unsigned = `omat_a.${id}.${exp.toString(36)}.AAAAAAAA.${bad}`;
      expect(codec.parse(`${unsigned}.${mac(unsigned)}`)).toBeUndefined();
    }
    expect(() => codec.mint(id, exp, 'not-a-thumbprint')).toThrow(TypeError);
  });

  it('the longest bound string (16-character kid, 10-digit exp) is within the length bound', () => {
    const long = new AccessTokenCodec({ ['k'.repeat(16)]: 'x'.repeat(32) });
    const far = 36 ** 9 * 1000; // the first expiry of 10 base-36 digits
    const token = long.mint(id, far, jkt);
    expect(token.split('.')[2]).toHaveLength(10);
    expect(long.parse(token)).toEqual({ tokenId: id, expiresAt: far, kid: 'k'.repeat(16), jkt });
    expect(long.parse(`${token}A`)).toBeUndefined();
  });
});

const prefix = `${uniqueName('oma_dpop_bind')}:`;
const schema = uniqueName('oma_dpop_bind');
let client: Redis;
let pool: pg.Pool;

beforeAll(async () => {
  client = new Redis({ ...sharedRedisOptions(), lazyConnect: true, enableOfflineQueue: false });
  client.on('error', () => {});
  await client.connect(); // a Redis that cannot be reached fails this file, never skips it
  pool = new pg.Pool({ ...sharedPgConfig(), max: 5, connectionTimeoutMillis: 2000 });
  pool.on('error', () => {});
  await migrate(pool, { schema }); // likewise a PostgreSQL that cannot be reached
});

afterAll(async () => {
  const keys = await client.keys(`${prefix}*`);
  if (keys.length > 0) await client.del(...keys);
  await client.quit();
  await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await pool.end();
});

const stores: Array<[string, () => TokenStore]> = [
  ['MemoryTokenStore', () => new MemoryTokenStore({ sweepIntervalMs: 0 })],
  ['RedisTokenStore', () => new RedisTokenStore({ client, prefix })],
  ['PostgresTokenStore', () => new PostgresTokenStore({ pool, schema })],
];

describe.each(stores)('RFC 9449 §7.1 on %s: a stolen bound opaque token spends no use', (_name, make) => {
  const idpKey = makeKey('RS256');
  const clock = new FakeClock(Date.now());
  let auth: OidcAuth;
  let calls: string[];
  let key: ProofKey;
  let thief: ProofKey;

  beforeAll(async () => {
    const wrapped = counted(make());
    calls = wrapped.calls;
    auth = createOidcAuth({
      identities: [
        githubIdentity(idpKey, { identityId: 'limited', accessTokenNumUsesLimit: USES }),
        githubIdentity(idpKey, { identityId: 'open' }),
      ],
      tokens: wrapped.store,
      signingKeys: SIGNING_KEYS,
      issuer: ISSUER_URL,
      clock: clock.now,
    });
    key = await proofKey();
    thief = await proofKey();
  });
  afterAll(async () => {
    await auth?.close();
    await auth?.tokens.close?.();
  });

  const proof = (k: ProofKey, claims: Record<string, unknown>) =>
    new SignJWT({ jti: randomUUID(), iat: seconds(clock.ms), ...claims })
      .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk: k.jwk })
      .sign(k.privateKey);
  const at = (p: string | undefined, url: string, method: string): DpopRequest => ({ proof: p, method, url });
  const useProof = (token: string, k: ProofKey) =>
    proof(k, { htm: 'GET', htu: API_URL, ath: accessTokenHash(token) });
  const dpopUse = async (token: string, k: ProofKey) =>
    guard(auth, { authorization: `DPoP ${token}`, dpop: at(await useProof(token, k), API_URL, 'GET') });
  const bearerUse = (token: string) => guard(auth, { authorization: `Bearer ${token}` });
  /** The reason code of a renew and of a revoke of `token` with proofs of `k` (POST, `ath` of the token). */
  const reasonOf = (answer: { body: unknown }) => (answer.body as { reasonCode: string }).reasonCode;
  const posted = async (token: string, k: ProofKey, url: string) =>
    at(await proof(k, { htm: 'POST', htu: url, ath: accessTokenHash(token) }), url, 'POST');
  const renewWith = async (token: string, k: ProofKey) =>
    reasonOf(await renewAnswer(auth, { accessToken: token }, undefined, await posted(token, k, RENEW_URL)));
  const revokeWith = async (token: string, k: ProofKey) =>
    reasonOf(await revokeAnswer(auth, { accessToken: token }, undefined, await posted(token, k, REVOKE_URL)));
  async function boundLogin(identityId = 'limited'): Promise<string> {
    const grant = await auth.login({
      identityId,
      jwt: await sign(idpKey, githubClaims(clock.ms)),
      dpop: at(await proof(key, { htm: 'POST', htu: LOGIN_URL }), LOGIN_URL, 'POST'),
    });
    expect(grant.tokenType).toBe('DPoP');
    return grant.accessToken;
  }

  it('as Bearer and with another key: refused exactly as before, no store call, and every use is left', async () => {
    const token = await boundLogin();
    expect(token.split('.')[4]).toBe(key.jkt);
    // The same string without its jkt part is what the engine minted before: the reference answer.
    const legacyAsBearer = shape(await refusal(bearerUse(withoutJkt(await boundLogin()))));
    const legacyOtherKey = shape(await refusal(dpopUse(withoutJkt(await boundLogin()), thief)));
    expect(legacyAsBearer).toEqual({
      status: 401,
      code: 'invalid_token',
      challenge:
        'DPoP realm="oidc-machine-auth", error="invalid_token", algs="ES256 EdDSA RS256 PS256", ' +
        'Bearer realm="oidc-machine-auth", error="invalid_token"',
    });
    expect(legacyOtherKey).toEqual({
      status: 401,
      code: 'dpop_key_mismatch',
      challenge:
        'DPoP realm="oidc-machine-auth", error="invalid_dpop_proof", algs="ES256 EdDSA RS256 PS256", ' +
        'Bearer realm="oidc-machine-auth", error="invalid_token"',
    });

    calls.length = 0;
    for (let i = 0; i < USES + 1; i++) {
      expect(shape(await refusal(bearerUse(token)))).toEqual(legacyAsBearer);
      expect(shape(await refusal(dpopUse(token, thief)))).toEqual(legacyOtherKey);
      // A direct call without a DPoP context is a bearer use too.
      expect(shape(await refusal(auth.authenticate(token)))).toEqual(legacyAsBearer);
    }
    // Renew and the revoke route refuse them before the store as well.
    const renewBearer = await renewAnswer(
      auth,
      { accessToken: token },
      undefined,
      at(undefined, RENEW_URL, 'POST'),
    );
    expect(renewBearer.status).toBe(401);
    expect((renewBearer.body as { reasonCode: string }).reasonCode).toBe('invalid_token');
    expect(await renewWith(token, thief)).toBe('dpop_key_mismatch');
    expect(await revokeWith(token, thief)).toBe('dpop_key_mismatch');
    expect(calls).toEqual([]);

    // The holder of the key still has every use.
    for (let left = USES - 1; left >= 0; left--) {
      expect((await dpopUse(token, key)).usesRemaining).toBe(left);
    }
    expect((await refusal(dpopUse(token, key))).code).toBe('uses_exhausted');
  });

  it('a string minted before the jkt was in it keeps working as before: its record binding is enforced after the read', async () => {
    const legacy = withoutJkt(await boundLogin());
    expect(legacy.split('.')).toHaveLength(5);
    expect((await refusal(bearerUse(legacy))).code).toBe('invalid_token');
    expect((await refusal(dpopUse(legacy, thief))).code).toBe('dpop_key_mismatch');
    // Both refusals came after the store counted a use (the binding is known only once read).
    const context = await dpopUse(legacy, key);
    expect(context.jkt).toBe(key.jkt);
    expect(context.usesRemaining).toBe(USES - 3);
    expect((await refusal(dpopUse(legacy, key))).code).toBe('uses_exhausted');
    // Renewing it with a proof by its key hands out a string that carries the jkt.
    const open = withoutJkt(await boundLogin('open'));
    const renewed = await renewAnswer(
      auth,
      { accessToken: open },
      undefined,
      await posted(open, key, RENEW_URL),
    );
    expect(renewed.status).toBe(200);
    const fresh = (renewed.body as { accessToken: string }).accessToken;
    expect(fresh.split('.')[4]).toBe(key.jkt);
    expect((await dpopUse(fresh, key)).jkt).toBe(key.jkt);
  });

  it('a string and a record that disagree on the binding are refused as invalid_token (defence in depth)', async () => {
    // Strings the signing key holder could mint, naming a record bound to another key or to none.
    const codec = new AccessTokenCodec(SIGNING_KEYS);
    const bound = await boundLogin('open');
    const boundId = (await auth.introspect(bound))!.tokenId;
    const unbound = await auth.login({ identityId: 'open', jwt: await sign(idpKey, githubClaims(clock.ms)) });
    const expiresAt = clock.ms + 60_000;
    for (const token of [
      codec.mint(boundId, expiresAt, thief.jkt),
      codec.mint(unbound.tokenId, expiresAt, thief.jkt),
    ]) {
      const error = await refusal(dpopUse(token, thief));
      expect(shape(error)).toEqual({
        status: 401,
        code: 'invalid_token',
        challenge: 'Bearer realm="oidc-machine-auth", error="invalid_token"',
      });
      expect(await auth.introspect(token)).toBeUndefined();
      expect(await renewWith(token, thief)).toBe('invalid_token');
      expect(await revokeWith(token, thief)).toBe('invalid_token');
    }
    // Neither record was revoked by the refused revokes.
    expect(await auth.introspect(bound)).toBeDefined();
    expect(await auth.introspect(unbound.accessToken)).toBeDefined();
  });

  it('a forged string that strips or changes the jkt part is invalid_token before the store', async () => {
    const token = await boundLogin();
    const parts = token.split('.');
    const stripped = [...parts.slice(0, 4), parts[5]].join('.');
    const swapped = [...parts.slice(0, 4), thief.jkt, parts[5]].join('.');
    calls.length = 0;
    expect(shape(await refusal(bearerUse(stripped)))).toEqual({
      status: 401,
      code: 'invalid_token',
      challenge: 'Bearer realm="oidc-machine-auth", error="invalid_token"',
    });
    expect((await refusal(dpopUse(swapped, thief))).code).toBe('invalid_token');
    expect(calls).toEqual([]);
    expect((await dpopUse(token, key)).usesRemaining).toBe(USES - 1);
  });
});
