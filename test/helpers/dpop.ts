import { calculateJwkThumbprint, exportJWK, generateKeyPair, type CryptoKey, type JWK } from 'jose';
import { expect } from 'vitest';
import { OidcAuthError } from '../../src/index.js';

/** The URLs the engine-level DPoP tests prove requests to (RFC 9449 §4.2 `htu`). */
export const ISSUER_URL = 'https://app.example/api/v1/auth';
export const LOGIN_URL = `${ISSUER_URL}/oidc-auth/login`;
export const RENEW_URL = `${ISSUER_URL}/token/renew`;
export const REVOKE_URL = `${ISSUER_URL}/token/revoke`;
export const TOKEN_URL = `${ISSUER_URL}/oauth/token`;
export const API_URL = 'https://api.example/api/v3/secrets/raw';

/** A client's DPoP key: its private half, public JWK and RFC 7638 thumbprint. */
export interface ProofKey {
  alg: string;
  privateKey: CryptoKey;
  jwk: JWK;
  jkt: string;
}

export async function proofKey(alg = 'ES256'): Promise<ProofKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const jwk = await exportJWK(publicKey);
  return { alg, privateKey, jwk, jkt: await calculateJwkThumbprint(jwk) };
}

/** Catch what a promise rejects with (an OidcAuthError). */
export async function refusal(promise: Promise<unknown>): Promise<OidcAuthError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(OidcAuthError);
    return error as OidcAuthError;
  }
  throw new Error('expected a refusal');
}
