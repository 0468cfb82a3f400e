import { gcra, toMicros } from './gcra.js';
import {
  checkHitArguments,
  type RateLimitDecision,
  type RateLimitRule,
  type RateLimiter,
} from './rate-limiter.js';

/** Options of {@link MemoryRateLimiter}. */
export interface MemoryRateLimiterOptions {
  /** Keys held at once. Default 50,000 (about 7 MB of address keys, 8.5 MB of subject keys). */
  maxKeys?: number;
}

/** Entries looked at, oldest first, for keys back at full budget when the limiter is full. */
const SWEEP = 64;

/**
 * A {@link RateLimiter} in this process's memory: right for one instance; a fleet behind a load
 * balancer shares a `RedisRateLimiter` instead (each instance would otherwise allow the whole budget).
 *
 * **Bounded.** Keys come from client input (addresses, identity ids), so at most `maxKeys` are held.
 * A key holds one number, the time its budget is full again; once that time has passed the key
 * means nothing and is dropped when touched or swept. Keys are held in the order they began
 * spending (a key back at full budget that spends again starts over at the end). When a new key
 * finds the limiter full, up to 64 of the oldest keys are looked at and those back at full budget
 * dropped; only if none is, the oldest key is forgotten (its budget starts full again). So
 * forgetting a key that still matters takes `maxKeys` other keys, all newer and all still below
 * full budget: with the engine's defaults an address key is back at full budget 20 to
 * 100 ms after one hit, so an attacker would need 50,000 distinct addresses each sending every few
 * tens of milliseconds, and all it would win is budgets those addresses already had. A full
 * limiter never refuses a new key: refusing would let a flood of addresses lock every
 * new client out.
 */
export class MemoryRateLimiter implements RateLimiter {
  /** key → theoretical arrival time (epoch µs), in the order keys began spending (oldest first). */
  readonly #entries = new Map<string, number>();
  readonly #max: number;

  constructor(options: MemoryRateLimiterOptions = {}) {
    const max = options.maxKeys ?? 50_000;
    if (!Number.isSafeInteger(max) || max < 1) throw new RangeError('maxKeys must be an integer >= 1');
    this.#max = max;
  }

  /** Keys held (some may be back at full budget and not yet dropped). */
  get size(): number {
    return this.#entries.size;
  }

  hit(key: string, rule: RateLimitRule, cost: number, now: number): RateLimitDecision {
    checkHitArguments(key, rule, cost, now);
    const nowUs = toMicros(now);
    const held = this.#entries.get(key);
    const { decision, store } = gcra(held, nowUs, rule, cost);
    if (store !== undefined) {
      // A key still spending keeps its place; one back at full budget starts over at the end.
      if (held !== undefined && held <= nowUs) this.#entries.delete(key);
      else if (held === undefined && this.#entries.size >= this.#max) this.#makeRoom(nowUs);
      this.#entries.set(key, store);
    } else if (held !== undefined && held <= nowUs) {
      this.#entries.delete(key);
    }
    return decision;
  }

  /**
   * Seconds until `key` may make one hit under `rule` (0: now), recording nothing: the cheap
   * question the bearer guard asks on every call (no allocation, one map read).
   */
  retryAfter(key: string, rule: RateLimitRule, now: number): number {
    const tat = this.#entries.get(key);
    if (tat === undefined) return 0;
    const nowUs = toMicros(now);
    if (tat <= nowUs) return 0;
    return gcra(tat, nowUs, rule, 0).decision.retryAfterSeconds;
  }

  async close(): Promise<void> {
    this.#entries.clear();
  }

  #makeRoom(nowUs: number): void {
    let looked = 0;
    for (const [key, tat] of this.#entries) {
      if (this.#entries.size < this.#max || ++looked > SWEEP) break;
      if (tat <= nowUs) this.#entries.delete(key);
    }
    while (this.#entries.size >= this.#max) {
      this.#entries.delete(this.#entries.keys().next().value as string);
    }
  }
}
