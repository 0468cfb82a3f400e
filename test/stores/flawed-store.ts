import { UnauthorizedError } from '../../src/errors.js';
import type { AccessTokenRecord, ConsumeResult, ExtendResult, TokenStore } from '../../src/types.js';

/**
 * A backend shared by store instances (two app instances on one database): a map of rows, each
 * operation one atomic step after a simulated round trip. `down` makes every operation fail, as an
 * unreachable server would.
 */
export class FakeBackend {
  readonly rows = new Map<string, AccessTokenRecord>();
  readonly generations = new Map<string, number>();
  down = false;

  /** Runs `step` atomically after a round trip, or throws when the backend is down. */
  async op<T>(step: () => T): Promise<T> {
    await new Promise((resolve) => setImmediate(resolve));
    if (this.down)
      throw Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' });
    return step();
  }
}

/** What a flawed store gets wrong. None set: a correct store (the reference the flaws depart from). */
export interface Flaws {
  /** consume reads the row, waits a round trip, then writes the count back: uses get lost. */
  nonAtomicConsume?: boolean;
  /** When the backend throws, answer from what this instance saw last (a use is granted) instead. */
  failOpen?: boolean;
  /**
   * A store without generations: revokeIdentity lists the identity's tokens, then marks them in a
   * second round trip, and consume and extend compare no stamp. Tokens created meanwhile (or by a
   * login in flight, afterwards) are never revoked.
   */
  revokeSkipsConcurrent?: boolean;
  /** consume compares no generation stamp (extend does). */
  consumeIgnoresGeneration?: boolean;
  /** A token is still valid at `now === expiresAt`. */
  expiryOffByOne?: boolean;
  /** Keeps at most 255 characters of subject and issuer (a `VARCHAR(255)` column). */
  truncatesClaims?: boolean;
  /** Keeps no token exchange grant: `scope` and `audience` are dropped (no columns for them). */
  dropsGrant?: boolean;
  /** A renewal resets the use count. */
  renewResetsUses?: boolean;
  /** consume and extend decide with the server's clock instead of the `now` they are given. */
  readsOwnClock?: boolean;
  /** Waits for an unreachable backend forever (no timeout on its calls). */
  hangsWhenDown?: boolean;
  /** Turns a backend error into a 401 `invalid_token` (the engine passes it on: no 503). */
  throws401WhenDown?: boolean;
}

const copy = (record: AccessTokenRecord): AccessTokenRecord => structuredClone(record);

/**
 * A token store over a {@link FakeBackend}: correct with no flaws (it passes the whole conformance
 * suite, outage included), wrong in exactly the ways the flaws name.
 */
export class FlawedTokenStore implements TokenStore {
  readonly #seen = new Map<string, AccessTokenRecord>();

  constructor(
    readonly backend: FakeBackend,
    readonly flaws: Flaws = {},
  ) {}

  async create(record: AccessTokenRecord): Promise<void> {
    const row = copy(record);
    if (this.flaws.truncatesClaims) {
      if (row.subject !== undefined) row.subject = row.subject.slice(0, 255);
      if (row.issuer !== undefined) row.issuer = row.issuer.slice(0, 255);
    }
    if (this.flaws.dropsGrant) {
      delete row.scope;
      delete row.audience;
    }
    await this.#op(() => void this.backend.rows.set(row.tokenId, row), undefined);
  }

  async get(tokenId: string, now: number): Promise<AccessTokenRecord | undefined> {
    return this.#op(() => {
      const row = this.backend.rows.get(tokenId);
      return row && (row.revoked || !this.#expired(row, now)) ? this.#keep(row) : undefined;
    }, this.#seen.get(tokenId));
  }

  async consume(tokenId: string, now: number): Promise<ConsumeResult> {
    const cached = this.#seen.get(tokenId);
    const fallback: ConsumeResult = cached
      ? { ok: true, record: cached }
      : { ok: false, reason: 'not_found' };
    if (this.flaws.nonAtomicConsume) {
      const row = await this.#op(() => this.backend.rows.get(tokenId), undefined);
      const refusal = row ? this.#refusal(row, now, !this.flaws.consumeIgnoresGeneration) : 'not_found';
      if (refusal) return { ok: false, reason: refusal };
      const counted = { ...row!, usesCount: row!.usesCount + 1 };
      await this.#op(() => void this.backend.rows.set(tokenId, counted), undefined);
      return { ok: true, record: this.#keep(counted) };
    }
    return this.#op((): ConsumeResult => {
      const row = this.backend.rows.get(tokenId);
      const refusal = row ? this.#refusal(row, now, !this.flaws.consumeIgnoresGeneration) : 'not_found';
      if (refusal) return { ok: false, reason: refusal };
      row!.usesCount++;
      return { ok: true, record: this.#keep(row!) };
    }, fallback);
  }

  async extend(tokenId: string, now: number): Promise<ExtendResult> {
    const cached = this.#seen.get(tokenId);
    const fallback: ExtendResult = cached ? { ok: true, record: cached } : { ok: false, reason: 'not_found' };
    return this.#op((): ExtendResult => {
      const row = this.backend.rows.get(tokenId);
      if (!row) return { ok: false, reason: 'not_found' };
      if (row.revoked || this.#stale(row)) return { ok: false, reason: 'revoked' };
      if (this.#expired(row, now)) return { ok: false, reason: 'expired' };
      if (row.expiresAt >= row.maxExpiresAt) return { ok: false, reason: 'max_ttl_reached' };
      if (row.usesLimit > 0 && row.usesCount >= row.usesLimit) return { ok: false, reason: 'uses_exhausted' };
      row.expiresAt = Math.min(this.#now(now) + row.ttlSeconds * 1000, row.maxExpiresAt);
      if (this.flaws.renewResetsUses) row.usesCount = 0;
      return { ok: true, record: this.#keep(row) };
    }, fallback);
  }

  async revoke(tokenId: string): Promise<void> {
    await this.#op(() => {
      const row = this.backend.rows.get(tokenId);
      if (row) row.revoked = true;
    }, undefined);
  }

  async generation(identityId: string): Promise<number> {
    return this.#op(() => this.backend.generations.get(identityId) ?? 0, 0);
  }

  async revokeIdentity(identityId: string): Promise<number> {
    const { rows, generations } = this.backend;
    const now = Date.now();
    const mark = (ids: Iterable<string>) => {
      let live = 0;
      for (const id of ids) {
        const row = rows.get(id);
        if (!row || row.identityId !== identityId) continue;
        if (!row.revoked && now < row.expiresAt) live++;
        row.revoked = true;
      }
      return live;
    };
    if (this.flaws.revokeSkipsConcurrent) {
      const listed = await this.#op(
        () => [...rows.values()].filter((row) => row.identityId === identityId).map((row) => row.tokenId),
        [],
      );
      return this.#op(() => {
        generations.set(identityId, (generations.get(identityId) ?? 0) + 1);
        return mark(listed);
      }, 0);
    }
    return this.#op(() => {
      generations.set(identityId, (generations.get(identityId) ?? 0) + 1);
      return mark(rows.keys());
    }, 0);
  }

  /** Why `row` cannot be used at `now`, or undefined when it can. */
  #refusal(row: AccessTokenRecord, now: number, checkGeneration: boolean) {
    if (row.revoked || (checkGeneration && this.#stale(row))) return 'revoked' as const;
    if (this.#expired(row, now)) return 'expired' as const;
    if (row.usesLimit > 0 && row.usesCount >= row.usesLimit) return 'uses_exhausted' as const;
    return undefined;
  }

  #stale(row: AccessTokenRecord): boolean {
    if (this.flaws.revokeSkipsConcurrent) return false;
    return row.generation < (this.backend.generations.get(row.identityId) ?? 0);
  }

  #expired(row: AccessTokenRecord, now: number): boolean {
    const at = this.#now(now);
    return this.flaws.expiryOffByOne ? at > row.expiresAt : at >= row.expiresAt;
  }

  #now(now: number): number {
    return this.flaws.readsOwnClock ? Date.now() : now;
  }

  #keep(row: AccessTokenRecord): AccessTokenRecord {
    const record = copy(row);
    if (this.flaws.failOpen) this.#seen.set(record.tokenId, record);
    return record;
  }

  /** One backend operation; with `failOpen`, an error answers `fallback` instead of throwing. */
  async #op<T>(step: () => T, fallback: T): Promise<T> {
    if (this.flaws.hangsWhenDown && this.backend.down) return new Promise<T>(() => {});
    try {
      return await this.backend.op(step);
    } catch (error) {
      if (this.flaws.failOpen) return fallback;
      if (this.flaws.throws401WhenDown) throw new UnauthorizedError('invalid_token', 'Invalid access token');
      throw error;
    }
  }
}
