import { parseIdentityConfig } from '../config.js';
import type {
  AccessTokenRecord,
  ConsumeResult,
  ExtendResult,
  IdentityConfig,
  IdentityConfigInput,
  IdentityStore,
  TokenStore,
} from '../types.js';

/** Identity configs in memory, validated when they are stored. */
export class MemoryIdentityStore implements IdentityStore {
  readonly #configs = new Map<string, IdentityConfig>();

  /** @param configs initial configs; each is validated, duplicates refused. */
  constructor(configs: ReadonlyArray<IdentityConfigInput | IdentityConfig> = []) {
    const seen = new Set<string>();
    for (const input of configs) {
      const config = parseIdentityConfig(input);
      if (seen.has(config.identityId)) {
        throw new Error(`duplicate identity ${JSON.stringify(config.identityId)}`);
      }
      seen.add(config.identityId);
      this.#configs.set(config.identityId, config);
    }
  }

  async get(identityId: string): Promise<IdentityConfig | undefined> {
    return this.#configs.get(identityId);
  }

  async put(input: IdentityConfigInput | IdentityConfig): Promise<IdentityConfig> {
    const config = parseIdentityConfig(input);
    this.#configs.set(config.identityId, config);
    return config;
  }

  async delete(identityId: string): Promise<boolean> {
    return this.#configs.delete(identityId);
  }

  async list(): Promise<IdentityConfig[]> {
    return [...this.#configs.values()];
  }
}

export interface MemoryTokenStoreOptions {
  /** How often expired records are swept, in ms. Default 60 000. 0 disables the timer. */
  sweepIntervalMs?: number;
  /** Clock for the sweep. Default `Date.now`. */
  clock?: () => number;
}

/**
 * Access-token state in one process's memory. Every operation is synchronous inside, so
 * check-and-count cannot interleave: 50 concurrent uses of a 1-use token give exactly one success.
 * Records are dropped once past their expiry (no token string for them can still be valid).
 */
export class MemoryTokenStore implements TokenStore {
  readonly #records = new Map<string, AccessTokenRecord>();
  readonly #byIdentity = new Map<string, Set<string>>();
  /** Interned issuer/subject/identity strings: every login parses fresh copies of the same few values. */
  readonly #strings = new Map<string, string>();
  readonly #clock: () => number;
  #timer: NodeJS.Timeout | undefined;

  constructor(options: MemoryTokenStoreOptions = {}) {
    this.#clock = options.clock ?? Date.now;
    const every = options.sweepIntervalMs ?? 60_000;
    if (every > 0) {
      this.#timer = setInterval(() => this.sweep(), every);
      this.#timer.unref();
    }
  }

  /** Live records held (expired ones not yet swept included). */
  get size(): number {
    return this.#records.size;
  }

  async create(record: AccessTokenRecord): Promise<void> {
    this.#records.set(record.tokenId, {
      ...record,
      identityId: this.#intern(record.identityId),
      issuer: record.issuer === undefined ? undefined : this.#intern(record.issuer),
      subject: record.subject === undefined ? undefined : this.#intern(record.subject),
    });
    let ids = this.#byIdentity.get(record.identityId);
    if (!ids) this.#byIdentity.set(record.identityId, (ids = new Set()));
    ids.add(record.tokenId);
  }

  async get(tokenId: string, now: number): Promise<AccessTokenRecord | undefined> {
    const record = this.#live(tokenId, now);
    return record && now < record.expiresAt ? { ...record } : undefined;
  }

  async consume(tokenId: string, now: number): Promise<ConsumeResult> {
    const record = this.#live(tokenId, now);
    if (!record) return NOT_FOUND;
    if (record.revoked) return REVOKED;
    if (now >= record.expiresAt) return EXPIRED;
    if (record.usesLimit > 0 && record.usesCount >= record.usesLimit) return EXHAUSTED;
    record.usesCount++;
    return { ok: true, record: { ...record } };
  }

  async extend(tokenId: string, now: number): Promise<ExtendResult> {
    const record = this.#live(tokenId, now);
    if (!record) return NOT_FOUND;
    if (record.revoked) return REVOKED;
    if (now >= record.expiresAt) return EXPIRED;
    if (record.expiresAt >= record.maxExpiresAt) return { ok: false, reason: 'max_ttl_reached' };
    if (record.usesLimit > 0 && record.usesCount >= record.usesLimit) return EXHAUSTED;
    record.expiresAt = Math.min(now + record.ttlSeconds * 1000, record.maxExpiresAt);
    return { ok: true, record: { ...record } };
  }

  async revoke(tokenId: string): Promise<void> {
    const record = this.#records.get(tokenId);
    if (record) record.revoked = true;
  }

  async revokeIdentity(identityId: string): Promise<number> {
    const ids = this.#byIdentity.get(identityId);
    if (!ids) return 0;
    const now = this.#clock();
    let live = 0;
    for (const id of ids) {
      const record = this.#records.get(id);
      if (!record) continue;
      if (!record.revoked && now < record.expiresAt) live++;
      record.revoked = true;
    }
    return live;
  }

  /** Drop records past their expiry. Runs on a timer; callable directly. Returns how many went. */
  sweep(now = this.#clock()): number {
    let dropped = 0;
    for (const [id, record] of this.#records) {
      if (now >= record.expiresAt) {
        this.#drop(id, record);
        dropped++;
      }
    }
    return dropped;
  }

  async close(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  #intern(value: string): string {
    const known = this.#strings.get(value);
    if (known !== undefined) return known;
    if (this.#strings.size >= 10_000) this.#strings.clear();
    this.#strings.set(value, value);
    return value;
  }

  #live(tokenId: string, now: number): AccessTokenRecord | undefined {
    const record = this.#records.get(tokenId);
    if (record && now >= record.expiresAt && !record.revoked) {
      // Past expiry nothing can use it again; drop it lazily (revoked ones go with the sweep).
      this.#drop(tokenId, record);
      return { ...record };
    }
    return record;
  }

  #drop(tokenId: string, record: AccessTokenRecord): void {
    this.#records.delete(tokenId);
    const ids = this.#byIdentity.get(record.identityId);
    if (ids) {
      ids.delete(tokenId);
      if (ids.size === 0) this.#byIdentity.delete(record.identityId);
    }
  }
}

const NOT_FOUND = { ok: false, reason: 'not_found' } as const;
const REVOKED = { ok: false, reason: 'revoked' } as const;
const EXPIRED = { ok: false, reason: 'expired' } as const;
const EXHAUSTED = { ok: false, reason: 'uses_exhausted' } as const;
