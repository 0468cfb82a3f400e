/**
 * Fixtures of the JWT access-token benchmarks (issue 15): one engine configuration whose identity
 * mints RFC 9068 JWT access tokens with a fixed Ed25519 key, so every server process signs and
 * publishes the same key, and a real tamper of such a token.
 */
import { createPrivateKey } from 'node:crypto';
import { createOidcAuth, type OidcAuth } from '../../src/index.js';
import {
  benchIdentity,
  IDENTITY_ID,
  BENCH_RATE_LIMITS,
  SIGNING_KEYS,
  signIdpToken,
  type IdpKey,
} from './fixtures.js';

/** Our issuer in the benchmarks (the `iss` and the `aud` of the tokens). */
export const OUR_ISSUER = 'https://bench.example/api/v1/auth';

/** A fixed Ed25519 key (PKCS#8 DER of a constant 32-byte seed): the same in every server process. */
const ED25519_SEED = Buffer.alloc(32, 7);
export const ACCESS_TOKEN_KEY = createPrivateKey({
  key: Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), ED25519_SEED]),
  format: 'der',
  type: 'pkcs8',
});

/** A fixed P-256 key (a JWK made once): the same in every server process. */
export const ACCESS_TOKEN_KEY_ES256 = createPrivateKey({
  key: {
    kty: 'EC',
    crv: 'P-256',
    d: 'IUU7-tLzKKlL619IIObm0k7kuSh0D4Iedjjk4F0hSk4',
    x: 'Hw6ZGWix8IYAa4XbLU3gVt9aO8E21fcS-cm0_GG4nSU',
    y: 'w5Iqxi-K4OFkm9Qc_GxLAScgxw-NudcWETp4i6gfIIw',
  },
  format: 'jwk',
});

/**
 * An engine whose bench identity mints JWT access tokens (no uses limit), signed with the fixed
 * Ed25519 key, or with `alg: 'ES256'` the fixed P-256 one.
 */
export function jwtEngine(key: IdpKey, alg: 'EdDSA' | 'ES256' = 'EdDSA'): OidcAuth {
  const signingKey =
    alg === 'ES256'
      ? { privateKey: ACCESS_TOKEN_KEY_ES256, kid: 'bench-es256' }
      : { privateKey: ACCESS_TOKEN_KEY, kid: 'bench-ed25519' };
  return createOidcAuth({
    identities: [benchIdentity(key, { accessTokenFormat: 'jwt' })],
    signingKeys: SIGNING_KEYS,
    rateLimits: BENCH_RATE_LIMITS,
    issuer: OUR_ISSUER,
    accessTokens: { signingKeys: [signingKey] },
  });
}

/** Log in once: a JWT access token. */
export async function jwtAccessToken(auth: OidcAuth, key: IdpKey): Promise<string> {
  const grant = await auth.login({
    identityId: IDENTITY_ID,
    jwt: await signIdpToken(key),
    clientIp: '127.0.0.1',
  });
  return grant.accessToken;
}

/**
 * The token with the first signature character changed: a real forgery. (Changing the last one, as
 * `tamper` does for opaque tokens, can flip only the unused low bits of an Ed25519 signature's
 * base64url form, which decode to the same signature.)
 */
export function forgeJwt(token: string): string {
  const at = token.lastIndexOf('.') + 1;
  return token.slice(0, at) + (token[at] === 'A' ? 'B' : 'A') + token.slice(at + 1);
}
