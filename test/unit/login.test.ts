import { createHmac } from 'node:crypto';
import { CompactEncrypt, SignJWT, generateKeyPair, exportJWK } from 'jose';
import { describe, expect, it } from 'vitest';
import { ConfigError, OidcAuthError, createOidcAuth } from '../../src/index.js';
import { MemoryTokenStore } from '../../src/stores/memory.js';
import type { IdentityStore, TokenStore } from '../../src/types.js';
import { SIGNING_KEYS, githubIdentity, makeEngine } from '../helpers/engine.js';
import { ISSUER, b64, githubClaims, makeKey, rawToken, seconds, sign, signRaw } from '../helpers/jwt.js';

async function loginError(promise: Promise<unknown>): Promise<OidcAuthError> {
  const error = await promise.then(
    () => {
      throw new Error('login unexpectedly succeeded');
    },
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(OidcAuthError);
  return error as OidcAuthError;
}

/** Login must be refused with the uniform pre-signature answer, and the event must carry `reason`. */
async function expectUniform(engine: ReturnType<typeof makeEngine>, jwt: string, reason?: string) {
  const error = await loginError(engine.auth.login({ identityId: 'gh-deployer', jwt }));
  expect(error.status).toBe(401);
  expect(error.code).toBe('invalid_credentials');
  expect(error.message).toBe('Invalid credentials');
  if (reason) expect(engine.rec.last('login.failure')?.reasonCode).toBe(reason);
}

describe('login: happy path', () => {
  it('exchanges a GitHub Actions token for an access token carrying mapped metadata', async () => {
    const e = makeEngine();
    const jwt = await sign(e.key, githubClaims(e.clock.ms));
    const grant = await e.auth.login({ identityId: 'gh-deployer', jwt, clientIp: '203.0.113.9' });
    expect(grant.tokenType).toBe('Bearer');
    expect(grant.expiresIn).toBe(7200);
    expect(grant.accessTokenMaxTTL).toBe(86400);
    // omat_<kid>.<token id>.<exp base36>.<nonce>.<mac> (the nonce since #13.14)
    expect(grant.accessToken).toMatch(
      /^omat_k1\.[A-Za-z0-9_-]{22}\.[0-9a-z]+\.[A-Za-z0-9_-]{8}\.[A-Za-z0-9_-]{43}$/,
    );
    const ctx = await e.auth.authenticate(grant.accessToken, { clientIp: '203.0.113.9' });
    expect(ctx).toMatchObject({
      identityId: 'gh-deployer',
      tokenId: grant.tokenId,
      issuer: ISSUER,
      subject: 'repo:acme-corp/payments-api:ref:refs/heads/main',
      metadata: { role: 'deployer', repository: 'acme-corp/payments-api', ref: 'refs/heads/main' },
      usesRemaining: undefined,
    });
    const ok = e.rec.last('login.success')!;
    expect(ok).toMatchObject({ identityId: 'gh-deployer', issuer: ISSUER, clientIp: '203.0.113.9' });
    expect(ok.tokenId).toBe(grant.tokenId);
    expect(ok.jti).toBe('7c9a3d1e-2b4f-4c8a-9e6d-1f2a3b4c5d6e');
  });

  it('expiresIn is capped by the max TTL', async () => {
    const e = makeEngine({ identity: { accessTokenTTL: 600, accessTokenMaxTTL: 600 } });
    const grant = await e.auth.login({
      identityId: 'gh-deployer',
      jwt: await sign(e.key, githubClaims(e.clock.ms)),
    });
    expect(grant.expiresIn).toBe(600);
  });
});

describe('A1 algorithm and header', () => {
  it('ALG-01: alg none / None / NONE with empty signature is refused', async () => {
    const e = makeEngine();
    for (const alg of ['none', 'None', 'NONE']) {
      const jwt = `${b64({ alg, typ: 'JWT' })}.${b64(githubClaims(e.clock.ms))}.`;
      await expectUniform(e, jwt);
      await expectUniform(e, jwt + 'AAAA');
    }
  });

  it('ALG-02: HS256 signed with the IdP RSA public key as the secret is refused', async () => {
    const e = makeEngine();
    const pem = e.key.publicKey.export({ format: 'pem', type: 'spki' }) as string;
    for (const secret of [pem, `\n  ${pem}`, e.key.publicJwk.n as string]) {
      const header = b64({ alg: 'HS256', typ: 'JWT', kid: e.key.kid });
      const body = b64(githubClaims(e.clock.ms));
      const sig = createHmac('sha256', secret).update(`${header}.${body}`).digest('base64url');
      await expectUniform(e, `${header}.${body}.${sig}`, 'algorithm_not_allowed');
    }
  });

  it('ALG-03: PS256 refused when the identity allows RS256 only (untagged RSA key)', async () => {
    const rsa = makeKey('RS256');
    const untagged = { ...rsa.publicJwk };
    delete untagged.alg;
    const e = makeEngine({
      key: rsa,
      identity: { publicKeys: [untagged], allowedAlgorithms: ['RS256'] },
    });
    const ps = { ...rsa, alg: 'PS256' };
    await expectUniform(e, await sign(ps, githubClaims(e.clock.ms)), 'algorithm_not_allowed');
    // and the same key with RS256 works
    await e.auth.login({ identityId: 'gh-deployer', jwt: await sign(rsa, githubClaims(e.clock.ms)) });
  });

  it('ALG-04: unknown, padded, lowercase, numeric or null alg is refused', async () => {
    const e = makeEngine();
    for (const alg of ['RS256 ', 'rs256', 'XYZ', '', 123, null]) {
      await expectUniform(e, rawToken({ alg, kid: e.key.kid }, githubClaims(e.clock.ms)));
    }
  });

  it('ALG-06: ES256 all-zero signature ("psychic signature") is refused', async () => {
    const es = makeKey('ES256');
    const e = makeEngine({ key: es });
    const zero = Buffer.alloc(64).toString('base64url');
    await expectUniform(e, rawToken({ alg: 'ES256', kid: es.kid }, githubClaims(e.clock.ms), zero));
  });

  it('KID-01: hostile kid values are refused and never echoed or logged raw', async () => {
    const e = makeEngine();
    const kids = [
      "' OR '1'='1",
      '../../../dev/null',
      '/proc/self/environ',
      'x'.repeat(10_000),
      'a\r\nb\u001b[31m',
    ];
    for (const kid of kids) {
      const jwt = await sign(e.key, githubClaims(e.clock.ms), { header: { kid } });
      await expectUniform(e, jwt);
    }
    expect(e.rec.dump()).not.toContain('dev/null');
    expect(e.rec.dump()).not.toContain("OR '1'");
  });

  it('KID-04: a token without kid verifies when one key fits', async () => {
    const e = makeEngine();
    const jwt = await sign(e.key, githubClaims(e.clock.ms), { noKid: true });
    await expect(e.auth.login({ identityId: 'gh-deployer', jwt })).resolves.toMatchObject({
      tokenType: 'Bearer',
    });
  });

  it('HDR-01/02/03: jku, x5u, embedded jwk and x5c headers are ignored (attacker-signed token refused, no fetch)', async () => {
    const attacker = makeKey('RS256', 'attacker');
    const fetched: string[] = [];
    const e = makeEngine({
      auth: {
        httpGet: async (url) => {
          fetched.push(url);
          return { status: 500, body: '', headers: {} };
        },
      },
    });
    const headers = [
      { jku: 'https://attacker.example/jwks.json', kid: 'attacker' },
      { x5u: 'https://attacker.example/cert.pem', kid: 'attacker' },
      { jwk: attacker.publicJwk, kid: 'attacker' },
      { jwk: attacker.publicJwk, kid: e.key.kid },
      { x5c: ['MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA'], kid: e.key.kid },
    ];
    for (const header of headers) {
      await expectUniform(e, await sign(attacker, githubClaims(e.clock.ms), { header }));
    }
    expect(fetched).toEqual([]);
  });

  it('HDR-04/05: crit headers and unencoded payloads are refused', async () => {
    const e = makeEngine();
    const claims = JSON.stringify(githubClaims(e.clock.ms));
    const base = { alg: 'RS256', kid: e.key.kid };
    await expectUniform(e, signRaw(e.key, { ...base, crit: ['x-policy'], 'x-policy': 1 }, claims));
    await expectUniform(e, signRaw(e.key, { ...base, crit: [] }, claims));
    await expectUniform(e, signRaw(e.key, { ...base, crit: ['exp'] }, claims));
    await expectUniform(e, signRaw(e.key, { ...base, b64: false, crit: ['b64'] }, claims));
    // control: the same helper with a plain header verifies
    await e.auth.login({ identityId: 'gh-deployer', jwt: signRaw(e.key, base, claims) });
  });

  it('HDR-07: an ID token minted for another relying party is refused by the audience binding', async () => {
    const e = makeEngine();
    const jwt = await sign(e.key, githubClaims(e.clock.ms, { aud: 'sts.amazonaws.com' }));
    const error = await loginError(e.auth.login({ identityId: 'gh-deployer', jwt }));
    expect(error.code).toBe('audience_not_allowed');
  });
});

describe('A2 token structure and size', () => {
  it('STR-01: a JWE (5 segments) is refused without any decryption path', async () => {
    const e = makeEngine();
    const { publicKey } = await generateKeyPair('RSA-OAEP-256');
    const jwe = await new CompactEncrypt(new TextEncoder().encode('{}'))
      .setProtectedHeader({ alg: 'RSA-OAEP-256', enc: 'A256GCM', zip: 'DEF' } as never)
      .encrypt(publicKey)
      .catch(async () =>
        new CompactEncrypt(new TextEncoder().encode('{}'))
          .setProtectedHeader({ alg: 'RSA-OAEP-256', enc: 'A256GCM' })
          .encrypt(publicKey),
      );
    expect(jwe.split('.')).toHaveLength(5);
    await expectUniform(e, jwe, 'token_malformed');
  });

  it('STR-02: malformed compact tokens are refused before any lookup', async () => {
    const e = makeEngine();
    const good = await sign(e.key, githubClaims(e.clock.ms));
    const [h, p, s] = good.split('.') as [string, string, string];
    const variants = [
      `${h}.${p}`,
      `${h}.${p}.${s}.${s}`,
      `${h}..${s}`,
      `Bearer ${good}`,
      ` ${good}`,
      `${good}\n`,
      `${h}.${p}.${s}==`,
      `${h}.${p}.${s.replace(/-/g, '+').replace(/_/g, '/')}+/`,
      encodeURIComponent(good).replace(/\./g, '%2E'),
    ];
    for (const jwt of variants) await expectUniform(e, jwt, 'token_malformed');
  });

  it('STR-03: a 1 MiB token is refused by size before decoding', async () => {
    const e = makeEngine();
    const huge = `${b64({ alg: 'RS256' })}.${'A'.repeat(1024 * 1024)}.sig`;
    await expectUniform(e, huge, 'token_too_large');
  });

  it('STR-05: a deeply nested claim in a genuinely signed token never causes a 500', async () => {
    const e = makeEngine({ identity: { claimMetadataMapping: { deep: 'deep' } } });
    const deep = '['.repeat(5000) + '"x"' + ']'.repeat(5000);
    const claims = JSON.stringify(githubClaims(e.clock.ms)).replace(/}$/, `,"deep":${deep}}`);
    const jwt = signRaw(e.key, { alg: 'RS256', kid: e.key.kid }, claims);
    expect(jwt.length).toBeLessThan(16 * 1024);
    const grant = await e.auth.login({ identityId: 'gh-deployer', jwt }).catch((err) => err);
    if (grant instanceof Error) expect((grant as OidcAuthError).status).toBe(401);
    expect(() => e.rec.dump()).not.toThrow();
  });

  it('STR-06: payloads that are arrays, strings, numbers or null are refused', async () => {
    const e = makeEngine();
    for (const payload of [[1, 2], 'str', 42, null]) {
      const header = b64({ alg: 'RS256', kid: e.key.kid });
      const body = Buffer.from(JSON.stringify(payload)).toString('base64url');
      const jws = await new SignJWT({})
        .setProtectedHeader({ alg: 'RS256', kid: e.key.kid })
        .sign(e.key.privateKey);
      // re-sign the raw payload with the real key so only the payload type is wrong
      const { createSign } = await import('node:crypto');
      const sig = createSign('RSA-SHA256')
        .update(`${header}.${body}`)
        .sign(e.key.privateKey)
        .toString('base64url');
      expect(jws).toBeTruthy();
      await expectUniform(e, `${header}.${body}.${sig}`);
    }
  });

  it('STR-07: duplicate claim names resolve last-wins in every consumer', async () => {
    const e = makeEngine();
    const { createSign } = await import('node:crypto');
    const claims = JSON.stringify(githubClaims(e.clock.ms)).replace(
      '"sub":',
      '"sub":"repo:evil/evil:ref:refs/heads/main","sub":',
    );
    const header = b64({ alg: 'RS256', kid: e.key.kid });
    const body = Buffer.from(claims).toString('base64url');
    const sig = createSign('RSA-SHA256')
      .update(`${header}.${body}`)
      .sign(e.key.privateKey)
      .toString('base64url');
    const grant = await e.auth.login({ identityId: 'gh-deployer', jwt: `${header}.${body}.${sig}` });
    const ctx = await e.auth.authenticate(grant.accessToken);
    expect(ctx.subject).toBe('repo:acme-corp/payments-api:ref:refs/heads/main');
  });
});

describe('A3 time claims', () => {
  const at = (e: ReturnType<typeof makeEngine>, claims: Record<string, unknown>) =>
    sign(e.key, { ...githubClaims(e.clock.ms), ...claims });

  it('TIME-01/02: exp 30 s ago passes with 60 s leeway; 61 s ago is token_expired', async () => {
    const e = makeEngine();
    const now = seconds(e.clock.ms);
    await e.auth.login({ identityId: 'gh-deployer', jwt: await at(e, { iat: now - 100, exp: now - 30 }) });
    const error = await loginError(
      e.auth.login({ identityId: 'gh-deployer', jwt: await at(e, { iat: now - 100, exp: now - 61 }) }),
    );
    expect(error.code).toBe('token_expired');
  });

  it('TIME-03: nbf 30 s ahead passes, 120 s ahead is token_not_yet_valid', async () => {
    const e = makeEngine();
    const now = seconds(e.clock.ms);
    await e.auth.login({ identityId: 'gh-deployer', jwt: await at(e, { nbf: now + 30 }) });
    const error = await loginError(
      e.auth.login({ identityId: 'gh-deployer', jwt: await at(e, { nbf: now + 120 }) }),
    );
    expect(error.code).toBe('token_not_yet_valid');
  });

  it('TIME-04: a token without exp is refused (claim_missing)', async () => {
    const e = makeEngine();
    const claims = githubClaims(e.clock.ms);
    delete claims.exp;
    const error = await loginError(
      e.auth.login({ identityId: 'gh-deployer', jwt: await sign(e.key, claims) }),
    );
    expect(error.code).toBe('claim_missing');
    const noIat = githubClaims(e.clock.ms);
    delete noIat.iat;
    expect(
      (await loginError(e.auth.login({ identityId: 'gh-deployer', jwt: await sign(e.key, noIat) }))).code,
    ).toBe('claim_missing');
  });

  it('TIME-05: exp/nbf/iat as string, null, boolean or object are refused', async () => {
    const e = makeEngine();
    for (const bad of ['9999999999', null, true, { n: 1 }]) {
      for (const claim of ['exp', 'nbf', 'iat']) {
        const error = await loginError(
          e.auth.login({ identityId: 'gh-deployer', jwt: await at(e, { [claim]: bad }) }),
        );
        expect(error.status).toBe(401);
      }
    }
    // fractional NumericDate is legal
    const now = seconds(e.clock.ms);
    await e.auth.login({
      identityId: 'gh-deployer',
      jwt: await at(e, { iat: now - 0.5, exp: now + 100.25 }),
    });
  });

  it('TIME-07: iat in the future beyond leeway is refused', async () => {
    const e = makeEngine();
    const now = seconds(e.clock.ms);
    const error = await loginError(
      e.auth.login({
        identityId: 'gh-deployer',
        jwt: await at(e, { iat: now + 3600, exp: now + 3900, nbf: undefined }),
      }),
    );
    expect(error.code).toBe('token_issued_in_future');
  });

  it('a token living longer than maxTokenLifetimeSeconds is refused (exp = 1e20)', async () => {
    const e = makeEngine();
    const now = seconds(e.clock.ms);
    const error = await loginError(
      e.auth.login({ identityId: 'gh-deployer', jwt: await at(e, { exp: 1e20 }) }),
    );
    expect(error.code).toBe('token_lifetime_too_long');
    const k8s = makeEngine({ identity: { maxTokenLifetimeSeconds: 366 * 86400 } });
    await k8s.auth.login({
      identityId: 'gh-deployer',
      jwt: await at(k8s, { iat: now, exp: now + 365 * 86400 }),
    });
  });

  it('TIME-08: server clock skewed ±5 min behaves per leeway; access-token expiry follows the server clock', async () => {
    const e = makeEngine();
    const jwt = await sign(e.key, githubClaims(e.clock.ms));
    e.clock.advance(5 * 60); // server 5 min ahead: exp (iat + 300) is now, inside the 60 s leeway
    await e.auth.login({ identityId: 'gh-deployer', jwt });
    e.clock.advance(61); // past exp + leeway
    expect((await loginError(e.auth.login({ identityId: 'gh-deployer', jwt }))).code).toBe('token_expired');
    e.clock.advance(-(10 * 60 + 61)); // server 5 min behind: iat is 5 min in the future
    expect((await loginError(e.auth.login({ identityId: 'gh-deployer', jwt }))).code).toBe(
      'token_issued_in_future',
    );
    e.clock.advance(5 * 60);
    const grant = await e.auth.login({ identityId: 'gh-deployer', jwt });
    expect(grant.expiresAt).toBe(e.clock.ms + 7200 * 1000);
  });

  it('TIME-09: the same IdP token may be exchanged twice (bearer credential); each login gets its own token id', async () => {
    const e = makeEngine();
    const jwt = await sign(e.key, githubClaims(e.clock.ms));
    const a = await e.auth.login({ identityId: 'gh-deployer', jwt });
    const b = await e.auth.login({ identityId: 'gh-deployer', jwt });
    expect(a.tokenId).not.toBe(b.tokenId);
  });
});

describe('A4 issuer', () => {
  it('ISS-01: a token from another issuer with its own valid keys is refused', async () => {
    const e = makeEngine();
    const rogue = makeKey('RS256', e.key.kid);
    // Refused on its (unverified) issuer, before any key lookup: no identity binds it (#13.2).
    const before = e.auth.keys.stats();
    await expectUniform(
      e,
      await sign(rogue, githubClaims(e.clock.ms, { iss: 'https://rogue.example' })),
      'issuer_mismatch',
    );
    expect(e.auth.keys.stats()).toEqual(before);
    // With the identity's own issuer, the rogue key fails the signature.
    await expectUniform(e, await sign(rogue, githubClaims(e.clock.ms)), 'signature_invalid');
  });

  it('ISS-02: iss variants (trailing slash, case, http, :443, extra path) are issuer_mismatch (the uniform answer: the key source is picked by issuer, #13.2)', async () => {
    const e = makeEngine();
    const variants = [
      `${ISSUER}/`,
      ISSUER.toUpperCase(),
      ISSUER.replace('https', 'http'),
      ISSUER.replace('.com', '.com:443'),
      `${ISSUER}/x`,
    ];
    for (const iss of variants) {
      await expectUniform(e, await sign(e.key, githubClaims(e.clock.ms, { iss })), 'issuer_mismatch');
    }
  });

  it('ISS-03/04: several issuers may be listed explicitly (Azure v1 + v2, Google with and without https)', async () => {
    const key = makeKey('RS256');
    const e = makeEngine({
      key,
      identity: { boundIssuer: ['https://accounts.google.com', 'accounts.google.com'] },
    });
    for (const iss of ['https://accounts.google.com', 'accounts.google.com']) {
      await e.auth.login({
        identityId: 'gh-deployer',
        jwt: await sign(key, githubClaims(e.clock.ms, { iss })),
      });
    }
  });

  it('ISS-07: a token of the same issuer for another repository is refused', async () => {
    const e = makeEngine();
    const jwt = await sign(
      e.key,
      githubClaims(e.clock.ms, { sub: 'repo:acme-corp/other:ref:refs/heads/main', repository_id: '999' }),
    );
    expect((await loginError(e.auth.login({ identityId: 'gh-deployer', jwt }))).code).toBe(
      'subject_not_allowed',
    );
  });
});

describe('A5 audience, subject, claims through the engine', () => {
  it('AUD-01/03: string and array aud pass; [], "" and missing fail', async () => {
    const e = makeEngine();
    for (const aud of ['https://github.com/acme-corp', ['x', 'https://github.com/acme-corp']]) {
      await e.auth.login({
        identityId: 'gh-deployer',
        jwt: await sign(e.key, githubClaims(e.clock.ms, { aud })),
      });
    }
    for (const aud of [[], '', undefined, 7]) {
      const jwt = await sign(e.key, githubClaims(e.clock.ms, { aud: aud as never }));
      expect((await loginError(e.auth.login({ identityId: 'gh-deployer', jwt }))).code).toBe(
        'audience_not_allowed',
      );
    }
  });

  it('SUB-01/02: missing, array, object or number sub is refused when a subject is bound', async () => {
    const e = makeEngine();
    for (const sub of [undefined, ['repo:acme-corp/payments-api:ref:refs/heads/main'], { a: 1 }, 5]) {
      const jwt = await sign(e.key, githubClaims(e.clock.ms, { sub: sub as never }));
      expect((await loginError(e.auth.login({ identityId: 'gh-deployer', jwt }))).code).toBe(
        'subject_not_allowed',
      );
    }
  });

  it('CLM-01/02: missing claim is claim_missing; a numeric claim matches its canonical string only', async () => {
    const e = makeEngine();
    const missing = githubClaims(e.clock.ms);
    delete missing.repository_id;
    const err = await loginError(
      e.auth.login({ identityId: 'gh-deployer', jwt: await sign(e.key, missing) }),
    );
    expect(err.code).toBe('claim_missing');
    expect(e.rec.last('login.failure')?.detail).toMatchObject({ claim: 'repository_id' });
    await e.auth.login({
      identityId: 'gh-deployer',
      jwt: await sign(e.key, githubClaims(e.clock.ms, { repository_id: 612345678 })),
    });
    const other = await loginError(
      e.auth.login({
        identityId: 'gh-deployer',
        jwt: await sign(e.key, githubClaims(e.clock.ms, { repository_id: '0612345678' })),
      }),
    );
    expect(other.code).toBe('claim_not_allowed');
  });

  it('revealLoginFailureReasons: false answers invalid_credentials for every failure, the event keeps the reason', async () => {
    const e = makeEngine({ auth: { revealLoginFailureReasons: false } });
    const jwt = await sign(e.key, githubClaims(e.clock.ms, { aud: 'nope' }));
    await expectUniform(e, jwt, 'audience_not_allowed');
  });
});

describe('A12 enumeration and leaks', () => {
  it('ENUM-01: unknown identity, garbage token and wrong signature give identical errors', async () => {
    const e = makeEngine();
    const rogue = makeKey('RS256', e.key.kid);
    const forged = await sign(rogue, githubClaims(e.clock.ms));
    const answers = [
      await loginError(
        e.auth.login({ identityId: 'no-such-identity', jwt: await sign(e.key, githubClaims(e.clock.ms)) }),
      ),
      await loginError(e.auth.login({ identityId: 'gh-deployer', jwt: 'garbage' })),
      await loginError(e.auth.login({ identityId: 'gh-deployer', jwt: forged })),
    ];
    const shapes = answers.map((a) => ({ status: a.status, body: a.toBody(), headers: a.headers }));
    expect(shapes[1]).toEqual(shapes[0]);
    expect(shapes[2]).toEqual(shapes[0]);
    expect(e.rec.events.map((ev) => ev.reasonCode)).toEqual([
      'identity_not_found',
      'token_malformed',
      'signature_invalid',
    ]);
  });

  it('ENUM-02 / LOG-01: a canary inside tokens never reaches errors, events or logs', async () => {
    const e = makeEngine();
    const canary = `CANARY-${crypto.randomUUID()}`;
    const tokens = [
      await sign(e.key, githubClaims(e.clock.ms, { aud: canary, ref: canary })),
      await sign(e.key, githubClaims(e.clock.ms, { repository_id: canary })),
      await sign(e.key, githubClaims(e.clock.ms), { header: { kid: canary } }),
      await sign(makeKey('RS256'), githubClaims(e.clock.ms, { sub: canary })),
      await sign(e.key, githubClaims(e.clock.ms, { repository_id: `${canary}\n{"forged":1}` })),
      rawToken({ alg: 'RS256', kid: canary }, { sub: canary }),
      `${canary}.${canary}.${canary}`,
    ];
    const seen: string[] = [];
    for (const jwt of tokens) {
      const error = await loginError(e.auth.login({ identityId: 'gh-deployer', jwt }));
      seen.push(
        JSON.stringify(error),
        error.message,
        JSON.stringify(error.toBody()),
        JSON.stringify(error.headers),
      );
    }
    const grant = await e.auth.login({
      identityId: 'gh-deployer',
      jwt: await sign(e.key, githubClaims(e.clock.ms)),
    });
    await e.auth.revoke(grant.accessToken);
    const denied = await e.auth.authenticate(grant.accessToken).catch((err: OidcAuthError) => err);
    seen.push(JSON.stringify(denied));
    const all = seen.join('\n') + e.rec.dump();
    expect(all).not.toContain('CANARY-');
    expect(all).not.toContain(grant.accessToken);
    expect(all).not.toContain(grant.accessToken.split('.').at(-1));
  });
});

describe('static keys and key types', () => {
  it.each(['RS256', 'PS256', 'ES256', 'ES384', 'EdDSA'])(
    'verifies %s tokens from a matching public JWK',
    async (alg) => {
      const key = makeKey(alg);
      const e = makeEngine({ key });
      await e.auth.login({ identityId: 'gh-deployer', jwt: await sign(key, githubClaims(e.clock.ms)) });
    },
  );

  it('verifies with a PEM public key', async () => {
    const key = makeKey('RS256');
    const pem = key.publicKey.export({ format: 'pem', type: 'spki' }) as string;
    const e = makeEngine({ key, identity: { publicKeys: [pem] } });
    await e.auth.login({
      identityId: 'gh-deployer',
      jwt: await sign(key, githubClaims(e.clock.ms), { noKid: true }),
    });
  });

  it('ALG-05: an ES256 token against an RSA-only key set is refused', async () => {
    const e = makeEngine();
    const es = makeKey('ES256', e.key.kid);
    await expectUniform(e, await sign(es, githubClaims(e.clock.ms)));
  });

  it('a config with an exported jose JWK works', async () => {
    const { publicKey, privateKey } = await generateKeyPair('ES256');
    const jwk = { ...(await exportJWK(publicKey)), kid: 'jose-es' };
    const e = makeEngine({ identities: [githubIdentity(makeKey('RS256'), { publicKeys: [jwk] })] });
    const jwt = await new SignJWT(githubClaims(e.clock.ms))
      .setProtectedHeader({ alg: 'ES256', kid: 'jose-es' })
      .sign(privateKey);
    await e.auth.login({ identityId: 'gh-deployer', jwt });
  });
});

describe('#13.1 identity revocation leaves no survivor: stores are checked at start-up', () => {
  // Written out here, not imported: the test states the contract the engine must check.
  const TOKEN_STORE_METHODS = [
    'create',
    'get',
    'consume',
    'extend',
    'revoke',
    'revokeIdentity',
    'generation',
  ];

  /** A token store with every method but `missing`, delegating to a memory store. */
  function tokenStoreWithout(missing: string): TokenStore {
    const inner = new MemoryTokenStore({ sweepIntervalMs: 0 });
    const store: Record<string, unknown> = {};
    for (const method of TOKEN_STORE_METHODS) {
      if (method !== missing) {
        store[method] = (inner as unknown as Record<string, (...args: unknown[]) => unknown>)[method]!.bind(
          inner,
        );
      }
    }
    return store as unknown as TokenStore;
  }

  it('#13.1 identity revocation leaves no survivor: a token store without generation is refused at start-up', () => {
    const identities = [githubIdentity(makeKey('ES256'))];
    // Before, it was accepted and every login then answered 401 token_malformed (the catch-all).
    for (const method of TOKEN_STORE_METHODS) {
      let error: unknown;
      try {
        createOidcAuth({ identities, tokens: tokenStoreWithout(method), signingKeys: SIGNING_KEYS });
      } catch (caught) {
        error = caught;
      }
      expect(error, method).toBeInstanceOf(ConfigError);
      expect(error, method).toMatchObject({ field: `tokens.${method}`, code: 'invalid_config' });
      expect((error as Error).message, method).toContain(`no ${method} method`);
    }
    // The complete one is accepted.
    createOidcAuth({ identities, tokens: tokenStoreWithout('none'), signingKeys: SIGNING_KEYS });
  });

  it('#18 a failing store is caught early: a get, consume or extend that declares no now parameter is refused at start-up', () => {
    const identities = [githubIdentity(makeKey('ES256'))];
    const inner = new MemoryTokenStore();
    for (const method of ['get', 'consume', 'extend'] as const) {
      const store = tokenStoreWithout('none') as unknown as Record<string, unknown>;
      // Decides with a clock of its own: `now` is not even a parameter.
      store[method] = (tokenId: string) =>
        (inner[method] as (id: string, now: number) => unknown)(tokenId, Date.now());
      expect(() =>
        createOidcAuth({ identities, tokens: store as unknown as TokenStore, signingKeys: SIGNING_KEYS }),
      ).toThrow(expect.objectContaining({ field: `tokens.${method}`, code: 'invalid_config' }));
    }
    // A wrapper with rest parameters declares nothing and is accepted.
    const wrapped = tokenStoreWithout('none') as unknown as Record<string, unknown>;
    wrapped.consume = (...args: [string, number]) => inner.consume(...args);
    createOidcAuth({ identities, tokens: wrapped as unknown as TokenStore, signingKeys: SIGNING_KEYS });
  });

  it('#13.1 identity revocation leaves no survivor: an identity store without get is refused at start-up', () => {
    const withoutGet = { list: async () => [] } as unknown as IdentityStore;
    expect(() => createOidcAuth({ identities: withoutGet, signingKeys: SIGNING_KEYS })).toThrow(
      expect.objectContaining({ field: 'identities.get', code: 'invalid_config' }),
    );
    expect(() =>
      createOidcAuth({ identities: null as unknown as IdentityStore, signingKeys: SIGNING_KEYS }),
    ).toThrow(ConfigError);
  });
});

describe('#13.2 no identity oracle: an identity id outside the pattern', () => {
  it('#13.2 no identity oracle: a login naming an id no identity can have (U+0000, too long, bad characters) is refused as an unknown id, before any store read', async () => {
    const key = makeKey('RS256', 'id-pattern');
    const reads = { generation: 0, get: 0 };
    const inner = new MemoryTokenStore();
    const tokens: TokenStore = Object.assign(Object.create(inner) as TokenStore, {
      generation: async (identityId: string) => {
        reads.generation++;
        // What PostgreSQL does with U+0000 in a text parameter.
        if (identityId.includes('\0')) throw new Error('invalid byte sequence for encoding "UTF8": 0x00');
        return inner.generation(identityId);
      },
      // Without revocation by claim, login reads the generation through the method above.
      revokeWhere: undefined,
    });
    const identities: IdentityStore = {
      get: async () => {
        reads.get++;
        return undefined;
      },
    };
    const auth = createOidcAuth({ identities, tokens, signingKeys: SIGNING_KEYS });
    const jwt = await sign(key, githubClaims(Date.now()));
    const unknown = await loginError(auth.login({ identityId: 'no-such-identity', jwt }));
    const before = { ...reads };
    for (const identityId of ['gh\0deployer', '\0', 'x'.repeat(129), 'a b', 'é', '']) {
      const error = await loginError(auth.login({ identityId, jwt }));
      expect({
        status: error.status,
        code: error.code,
        body: error.toBody(),
        headers: error.headers,
      }).toEqual({
        status: unknown.status,
        code: 'invalid_credentials',
        body: unknown.toBody(),
        headers: unknown.headers,
      });
    }
    expect(reads, 'no generation read and no identity read for an impossible id').toEqual(before);
    await auth.close();
  });
});
