/**
 * A budget: `perMinute` hits a minute sustained, at most `burst` at once. A key that has spent its
 * burst gets one more hit every `60 / perMinute` seconds. Over any minute a key is allowed at most
 * `burst + perMinute` hits.
 */
export interface RateLimitRule {
  /** Sustained rate, hits per minute (> 0; fractions allowed: `0.5` is one every two minutes). */
  perMinute: number;
  /** Hits allowed at once from a full budget (integer ≥ 1). */
  burst: number;
}

/** What a {@link RateLimiter} decided for one hit. */
export interface RateLimitDecision {
  allowed: boolean;
  /** Whole seconds until the hit would be allowed (≥ 1 when refused, 0 when allowed). */
  retryAfterSeconds: number;
  /** Hits of cost 1 still allowed right now, after this one. */
  remaining: number;
}

/**
 * Counts hits per key against a {@link RateLimitRule}, with the generic cell rate algorithm (GCRA):
 * one number per key, the time at which its budget is full again (its "theoretical arrival time").
 * Chosen over fixed windows (which let twice the rate through at a window edge) and sliding-window
 * logs (a timestamp per hit): GCRA is exact, smooth, O(1) in time and memory, needs one read and one
 * write per hit (one Lua script in Redis), and a key at full budget needs no state at all, so keys
 * expire by themselves as soon as they stop mattering.
 *
 * Implementations: {@link MemoryRateLimiter} (one process) and `RedisRateLimiter`
 * (`oidc-machine-auth/redis`) for a fleet that shares the counts.
 */
export interface RateLimiter {
  /**
   * Spend `cost` hits of `key`'s budget under `rule` at `now` (epoch ms, the engine's clock), if
   * the budget has room for them; a refused hit spends nothing. Cost `0` asks whether one hit
   * would be allowed and records nothing (used to ask "is this key locked out?").
   *
   * Fails closed: a limiter that cannot answer throws, and the engine answers 503
   * `store_unavailable` rather than let the request through uncounted.
   */
  hit(
    key: string,
    rule: RateLimitRule,
    cost: number,
    now: number,
  ): RateLimitDecision | Promise<RateLimitDecision>;
  close?(): Promise<void>;
}

/** Longest key a limiter is asked to count (the engine builds keys far shorter). */
export const MAX_RATE_LIMIT_KEY_LENGTH = 512;

/** Whether `rule` is a usable rule: `perMinute` finite and > 0, `burst` an integer ≥ 1. */
export function isRateLimitRule(rule: unknown): rule is RateLimitRule {
  if (typeof rule !== 'object' || rule === null) return false;
  const { perMinute, burst } = rule as Partial<RateLimitRule>;
  return (
    typeof perMinute === 'number' &&
    Number.isFinite(perMinute) &&
    perMinute > 0 &&
    Number.isSafeInteger(burst) &&
    (burst as number) >= 1
  );
}

/** The checks every implementation makes before it counts anything (a caller bug throws). */
export function checkHitArguments(key: string, rule: RateLimitRule, cost: number, now: number): void {
  if (typeof key !== 'string' || key.length === 0 || key.length > MAX_RATE_LIMIT_KEY_LENGTH) {
    throw new RangeError(`rate limit key must be 1..${MAX_RATE_LIMIT_KEY_LENGTH} characters`);
  }
  if (!isRateLimitRule(rule)) {
    throw new RangeError('rate limit rule needs perMinute > 0 and an integer burst >= 1');
  }
  if (!Number.isSafeInteger(cost) || cost < 0) throw new RangeError('cost must be an integer >= 0');
  if (!Number.isFinite(now)) throw new RangeError('now must be a finite epoch ms');
}
