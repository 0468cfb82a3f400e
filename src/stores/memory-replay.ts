import { ServiceUnavailableError } from '../errors.js';
import { checkReplayArguments, type ReplayCache, type ReplayVerdict } from '../tokens/replay.js';

/** Options of {@link MemoryReplayCache}. */
export interface MemoryReplayCacheOptions {
  /** Keys remembered at once. Default 100,000: about 45 MB when full (some 440 bytes per DPoP key, measured). */
  maxEntries?: number;
}

/**
 * A {@link ReplayCache} in this process's memory: right for one instance, wrong for a fleet (each
 * instance would accept the same proof once).
 *
 * Bounded: when `maxEntries` unexpired keys are held it throws (503, `store_unavailable`) rather
 * than forget one early, since forgetting a key would let its owner replay it. Expired keys are
 * dropped as new ones arrive. A key is remembered by whoever holds a valid token or IdP token, so
 * the bound is met only under a flood from credential holders, and then refusing is the safe answer.
 */
export class MemoryReplayCache implements ReplayCache {
  /** key → [seenAt, expiresAt]. Insertion order, so the oldest are swept first. */
  readonly #entries = new Map<string, [number, number]>();
  readonly #max: number;
  /** When the last full sweep ran: at most one a second, so a full cache refuses in O(1). */
  #sweptAt = Number.NEGATIVE_INFINITY;

  constructor(options: MemoryReplayCacheOptions = {}) {
    const max = options.maxEntries ?? 100_000;
    if (!Number.isInteger(max) || max < 1) throw new RangeError('maxEntries must be an integer >= 1');
    this.#max = max;
  }

  /** Keys held (expired ones not yet swept included). */
  get size(): number {
    return this.#entries.size;
  }

  async remember(key: string, expiresAt: number, now: number): Promise<ReplayVerdict> {
    checkReplayArguments(key, expiresAt, now);
    const held = this.#entries.get(key);
    if (held && held[1] > now) return { first: false, seenAt: held[0] };
    if (held) this.#entries.delete(key);
    if (this.#entries.size >= this.#max && now - this.#sweptAt >= 1000) this.#sweep(now);
    if (this.#entries.size >= this.#max) {
      throw new ServiceUnavailableError('store_unavailable', 'The replay cache is full');
    }
    this.#entries.set(key, [now, expiresAt]);
    return { first: true };
  }

  async seenAt(key: string, now: number): Promise<number | undefined> {
    const held = this.#entries.get(key);
    return held && held[1] > now ? held[0] : undefined;
  }

  async close(): Promise<void> {
    this.#entries.clear();
  }

  /** Drop expired keys: all of them, since expiries are not in insertion order. */
  #sweep(now: number): void {
    this.#sweptAt = now;
    for (const [key, [, expiresAt]] of this.#entries) {
      if (expiresAt <= now) this.#entries.delete(key);
    }
  }
}
