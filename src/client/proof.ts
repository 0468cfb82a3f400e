import {
  base64url,
  calculateJwkThumbprint,
  exportJWK,
  generateKeyPair,
  SignJWT,
  type CryptoKey,
  type JWK,
} from 'jose';
import { DpopClientError } from './errors.js';

/**
 * Signature algorithms a DPoP key may use: asymmetric JWS algorithms (RFC 9449 §4.2 forbids `none`
 * and MACs). `ES256` is the one every DPoP server must be assumed to take.
 */
export type DpopAlgorithm = 'ES256' | 'ES384' | 'ES512' | 'EdDSA' | 'PS256' | 'PS384' | 'PS512' | 'RS256';

const ALGORITHMS: ReadonlySet<string> = new Set<DpopAlgorithm>([
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
  'PS256',
  'PS384',
  'PS512',
  'RS256',
]);

/** The public members RFC 7638 §3.2 names per key type; nothing else goes into the proof header. */
const PUBLIC_MEMBERS: Readonly<Record<string, readonly string[]>> = {
  EC: ['crv', 'kty', 'x', 'y'],
  OKP: ['crv', 'kty', 'x'],
  RSA: ['e', 'kty', 'n'],
};

/** A DPoP key pair: the private half never leaves the `CryptoKey` (not extractable). */
export interface DpopKey {
  readonly alg: DpopAlgorithm;
  readonly privateKey: CryptoKey;
  /** The public key as a JWK with only its RFC 7638 members: what the proof's `jwk` header carries. */
  readonly publicJwk: Readonly<JWK>;
  /** RFC 7638 SHA-256 thumbprint of the public key, base64url: the `cnf.jkt` a bound token carries. */
  readonly thumbprint: string;
}

/**
 * Make a fresh DPoP key pair (Web Crypto, through jose). Make one per job or process and keep it in
 * memory: a token bound to it is worth nothing without it.
 *
 * @param options.alg - the signature algorithm; default `ES256` (P-256).
 */
export async function generateDpopKey(options: { alg?: DpopAlgorithm } = {}): Promise<DpopKey> {
  const alg = options.alg ?? 'ES256';
  if (!ALGORITHMS.has(alg))
    throw new DpopClientError('invalid_argument', `alg must be one of ${[...ALGORITHMS].join(', ')}`);
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: false });
  return dpopKeyFrom(alg, privateKey, publicKey);
}

/**
 * A DPoP key from a key pair the caller already holds (a key kept in a platform keystore, say).
 * The public key must be extractable (Web Crypto public keys always are).
 */
export async function dpopKeyFrom(
  alg: DpopAlgorithm,
  privateKey: CryptoKey,
  publicKey: CryptoKey,
): Promise<DpopKey> {
  if (!ALGORITHMS.has(alg))
    throw new DpopClientError('invalid_argument', `alg must be one of ${[...ALGORITHMS].join(', ')}`);
  const full = (await exportJWK(publicKey)) as Record<string, unknown>;
  const members = PUBLIC_MEMBERS[String(full.kty)];
  if (!members) throw new DpopClientError('invalid_argument', 'the public key must be an EC, OKP or RSA key');
  const publicJwk: Record<string, string> = {};
  for (const name of members) {
    const value = full[name];
    if (typeof value !== 'string')
      throw new DpopClientError('invalid_argument', `the public key has no ${name}`);
    publicJwk[name] = value;
  }
  return Object.freeze({
    alg,
    privateKey,
    publicJwk: Object.freeze(publicJwk),
    thumbprint: await calculateJwkThumbprint(publicJwk, 'sha256'),
  });
}

/** What one proof is for. */
export interface DpopProofInput {
  key: DpopKey;
  /** The request's HTTP method (`htm`), e.g. `GET`. */
  method: string;
  /** The request's absolute URL; query and fragment are dropped for `htu` (RFC 9449 §4.2). */
  url: string | URL;
  /** The access token the request presents: adds `ath` (RFC 9449 §4.2). Never put into the proof itself. */
  accessToken?: string;
  /** The server's latest `DPoP-Nonce` for this server (RFC 9449 §8, §9). */
  nonce?: string;
  /** The time the proof is made, milliseconds since the epoch (`iat`); default `Date.now()`. */
  now?: number;
}

const METHOD = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/; // RFC 9110 §5.6.2 token
const NONCE = /^[\x21\x23-\x5B\x5D-\x7E]+$/; // RFC 9449 §8.1 NQCHAR

/**
 * The `htu` of a request URL (RFC 9449 §4.2): the absolute http(s) URL without query, fragment or
 * user info, in WHATWG URL serialisation (scheme and host lower case, default port dropped).
 */
export function dpopHtu(url: string | URL): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new DpopClientError('invalid_argument', 'url must be an absolute URL');
  }
  if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') {
    throw new DpopClientError('invalid_argument', 'url must be an http or https URL');
  }
  parsed.search = '';
  parsed.hash = '';
  parsed.username = '';
  parsed.password = '';
  return parsed.href;
}

/** `ath` (RFC 9449 §4.2): base64url of the SHA-256 of the access token's ASCII bytes. */
export async function accessTokenHash(accessToken: string): Promise<string> {
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(accessToken));
  return base64url.encode(new Uint8Array(digest));
}

/**
 * Sign a DPoP proof JWT (RFC 9449 §4.2): header `typ: dpop+jwt`, the key's `alg` and its public
 * `jwk`; claims `jti` (128 random bits), `htm`, `htu`, `iat`, and `ath` and `nonce` when given.
 * Make a fresh one per request: servers refuse a `jti` they have seen (§11.1).
 */
export async function createDpopProof(input: DpopProofInput): Promise<string> {
  const { key, method } = input;
  if (!METHOD.test(method))
    throw new DpopClientError('invalid_argument', 'method must be an HTTP method token');
  if (input.nonce !== undefined && !NONCE.test(input.nonce)) {
    throw new DpopClientError('invalid_argument', 'nonce must be a non-empty NQCHAR string (RFC 9449 §8.1)');
  }
  const claims: Record<string, unknown> = {
    jti: base64url.encode(crypto.getRandomValues(new Uint8Array(16))),
    htm: method,
    htu: dpopHtu(input.url),
    iat: Math.floor((input.now ?? Date.now()) / 1000),
  };
  if (input.accessToken !== undefined) claims.ath = await accessTokenHash(input.accessToken);
  if (input.nonce !== undefined) claims.nonce = input.nonce;
  return new SignJWT(claims)
    .setProtectedHeader({ typ: 'dpop+jwt', alg: key.alg, jwk: { ...key.publicJwk } })
    .sign(key.privateKey);
}
