import { LRUCache } from 'lru-cache';
import { parseIdentityConfig } from '../trust/config.js';
import { ConfigError } from '../errors.js';
import { exactIssuers } from '../trust/sources.js';
import {
  issuerSourceOf,
  issuerSourceSpelling,
  keySourceSpelling,
  MAX_SOURCES_PER_ISSUER,
} from '../trust/keys.js';
import { ClaimRevocations } from '../tokens/revoke-where.js';
import type {
  AccessTokenRecord,
  ConsumeResult,
  ExtendResult,
  IdentityConfig,
  IdentityConfigInput,
  IdentityStore,
  RevocationStamps,
  RevokeWhereFilter,
  TokenStore,
} from '../types.js';

/** Distinct (issuers, key source) pairs a {@link MemoryIdentityStore} lists for the engine. */
const MAX_KEY_SOURCES = 20_000;
/** Distinct key sources {@link MemoryIdentityStore.issuerKeySources} lists per issuer (8 + 1: full). */
const SOURCES_PER_ISSUER = MAX_SOURCES_PER_ISSUER + 1;

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
 *
 * It also lists, for the engine, each distinct pair of bound issuers and key source its configs
 * have had ({@link keySources}), so that a login verifies a token against its issuer's keys
 * before it reads this store (no identity oracle, see `verifyLogin`).
 */
export class MemoryIdentityStore implements IdentityStore {
  readonly #json = new Map<string, string>();
  readonly #parsed: LRUCache<string, IdentityConfig>;
  readonly #sourceSpellings = new Set<string>();
  readonly #keySources: IdentityConfig[] = [];
  #keySourcesComplete = true;
  /**
   * Every issuer any config stored here has bound → up to 9 distinct key sources of them (spelling
   * and config). Its size follows what was stored, not what clients send; entries are never removed.
   */
  readonly #issuers = new Map<string, { spellings: string[]; sources: IdentityConfig[] }>();

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

  /**
   * One small config per distinct (bound issuers, key source) any config stored here has had, in
   * the order first stored: what `KeyManager.registerIssuers` reads, nothing else (no bindings, no
   * id). The array is live and only grows (a deleted config's entry stays): read it, never change
   * it. At most 20,000 entries; past that {@link keySourcesComplete} is false.
   *
   * @internal
   */
  keySources(): readonly IdentityConfig[] {
    return this.#keySources;
  }

  /** Whether {@link keySources} lists every (issuers, key source) stored: false past 20,000. @internal */
  get keySourcesComplete(): boolean {
    return this.#keySourcesComplete;
  }

  /**
   * Whether any config stored here has bound `issuer` (a deleted one included): when not, no
   * identity binds it, whatever the engine's own bounds. One map lookup, no config read. @internal
   */
  bindsIssuer(issuer: string): boolean {
    return this.#issuers.has(issuer);
  }

  /** Up to 9 distinct key sources of the configs stored here that bind `issuer` (see {@link IdentityStore}). */
  async issuerKeySources(issuer: string): Promise<IdentityConfig[]> {
    return [...(this.#issuers.get(issuer)?.sources ?? [])];
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

  /** Up to `limit` ids of the configs naming trust entry `trustId` (a scan of the stored JSON). */
  async trustReferences(trustId: string, limit: number): Promise<string[]> {
    const needle = `"trust":${JSON.stringify(trustId)}`;
    const ids: string[] = [];
    for (const [identityId, json] of this.#json) {
      if (ids.length >= limit) break;
      if (json.includes(needle) && this.#config(identityId)?.trust === trustId) ids.push(identityId);
    }
    return ids;
  }

  #keep(config: IdentityConfig): void {
    this.#json.set(config.identityId, JSON.stringify(config));
    this.#parsed.set(config.identityId, config);
    this.#bindIssuers(config);
    const spelling = issuerSourceSpelling(config);
    if (this.#sourceSpellings.has(spelling)) return;
    if (this.#sourceSpellings.size >= MAX_KEY_SOURCES) {
      this.#keySourcesComplete = false;
      return;
    }
    this.#sourceSpellings.add(spelling);
    this.#keySources.push(issuerSourceOf(config));
  }

  #bindIssuers(config: IdentityConfig): void {
    let spelling: string | undefined;
    let source: IdentityConfig | undefined;
    for (const issuer of exactIssuers(config)) {
      let bound = this.#issuers.get(issuer);
      if (!bound) this.#issuers.set(issuer, (bound = { spellings: [], sources: [] }));
      if (bound.spellings.length >= SOURCES_PER_ISSUER) continue;
      spelling ??= keySourceSpelling(config);
      if (bound.spellings.includes(spelling)) continue;
      bound.spellings.push(spelling);
      bound.sources.push((source ??= issuerSourceOf(config)));
    }
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

/** Numbers kept per token, in this order, in one `Float64Array` (exact for integers up to 2^53). */
const CREATED = 0;
const EXPIRES = 1;
const MAX_EXPIRES = 2;
const TTL = 3;
const LIMIT = 4;
const COUNT = 5;
const GENERATION = 6;
const CLAIM_EPOCH = 7;
const NUMBERS = 8;

const INITIAL_CAPACITY = 1024;

/**
 * Access-token state in one process's memory. Every operation is synchronous inside, so
 * check-and-count cannot interleave: 50 concurrent uses of a 1-use token give exactly one success.
 * Records are dropped once past their expiry (no token string for them can still be valid).
 * Identity generations are a `Map` (one entry per identity ever revoked, kept for good), read inside
 * the same synchronous step as the use.
 *
 * Layout: a token is a slot number. Its numbers (times, TTL, uses, generation) live in one
 * `Float64Array`, its revoked flag in a `Uint8Array`, its references (identity, issuer, subject,
 * trusted IPs, metadata) in plain arrays that point at values shared by all tokens of a login shape
 * (interned). The only heap objects per token are its id string and, when mapped claims make it
 * unique, its metadata. A record object per token (with three boxed epoch-ms numbers) made a
 * million live tokens five million objects for every major garbage collection to walk (about
 * 300 ms here), which slowed every request of the process, guarded or not; the collector never
 * looks inside a typed array.
 * `revokeIdentity` walks the slots (a million in about a millisecond): no per-identity index.
 */
export class MemoryTokenStore implements TokenStore {
  /** Token id → slot. */
  readonly #slots = new Map<string, number>();
  #numbers = new Float64Array(INITIAL_CAPACITY * NUMBERS);
  #revoked = new Uint8Array(INITIAL_CAPACITY);
  #tokenIds: (string | undefined)[] = [];
  #identityIds: (string | undefined)[] = [];
  #issuers: (string | undefined)[] = [];
  #subjects: (string | undefined)[] = [];
  #trustedIps: (readonly string[] | undefined)[] = [];
  #metadata: (Readonly<Record<string, unknown>> | undefined)[] = [];
  /** Scope and audience a token exchange granted, DPoP binding; `undefined` for the usual login's tokens. */
  #grants: (Pick<AccessTokenRecord, 'scope' | 'audience' | 'jkt'> | undefined)[] = [];
  /** The login's revocable claim values (`revokeWhere`), interned like metadata. */
  #claims: (Readonly<Record<string, string>> | undefined)[] = [];
  /** Revocations by claim: epoch, entries, floor (see `TokenStore.revokeWhere`). */
  readonly #claimRevocations = new ClaimRevocations();
  /** Slots freed by dropped records, reused first. */
  readonly #free: number[] = [];
  /** Slots ever used: `0 … #used - 1`. */
  #used = 0;
  /** Interned issuer/subject/identity strings: every login parses fresh copies of the same few values. */
  readonly #strings = new Map<string, string>();
  /** Interned metadata objects, by their JSON. */
  readonly #metadataByJson = new Map<string, Readonly<Record<string, unknown>>>();
  /** Identity id → revocation generation; absent = 0. */
  readonly #generations = new Map<string, number>();
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
    return this.#slots.size;
  }

  async create(record: AccessTokenRecord): Promise<void> {
    let slot = this.#slots.get(record.tokenId);
    if (slot === undefined) {
      slot = this.#free.pop() ?? this.#grow();
      this.#slots.set(record.tokenId, slot);
    }
    const n = slot * NUMBERS;
    const numbers = this.#numbers;
    numbers[n + CREATED] = record.createdAt;
    numbers[n + EXPIRES] = record.expiresAt;
    numbers[n + MAX_EXPIRES] = record.maxExpiresAt;
    numbers[n + TTL] = record.ttlSeconds;
    numbers[n + LIMIT] = record.usesLimit;
    numbers[n + COUNT] = record.usesCount;
    numbers[n + GENERATION] = record.generation ?? 0;
    numbers[n + CLAIM_EPOCH] = record.claimEpoch ?? 0;
    // In the same synchronous step as a revokeWhere's walk: a login in flight across one is revoked here.
    const stale = this.#claimRevocations.refuses(record.identityId, record.claims, record.claimEpoch ?? 0);
    this.#revoked[slot] = record.revoked || stale ? 1 : 0;
    this.#tokenIds[slot] = record.tokenId;
    this.#identityIds[slot] = this.#intern(record.identityId);
    this.#issuers[slot] = record.issuer === undefined ? undefined : this.#intern(record.issuer);
    this.#subjects[slot] = record.subject === undefined ? undefined : this.#intern(record.subject);
    this.#trustedIps[slot] = record.trustedIps;
    this.#metadata[slot] = this.#internMetadata(record.metadata);
    this.#grants[slot] =
      record.scope === undefined && record.audience === undefined && record.jkt === undefined
        ? undefined
        : { scope: record.scope, audience: record.audience, jkt: record.jkt };
    this.#claims[slot] =
      record.claims === undefined
        ? undefined
        : (this.#internMetadata(record.claims) as Record<string, string>);
  }

  async get(tokenId: string, now: number): Promise<AccessTokenRecord | undefined> {
    const slot = this.#live(tokenId, now);
    return slot === undefined || now >= this.#numbers[slot * NUMBERS + EXPIRES]!
      ? undefined
      : this.#record(slot);
  }

  async consume(tokenId: string, now: number): Promise<ConsumeResult> {
    const slot = this.#live(tokenId, now);
    if (slot === undefined) return NOT_FOUND;
    if (this.#revoked[slot] === 1 || this.#stale(slot)) return REVOKED;
    const n = slot * NUMBERS;
    const numbers = this.#numbers;
    if (now >= numbers[n + EXPIRES]!) return EXPIRED;
    const limit = numbers[n + LIMIT]!;
    if (limit > 0 && numbers[n + COUNT]! >= limit) return EXHAUSTED;
    numbers[n + COUNT]!++;
    return { ok: true, record: this.#record(slot) };
  }

  async extend(tokenId: string, now: number): Promise<ExtendResult> {
    const slot = this.#live(tokenId, now);
    if (slot === undefined) return NOT_FOUND;
    if (this.#revoked[slot] === 1 || this.#stale(slot)) return REVOKED;
    const n = slot * NUMBERS;
    const numbers = this.#numbers;
    const expiresAt = numbers[n + EXPIRES]!;
    const maxExpiresAt = numbers[n + MAX_EXPIRES]!;
    if (now >= expiresAt) return EXPIRED;
    if (expiresAt >= maxExpiresAt) return { ok: false, reason: 'max_ttl_reached' };
    const limit = numbers[n + LIMIT]!;
    if (limit > 0 && numbers[n + COUNT]! >= limit) return EXHAUSTED;
    numbers[n + EXPIRES] = Math.min(now + numbers[n + TTL]! * 1000, maxExpiresAt);
    return { ok: true, record: this.#record(slot) };
  }

  async revoke(tokenId: string): Promise<void> {
    const slot = this.#slots.get(tokenId);
    if (slot !== undefined) this.#revoked[slot] = 1;
  }

  async generation(identityId: string): Promise<number> {
    return this.#generations.get(identityId) ?? 0;
  }

  async revokeIdentity(identityId: string): Promise<number> {
    this.#generations.set(identityId, (this.#generations.get(identityId) ?? 0) + 1);
    const now = this.#clock();
    const identities = this.#identityIds;
    const numbers = this.#numbers;
    const revoked = this.#revoked;
    let live = 0;
    for (let slot = 0; slot < this.#used; slot++) {
      if (identities[slot] !== identityId) continue;
      if (revoked[slot] === 0 && now < numbers[slot * NUMBERS + EXPIRES]!) live++;
      revoked[slot] = 1;
    }
    return live;
  }

  async revocationStamps(identityId: string): Promise<RevocationStamps> {
    return { generation: this.#generations.get(identityId) ?? 0, claimEpoch: this.#claimRevocations.epoch };
  }

  /** One synchronous step: the entry, then a walk of the slots (a million in a few milliseconds). */
  async revokeWhere(
    filter: RevokeWhereFilter,
    now: number,
    limits: { keepMs: number; maxEntries: number },
  ): Promise<number> {
    this.#claimRevocations.add(filter, now, limits);
    const { identityId, claim, value } = filter;
    const numbers = this.#numbers;
    const revoked = this.#revoked;
    let live = 0;
    for (let slot = 0; slot < this.#used; slot++) {
      if (this.#claims[slot]?.[claim] !== value) continue;
      if (identityId !== undefined && this.#identityIds[slot] !== identityId) continue;
      if (this.#tokenIds[slot] === undefined) continue;
      if (revoked[slot] === 0 && now < numbers[slot * NUMBERS + EXPIRES]!) live++;
      revoked[slot] = 1;
    }
    return live;
  }

  /** Drop records past their expiry. Runs on a timer; callable directly. Returns how many went. */
  sweep(now = this.#clock()): number {
    let dropped = 0;
    const numbers = this.#numbers;
    for (let slot = 0; slot < this.#used; slot++) {
      if (this.#tokenIds[slot] !== undefined && now >= numbers[slot * NUMBERS + EXPIRES]!) {
        this.#drop(slot);
        dropped++;
      }
    }
    return dropped;
  }

  async close(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  #record(slot: number): AccessTokenRecord {
    const n = slot * NUMBERS;
    const numbers = this.#numbers;
    const granted = this.#grants[slot];
    const record: AccessTokenRecord = {
      tokenId: this.#tokenIds[slot]!,
      identityId: this.#identityIds[slot]!,
      createdAt: numbers[n + CREATED]!,
      expiresAt: numbers[n + EXPIRES]!,
      maxExpiresAt: numbers[n + MAX_EXPIRES]!,
      ttlSeconds: numbers[n + TTL]!,
      usesLimit: numbers[n + LIMIT]!,
      usesCount: numbers[n + COUNT]!,
      revoked: this.#revoked[slot] === 1,
      trustedIps: this.#trustedIps[slot]!,
      metadata: this.#metadata[slot]!,
      issuer: this.#issuers[slot],
      subject: this.#subjects[slot],
      generation: numbers[n + GENERATION]!,
    };
    const claims = this.#claims[slot];
    if (claims !== undefined) record.claims = claims;
    if (numbers[n + CLAIM_EPOCH]! > 0) record.claimEpoch = numbers[n + CLAIM_EPOCH]!;
    if (granted?.scope !== undefined) record.scope = granted.scope;
    if (granted?.audience !== undefined) record.audience = granted.audience;
    if (granted?.jkt !== undefined) record.jkt = granted.jkt;
    return record;
  }

  /** Stamped below its identity's current generation: a login that raced a `revokeIdentity`. */
  #stale(slot: number): boolean {
    const identityId = this.#identityIds[slot];
    return (
      identityId !== undefined &&
      this.#numbers[slot * NUMBERS + GENERATION]! < (this.#generations.get(identityId) ?? 0)
    );
  }

  /** A free slot past the used ones, doubling the typed arrays when they are full. */
  #grow(): number {
    const slot = this.#used++;
    if (slot >= this.#revoked.length) {
      const numbers = new Float64Array(this.#revoked.length * 2 * NUMBERS);
      numbers.set(this.#numbers);
      this.#numbers = numbers;
      const revoked = new Uint8Array(this.#revoked.length * 2);
      revoked.set(this.#revoked);
      this.#revoked = revoked;
    }
    return slot;
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
    const known = this.#metadataByJson.get(key);
    if (known !== undefined) return known;
    if (this.#metadataByJson.size >= 10_000) this.#metadataByJson.clear();
    this.#metadataByJson.set(key, metadata);
    return metadata;
  }

  #intern(value: string): string {
    const known = this.#strings.get(value);
    if (known !== undefined) return known;
    if (this.#strings.size >= 10_000) this.#strings.clear();
    this.#strings.set(value, value);
    return value;
  }

  #live(tokenId: string, now: number): number | undefined {
    const slot = this.#slots.get(tokenId);
    if (slot !== undefined && now >= this.#numbers[slot * NUMBERS + EXPIRES]! && this.#revoked[slot] === 0) {
      // Past expiry nothing can use it again: drop it lazily (revoked ones go with the sweep). The
      // caller still reads its expiry from the freed slot (numbers stay until the slot is reused,
      // never within this call) and answers `expired`, not `not_found`.
      this.#drop(slot);
    }
    return slot;
  }

  #drop(slot: number): void {
    this.#slots.delete(this.#tokenIds[slot]!);
    this.#tokenIds[slot] = undefined;
    this.#identityIds[slot] = undefined;
    this.#issuers[slot] = undefined;
    this.#subjects[slot] = undefined;
    this.#trustedIps[slot] = undefined;
    this.#metadata[slot] = undefined;
    this.#grants[slot] = undefined;
    this.#claims[slot] = undefined;
    this.#free.push(slot);
  }
}

const NOT_FOUND = { ok: false, reason: 'not_found' } as const;
const REVOKED = { ok: false, reason: 'revoked' } as const;
const EXPIRED = { ok: false, reason: 'expired' } as const;
const EXHAUSTED = { ok: false, reason: 'uses_exhausted' } as const;
