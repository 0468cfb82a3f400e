import type { RateLimitDecision, RateLimitRule } from './rate-limiter.js';

/**
 * One GCRA step, in whole microseconds so that memory and Redis (its Lua script does the same
 * arithmetic) decide alike: `tat` is the key's stored theoretical arrival time (`undefined` for
 * none), `nowUs` the time. Returns the decision and the `tat` to store (`undefined`: store nothing,
 * the hit was refused or was a cost-0 question).
 *
 * @internal
 */
export function gcra(
  tat: number | undefined,
  nowUs: number,
  rule: RateLimitRule,
  cost: number,
): { decision: RateLimitDecision; store: number | undefined } {
  const interval = emissionIntervalUs(rule);
  const capacity = rule.burst * interval;
  // Beyond what any hit can store (now + capacity), by more than a minute: this clock jumped back
  // (or instances disagree by that much). Counted from scratch rather than refused for that long.
  const jumped = tat !== undefined && tat > nowUs + capacity + CLOCK_JUMP_US;
  const from = tat === undefined || jumped || tat < nowUs ? nowUs : tat;
  const next = from + (cost === 0 ? 1 : cost) * interval;
  const over = next - nowUs - capacity;
  if (over > 0) {
    return {
      decision: { allowed: false, retryAfterSeconds: Math.max(1, Math.ceil(over / 1e6)), remaining: 0 },
      store: undefined,
    };
  }
  const after = cost === 0 ? from : next;
  const remaining = Math.floor((capacity - (after - nowUs)) / interval);
  return {
    decision: { allowed: true, retryAfterSeconds: 0, remaining },
    store: cost === 0 ? undefined : next,
  };
}

/** How far a stored time may lie beyond the budget before it is taken for a clock jump, in µs. */
export const CLOCK_JUMP_US = 60e6;

/** Microseconds between two hits at the sustained rate (at least 1). */
export function emissionIntervalUs(rule: RateLimitRule): number {
  return Math.max(1, Math.round(60e6 / rule.perMinute));
}

/** Epoch ms as whole microseconds. */
export function toMicros(nowMs: number): number {
  return Math.round(nowMs * 1000);
}
