import { generateKeyPairSync, randomUUID, sign as cryptoSign } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import express from 'express';
import Fastify from 'fastify';
import { SignJWT, decodeJwt, exportJWK, generateKeyPair } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { oidcAuthRouter, requireAccessToken as expressGuard } from '../../adapters/express/index.js';
import { oidcAuthPlugin, requireAccessToken as fastifyGuard } from '../../adapters/fastify/index.js';
import {
  MemoryReplayCache,
  MemoryTokenStore,
  OidcAuthError,
  createOidcAuth,
  guard,
  loginAnswer,
  metadataAnswer,
  oauthIntrospectAnswer,
  oauthTokenAnswer,
  renewAnswer,
  revokeAnswer,
  type DpopAlgorithm,
  type DpopOptions,
  type DpopRequest,
  type OidcAuth,
  type ReplayCache,
  type TokenStore,
} from '../../src/index.js';
import { dpopRequest } from '../../src/http/dpop.js';
import { htuMatches } from '../../src/tokens/dpop-htu.js';
import { accessTokenHash } from '../../src/tokens/dpop.js';
import { FakeClock, Recorder, SIGNING_KEYS, githubIdentity } from '../helpers/engine.js';
import { answerClientErrors, getWith, postJson, type RawResponse } from '../helpers/http.js';
import { githubClaims, makeKey, seconds, sign } from '../helpers/jwt.js';
import {
  API_URL,
  ISSUER_URL,
  LOGIN_URL,
  RENEW_URL,
  REVOKE_URL,
  TOKEN_URL,
  proofKey,
  refusal,
  type ProofKey,
} from '../helpers/dpop.js';

const idpKey = makeKey('RS256');
const identities = [
  githubIdentity(idpKey),
  githubIdentity(idpKey, { identityId: 'jwt-deployer', accessTokenFormat: 'jwt' }),
  githubIdentity(idpKey, { identityId: 'must-dpop', requireDpop: true }),
];

function engine(
  clock: FakeClock,
  options: { dpop?: DpopOptions; replayCache?: ReplayCache; rec?: Recorder; tokens?: TokenStore } = {},
): OidcAuth {
  return createOidcAuth({
    identities,
    signingKeys: SIGNING_KEYS,
    issuer: ISSUER_URL,
    clock: clock.now,
    ...(options.rec ? { onEvent: options.rec.onEvent, logger: options.rec.logger } : {}),
    ...(options.dpop ? { dpop: options.dpop } : {}),
    ...(options.replayCache ? { replayCache: options.replayCache } : {}),
    ...(options.tokens ? { tokens: options.tokens } : {}),
  });
}

// Every check of this block runs twice: proof signatures checked on the signature worker (the
// default) and on libuv's thread pool (`dpop.proofChecks: 'thread-pool'`).
describe.each([
  { checks: 'worker' as const, dpop: undefined },
  { checks: 'thread-pool' as const, dpop: { proofChecks: 'thread-pool' as const } },
])('DPoP (RFC 9449) in the engine, proof signatures on the $checks', ({ dpop }) => {
  const clock = new FakeClock();
  const rec = new Recorder();
  let auth: OidcAuth;
  let key: ProofKey;
  let otherKey: ProofKey;

  /** A proof signed with jose directly: claims verbatim on top of fresh jti and iat; header on top of typ/alg/jwk. */
  async function proof(
    k: ProofKey,
    claims: Record<string, unknown>,
    header: Record<string, unknown> = {},
    signWith: ProofKey = k,
  ): Promise<string> {
    return new SignJWT({ jti: randomUUID(), iat: seconds(clock.ms), ...claims })
      .setProtectedHeader({ alg: k.alg, typ: 'dpop+jwt', jwk: k.jwk, ...header } as { alg: string })
      .sign(signWith.privateKey);
  }
  const loginProof = (k = key, claims: Record<string, unknown> = {}) =>
    proof(k, { htm: 'POST', htu: LOGIN_URL, ...claims });
  const useProof = (token: string, k = key, claims: Record<string, unknown> = {}) =>
    proof(k, { htm: 'GET', htu: API_URL, ath: accessTokenHash(token), ...claims });
  const at = (p: string | undefined, url = API_URL, method = 'GET'): DpopRequest => ({
    proof: p,
    method,
    url,
  });
  const idpToken = () => sign(idpKey, githubClaims(clock.ms));

  async function boundLogin(identityId = 'gh-deployer', k = key) {
    return auth.login({
      identityId,
      jwt: await idpToken(),
      dpop: at(await loginProof(k), LOGIN_URL, 'POST'),
    });
  }
  /** Authenticate as the guard does for `Authorization: DPoP <token>`. */
  const dpopUse = (token: string, p: string | undefined, url = API_URL) =>
    guard(auth, { authorization: `DPoP ${token}`, dpop: at(p, url) });

  beforeAll(async () => {
    auth = engine(clock, { rec, ...(dpop ? { dpop } : {}) });
    key = await proofKey('ES256');
    otherKey = await proofKey('ES256');
  });
  afterAll(() => auth?.close());

  describe('binding at login (RFC 9449 §5, §6)', () => {
    it('RFC 9449 §5: a login with a valid proof gets a DPoP token bound to the proof key (record jkt)', async () => {
      const grant = await boundLogin();
      expect(grant.tokenType).toBe('DPoP');
      const record = await auth.introspect(grant.accessToken);
      expect(record?.jkt).toBe(key.jkt);
    });

    it('RFC 9449 §6.1: a JWT access token of a bound login carries cnf.jkt, the RFC 7638 thumbprint', async () => {
      const grant = await boundLogin('jwt-deployer');
      expect(grant.tokenType).toBe('DPoP');
      expect(decodeJwt(grant.accessToken).cnf).toEqual({ jkt: key.jkt });
    });

    it('RFC 9449 §11.1 at the door: a login proof is remembered only once the IdP token verified, so unknown identities and forged IdP tokens cannot fill the replay cache; the same proof then still logs in, and once only', async () => {
      const cache = new MemoryReplayCache();
      const own = engine(clock, { replayCache: cache });
      try {
        const p = await loginProof();
        const forged = await sign(makeKey('RS256', idpKey.kid), githubClaims(clock.ms));
        for (const attempt of [
          { identityId: 'nobody', jwt: await idpToken() },
          { identityId: 'gh-deployer', jwt: forged },
        ]) {
          await refusal(own.login({ ...attempt, dpop: at(p, LOGIN_URL, 'POST') }));
        }
        expect(cache.size).toBe(0);
        const ok = await own.login({
          identityId: 'gh-deployer',
          jwt: await idpToken(),
          dpop: at(p, LOGIN_URL, 'POST'),
        });
        expect(ok.tokenType).toBe('DPoP');
        expect(cache.size).toBe(1);
        const again = await refusal(
          own.login({ identityId: 'gh-deployer', jwt: await idpToken(), dpop: at(p, LOGIN_URL, 'POST') }),
        );
        expect(again.code).toBe('invalid_dpop_proof');
      } finally {
        await own.close();
      }
    });

    it('a login without a proof gets a Bearer token with no binding', async () => {
      const grant = await auth.login({ identityId: 'gh-deployer', jwt: await idpToken() });
      expect(grant.tokenType).toBe('Bearer');
      expect((await auth.introspect(grant.accessToken))?.jkt).toBeUndefined();
    });

    it('requireDpop: a login without a proof is refused with dpop_required', async () => {
      const error = await refusal(auth.login({ identityId: 'must-dpop', jwt: await idpToken() }));
      expect(error.status).toBe(401);
      expect(error.code).toBe('dpop_required');
      const grant = await boundLogin('must-dpop');
      expect(grant.tokenType).toBe('DPoP');
    });

    it('RFC 9449 §4.3 step 12: a login proof carrying an ath is refused (no access token is presented)', async () => {
      const p = await loginProof(key, { ath: accessTokenHash('x') });
      const error = await refusal(
        auth.login({ identityId: 'gh-deployer', jwt: await idpToken(), dpop: at(p, LOGIN_URL, 'POST') }),
      );
      expect(error.status).toBe(400);
      expect(error.code).toBe('invalid_dpop_proof');
    });

    it('the Infisical login route answers tokenType "DPoP" for a login with a proof', async () => {
      const body = { identityId: 'gh-deployer', jwt: await idpToken() };
      const answer = await loginAnswer(auth, body, undefined, at(await loginProof(), LOGIN_URL, 'POST'));
      expect(answer.status).toBe(200);
      expect((answer.body as { tokenType: string }).tokenType).toBe('DPoP');
    });

    it('RFC 9449 §5: the token endpoint (RFC 8693) answers token_type DPoP, and 400 invalid_dpop_proof for a bad proof', async () => {
      const body = {
        grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
        subject_token: await idpToken(),
        subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
        client_id: 'gh-deployer',
      };
      const contentType = 'application/x-www-form-urlencoded';
      const ok = await oauthTokenAnswer(auth, {
        contentType,
        body,
        dpop: at(await proof(key, { htm: 'POST', htu: TOKEN_URL }), TOKEN_URL, 'POST'),
      });
      expect(ok.status).toBe(200);
      expect((ok.body as { token_type: string }).token_type).toBe('DPoP');
      const bad = await oauthTokenAnswer(auth, {
        contentType,
        body,
        dpop: at(await proof(key, { htm: 'POST', htu: LOGIN_URL }), TOKEN_URL, 'POST'),
      });
      expect(bad.status).toBe(400);
      expect(bad.body).toMatchObject({ error: 'invalid_dpop_proof', reasonCode: 'invalid_dpop_proof' });
    });
  });

  describe('RFC 9449 §4.3 proof checks, one by one (at the guard)', () => {
    let token: string;
    beforeAll(async () => {
      token = (await boundLogin()).accessToken;
    });

    it('a valid proof with the DPoP scheme passes, and the context carries the jkt', async () => {
      const context = await dpopUse(token, await useProof(token));
      expect(context.identityId).toBe('gh-deployer');
      expect(context.jkt).toBe(key.jkt);
    });

    async function refusedProof(p: string | undefined, url = API_URL): Promise<OidcAuthError> {
      const error = await refusal(dpopUse(token, p, url));
      expect(error.status).toBe(401);
      expect(error.code).toBe('invalid_dpop_proof');
      expect(error.headers['www-authenticate']).toMatch(
        /^DPoP realm="oidc-machine-auth", error="invalid_dpop_proof", algs="ES256 EdDSA RS256 PS256"/,
      );
      return error;
    }

    it('RFC 9449 §4.3 step 1: the DPoP scheme without a DPoP header is refused (invalid_dpop_proof, DPoP challenge)', async () => {
      await refusedProof(undefined);
    });

    it('RFC 9449 §4.3 step 1: two DPoP headers (joined by the framework) are refused', async () => {
      const a = await useProof(token);
      const b = await useProof(token);
      await refusedProof(`${a}, ${b}`);
    });

    it('RFC 9449 §4.3 step 2: a proof that is not a compact JWS, or larger than 8 KiB, is refused unparsed', async () => {
      await refusedProof('not-a-jwt');
      await refusedProof(`${'a'.repeat(8200)}.b.c`);
      const p = await useProof(token);
      await refusedProof(p.replace(/^[^.]+/, Buffer.from('{"typ":').toString('base64url')));
    });

    it('RFC 9449 §4.3 step 3: a proof missing jti, htm, htu or iat (or with an over-long jti) is refused', async () => {
      for (const missing of ['jti', 'htm', 'htu', 'iat']) {
        const claims: Record<string, unknown> = {
          jti: randomUUID(),
          iat: seconds(clock.ms),
          htm: 'GET',
          htu: API_URL,
          ath: accessTokenHash(token),
        };
        delete claims[missing];
        const p = await new SignJWT(claims)
          .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk: key.jwk })
          .sign(key.privateKey);
        await refusedProof(p);
      }
      await refusedProof(await useProof(token, key, { jti: 'j'.repeat(257) }));
    });

    it('RFC 9449 §4.3 step 4: a typ other than dpop+jwt is refused', async () => {
      await refusedProof(
        await proof(key, { htm: 'GET', htu: API_URL, ath: accessTokenHash(token) }, { typ: 'JWT' }),
      );
    });

    it('RFC 9449 §4.3 step 5: a symmetric alg, none, or an asymmetric alg outside the allowlist is refused', async () => {
      const hs = await new SignJWT({ jti: randomUUID(), iat: seconds(clock.ms), htm: 'GET', htu: API_URL })
        .setProtectedHeader({ alg: 'HS256', typ: 'dpop+jwt', jwk: key.jwk })
        .sign(new Uint8Array(32));
      await refusedProof(hs);
      const none = (
        await useProof(token).then((p) =>
          p.replace(
            /^[^.]+/,
            Buffer.from(JSON.stringify({ alg: 'none', typ: 'dpop+jwt', jwk: key.jwk })).toString('base64url'),
          ),
        )
      ).replace(/\.[^.]+$/, '.AA');
      await refusedProof(none);
      const es384 = await proofKey('ES384');
      await refusedProof(await useProof(token, es384));
    });

    it('RFC 9449 §4.3 step 6: a signature by a key other than the jwk in the header is refused', async () => {
      const p = await proof(key, { htm: 'GET', htu: API_URL, ath: accessTokenHash(token) }, {}, otherKey);
      await refusedProof(p);
    });

    it('RFC 9449 §4.3 step 7: a jwk with a private member, no jwk, or a jwk of another key type is refused', async () => {
      const { privateKey } = await generateKeyPair('ES256', { extractable: true });
      const privateJwk = await exportJWK(privateKey);
      const withPrivate: ProofKey = { ...key, jwk: privateJwk, privateKey };
      await refusedProof(await useProof(token, withPrivate));
      for (const member of ['p', 'q', 'dp', 'dq', 'qi', 'k']) {
        await refusedProof(await useProof(token, { ...key, jwk: { ...key.jwk, [member]: 'AQAB' } }));
      }
      await refusedProof(
        await proof(key, { htm: 'GET', htu: API_URL, ath: accessTokenHash(token) }, { jwk: undefined }),
      );
      const rsa = await proofKey('RS256');
      await refusedProof(await useProof(token, { ...key, jwk: rsa.jwk }));
    });

    it('RFC 9449 §4.3 steps 5-7: each default algorithm verifies (ES256, EdDSA, RS256, PS256); an RSA key under 2048 bits or an EC key of another curve is refused', async () => {
      for (const alg of ['EdDSA', 'RS256', 'PS256']) {
        const k = await proofKey(alg);
        const t = (await boundLogin('gh-deployer', k)).accessToken;
        expect((await dpopUse(t, await useProof(t, k))).jkt).toBe(k.jkt);
      }
      // jose refuses to make or use such a key: signed with node:crypto.
      const weak = generateKeyPairSync('rsa', { modulusLength: 1024 });
      const header = Buffer.from(
        JSON.stringify({ alg: 'RS256', typ: 'dpop+jwt', jwk: weak.publicKey.export({ format: 'jwk' }) }),
      ).toString('base64url');
      const claims = {
        jti: randomUUID(),
        iat: seconds(clock.ms),
        htm: 'GET',
        htu: API_URL,
        ath: accessTokenHash(token),
      };
      const input = `${header}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}`;
      await refusedProof(
        `${input}.${cryptoSign('sha256', Buffer.from(input), weak.privateKey).toString('base64url')}`,
      );
      const p384 = await proofKey('ES384');
      await refusedProof(
        await proof(key, { htm: 'GET', htu: API_URL, ath: accessTokenHash(token) }, { jwk: p384.jwk }),
      );
    });

    it('RFC 9449 §4.3 step 7, §11: an RSA proof key over 4096 bits or with an exponent other than 65537 is refused (each would cost milliseconds per verify, without credentials)', async () => {
      // Public keys only (step 7 refuses them before any signature is checked): a real 2048-bit key
      // with an 8192-bit modulus put in, and with e = 3.
      const real = generateKeyPairSync('rsa', { modulusLength: 2048 });
      const jwk = real.publicKey.export({ format: 'jwk' });
      const huge = Buffer.alloc(1024, 0xff).toString('base64url');
      for (const bad of [
        { ...jwk, n: huge },
        { ...jwk, e: 'Aw' },
      ]) {
        const header = Buffer.from(JSON.stringify({ alg: 'RS256', typ: 'dpop+jwt', jwk: bad })).toString(
          'base64url',
        );
        const claims = {
          jti: randomUUID(),
          iat: seconds(clock.ms),
          htm: 'GET',
          htu: API_URL,
          ath: accessTokenHash(token),
        };
        const input = `${header}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}`;
        const error = await refusedProof(
          `${input}.${cryptoSign('sha256', Buffer.from(input), real.privateKey).toString('base64url')}`,
        );
        expect(error.message).toMatch(/longer than 4096 bits or with e other than 65537/);
      }
    });

    it('RFC 9449 §4.3 step 8: an htm other than the request method is refused', async () => {
      await refusedProof(await useProof(token, key, { htm: 'POST' }));
      await refusedProof(await useProof(token, key, { htm: 'get' }));
    });

    it('RFC 9449 §4.3 step 9: an htu naming another path, host, scheme or port is refused', async () => {
      for (const htu of [
        'https://api.example/api/v3/secrets/other',
        'https://evil.example/api/v3/secrets/raw',
        'http://api.example/api/v3/secrets/raw',
        'https://api.example:8443/api/v3/secrets/raw',
        'https://api.example/API/v3/secrets/raw',
        'ftp://api.example/api/v3/secrets/raw',
      ]) {
        await refusedProof(await useProof(token, key, { htu }));
      }
    });

    it('RFC 9449 §4.3 step 9: query and fragment are ignored; scheme/host case, default port and percent-encoding are normalised (RFC 3986 §6.2.2, §6.2.3)', async () => {
      for (const htu of [
        `${API_URL}?environment=prod#x`,
        'HTTPS://API.Example:443/api/v3/secrets/raw',
        'https://api.example/api/v3/secrets/%72aw',
      ]) {
        await dpopUse(token, await useProof(token, key, { htu }));
      }
      expect(htuMatches('https://a.example/p%2fq', 'https://a.example/p%2Fq')).toBe(true);
      expect(htuMatches('https://a.example', 'https://a.example/')).toBe(true);
      expect(htuMatches('https://user@a.example/', 'https://a.example/')).toBe(false);
    });

    it('RFC 9449 §4.3 step 11: iat is accepted at now ± (60 s window + 5 s skew) and refused one second past either edge', async () => {
      const now = seconds(clock.ms);
      await dpopUse(token, await useProof(token, key, { iat: now - 65 }));
      await dpopUse(token, await useProof(token, key, { iat: now + 65 }));
      await refusedProof(await useProof(token, key, { iat: now - 66 }));
      await refusedProof(await useProof(token, key, { iat: now + 66 }));
    });

    it('RFC 9449 §4.3 step 12: an ath that is not the hash of the presented token, or no ath, is refused', async () => {
      await refusedProof(await useProof(token, key, { ath: accessTokenHash(`${token}x`) }));
      await refusedProof(await proof(key, { htm: 'GET', htu: API_URL }));
    });

    it('RFC 9449 §4.3 step 12: a proof by another key than the bound one is refused (dpop_key_mismatch), for opaque and JWT tokens', async () => {
      const jwt = (await boundLogin('jwt-deployer')).accessToken;
      for (const t of [token, jwt]) {
        const error = await refusal(dpopUse(t, await useProof(t, otherKey)));
        expect(error.status).toBe(401);
        expect(error.code).toBe('dpop_key_mismatch');
        expect(error.headers['www-authenticate']).toContain(
          'DPoP realm="oidc-machine-auth", error="invalid_dpop_proof"',
        );
      }
      expect(rec.events.some((e) => e.type === 'guard.denied' && e.reasonCode === 'dpop_key_mismatch')).toBe(
        true,
      );
    });

    it('RFC 9449 §11.1: a proof is accepted once; the same proof again is refused', async () => {
      const p = await useProof(token);
      await dpopUse(token, p);
      await refusedProof(p);
    });

    it('RFC 9449 §11.1: the jti is remembered under dpop:<jkt>:<jti> until iat + window', async () => {
      const jti = randomUUID();
      await dpopUse(token, await useProof(token, key, { jti }));
      expect(await auth.replayCache.seenAt(`dpop:${key.jkt}:${jti}`, clock.ms)).toBe(clock.ms);
      expect(await auth.replayCache.seenAt(`dpop:${key.jkt}:${jti}`, clock.ms + 66_000)).toBeUndefined();
    });
  });

  describe('a stolen token (RFC 9449 §7.1, §7.2)', () => {
    it('RFC 9449 §7.1: a bound token presented as Bearer is refused (invalid_token), opaque and JWT', async () => {
      for (const identityId of ['gh-deployer', 'jwt-deployer']) {
        const token = (await boundLogin(identityId)).accessToken;
        const error = await refusal(guard(auth, { authorization: `Bearer ${token}` }));
        expect(error.status).toBe(401);
        expect(error.code).toBe('invalid_token');
        expect(error.headers['www-authenticate']).toMatch(
          /^DPoP realm="oidc-machine-auth", error="invalid_token"/,
        );
        expect(error.headers['www-authenticate']).toContain(
          'Bearer realm="oidc-machine-auth", error="invalid_token"',
        );
        // A direct call with no DPoP context is a bearer use too.
        expect((await refusal(auth.authenticate(token))).code).toBe('invalid_token');
      }
    });

    it('RFC 9449 §7.1: a bound token with a proof by the thief key is refused (dpop_key_mismatch)', async () => {
      const token = (await boundLogin()).accessToken;
      const thief = await proofKey('EdDSA');
      const error = await refusal(dpopUse(token, await useProof(token, thief)));
      expect(error.code).toBe('dpop_key_mismatch');
    });

    it('RFC 9449 §7.1: a bound token with the DPoP scheme but no proof is refused (invalid_dpop_proof)', async () => {
      const token = (await boundLogin('jwt-deployer')).accessToken;
      expect((await refusal(dpopUse(token, undefined))).code).toBe('invalid_dpop_proof');
    });

    it('an unbound token presented with the DPoP scheme is refused (invalid_token)', async () => {
      const token = (await auth.login({ identityId: 'gh-deployer', jwt: await idpToken() })).accessToken;
      const error = await refusal(dpopUse(token, await useProof(token)));
      expect(error.code).toBe('invalid_token');
      // As a bearer token it works.
      await guard(auth, { authorization: `Bearer ${token}` });
    });
  });

  describe('renew, revoke, introspection, metadata', () => {
    it('renew of a bound token needs a proof by its key and keeps the binding (JWT cnf.jkt again)', async () => {
      const token = (await boundLogin('jwt-deployer')).accessToken;
      const renewProof = (k: ProofKey) =>
        proof(k, { htm: 'POST', htu: RENEW_URL, ath: accessTokenHash(token) });
      const refused = await renewAnswer(
        auth,
        { accessToken: token },
        undefined,
        at(undefined, RENEW_URL, 'POST'),
      );
      expect(refused.status).toBe(401);
      expect((refused.body as { reasonCode: string }).reasonCode).toBe('invalid_token');
      const wrong = await renewAnswer(
        auth,
        { accessToken: token },
        undefined,
        at(await renewProof(otherKey), RENEW_URL, 'POST'),
      );
      expect((wrong.body as { reasonCode: string }).reasonCode).toBe('dpop_key_mismatch');
      const ok = await renewAnswer(
        auth,
        { accessToken: token },
        undefined,
        at(await renewProof(key), RENEW_URL, 'POST'),
      );
      expect(ok.status).toBe(200);
      const body = ok.body as { tokenType: string; accessToken: string };
      expect(body.tokenType).toBe('DPoP');
      expect(decodeJwt(body.accessToken).cnf).toEqual({ jkt: key.jkt });
    });

    it('revoke of a bound token through the route needs a proof by its key; the host API revokes without one', async () => {
      const token = (await boundLogin()).accessToken;
      const revokeProof = (k: ProofKey) =>
        proof(k, { htm: 'POST', htu: REVOKE_URL, ath: accessTokenHash(token) });
      const refused = await revokeAnswer(
        auth,
        { accessToken: token },
        undefined,
        at(undefined, REVOKE_URL, 'POST'),
      );
      expect(refused.status).toBe(401);
      const wrong = await revokeAnswer(
        auth,
        { accessToken: token },
        undefined,
        at(await revokeProof(otherKey), REVOKE_URL, 'POST'),
      );
      expect((wrong.body as { reasonCode: string }).reasonCode).toBe('dpop_key_mismatch');
      expect(await auth.introspect(token)).toBeDefined();
      const ok = await revokeAnswer(
        auth,
        { accessToken: token },
        undefined,
        at(await revokeProof(key), REVOKE_URL, 'POST'),
      );
      expect(ok.status).toBe(200);
      expect(await auth.introspect(token)).toBeUndefined();
      const other = (await boundLogin()).accessToken;
      await auth.revoke(other);
      expect(await auth.introspect(other)).toBeUndefined();
    });

    it('RFC 7662 + RFC 9449 §6.2: introspection of a bound token answers token_type DPoP and cnf.jkt', async () => {
      const token = (await boundLogin()).accessToken;
      const answer = await oauthIntrospectAnswer(auth, {
        contentType: 'application/x-www-form-urlencoded',
        body: { token },
      });
      expect(answer.body).toMatchObject({ active: true, token_type: 'DPoP', cnf: { jkt: key.jkt } });
    });

    it('RFC 9449 §5.1: the RFC 8414 metadata lists dpop_signing_alg_values_supported', () => {
      const answer = metadataAnswer(auth, { token: true });
      expect((answer.body as Record<string, unknown>).dpop_signing_alg_values_supported).toEqual([
        'ES256',
        'EdDSA',
        'RS256',
        'PS256',
      ]);
    });
  });
});

describe('DPoP options and server nonces', () => {
  it('dpop.algorithms narrows the allowlist (metadata, challenges, checks); symmetric or unknown algorithms are a config error', async () => {
    const clock = new FakeClock();
    const auth = engine(clock, { dpop: { algorithms: ['ES384'] } });
    try {
      expect(auth.dpop.algorithms).toEqual(['ES384']);
      const es384 = await proofKey('ES384');
      const es256 = await proofKey('ES256');
      const login = async (k: ProofKey) =>
        auth.login({
          identityId: 'gh-deployer',
          jwt: await sign(idpKey, githubClaims(clock.ms)),
          dpop: {
            proof: await new SignJWT({
              jti: randomUUID(),
              iat: seconds(clock.ms),
              htm: 'POST',
              htu: LOGIN_URL,
            })
              .setProtectedHeader({ alg: k.alg, typ: 'dpop+jwt', jwk: k.jwk })
              .sign(k.privateKey),
            method: 'POST',
            url: LOGIN_URL,
          },
        });
      expect((await login(es384)).tokenType).toBe('DPoP');
      expect((await refusal(login(es256))).code).toBe('invalid_dpop_proof');
    } finally {
      await auth.close();
    }
    for (const algorithms of [['HS256'], ['none'], []] as unknown as DpopAlgorithm[][]) {
      expect(() => engine(clock, { dpop: { algorithms } })).toThrow(/dpop\.algorithms/);
    }
    expect(() => engine(clock, { dpop: { proofWindowSeconds: 0 } })).toThrow(/proofWindowSeconds/);
    expect(() => engine(clock, { dpop: { nonces: { secret: 'short' } } })).toThrow(/secret/);
  });

  it('RFC 9449 §4.3 step 10, §8, §9: with nonces on, a missing or stale nonce answers use_dpop_nonce with a DPoP-Nonce (400 at login, 401 at the guard); the current and previous nonce pass', async () => {
    const clock = new FakeClock();
    const auth = engine(clock, { dpop: { nonces: { stepSeconds: 60 } } });
    try {
      const k = await proofKey('ES256');
      const mint = (claims: Record<string, unknown>) =>
        new SignJWT({ jti: randomUUID(), iat: seconds(clock.ms), ...claims })
          .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk: k.jwk })
          .sign(k.privateKey);
      const body = async () => ({
        identityId: 'gh-deployer',
        jwt: await sign(idpKey, githubClaims(clock.ms)),
      });
      const first = await loginAnswer(auth, await body(), undefined, {
        proof: await mint({ htm: 'POST', htu: LOGIN_URL }),
        method: 'POST',
        url: LOGIN_URL,
      });
      expect(first.status).toBe(400);
      expect((first.body as { reasonCode: string }).reasonCode).toBe('use_dpop_nonce');
      const nonce = first.headers['dpop-nonce']!;
      expect(nonce).toMatch(/^[0-9a-z]+\.[A-Za-z0-9_-]{22}$/);
      const second = await loginAnswer(auth, await body(), undefined, {
        proof: await mint({ htm: 'POST', htu: LOGIN_URL, nonce }),
        method: 'POST',
        url: LOGIN_URL,
      });
      expect(second.status).toBe(200);
      expect(second.headers['dpop-nonce']).toBeDefined();
      const token = (second.body as { accessToken: string }).accessToken;
      const use = async (n: string | undefined) =>
        guard(auth, {
          authorization: `DPoP ${token}`,
          dpop: {
            proof: await mint({
              htm: 'GET',
              htu: API_URL,
              ath: accessTokenHash(token),
              ...(n ? { nonce: n } : {}),
            }),
            method: 'GET',
            url: API_URL,
          },
        });
      const missing = await refusal(use(undefined));
      expect(missing.status).toBe(401);
      expect(missing.code).toBe('use_dpop_nonce');
      expect(missing.headers['dpop-nonce']).toBeDefined();
      expect(missing.headers['www-authenticate']).toMatch(
        /^DPoP realm="oidc-machine-auth", error="use_dpop_nonce"/,
      );
      await use(nonce);
      clock.advance(60); // the next step: the previous nonce still passes
      await use(nonce);
      clock.advance(60); // two steps on: stale
      expect((await refusal(use(nonce))).code).toBe('use_dpop_nonce');
      await use(auth.dpop.nonce());
      const forged = `${nonce.split('.')[0]}.${'A'.repeat(22)}`;
      expect((await refusal(use(forged))).code).toBe('use_dpop_nonce');
      // Another engine's secret: its nonces are not ours.
      const other = engine(clock, { dpop: { nonces: true } });
      expect((await refusal(use(other.dpop.nonce()))).code).toBe('use_dpop_nonce');
      await other.close();
    } finally {
      await auth.close();
    }
  });
});

describe('DPoP proof replay across instances (RFC 9449 §11.1)', () => {
  it('two engines sharing one replay cache (and token store): a proof accepted by one is refused by the other', async () => {
    const clock = new FakeClock();
    const shared = new MemoryReplayCache();
    const tokens = new MemoryTokenStore({ clock: clock.now });
    const a = engine(clock, { replayCache: shared, tokens });
    const b = engine(clock, { replayCache: shared, tokens });
    try {
      const k = await proofKey('ES256');
      const login = await a.login({
        identityId: 'gh-deployer',
        jwt: await sign(idpKey, githubClaims(clock.ms)),
        dpop: {
          proof: await new SignJWT({ jti: randomUUID(), iat: seconds(clock.ms), htm: 'POST', htu: LOGIN_URL })
            .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk: k.jwk })
            .sign(k.privateKey),
          method: 'POST',
          url: LOGIN_URL,
        },
      });
      const token = login.accessToken;
      const p = await new SignJWT({
        jti: randomUUID(),
        iat: seconds(clock.ms),
        htm: 'GET',
        htu: API_URL,
        ath: accessTokenHash(token),
      })
        .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk: k.jwk })
        .sign(k.privateKey);
      const request = { authorization: `DPoP ${token}`, dpop: { proof: p, method: 'GET', url: API_URL } };
      await guard(a, request);
      const error = await refusal(guard(b, request));
      expect(error.code).toBe('invalid_dpop_proof');
      // A fresh proof by the same key passes on the other instance: only the replay was refused.
      const fresh = await new SignJWT({
        jti: randomUUID(),
        iat: seconds(clock.ms),
        htm: 'GET',
        htu: API_URL,
        ath: accessTokenHash(token),
      })
        .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk: k.jwk })
        .sign(k.privateKey);
      await guard(b, { ...request, dpop: { ...request.dpop, proof: fresh } });
    } finally {
      await a.close();
      await b.close();
      await shared.close();
      await tokens.close();
    }
  });

  it('a replay cache that cannot answer fails closed: 503 store_unavailable', async () => {
    const clock = new FakeClock();
    const broken: ReplayCache = {
      remember: () => Promise.reject(new Error('down')),
      seenAt: () => Promise.reject(new Error('down')),
    };
    const auth = engine(clock, { replayCache: broken });
    try {
      const k = await proofKey('ES256');
      const error = await refusal(
        auth.login({
          identityId: 'gh-deployer',
          jwt: await sign(idpKey, githubClaims(clock.ms)),
          dpop: {
            proof: await new SignJWT({
              jti: randomUUID(),
              iat: seconds(clock.ms),
              htm: 'POST',
              htu: LOGIN_URL,
            })
              .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk: k.jwk })
              .sign(k.privateKey),
            method: 'POST',
            url: LOGIN_URL,
          },
        }),
      );
      expect(error.status).toBe(503);
      expect(error.code).toBe('store_unavailable');
    } finally {
      await auth.close();
    }
  });
});

/**
 * RFC 9449 §4.3 step 9 behind a reverse proxy: the URL the proof must name is the one the framework
 * sees, its scheme and host from `X-Forwarded-Proto`/`X-Forwarded-Host` only when the framework
 * trusts the proxy (Express `trust proxy`, Fastify `trustProxy`).
 */
describe('htu behind a proxy, trust on and off', () => {
  const clock = new FakeClock(Date.now());
  let auth: OidcAuth;
  let k: ProofKey;
  beforeAll(async () => {
    auth = engine(clock);
    k = await proofKey('ES256');
  });
  afterAll(() => auth?.close());

  const mounts = {
    express: async (trust: boolean) => {
      const app = express();
      if (trust) app.set('trust proxy', 'loopback');
      app.use('/api/v1/auth', oidcAuthRouter(auth));
      app.get('/api/v3/secrets/raw', expressGuard(auth), (_req, res) => void res.json({ ok: true }));
      const server = answerClientErrors(app.listen(0, '127.0.0.1'));
      await new Promise((resolve) => server.once('listening', resolve));
      const { port } = server.address() as AddressInfo;
      return {
        url: `http://127.0.0.1:${port}`,
        close: () => new Promise<void>((resolve) => server.close(() => resolve())),
      };
    },
    fastify: async (trust: boolean) => {
      const app = Fastify(trust ? { trustProxy: 'loopback' } : {});
      await app.register(oidcAuthPlugin, { auth, prefix: '/api/v1/auth' });
      app.get('/api/v3/secrets/raw', { preHandler: fastifyGuard(auth) }, async () => ({ ok: true }));
      const url = await app.listen({ port: 0, host: '127.0.0.1' });
      return { url, close: () => app.close() };
    },
  };
  const forwarded = ['x-forwarded-proto', 'https', 'x-forwarded-host', 'secrets.example'];
  const publicBase = 'https://secrets.example';
  const sign = (claims: Record<string, unknown>) =>
    new SignJWT({ jti: randomUUID(), iat: seconds(clock.ms), ...claims })
      .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk: k.jwk })
      .sign(k.privateKey);
  const idp = () => import('../helpers/jwt.js').then((m) => m.sign(idpKey, githubClaims(clock.ms)));

  async function flow(base: string, htuBase: string): Promise<{ login: RawResponse; use?: RawResponse }> {
    const login = await postJson(
      base,
      '/api/v1/auth/oidc-auth/login?x=1',
      { identityId: 'gh-deployer', jwt: await idp() },
      ['dpop', await sign({ htm: 'POST', htu: `${htuBase}/api/v1/auth/oidc-auth/login` }), ...forwarded],
    );
    if (login.status !== 200) return { login };
    const token = login.json.accessToken as string;
    const use = await getWith(base, '/api/v3/secrets/raw?environment=prod', [
      'authorization',
      `DPoP ${token}`,
      'dpop',
      await sign({ htm: 'GET', htu: `${htuBase}/api/v3/secrets/raw`, ath: accessTokenHash(token) }),
      ...forwarded,
    ]);
    return { login, use };
  }

  for (const name of ['express', 'fastify'] as const) {
    it(`RFC 9449 §4.3 step 9 (${name}): trust on, the proof names the public URL from X-Forwarded-Proto/Host`, async () => {
      const app = await mounts[name](true);
      try {
        const { login, use } = await flow(app.url, publicBase);
        expect(login.status).toBe(200);
        expect(login.json.tokenType).toBe('DPoP');
        expect(use?.status).toBe(200);
        // The socket's URL is not the one the framework sees now.
        const direct = await flow(app.url, app.url);
        expect(direct.login.status).toBe(400);
        expect(direct.login.json.reasonCode).toBe('invalid_dpop_proof');
      } finally {
        await app.close();
      }
    });

    it(`RFC 9449 §4.3 step 9 (${name}): trust off, forwarding headers are ignored and the proof names the URL as received`, async () => {
      const app = await mounts[name](false);
      try {
        const spoofed = await flow(app.url, publicBase);
        expect(spoofed.login.status).toBe(400);
        expect(spoofed.login.json.reasonCode).toBe('invalid_dpop_proof');
        const { login, use } = await flow(app.url, app.url);
        expect(login.status).toBe(200);
        expect(use?.status).toBe(200);
      } finally {
        await app.close();
      }
    });
  }
});

describe('RFC 9449 §4.3 step 9: the request URL comes from one authority only', () => {
  it('a Host that is not one authority (a path, query or fragment in it, or none at all) gives the request no URL, so no proof matches it', () => {
    expect(dpopRequest('p', 'GET', 'https', 'api.example', '/other').url).toBe('https://api.example/other');
    expect(dpopRequest('p', 'GET', 'https', 'api.example:8443', '/x?q=1').url).toBe(
      'https://api.example:8443/x',
    );
    expect(dpopRequest('p', 'GET', 'http', '[::1]:3000', '/x').url).toBe('http://[::1]:3000/x');
    for (const host of [
      'api.example/secrets#',
      'api.example/secrets?',
      'api.example#',
      'user@api.example',
      'a\\b',
      '',
      undefined,
    ]) {
      const request = dpopRequest('p', 'GET', 'https', host, '/other');
      expect(request.url).toBe('');
      expect(htuMatches('https://api.example/secrets', request.url)).toBe(false);
    }
    expect(dpopRequest('p', 'GET', 'ftp', 'api.example', '/x').url).toBe('');
  });
});
