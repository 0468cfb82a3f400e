import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  sign as nodeSign,
  verify as nodeVerify,
  type JsonWebKey as NodeJwk,
  type KeyObject,
} from 'node:crypto';
import type { JWK } from 'jose';
import { ConfigError } from '../errors.js';

/** The JWS algorithms our JWT access tokens may be signed with. */
export type AccessTokenAlgorithm = 'EdDSA' | 'ES256' | 'RS256';

/** A key as PEM text (PKCS#8 private, SPKI public), a JWK, or a Node `KeyObject`. */
export type KeyMaterial = string | JWK | KeyObject;

/**
 * Produces the JWS signature of `signingInput` (the ASCII bytes of `header.payload`), e.g. by a call
 * to a KMS that holds the private key. For ES256 it returns the 64-byte `r || s` form JWS uses
 * (RFC 7518 §3.4), not DER; for EdDSA the 64-byte Ed25519 signature; for RS256 the PKCS#1 v1.5 one.
 */
export type AccessTokenSigner = (signingInput: Uint8Array) => Uint8Array | Promise<Uint8Array>;

/**
 * One key of `accessTokens.signingKeys`. The first key of the list signs; every key is published in
 * the JWKS and verifies, so a key rotates out without invalidating tokens it signed.
 * - `{ privateKey }`: a local key (PEM PKCS#8, private JWK or `KeyObject`).
 * - `{ publicKey, sign }`: the private key lives elsewhere (KMS, HSM); `sign` makes the signature.
 * - `{ publicKey }` alone: a retired key, published and verifying only (never first).
 */
export interface AccessTokenSigningKeyInput {
  /** Key id (`kid`), 1-64 of `A-Z a-z 0-9 . _ -`. Default: the RFC 7638 thumbprint of the public key. */
  kid?: string;
  /** Default: from the key type (Ed25519 → EdDSA, P-256 → ES256, RSA ≥ 2048 bits → RS256). */
  alg?: AccessTokenAlgorithm;
  privateKey?: KeyMaterial;
  publicKey?: KeyMaterial;
  sign?: AccessTokenSigner;
}

/** A validated signing key. */
export interface AccessTokenKey {
  readonly kid: string;
  readonly alg: AccessTokenAlgorithm;
  readonly publicKey: KeyObject;
  /** The public JWK as published (`kty`, key fields, `kid`, `alg`, `use: "sig"`). */
  readonly jwk: Readonly<JWK>;
  /** Signs a JWS signing input; `undefined` for a verify-only key. */
  readonly sign: ((signingInput: Uint8Array) => Promise<Uint8Array>) | undefined;
}

const KID = /^[A-Za-z0-9._-]{1,64}$/;
const ALGORITHMS: ReadonlySet<string> = new Set<AccessTokenAlgorithm>(['EdDSA', 'ES256', 'RS256']);
/** At most this many keys are published: rotation needs two or three. */
const MAX_KEYS = 10;

/** The algorithm a key's type calls for, or a reason why it cannot sign our tokens. */
function algorithmOf(key: KeyObject): AccessTokenAlgorithm | string {
  const type = key.asymmetricKeyType;
  if (type === 'ed25519') return 'EdDSA';
  if (type === 'ec') {
    return key.asymmetricKeyDetails?.namedCurve === 'prime256v1'
      ? 'ES256'
      : 'is an EC key on another curve than P-256';
  }
  if (type === 'rsa') {
    return (key.asymmetricKeyDetails?.modulusLength ?? 0) >= 2048
      ? 'RS256'
      : 'is an RSA key shorter than 2048 bits';
  }
  return `is a ${type ?? 'symmetric'} key; use Ed25519, P-256 or RSA (2048 bits or more)`;
}

function toKeyObject(material: unknown, kind: 'private' | 'public', field: string): KeyObject {
  try {
    if (typeof material === 'string') {
      return kind === 'private' ? createPrivateKey(material) : createPublicKey(material);
    }
    if (isKeyObject(material)) {
      if (kind === 'public' && material.type === 'private') return createPublicKey(material);
      if (material.type !== kind) throw new Error('wrong key type');
      return material;
    }
    if (typeof material === 'object' && material !== null) {
      const jwk = material as NodeJwk;
      if (kind === 'public' && typeof jwk.d === 'string') throw new Error('private JWK');
      return kind === 'private'
        ? createPrivateKey({ key: jwk, format: 'jwk' })
        : createPublicKey({ key: jwk, format: 'jwk' });
    }
  } catch {
    // The key text never reaches the message.
  }
  throw new ConfigError(
    field,
    kind === 'private'
      ? 'must be a PKCS#8 PEM private key, a private JWK or a private KeyObject'
      : 'must be an SPKI PEM public key, a public JWK or a public KeyObject',
  );
}

function isKeyObject(value: unknown): value is KeyObject {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as KeyObject).export === 'function' &&
    typeof (value as KeyObject).type === 'string'
  );
}

/**
 * Node's `crypto.sign` for a JWS algorithm (ES256 in the JWS `r || s` form), run on libuv's thread
 * pool (`crypto.sign` with a callback, as jose does on Node): the same OpenSSL signature, but the
 * event loop does not wait for it. The signature is nearly all a JWT access token adds to a login
 * (an Ed25519 signature is ~40 µs of CPU here, a whole in-process login without it ~70 µs), so a
 * login minting a JWT keeps the loop almost as free as an opaque one. A runtime whose `crypto.sign`
 * ignores the callback and returns the signature (or throws) is answered from that.
 */
export function signOffThread(
  alg: AccessTokenAlgorithm,
  key: KeyObject,
  data: Uint8Array,
): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const done = (error: Error | null, signature: Uint8Array) => (error ? reject(error) : resolve(signature));
    let returned: unknown;
    try {
      if (alg === 'EdDSA') returned = nodeSign(null, data, key, done);
      else if (alg === 'ES256') returned = nodeSign('sha256', data, { key, dsaEncoding: 'ieee-p1363' }, done);
      else returned = nodeSign('sha256', data, key, done);
    } catch (error) {
      reject(error instanceof Error ? error : new Error(String(error)));
      return;
    }
    if (returned instanceof Uint8Array) resolve(returned);
  });
}

/** Node's `crypto.verify` for a JWS algorithm (ES256 in the `r || s` form). */
export function verifyWith(
  alg: AccessTokenAlgorithm,
  key: KeyObject,
  data: Uint8Array,
  signature: Uint8Array,
): boolean {
  if (alg === 'EdDSA') return nodeVerify(null, data, key, signature);
  if (alg === 'ES256') return nodeVerify('sha256', data, { key, dsaEncoding: 'ieee-p1363' }, signature);
  return nodeVerify('sha256', data, key, signature);
}

/**
 * Validate `accessTokens.signingKeys`: at least one key, the first able to sign, unique `kid`s, an
 * algorithm that fits each key. Key material never appears in an error message.
 */
export function parseAccessTokenKeys(input: readonly AccessTokenSigningKeyInput[]): AccessTokenKey[] {
  const seen = new Set<string>();
  return checkAccessTokenKeys(input).map((key, i) => {
    const kid = key.kid ?? thumbprint(key.jwk);
    if (seen.has(kid))
      throw new ConfigError(`accessTokens.signingKeys[${i}]`, 'has the same kid (or key) as an earlier one');
    seen.add(kid);
    return Object.freeze({ ...key, kid, jwk: Object.freeze({ ...key.jwk, kid }) });
  });
}

interface CheckedKey extends Omit<AccessTokenKey, 'kid'> {
  kid: string | undefined;
}

function checkAccessTokenKeys(input: readonly AccessTokenSigningKeyInput[]): CheckedKey[] {
  if (!Array.isArray(input) || input.length === 0) {
    throw new ConfigError('accessTokens.signingKeys', 'must be a non-empty array of keys (the first signs)');
  }
  if (input.length > MAX_KEYS) {
    throw new ConfigError('accessTokens.signingKeys', `has more than ${MAX_KEYS} keys`);
  }
  return input.map((entry: AccessTokenSigningKeyInput, i) => {
    const field = `accessTokens.signingKeys[${i}]`;
    if (typeof entry !== 'object' || entry === null) throw new ConfigError(field, 'must be an object');
    if (entry.kid !== undefined && (typeof entry.kid !== 'string' || !KID.test(entry.kid))) {
      throw new ConfigError(`${field}.kid`, 'must be 1-64 characters of A-Z a-z 0-9 . _ -');
    }
    if (entry.sign !== undefined && typeof entry.sign !== 'function') {
      throw new ConfigError(`${field}.sign`, 'must be a function (signingInput) => signature');
    }
    if (entry.privateKey !== undefined && entry.sign !== undefined) {
      throw new ConfigError(field, 'give privateKey or sign (with publicKey), not both');
    }
    let privateKey: KeyObject | undefined;
    let publicKey: KeyObject;
    if (entry.privateKey !== undefined) {
      privateKey = toKeyObject(entry.privateKey, 'private', `${field}.privateKey`);
      publicKey = createPublicKey(privateKey);
      if (entry.publicKey !== undefined) {
        const given = toKeyObject(entry.publicKey, 'public', `${field}.publicKey`);
        if (!given.equals(publicKey))
          throw new ConfigError(`${field}.publicKey`, 'does not match privateKey');
      }
    } else if (entry.publicKey !== undefined) {
      publicKey = toKeyObject(entry.publicKey, 'public', `${field}.publicKey`);
    } else {
      throw new ConfigError(
        field,
        'needs privateKey, or publicKey with sign (a KMS signer), or publicKey alone (verify only)',
      );
    }
    const inferred = algorithmOf(publicKey);
    if (!ALGORITHMS.has(inferred)) throw new ConfigError(field, inferred);
    const alg = inferred as AccessTokenAlgorithm;
    if (entry.alg !== undefined && entry.alg !== alg) {
      throw new ConfigError(
        `${field}.alg`,
        `must be ${alg} for this key (EdDSA, ES256 and RS256 are supported)`,
      );
    }
    let sign: AccessTokenKey['sign'];
    if (privateKey) {
      const key = privateKey;
      sign = (data) => signOffThread(alg, key, data);
    } else if (entry.sign) {
      const signer = entry.sign;
      sign = async (data) => {
        const signature = await signer(data);
        // A signer that answers with another key's signature (or DER for ES256) would hand out
        // tokens nobody can verify: each signature is checked before a token leaves.
        if (!(signature instanceof Uint8Array) || !verifyWith(alg, publicKey, data, signature)) {
          throw new Error(
            `signer of access-token key ${i} returned a signature its public key does not verify`,
          );
        }
        return signature;
      };
    }
    if (i === 0 && !sign) {
      throw new ConfigError(field, 'the first key signs: give privateKey, or publicKey with sign');
    }
    const exported = publicKey.export({ format: 'jwk' }) as JWK;
    const jwk: JWK = { ...exported, alg, use: 'sig' };
    return { kid: entry.kid, alg, publicKey, jwk, sign };
  });
}

/**
 * The RFC 7638 §3 thumbprint (SHA-256, base64url) of a public JWK: its required members in
 * lexicographic order, serialised without whitespace. (jose's `calculateJwkThumbprint` is async;
 * options are validated synchronously.)
 */
function thumbprint(jwk: JWK): string {
  const members =
    jwk.kty === 'RSA'
      ? { e: jwk.e, kty: jwk.kty, n: jwk.n }
      : jwk.kty === 'EC'
        ? { crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y }
        : { crv: jwk.crv, kty: jwk.kty, x: jwk.x };
  return createHash('sha256').update(JSON.stringify(members)).digest('base64url');
}

/** One random Ed25519 key, for a process that was given none (tokens do not survive a restart). */
export function ephemeralAccessTokenKey(): AccessTokenSigningKeyInput {
  return { privateKey: generateKeyPairSync('ed25519').privateKey, kid: 'ephemeral' };
}
