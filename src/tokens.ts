import { createHmac, createSecretKey, randomBytes, timingSafeEqual, type KeyObject } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import { ConfigError } from './errors.js';

/** Prefix of every access token: lets secret scanners find them and keeps them apart from JWTs. */
export const ACCESS_TOKEN_PREFIX = 'omat_';

/** An own-token signing key. The first key of the list signs; all of them verify. */
export interface SigningKey {
  /** Short id carried in the token (1-16 of `A-Z a-z 0-9 -`). */
  kid: string;
  /** HMAC-SHA256 secret, at least 32 bytes. */
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
const MAC_LENGTH = 43;
const MAX_LENGTH = ACCESS_TOKEN_PREFIX.length + 16 + 1 + 22 + 1 + 10 + 1 + MAC_LENGTH;

/** A fresh random token id: 128 bits, base64url. */
export function newTokenId(): string {
  return randomBytes(16).toString('base64url');
}

/**
 * Mints and checks access-token strings: `omat_<kid>.<tokenId>.<exp base36>.<HMAC-SHA256 base64url>`.
 *
 * The MAC covers everything before it, so a forged, altered or expired string is refused with one
 * HMAC and no store lookup. The store keeps only token ids, so a dump of it yields no usable token.
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
    list.forEach((key, i) => {
      if (typeof key?.kid !== 'string' || !KID.test(key.kid)) {
        throw new ConfigError(`signingKeys[${i}].kid`, 'must be 1-16 characters of A-Z a-z 0-9 -');
      }
      const secret =
        typeof key.secret === 'string' ? Buffer.from(key.secret, 'utf8') : Buffer.from(key.secret);
      if (secret.length < 32) throw new ConfigError(`signingKeys[${i}].secret`, 'must be at least 32 bytes');
      if (this.#keys.has(key.kid)) throw new ConfigError(`signingKeys[${i}].kid`, 'duplicate key id');
      this.#keys.set(key.kid, createSecretKey(secret));
    });
    this.#signingKid = list[0]!.kid;
  }

  /** Mint a token string for `tokenId`, valid until `expiresAt` (epoch ms, rounded up to the second). */
  mint(tokenId: string, expiresAt: number): string {
    const kid = this.#signingKid;
    const unsigned = `${ACCESS_TOKEN_PREFIX}${kid}.${tokenId}.${Math.ceil(expiresAt / 1000).toString(36)}`;
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
    if (parts.length !== 3) return undefined;
    const [kid, tokenId, exp] = parts as [string, string, string];
    const secret = this.#keys.get(kid);
    if (!secret || !TOKEN_ID.test(tokenId) || !EXP.test(exp)) return undefined;
    const expected = Buffer.from(this.#mac(secret, unsigned), 'utf8');
    if (!timingSafeEqual(given, expected)) return undefined;
    const parsed = Object.freeze({ tokenId, expiresAt: parseInt(exp, 36) * 1000, kid });
    this.#verified?.set(unsigned, { mac: expected, parsed });
    return parsed;
  }

  #mac(secret: KeyObject, data: string): string {
    return createHmac('sha256', secret).update(data).digest('base64url');
  }
}
