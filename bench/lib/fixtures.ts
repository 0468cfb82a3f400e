import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { SignJWT, type JWK, type JWTPayload } from 'jose';
import { createOidcAuth, type OidcAuth } from '../../src/index.js';
import { AccessTokenCodec, newTokenId } from '../../src/tokens/opaque.js';
import type { AccessTokenRecord, IdentityConfigInput, TokenStore } from '../../src/types.js';

/** Issuer of every IdP-style token in the benchmarks (GitHub Actions'). */
export const ISSUER = 'https://token.actions.githubusercontent.com';
/** Audience of every IdP-style token in the benchmarks. */
export const AUDIENCE = 'https://github.com/acme-corp';
/** Identity the benchmark logins use. */
export const IDENTITY_ID = 'gh-deployer';
/** Own-token signing keys of the benchmark engines (fixed, so runs are comparable). */
export const SIGNING_KEYS = { k1: 'a-bench-signing-secret-of-at-least-32-bytes!' };

/**
 * Rate limits that count every call exactly as the defaults do but never refuse one: a benchmark is
 * a flood from one address (thousands of logins a second), which the default budgets rightly stop.
 * The limiter's cost is in every figure; bench/limits.ts measures it against `rateLimits: false`.
 */
export const BENCH_RATE_LIMITS = {
  perAddress: { perMinute: 1e9, burst: 1e9 },
  perIdentity: { perMinute: 1e9, burst: 1e9 },
  failedLoginsPerAddress: { perMinute: 1e9, burst: 1e9 },
  failedLoginsPerSubject: { perMinute: 1e9, burst: 1e9 },
  invalidTokensPerAddress: { perMinute: 1e9, burst: 1e9 },
};

/** JWS algorithms the benchmarks sign IdP tokens with. */
export type BenchAlg = 'RS256' | 'ES256' | 'EdDSA';

/** A local key pair standing in for an IdP's signing key. */
export interface IdpKey {
  alg: BenchAlg;
  kid: string;
  privateKey: KeyObject;
  publicKey: KeyObject;
  /** Public JWK with `kid`, `alg` and `use`. */
  publicJwk: JWK;
}

/** Generate an IdP key: RSA-2048 (RS256), P-256 (ES256) or Ed25519 (EdDSA). */
export function makeIdpKey(alg: BenchAlg = 'RS256', kid = `bench-${alg.toLowerCase()}`): IdpKey {
  const pair =
    alg === 'RS256'
      ? generateKeyPairSync('rsa', { modulusLength: 2048 })
      : alg === 'ES256'
        ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
        : generateKeyPairSync('ed25519');
  const publicJwk: JWK = { ...(pair.publicKey.export({ format: 'jwk' }) as JWK), kid, alg, use: 'sig' };
  return { alg, kid, ...pair, publicJwk };
}

/** GitHub Actions-shaped claims (TOKEN-SHAPES B1), issued now and valid for `lifetimeSeconds`. */
export function idpClaims(lifetimeSeconds = 6 * 3600, overrides: JWTPayload = {}): JWTPayload {
  const iat = Math.floor(Date.now() / 1000);
  return {
    jti: '7c9a3d1e-2b4f-4c8a-9e6d-1f2a3b4c5d6e',
    sub: 'repo:acme-corp/payments-api:ref:refs/heads/main',
    aud: AUDIENCE,
    ref: 'refs/heads/main',
    ref_type: 'branch',
    ref_protected: 'true',
    repository: 'acme-corp/payments-api',
    repository_id: '612345678',
    repository_owner: 'acme-corp',
    repository_owner_id: '81234567',
    event_name: 'push',
    job_workflow_ref: 'acme-corp/payments-api/.github/workflows/deploy.yml@refs/heads/main',
    iss: ISSUER,
    nbf: iat - 60,
    iat,
    exp: iat + lifetimeSeconds,
    ...overrides,
  };
}

/** Sign claims as the IdP would (compact JWS, `typ: JWT`, `kid`). */
export function signIdpToken(key: IdpKey, claims: JWTPayload = idpClaims()): Promise<string> {
  return new SignJWT(claims)
    .setProtectedHeader({ alg: key.alg, typ: 'JWT', kid: key.kid })
    .sign(key.privateKey);
}

/** A token signed by another key under the same `kid`: the signature check must refuse it. */
export async function forgeIdpToken(key: IdpKey, claims: JWTPayload = idpClaims()): Promise<string> {
  const impostor = makeIdpKey(key.alg, key.kid);
  return signIdpToken(impostor, claims);
}

/** Flip the last character of a token (breaks the MAC or signature, keeps the shape). */
export function tamper(token: string): string {
  const last = token.at(-1) === 'A' ? 'B' : 'A';
  return token.slice(0, -1) + last;
}

/**
 * The benchmark identity, bound like a GitHub Actions deploy job and keyed by static public keys.
 * `maxTokenLifetimeSeconds` is raised so one IdP token lasts a whole run.
 */
export function benchIdentity(
  key: IdpKey,
  overrides: Partial<IdentityConfigInput> = {},
): IdentityConfigInput {
  return {
    identityId: IDENTITY_ID,
    publicKeys: [key.publicJwk],
    boundIssuer: ISSUER,
    boundSubject: 'repo:acme-corp/payments-api:ref:refs/heads/main',
    boundAudiences: AUDIENCE,
    boundClaims: { repository_id: '612345678' },
    claimMetadataMapping: { repository: 'repository', ref: 'ref' },
    metadata: { role: 'deployer' },
    maxTokenLifetimeSeconds: 24 * 3600,
    ...overrides,
  };
}

/** `count` more identities like the benchmark one (`filler-<n>`), for scale runs. */
export function fillerIdentities(key: IdpKey, count: number): IdentityConfigInput[] {
  const list: IdentityConfigInput[] = [];
  for (let i = 0; i < count; i++) {
    list.push(
      benchIdentity(key, {
        identityId: `filler-${i}`,
        boundSubject: `repo:acme-corp/service-${i}:ref:refs/heads/main`,
      }),
    );
  }
  return list;
}

/**
 * Put `count` live token records in a store (as logins would), for scale runs. Returns `Bearer`
 * authorizations for `sample` of them, evenly spaced (token ids are random, so a random sample),
 * minted with {@link SIGNING_KEYS} like the engine's own.
 */
export async function fillTokens(
  store: TokenStore,
  count: number,
  options: { ttlSeconds?: number; sample?: number } = {},
): Promise<string[]> {
  const ttlSeconds = options.ttlSeconds ?? 7200;
  const sample = Math.min(count, options.sample ?? 0);
  const every = sample > 0 ? count / sample : Infinity;
  const codec = new AccessTokenCodec(SIGNING_KEYS);
  // Like logins of one identity: they share its config's trusted-IP array; each login makes its own
  // frozen metadata object (base metadata + mapped claims).
  const trustedIps = ['0.0.0.0/0', '::/0'];
  const authorizations: string[] = [];
  const now = Date.now();
  for (let i = 0; i < count; i++) {
    const record: AccessTokenRecord = {
      tokenId: newTokenId(),
      identityId: IDENTITY_ID,
      createdAt: now,
      expiresAt: now + ttlSeconds * 1000,
      maxExpiresAt: now + 86_400_000,
      ttlSeconds,
      usesLimit: 0,
      usesCount: 0,
      revoked: false,
      trustedIps,
      metadata: Object.freeze({
        role: 'deployer',
        repository: 'acme-corp/payments-api',
        ref: 'refs/heads/main',
      }),
      issuer: ISSUER,
      subject: 'repo:acme-corp/payments-api:ref:refs/heads/main',
      generation: 0,
    };
    await store.create(record);
    if (authorizations.length < sample && i >= authorizations.length * every) {
      authorizations.push(`Bearer ${codec.mint(record.tokenId, record.expiresAt)}`);
    }
  }
  return authorizations;
}

/**
 * An engine with the bench identity, logged in once: the access token and a tampered copy of it.
 * `tokens`: the token store (default: the engine's memory store).
 */
export async function loggedInEngine(
  key: IdpKey,
  tokens?: TokenStore,
): Promise<{ auth: OidcAuth; token: string; forged: string }> {
  const auth = createOidcAuth({ identities: [benchIdentity(key)], tokens, signingKeys: SIGNING_KEYS });
  const grant = await auth.login({
    identityId: IDENTITY_ID,
    jwt: await signIdpToken(key),
    clientIp: '127.0.0.1',
  });
  return { auth, token: grant.accessToken, forged: tamper(grant.accessToken) };
}
