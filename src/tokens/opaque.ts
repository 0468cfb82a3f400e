import { createHmac, createSecretKey, timingSafeEqual, type KeyObject } from 'node:crypto';
import { randomBase64url } from './random.js';
import { LRUCache } from 'lru-cache';
import { ConfigError } from '../errors.js';

/** Prefix of every access token: lets secret scanners find them and keeps them apart from JWTs. */
export const ACCESS_TOKEN_PREFIX = 'omat_';

/** An own-token signing key. The first key of the list signs; all of them verify. */
export interface SigningKey {
  /** Short id carried in the token (1-16 of `A-Z a-z 0-9 -`). */
  kid: string;
  /** HMAC-SHA256 secret, at least 32 bytes (e.g. the output of `openssl rand -base64 32`). */
  secret: string | Uint8Array;
}

/** Signing keys as a list, or as an object `{ kid: secret }` (insertion order; first signs). */
export type SigningKeysInput = readonly SigningKey[] | Readonly<Record<string, string | Uint8Array>>;

/** What a verified access-token string says. */
export interface ParsedAccessToken {
  readonly tokenId: string;
  /** Epoch ms at which this token string expires. */
  readonly expiresAt: number;
  readonly kid: string;
  /**
   * RFC 7638 thumbprint of the DPoP key the token is bound to (RFC 9449), when the string carries
   * one. Strings minted before the binding was put in the string carry none: their binding is only
   * on the record.
   */
  readonly jkt?: string;
}

/** Options of {@link AccessTokenCodec}. */
export interface AccessTokenCodecOptions {
  /**
   * Token strings whose MAC verified are remembered (unsigned part → expected MAC), so the next use
   * costs one constant-time compare instead of an HMAC. Only genuine tokens enter. Default 10 000.
   */
  verifiedCacheSize?: number;
}

interface Verified {
  mac: Buffer;
  parsed: ParsedAccessToken;
}

const KID = /^[A-Za-z0-9-]{1,16}$/;
const TOKEN_ID = /^[A-Za-z0-9_-]{22}$/;
const EXP = /^[0-9a-z]{1,10}$/;
const NONCE = /^[A-Za-z0-9_-]{8}$/;
/** An RFC 7638 SHA-256 thumbprint, base64url: 43 characters. */
const JKT = /^[A-Za-z0-9_-]{43}$/;
const MAC_LENGTH = 43;
const JKT_LENGTH = 43;
const MAX_LENGTH =
  ACCESS_TOKEN_PREFIX.length + 16 + 1 + 22 + 1 + 10 + 1 + 8 + 1 + JKT_LENGTH + 1 + MAC_LENGTH;
/** Secrets shorter than this are refused: HMAC-SHA256 keys below the hash's output size are weak. */
const MIN_SECRET_BYTES = 32;
const MAKE_A_SECRET = 'make one with `openssl rand -base64 32` and keep it in your secret store';

/** A fresh random token id: 128 bits, base64url. */
export function newTokenId(): string {
  return randomBase64url(16);
}

/**
 * Mints and checks access-token strings:
 * `omat_<kid>.<tokenId>.<exp base36>.<nonce>.<HMAC-SHA256 base64url>`, and for a DPoP-bound token
 * (RFC 9449) `omat_<kid>.<tokenId>.<exp base36>.<nonce>.<jkt>.<HMAC-SHA256 base64url>`.
 *
 * The MAC covers everything before it, so a forged, altered or expired string is refused with one
 * HMAC and no store lookup. The store keeps only token ids, so a dump of it yields no usable token.
 * The nonce (48 random bits) makes every minted string new, even two renewals of one token id in the
 * same second. A bound token's string says its key's thumbprint under the MAC, so the guard refuses
 * it presented as Bearer or with another key's proof before the store counts a use; stripping or
 * changing the thumbprint breaks the MAC. Strings minted before the nonce existed
 * (`omat_<kid>.<tokenId>.<exp>.<mac>`), and bound strings minted before the thumbprint was in the
 * string (no `jkt` part: their binding is on the record only), still verify until they expire.
 */
export class AccessTokenCodec {
  readonly #keys: Map<string, KeyObject>;
  readonly #signingKid: string;
  readonly #verified: LRUCache<string, Verified> | undefined;

  constructor(input: SigningKeysInput, options: AccessTokenCodecOptions = {}) {
    const cacheSize = options.verifiedCacheSize ?? 10_000;
    this.#verified = cacheSize > 0 ? new LRUCache({ max: cacheSize }) : undefined;
    const list: SigningKey[] = Array.isArray(input)
      ? [...(input as readonly SigningKey[])]
      : Object.entries(input as Record<string, string | Uint8Array>).map(([kid, secret]) => ({
          kid,
          secret,
        }));
    if (list.length === 0) throw new ConfigError('signingKeys', 'at least one signing key is required');
    this.#keys = new Map();
    const listed = Array.isArray(input);
    list.forEach((key, i) => {
      if (typeof key?.kid !== 'string' || !KID.test(key.kid)) {
        throw new ConfigError(`signingKeys[${i}].kid`, 'must be 1-16 characters of A-Z a-z 0-9 -');
      }
      const field = listed ? `signingKeys[${i}].secret` : `signingKeys.${key.kid}`;
      const secret = secretBytes(key.secret, `the secret of signing key "${key.kid}"`, field);
      if (this.#keys.has(key.kid)) throw new ConfigError(`signingKeys[${i}].kid`, 'duplicate key id');
      this.#keys.set(key.kid, createSecretKey(secret));
    });
    this.#signingKid = list[0]!.kid;
  }

  /**
   * Mint a new token string for `tokenId`, valid until `expiresAt` (epoch ms, rounded up to the
   * second). Every call returns a different string (a random nonce), so a renewal always hands out a
   * new one; the earlier strings of the id stay valid until their own expiry. `jkt`: the thumbprint
   * of the DPoP key a bound token is bound to (43 base64url characters), carried under the MAC.
   */
  mint(tokenId: string, expiresAt: number, jkt?: string): string {
    if (jkt !== undefined && !JKT.test(jkt)) {
      throw new TypeError('a DPoP key thumbprint is 43 base64url characters (RFC 7638, SHA-256)');
    }
    const kid = this.#signingKid;
    const exp = Math.ceil(expiresAt / 1000).toString(36);
    let unsigned = `${ACCESS_TOKEN_PREFIX}${kid}.${tokenId}.${exp}.${randomBase64url(6)}`;
    if (jkt !== undefined) unsigned += `.${jkt}`;
    return `${unsigned}.${this.#mac(this.#keys.get(kid)!, unsigned)}`;
  }

  /**
   * Verify a token string's MAC. Returns `undefined` for anything that is not a token we minted
   * with a key we still hold (wrong shape, unknown key id, bad MAC). Expiry is the caller's check.
   */
  parse(token: string): ParsedAccessToken | undefined {
    if (token.length > MAX_LENGTH || !token.startsWith(ACCESS_TOKEN_PREFIX)) return undefined;
    const macStart = token.length - MAC_LENGTH;
    if (token.charCodeAt(macStart - 1) !== 46 /* . */) return undefined;
    const unsigned = token.slice(0, macStart - 1);
    const given = Buffer.from(token.slice(macStart), 'utf8');
    if (given.length !== MAC_LENGTH) return undefined;
    const known = this.#verified?.get(unsigned);
    if (known) return timingSafeEqual(given, known.mac) ? known.parsed : undefined;

    const parts = unsigned.slice(ACCESS_TOKEN_PREFIX.length).split('.');
    // Four parts since the nonce, five when DPoP-bound (the jkt last); three in strings minted before
    // the nonce, which stay valid until they expire.
    if (parts.length < 3 || parts.length > 5) return undefined;
    const [kid, tokenId, exp, nonce, jkt] = parts as [string, string, string, string?, string?];
    const secret = this.#keys.get(kid);
    if (!secret || !TOKEN_ID.test(tokenId) || !EXP.test(exp)) return undefined;
    if (nonce !== undefined && !NONCE.test(nonce)) return undefined;
    if (jkt !== undefined && !JKT.test(jkt)) return undefined;
    const expected = Buffer.from(this.#mac(secret, unsigned), 'utf8');
    if (!timingSafeEqual(given, expected)) return undefined;
    const expiresAt = parseInt(exp, 36) * 1000;
    const parsed: ParsedAccessToken = Object.freeze(
      jkt === undefined ? { tokenId, expiresAt, kid } : { tokenId, expiresAt, kid, jkt },
    );
    this.#verified?.set(unsigned, { mac: expected, parsed });
    return parsed;
  }

  #mac(secret: KeyObject, data: string): string {
    return createHmac('sha256', secret).update(data).digest('base64url');
  }
}

/**
 * A signing secret as bytes, or a {@link ConfigError} naming the key and saying how to make a good
 * one: a missing secret (an unset environment variable), a wrong type, an empty or short one. The
 * secret itself is never part of the message.
 */
function secretBytes(secret: unknown, what: string, field: string): Buffer {
  let problem: string | undefined;
  let bytes: Buffer | undefined;
  if (secret === undefined || secret === null) {
    problem = `${what} is missing (${String(secret)}; is the environment variable that should hold it set?)`;
  } else if (typeof secret === 'string') {
    bytes = Buffer.from(secret, 'utf8');
  } else if (secret instanceof Uint8Array) {
    bytes = Buffer.from(secret);
  } else {
    problem = `${what} must be a string or a Uint8Array, not ${Array.isArray(secret) ? 'an array' : typeof secret}`;
  }
  if (bytes && bytes.length === 0) problem = `${what} is empty`;
  else if (bytes && bytes.length < MIN_SECRET_BYTES) {
    problem = `${what} is ${bytes.length} bytes; it must be at least ${MIN_SECRET_BYTES}`;
  }
  if (problem) throw new ConfigError(field, `${problem}: ${MAKE_A_SECRET}`);
  return bytes!;
}
