import { ConfigError } from '../errors.js';
import { MemoryRateLimiter } from './memory.js';
import { isRateLimitRule, type RateLimitRule, type RateLimiter } from './rate-limiter.js';

/**
 * Engine option `rateLimits` (docs/RATE-LIMITS.md): which budgets apply and where they are counted.
 * Each budget is a {@link RateLimitRule}, or `false` to turn that one off; an omitted one keeps its
 * default ({@link DEFAULT_RATE_LIMITS}). Budgets by address apply to calls that carry a `clientIp`
 * (every adapter passes one).
 */
export interface RateLimitsOptions {
  /**
   * Where login and renew budgets are counted. Default: a {@link MemoryRateLimiter} (one process);
   * a fleet shares a `RedisRateLimiter` so that every instance sees the same counts.
   */
  limiter?: RateLimiter;
  /** Logins (the Infisical route and the token exchange) per client address, and renewals per address (a budget each). */
  perAddress?: RateLimitRule | false;
  /**
   * Logins per identity, counted once the IdP token's signature verified for it, and renewals granted
   * per identity (a budget each): a caller without a genuine token cannot spend an identity's budget.
   */
  perIdentity?: RateLimitRule | false;
  /**
   * Logins refused before the IdP token's signature verified (or with a stale token), per client address. Once spent, every
   * login from that address answers 429 `rate_limited` until the budget refills: a flood of bad
   * tokens spends only its own address's budget.
   */
  failedLoginsPerAddress?: RateLimitRule | false;
  /**
   * Logins refused after the signature verified (subject, audience, claims, rules, trusted IPs…), per
   * identity, issuer and subject. Once spent, that subject's logins to that identity answer 429
   * `locked_out` until the budget refills; other subjects and identities are untouched. A stale
   * token (expired, not yet valid, already exchanged) counts against its address instead: an old
   * token leaked in a CI log must not let its holder lock the pipeline out.
   */
  failedLoginsPerSubject?: RateLimitRule | false;
  /**
   * Bearer tokens refused as `invalid_token` (forged, unknown) by the guard, renew or revoke, per
   * client address, always counted in this process's memory. Once spent, that address's guarded
   * calls answer 429 `rate_limited` (RFC 6750 §3.1 floods of random tokens, TOK-02). Valid tokens
   * cost nothing.
   */
  invalidTokensPerAddress?: RateLimitRule | false;
  /** Keys each memory limiter the engine makes may hold. Default 50,000. */
  maxKeys?: number;
}

/**
 * The defaults, sized so that a busy CI fleet never meets them: a self-hosted runner fleet behind
 * one NAT address logging in 1,000 times a minute (and 1,000 jobs starting at once) passes with room
 * to spare. The reasoning is in docs/RATE-LIMITS.md.
 */
export const DEFAULT_RATE_LIMITS = Object.freeze({
  perAddress: Object.freeze({ perMinute: 3000, burst: 1500 }),
  perIdentity: Object.freeze({ perMinute: 3000, burst: 1500 }),
  failedLoginsPerAddress: Object.freeze({ perMinute: 600, burst: 600 }),
  failedLoginsPerSubject: Object.freeze({ perMinute: 10, burst: 60 }),
  invalidTokensPerAddress: Object.freeze({ perMinute: 1200, burst: 1200 }),
}) satisfies Required<Omit<RateLimitsOptions, 'limiter' | 'maxKeys'>>;

/** The options, checked and with defaults: a rule per budget, `undefined` for one turned off. */
export interface ResolvedRateLimits {
  limiter: RateLimiter;
  /** The memory limiter of `invalidTokensPerAddress`. */
  tokens: MemoryRateLimiter;
  perAddress: RateLimitRule | undefined;
  perIdentity: RateLimitRule | undefined;
  failedLoginsPerAddress: RateLimitRule | undefined;
  failedLoginsPerSubject: RateLimitRule | undefined;
  invalidTokensPerAddress: RateLimitRule | undefined;
}

const BUDGETS = [
  'perAddress',
  'perIdentity',
  'failedLoginsPerAddress',
  'failedLoginsPerSubject',
  'invalidTokensPerAddress',
] as const;

/** Check `rateLimits` at start-up; `undefined` when it is `false` (no limits at all). */
export function resolveRateLimits(
  options: RateLimitsOptions | false | undefined,
): ResolvedRateLimits | undefined {
  if (options === false) return undefined;
  if (options !== undefined && (typeof options !== 'object' || options === null)) {
    throw new ConfigError('rateLimits', 'must be an object or false');
  }
  const given = options ?? {};
  const maxKeys = given.maxKeys ?? 50_000;
  if (!Number.isSafeInteger(maxKeys) || maxKeys < 1) {
    throw new ConfigError('rateLimits.maxKeys', 'must be an integer >= 1');
  }
  const limiter = given.limiter ?? new MemoryRateLimiter({ maxKeys });
  if (typeof limiter?.hit !== 'function') {
    throw new ConfigError('rateLimits.limiter', 'must be a rate limiter (an object with a hit method)');
  }
  const resolved = { limiter, tokens: new MemoryRateLimiter({ maxKeys }) } as ResolvedRateLimits;
  for (const budget of BUDGETS) {
    const rule = given[budget] ?? DEFAULT_RATE_LIMITS[budget];
    if (rule !== false && !isRateLimitRule(rule)) {
      throw new ConfigError(
        `rateLimits.${budget}`,
        'must be { perMinute: number > 0, burst: integer >= 1 } or false',
      );
    }
    resolved[budget] = rule === false ? undefined : { perMinute: rule.perMinute, burst: rule.burst };
  }
  return resolved;
}
