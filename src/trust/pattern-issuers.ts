import { LRUCache } from 'lru-cache';
import { ConfigError } from '../errors.js';
import type { IdentityConfig, KeySource } from '../types.js';
import { patternMatches, sourceViewFor } from './sources.js';

/** Bounds of the issuers admitted through issuer patterns. */
export interface PatternIssuerOptions {
  /** Concrete issuers (matching some pattern) kept with their key sources; least recently used go. Default 1000. */
  maxIssuers?: number;
  /**
   * New concrete issuers admitted per minute, over all patterns (a token bucket of this size,
   * refilled evenly): each admission may cost a discovery and a JWKS fetch. Past it, a token of a
   * new matching issuer is answered 503 `idp_unavailable` with Retry-After, and nothing is fetched.
   * Default 60.
   */
  newIssuersPerMinute?: number;
  /** Distinct pattern key sources registered. Default 1000. */
  maxPatterns?: number;
}

interface Registered {
  readonly source: KeySource;
  /** A config holding just this pattern source, binding nothing, every algorithm allowed. */
  readonly template: IdentityConfig;
}

interface Admitted {
  readonly sources: IdentityConfig[];
  readonly keys: string[];
  readonly full: false;
}

/**
 * The issuer patterns a key manager has registered, and the concrete issuers admitted through them:
 * an LRU of at most `maxIssuers`, filled at most `newIssuersPerMinute` a minute, so a flood of
 * tokens naming distinct issuers that match a pattern grows neither memory nor fetches without
 * bound (each admitted issuer's discovery then has the key manager's cache, cooldown and probes).
 */
export class PatternIssuers {
  readonly #patterns = new Map<string, Registered>();
  readonly #issuers: LRUCache<string, Admitted>;
  readonly #maxPatterns: number;
  readonly #perMinute: number;
  #tokens: number;
  #refilledAt: number;

  constructor(
    options: PatternIssuerOptions = {},
    private readonly clock: () => number,
    private readonly sourceKey: (config: IdentityConfig) => string,
    private readonly bare: (config: IdentityConfig) => IdentityConfig,
  ) {
    const positive = (name: keyof PatternIssuerOptions, fallback: number): number => {
      const value = options[name] ?? fallback;
      if (!Number.isInteger(value) || value < 1) {
        throw new ConfigError(`keys.patternIssuers.${name}`, 'must be an integer >= 1');
      }
      return value;
    };
    this.#issuers = new LRUCache({ max: positive('maxIssuers', 1000) });
    this.#perMinute = positive('newIssuersPerMinute', 60);
    this.#maxPatterns = positive('maxPatterns', 1000);
    this.#tokens = this.#perMinute;
    this.#refilledAt = clock();
  }

  /** Pattern sources registered. */
  get size(): number {
    return this.#patterns.size;
  }

  /** Concrete issuers held. */
  get issuerCount(): number {
    return this.#issuers.size;
  }

  /** Register a pattern source of `config`; false when `maxPatterns` are taken. */
  register(config: IdentityConfig, source: KeySource): boolean {
    const template: IdentityConfig = Object.freeze({
      ...this.bare(config),
      keySources: Object.freeze([source]),
    });
    const key = this.sourceKey(template);
    if (this.#patterns.has(key)) return true;
    if (this.#patterns.size >= this.#maxPatterns) return false;
    this.#patterns.set(key, { source, template });
    // Issuers admitted already that the new pattern matches get its source too.
    for (const [issuer, admitted] of this.#issuers.entries()) {
      if (patternMatches(source, issuer)) this.#add(admitted, template, issuer);
    }
    return true;
  }

  /**
   * The key sources of `issuer`: `exact` (its exact registrations) followed by the views of every
   * registered pattern matching it. A new matching issuer is admitted only while the rate allows;
   * otherwise `exact`, or an empty answer carrying `retryAfterSeconds`.
   */
  sourcesFor(
    issuer: string,
    exact: { readonly sources: readonly IdentityConfig[]; readonly full: boolean } | undefined,
  ): { sources: readonly IdentityConfig[]; full: boolean; retryAfterSeconds?: number } | undefined {
    let admitted = this.#issuers.get(issuer);
    if (!admitted) {
      const matching = [...this.#patterns.values()].filter((p) => patternMatches(p.source, issuer));
      if (matching.length === 0) return exact;
      const wait = this.#take();
      if (wait > 0) return exact ?? { sources: [], full: false, retryAfterSeconds: wait };
      admitted = { sources: [], keys: [], full: false };
      for (const p of matching) this.#add(admitted, p.template, issuer);
      this.#issuers.set(issuer, admitted);
    }
    if (!exact) return admitted;
    return { sources: [...exact.sources, ...admitted.sources], full: exact.full };
  }

  /** The admitted source of `issuer` whose source key is `key`, if any. */
  registeredSource(issuer: string, key: string): IdentityConfig | undefined {
    const admitted = this.#issuers.peek(issuer);
    const index = admitted ? admitted.keys.indexOf(key) : -1;
    return index < 0 ? undefined : admitted?.sources[index];
  }

  #add(admitted: Admitted, template: IdentityConfig, issuer: string): void {
    const view = sourceViewFor(template, issuer);
    if (!view) return;
    const key = this.sourceKey(view);
    if (admitted.keys.includes(key)) return;
    admitted.keys.push(key);
    admitted.sources.push(view);
  }

  /** Take one admission: 0 when granted, else the whole seconds until one is. */
  #take(): number {
    const now = this.clock();
    const elapsed = Math.max(0, now - this.#refilledAt);
    this.#tokens = Math.min(this.#perMinute, this.#tokens + (elapsed * this.#perMinute) / 60_000);
    this.#refilledAt = now;
    if (this.#tokens >= 1) {
      this.#tokens -= 1;
      return 0;
    }
    return Math.max(1, Math.ceil(((1 - this.#tokens) * 60_000) / this.#perMinute / 1000));
  }
}
