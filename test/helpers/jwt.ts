import { createSign, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { SignJWT, type JWK, type JWTPayload } from 'jose';

/** A local signing key pair standing in for an IdP's. */
export interface TestKey {
  kid: string;
  alg: string;
  privateKey: KeyObject;
  publicKey: KeyObject;
  publicJwk: JWK;
}

/** Generate an IdP-like key: RSA-2048 for RS/PS, P-256/384/521 for ES, Ed25519 for EdDSA. */
export function makeKey(
  alg = 'RS256',
  kid = `kid-${alg.toLowerCase()}-${Math.random().toString(36).slice(2, 8)}`,
): TestKey {
  let pair: { privateKey: KeyObject; publicKey: KeyObject };
  if (alg.startsWith('RS') || alg.startsWith('PS'))
    pair = generateKeyPairSync('rsa', { modulusLength: 2048 });
  else if (alg === 'ES256') pair = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  else if (alg === 'ES384') pair = generateKeyPairSync('ec', { namedCurve: 'P-384' });
  else if (alg === 'ES512') pair = generateKeyPairSync('ec', { namedCurve: 'P-521' });
  else if (alg === 'EdDSA' || alg === 'Ed25519') pair = generateKeyPairSync('ed25519');
  else throw new Error(`no test key for ${alg}`);
  const publicJwk = { ...(pair.publicKey.export({ format: 'jwk' }) as JWK), kid, use: 'sig' };
  return { kid, alg, ...pair, publicJwk };
}

/** Seconds since the epoch for a ms clock value. */
export const seconds = (ms: number) => Math.floor(ms / 1000);

export interface SignOptions {
  header?: Record<string, unknown>;
  /** Omit the kid header. */
  noKid?: boolean;
}

/** Sign a claim set with a test key (claims are taken verbatim: set iat/exp yourself). */
export async function sign(key: TestKey, claims: JWTPayload, options: SignOptions = {}): Promise<string> {
  const header = { alg: key.alg, typ: 'JWT', ...(options.noKid ? {} : { kid: key.kid }), ...options.header };
  return new SignJWT(claims).setProtectedHeader(header as { alg: string }).sign(key.privateKey);
}

/** Base64url JSON segment. */
export const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

/** A compact token with arbitrary header/payload and signature bytes (for hostile-input cases). */
export function rawToken(header: unknown, payload: unknown, signature = 'c2ln'): string {
  return `${b64(header)}.${b64(payload)}.${signature}`;
}

export const ISSUER = 'https://token.actions.githubusercontent.com';

/** GitHub Actions-shaped claims (TOKEN-SHAPES B1), times relative to `nowMs`. */
export function githubClaims(nowMs: number, overrides: JWTPayload = {}): JWTPayload {
  const iat = seconds(nowMs);
  return {
    jti: '7c9a3d1e-2b4f-4c8a-9e6d-1f2a3b4c5d6e',
    sub: 'repo:acme-corp/payments-api:ref:refs/heads/main',
    aud: 'https://github.com/acme-corp',
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
    nbf: iat - 600,
    iat,
    exp: iat + 300,
    ...overrides,
  };
}

/**
 * Sign an arbitrary header and payload text with an RSA test key (RS256), bypassing jose's own
 * checks, so tests can build genuinely signed tokens that jose would refuse to produce
 * (`crit`, `b64: false`, duplicate keys, non-object payloads, deep nesting).
 */
export function signRaw(key: TestKey, header: Record<string, unknown>, payloadText: string): string {
  const signingInput = `${b64(header)}.${Buffer.from(payloadText).toString('base64url')}`;
  const signature = createSign('RSA-SHA256').update(signingInput).sign(key.privateKey).toString('base64url');
  return `${signingInput}.${signature}`;
}
