import { LRUCache } from 'lru-cache';
import { parseIdentityConfig } from '../config.js';
import { ConfigError } from '../errors.js';
import type {
  AccessTokenRecord,
  ConsumeResult,
  ExtendResult,
  IdentityConfig,
  IdentityConfigInput,
  IdentityStore,
  TokenStore,
} from '../types.js';

/** Options of {@link MemoryIdentityStore}. */
export interface MemoryIdentityStoreOptions {
  /** Parsed configs kept ready, most recently used first. Default 10 000. */
  cacheSize?: number;
}

/**
 * Identity configs in memory, validated when they are stored.
 *
 * Each config is held as its canonical JSON, one string, and the `cacheSize` most recently used
 * ones also as parsed objects. A parsed config is ~20 objects and ~1.5 KB of heap; a million of
 * them made every major garbage collection walk 20 million objects and slowed every request of
 * the process, guarded or not. A string is one object the collector never looks into, so the
 * cost per login stays flat from 10 to 1,000,000 identities (`npm run bench`, scale rows). A miss
 * parses and re-validates the stored JSON (about 40 µs), like `PostgresIdentityStore` does.
 */
export class MemoryIdentityStore implements IdentityStore {
  readonly #json = new Map<string, string>();
  readonly #parsed: LRUCache<string, IdentityConfig>;

  /** @param configs initial configs; each is validated, duplicates refused. */
  constructor(
    configs: ReadonlyArray<IdentityConfigInput | IdentityConfig> = [],
    options: MemoryIdentityStoreOptions = {},
  ) {
    const cacheSize = options.cacheSize ?? 10_000;
    if (!Number.isInteger(cacheSize) || cacheSize < 1) {
      throw new ConfigError('cacheSize', 'must be an integer >= 1');
    }
    this.#parsed = new LRUCache({ max: cacheSize });
    for (const input of configs) {
      const config = parseIdentityConfig(input);
      if (this.#json.has(config.identityId)) {
        throw new Error(`duplicate identity ${JSON.stringify(config.identityId)}`);
      }
      this.#keep(config);
    }
  }

  /** Identity configs held. */
  get size(): number {
    return this.#json.size;
  }

  async get(identityId: string): Promise<IdentityConfig | undefined> {
    return this.#config(identityId);
  }

  async put(input: IdentityConfigInput | IdentityConfig): Promise<IdentityConfig> {
    const config = parseIdentityConfig(input);
    this.#keep(config);
    return config;
  }

  async delete(identityId: string): Promise<boolean> {
    this.#parsed.delete(identityId);
    return this.#json.delete(identityId);
  }

  async list(): Promise<IdentityConfig[]> {
    return [...this.#json.keys()].map((id) => this.#config(id)!);
  }

  #keep(config: IdentityConfig): void {
    this.#json.set(config.identityId, JSON.stringify(config));
    this.#parsed.set(config.identityId, config);
  }

  #config(identityId: string): IdentityConfig | undefined {
    const hit = this.#parsed.get(identityId);
    if (hit) return hit;
    const json = this.#json.get(identityId);
    if (json === undefined) return undefined;
    const config = parseIdentityConfig(JSON.parse(json) as IdentityConfigInput);
    this.#parsed.set(identityId, config);
    return config;
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
  /** Interned metadata objects, by their JSON. */
  readonly #metadata = new Map<string, Readonly<Record<string, unknown>>>();
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
      metadata: this.#internMetadata(record.metadata),
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

  /**
   * Tokens of one job or pipeline carry equal metadata (same repository, same ref): keep one frozen
   * object for them all, so a million live tokens are not a million more objects for the collector.
   * Only frozen objects of primitive values are shared; anything else is kept as given.
   */
  #internMetadata(metadata: Readonly<Record<string, unknown>>): Readonly<Record<string, unknown>> {
    if (!Object.isFrozen(metadata)) return metadata;
    for (const key in metadata) {
      const value = metadata[key];
      if (value !== null && typeof value === 'object') return metadata;
    }
    const key = JSON.stringify(metadata);
    const known = this.#metadata.get(key);
    if (known !== undefined) return known;
    if (this.#metadata.size >= 10_000) this.#metadata.clear();
    this.#metadata.set(key, metadata);
    return metadata;
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
