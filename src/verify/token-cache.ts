import { LRUCache } from 'lru-cache';
import type { AccessTokenClaims } from './claims.js';

/**
 * Tokens this verifier already verified, keyed by the token string, so a token seen again skips the
 * signature check. Bounded by count; an entry is used only while the token has not expired and for
 * at most `maxAgeSeconds` after it was verified (so a key dropped from the JWKS stops counting soon).
 */
export interface VerifiedTokenCache {
  get(token: string, nowSeconds: number, toleranceSeconds: number): AccessTokenClaims | undefined;
  set(token: string, claims: AccessTokenClaims, nowSeconds: number): void;
}

interface Entry {
  claims: AccessTokenClaims;
  until: number;
}

/** A bounded LRU of verified tokens (see {@link VerifiedTokenCache}). */
export function createVerifiedTokenCache(max: number, maxAgeSeconds: number): VerifiedTokenCache {
  const entries = new LRUCache<string, Entry>({ max });
  return {
    get(token, nowSeconds, toleranceSeconds) {
      const entry = entries.get(token);
      if (!entry) return undefined;
      if (nowSeconds >= entry.until || entry.claims.exp <= nowSeconds - toleranceSeconds) {
        entries.delete(token);
        return undefined;
      }
      return entry.claims;
    },
    set(token, claims, nowSeconds) {
      entries.set(token, { claims, until: nowSeconds + maxAgeSeconds });
    },
  };
}
