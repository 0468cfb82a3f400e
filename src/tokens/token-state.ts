import { LRUCache } from 'lru-cache';
import type { AccessTokenRecord } from '../types.js';

/**
 * What the guard knows of JWT access tokens' store records, so a token of an identity without a
 * uses limit is checked without a store round trip while its entry is fresh.
 *
 * - An entry is used for `maxAgeMs` after the store answered for it, then the store is asked again
 *   (a `consume`, as for an opaque token), so a revocation made on another instance is seen within
 *   `maxAgeMs`. Records with a uses limit are never kept: each of their uses goes to the store.
 * - `revoke`, `revokeIdentity`, `revokeWhere` and identity deletion on this instance drop the entries they concern
 *   at once, and bump an epoch: a store answer that was in flight while they ran is not kept.
 * - Bounded (LRU, `max` entries); keyed by token ids of tokens whose signature verified only.
 */
export class TokenStateCache {
  readonly #entries: LRUCache<string, { record: AccessTokenRecord; checkedAt: number }> | undefined;
  readonly #maxAgeMs: number;
  #epoch = 0;

  constructor(options: { max: number; maxAgeMs: number }) {
    this.#maxAgeMs = options.maxAgeMs;
    this.#entries = options.maxAgeMs > 0 && options.max > 0 ? new LRUCache({ max: options.max }) : undefined;
  }

  /** Bumped by every local revocation; pass the value read before a store call to {@link remember}. */
  get epoch(): number {
    return this.#epoch;
  }

  /** The record, when the store answered for it less than `maxAgeMs` ago (and not in the future). */
  fresh(tokenId: string, now: number): AccessTokenRecord | undefined {
    const entry = this.#entries?.get(tokenId);
    if (!entry) return undefined;
    if (now >= entry.checkedAt && now - entry.checkedAt < this.#maxAgeMs) return entry.record;
    this.#entries!.delete(tokenId);
    return undefined;
  }

  /** Keep a record the store returned at `now`, unless it has a uses limit or a revocation ran since `epoch`. */
  remember(record: AccessTokenRecord, now: number, epoch: number): void {
    if (!this.#entries || record.usesLimit > 0 || epoch !== this.#epoch) return;
    this.#entries.set(record.tokenId, { record, checkedAt: now });
  }

  forgetToken(tokenId: string): void {
    this.#epoch++;
    this.#entries?.delete(tokenId);
  }

  forgetIdentity(identityId: string): void {
    this.#epoch++;
    if (!this.#entries) return;
    for (const [tokenId, entry] of this.#entries.entries()) {
      if (entry.record.identityId === identityId) this.#entries.delete(tokenId);
    }
  }

  /** `revokeWhere` on this instance: drop the entries whose login carried `claim` = `value` (of `identityId`, when given). */
  forgetWhere(filter: { identityId?: string; claim: string; value: string }): void {
    this.#epoch++;
    if (!this.#entries) return;
    for (const [tokenId, entry] of this.#entries.entries()) {
      const record = entry.record;
      if (record.claims?.[filter.claim] !== filter.value) continue;
      if (filter.identityId === undefined || record.identityId === filter.identityId)
        this.#entries.delete(tokenId);
    }
  }
}
