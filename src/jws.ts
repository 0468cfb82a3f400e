import { constants, verify, type KeyObject } from 'node:crypto';

interface Scheme {
  /** Digest for `crypto.verify`; `null` for EdDSA. */
  hash: string | null;
  keyType: 'rsa' | 'ec' | 'ed25519';
  /** PSS salt length in bytes (PS*). */
  pssSalt?: number;
  /** Named curve an EC key must be on (ES*). */
  curve?: string;
}

/** The asymmetric JWS algorithms, as node:crypto verifies them (RFC 7518 §3, RFC 8037). */
const SCHEMES: Readonly<Record<string, Scheme>> = Object.freeze({
  RS256: { hash: 'sha256', keyType: 'rsa' },
  RS384: { hash: 'sha384', keyType: 'rsa' },
  RS512: { hash: 'sha512', keyType: 'rsa' },
  PS256: { hash: 'sha256', keyType: 'rsa', pssSalt: 32 },
  PS384: { hash: 'sha384', keyType: 'rsa', pssSalt: 48 },
  PS512: { hash: 'sha512', keyType: 'rsa', pssSalt: 64 },
  ES256: { hash: 'sha256', keyType: 'ec', curve: 'prime256v1' },
  ES384: { hash: 'sha384', keyType: 'ec', curve: 'secp384r1' },
  ES512: { hash: 'sha512', keyType: 'ec', curve: 'secp521r1' },
  EdDSA: { hash: null, keyType: 'ed25519' },
  Ed25519: { hash: null, keyType: 'ed25519' },
});

/**
 * Verify the signature of a compact JWS with one public key, through node:crypto directly (about
 * 5x less CPU than jose's WebCrypto path for RS256 here). The key must be of the type and curve the
 * algorithm names; HMAC and `none` have no scheme and never verify. Never throws.
 *
 * @param signingInput `base64url(header) + '.' + base64url(payload)`, exactly as received.
 * @param signature The decoded signature bytes (ES*: raw `r || s`, as JWS encodes it).
 */
export function verifyJwsSignature(
  alg: string,
  key: KeyObject,
  signingInput: string,
  signature: Buffer,
): boolean {
  const scheme = Object.hasOwn(SCHEMES, alg) ? SCHEMES[alg] : undefined;
  if (!scheme || key.type !== 'public' || key.asymmetricKeyType !== scheme.keyType) return false;
  if (scheme.curve && key.asymmetricKeyDetails?.namedCurve !== scheme.curve) return false;
  try {
    const data = Buffer.from(signingInput, 'latin1');
    if (scheme.keyType === 'ec') {
      return verify(scheme.hash, data, { key, dsaEncoding: 'ieee-p1363' }, signature);
    }
    if (scheme.pssSalt !== undefined) {
      return verify(
        scheme.hash,
        data,
        { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: scheme.pssSalt },
        signature,
      );
    }
    if (scheme.keyType === 'rsa') {
      return verify(scheme.hash, data, { key, padding: constants.RSA_PKCS1_PADDING }, signature);
    }
    return verify(null, data, key, signature);
  } catch {
    return false;
  }
}
