import type { AccessTokenRecord, ConsumeResult, ExtendResult, TokenStore } from '../../src/types.js';

/**
 * What the tokens of one identity, login policy and IdP subject have in common: one frozen object
 * shared by all of them instead of a copy of each field per token.
 */
interface Shape {
  readonly identityId: string;
  readonly ttlSeconds: number;
  readonly usesLimit: number;
  /** `maxExpiresAt - createdAt`, ms. */
  readonly maxTtlMs: number;
  readonly trustedIps: readonly string[];
  readonly issuer: string | undefined;
  readonly subject: string | undefined;
}

/** Per-token state: five fields, four of them small integers or references (no boxed number but one). */
class Slot {
  constructor(
    readonly shape: Shape,
    readonly metadata: Readonly<Record<string, unknown>>,
    /** Epoch ms (the one boxed number per token). */
    readonly createdAt: number,
    /** `expiresAt - createdAt`, ms: a small integer while the max TTL is under 24 days. */
    public expiresIn: number,
    public usesCount: number,
    public revoked: boolean,
  ) {}

  get expiresAt(): number {
    return this.createdAt + this.expiresIn;
  }

  get maxExpiresAt(): number {
    return this.createdAt + this.shape.maxTtlMs;
  }
}

/** Shapes kept for reuse; past this the table starts over (tokens keep theirs), so it stays bounded. */
const MAX_SHAPES = 4096;

/**
 * PROTOTYPE for the memory-per-token proposal (bench only, not shipped): `MemoryTokenStore`'s
 * behaviour with a compact layout. Differences from `src/stores/memory.ts`:
 *
 * - fields common to many tokens (identity id, TTLs, uses limit, trusted IPs, issuer, subject) live
 *   in an interned {@link Shape}; per token only a {@link Slot} of five fields remains;
 * - times are stored as one epoch-ms number plus small offsets, so one boxed number per token, not
 *   three;
 * - no per-identity index: `revokeIdentity` walks every record (an admin operation; cost measured
 *   by `bench/memory.ts`).
 *
 * It passes the same TokenStore contract suite as the memory store.
 */
export class CompactMemoryTokenStore implements TokenStore {
  readonly #slots = new Map<string, Slot>();
  readonly #shapes = new Map<string, Shape>();
  readonly #refIds = new WeakMap<object, number>();
  readonly #clock: () => number;
  #nextRefId = 0;

  constructor(options: { clock?: () => number } = {}) {
    this.#clock = options.clock ?? Date.now;
  }

  /** Live records held (expired ones not yet swept included). */
  get size(): number {
    return this.#slots.size;
  }

  async create(record: AccessTokenRecord): Promise<void> {
    const slot = new Slot(
      this.#shape(record),
      record.metadata,
      record.createdAt,
      record.expiresAt - record.createdAt,
      record.usesCount,
      record.revoked,
    );
    this.#slots.set(record.tokenId, slot);
  }

  async get(tokenId: string, now: number): Promise<AccessTokenRecord | undefined> {
    const slot = this.#live(tokenId, now);
    return slot && now < slot.expiresAt ? toRecord(tokenId, slot) : undefined;
  }

  async consume(tokenId: string, now: number): Promise<ConsumeResult> {
    const slot = this.#live(tokenId, now);
    if (!slot) return NOT_FOUND;
    if (slot.revoked) return REVOKED;
    if (now >= slot.expiresAt) return EXPIRED;
    const limit = slot.shape.usesLimit;
    if (limit > 0 && slot.usesCount >= limit) return EXHAUSTED;
    slot.usesCount++;
    return { ok: true, record: toRecord(tokenId, slot) };
  }

  async extend(tokenId: string, now: number): Promise<ExtendResult> {
    const slot = this.#live(tokenId, now);
    if (!slot) return NOT_FOUND;
    if (slot.revoked) return REVOKED;
    const expiresAt = slot.expiresAt;
    if (now >= expiresAt) return EXPIRED;
    const max = slot.maxExpiresAt;
    if (expiresAt >= max) return { ok: false, reason: 'max_ttl_reached' };
    const limit = slot.shape.usesLimit;
    if (limit > 0 && slot.usesCount >= limit) return EXHAUSTED;
    slot.expiresIn = Math.min(now + slot.shape.ttlSeconds * 1000, max) - slot.createdAt;
    return { ok: true, record: toRecord(tokenId, slot) };
  }

  async revoke(tokenId: string): Promise<void> {
    const slot = this.#slots.get(tokenId);
    if (slot) slot.revoked = true;
  }

  async revokeIdentity(identityId: string): Promise<number> {
    const now = this.#clock();
    let live = 0;
    for (const slot of this.#slots.values()) {
      if (slot.shape.identityId !== identityId) continue;
      if (!slot.revoked && now < slot.expiresAt) live++;
      slot.revoked = true;
    }
    return live;
  }

  /** Drop records past their expiry. Returns how many went. */
  sweep(now = this.#clock()): number {
    let dropped = 0;
    for (const [id, slot] of this.#slots) {
      if (now >= slot.expiresAt) {
        this.#slots.delete(id);
        dropped++;
      }
    }
    return dropped;
  }

  async close(): Promise<void> {}

  #live(tokenId: string, now: number): Slot | undefined {
    const slot = this.#slots.get(tokenId);
    if (slot && now >= slot.expiresAt && !slot.revoked) {
      this.#slots.delete(tokenId);
    }
    return slot;
  }

  #shape(record: AccessTokenRecord): Shape {
    const maxTtlMs = record.maxExpiresAt - record.createdAt;
    // JSON of an array: no separator a claim value could forge (subjects may hold any character).
    const key = JSON.stringify([
      record.identityId,
      record.ttlSeconds,
      record.usesLimit,
      maxTtlMs,
      this.#refId(record.trustedIps),
      record.issuer ?? 0,
      record.subject ?? 0,
    ]);
    let shape = this.#shapes.get(key);
    if (!shape) {
      if (this.#shapes.size >= MAX_SHAPES) this.#shapes.clear();
      shape = Object.freeze({
        identityId: record.identityId,
        ttlSeconds: record.ttlSeconds,
        usesLimit: record.usesLimit,
        maxTtlMs,
        trustedIps: record.trustedIps,
        issuer: record.issuer,
        subject: record.subject,
      });
      this.#shapes.set(key, shape);
    }
    return shape;
  }

  /** The engine hands every token of an identity the same trusted-IP array: compare it by reference. */
  #refId(value: object): number {
    let id = this.#refIds.get(value);
    if (id === undefined) this.#refIds.set(value, (id = this.#nextRefId++));
    return id;
  }
}

function toRecord(tokenId: string, slot: Slot): AccessTokenRecord {
  const shape = slot.shape;
  const record: AccessTokenRecord = {
    tokenId,
    identityId: shape.identityId,
    createdAt: slot.createdAt,
    expiresAt: slot.expiresAt,
    maxExpiresAt: slot.maxExpiresAt,
    ttlSeconds: shape.ttlSeconds,
    usesLimit: shape.usesLimit,
    usesCount: slot.usesCount,
    revoked: slot.revoked,
    trustedIps: shape.trustedIps,
    metadata: slot.metadata,
  };
  if (shape.issuer !== undefined) record.issuer = shape.issuer;
  if (shape.subject !== undefined) record.subject = shape.subject;
  return record;
}

const NOT_FOUND = { ok: false, reason: 'not_found' } as const;
const REVOKED = { ok: false, reason: 'revoked' } as const;
const EXPIRED = { ok: false, reason: 'expired' } as const;
const EXHAUSTED = { ok: false, reason: 'uses_exhausted' } as const;
