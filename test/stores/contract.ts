import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AccessTokenRecord, TokenStore } from '../../src/types.js';

/** A fresh token id shaped like the engine's (128 bits, base64url). */
export function newId(): string {
  return randomBytes(16).toString('base64url');
}

/**
 * A record based on the real clock (a shared server expires keys by its own clock), overridable.
 * Live for a minute, renewable for ten.
 */
export function makeRecord(overrides: Partial<AccessTokenRecord> = {}): AccessTokenRecord {
  const now = Date.now();
  return {
    tokenId: newId(),
    identityId: `identity-${newId()}`,
    createdAt: now,
    expiresAt: now + 60_000,
    maxExpiresAt: now + 600_000,
    ttlSeconds: 60,
    usesLimit: 0,
    usesCount: 0,
    revoked: false,
    trustedIps: ['0.0.0.0/0', '::/0'],
    metadata: { role: 'deployer' },
    issuer: 'https://token.actions.githubusercontent.com',
    subject: 'repo:acme/api:ref:refs/heads/main',
    generation: 0,
    ...overrides,
  };
}

/**
 * The behaviour every {@link TokenStore} shares, the memory store's. Run by each store's test file
 * with a factory for a store that is empty of the ids used here (random ids keep runs apart).
 */
export function describeTokenStoreContract(
  name: string,
  makeStore: () => TokenStore | Promise<TokenStore>,
): void {
  describe(`${name}: TokenStore contract`, () => {
    let store: TokenStore;

    beforeAll(async () => {
      store = await makeStore();
    });

    afterAll(async () => {
      await store?.close?.();
    });

    async function created(overrides: Partial<AccessTokenRecord> = {}): Promise<AccessTokenRecord> {
      const record = makeRecord(overrides);
      await store.create(record);
      return record;
    }

    describe('create and get', () => {
      it('returns what was created, types intact', async () => {
        const record = await created({
          usesLimit: 7,
          usesCount: 2,
          ttlSeconds: 3600,
          trustedIps: ['10.0.0.0/8', '2001:db8::/32', '192.0.2.7'],
          metadata: {
            role: 'deployer',
            projects: ['p1', 'p2'],
            nested: { depth: { deeper: [1, 2.5, -3, { x: null }] } },
            flag: false,
            zero: 0,
            empty: '',
            numeric: '007',
            none: null,
            unicode: 'żółć ✓ 漢字 \u{1F512}',
          },
        });
        const got = await store.get(record.tokenId, record.createdAt);
        expect(got).toEqual(record);
        expect(typeof got?.createdAt).toBe('number');
        expect(typeof got?.revoked).toBe('boolean');
        expect((got?.metadata as { numeric: unknown }).numeric).toBe('007');
      });

      it('keeps issuer and subject absent when the record has none', async () => {
        const { issuer: _i, subject: _s, ...bare } = makeRecord();
        await store.create(bare);
        const got = await store.get(bare.tokenId, bare.createdAt);
        expect(got).toEqual(bare);
        expect(got?.issuer).toBeUndefined();
        expect(got?.subject).toBeUndefined();
      });

      it('CLM-06: claim values with newline, CR, ESC and NUL are stored untruncated', async () => {
        const value = 'a\nb\rc\u001bd\u0000e';
        // PostgreSQL text cannot hold NUL, so the subject carries the others only (see its tests).
        const subject = 'repo:a\nb\rc\u001bd';
        const record = await created({ metadata: { ref: value, [value]: 1 }, subject });
        const got = await store.get(record.tokenId, record.createdAt);
        expect(got?.metadata).toEqual({ ref: value, [value]: 1 });
        expect(got?.subject).toBe(subject);
      });

      it('get does not count a use', async () => {
        const record = await created({ usesLimit: 1 });
        await store.get(record.tokenId, record.createdAt);
        await store.get(record.tokenId, record.createdAt);
        const result = await store.consume(record.tokenId, record.createdAt + 1);
        expect(result.ok).toBe(true);
      });

      it('get of an expired token gives nothing usable', async () => {
        const record = await created();
        const got = await store.get(record.tokenId, record.expiresAt);
        // The memory store hands the record back once as it drops it; the caller checks expiresAt.
        if (got) expect(got.expiresAt).toBeLessThanOrEqual(record.expiresAt);
        const again = await store.get(record.tokenId, record.expiresAt + 1);
        expect(again).toBeUndefined();
      });
    });

    describe('consume', () => {
      it('counts uses until exhausted', async () => {
        const record = await created({ usesLimit: 3 });
        const t = record.createdAt + 1;
        for (let expected = 1; expected <= 3; expected++) {
          const result = await store.consume(record.tokenId, t);
          expect(result).toMatchObject({
            ok: true,
            record: { tokenId: record.tokenId, usesCount: expected },
          });
        }
        expect(await store.consume(record.tokenId, t)).toEqual({ ok: false, reason: 'uses_exhausted' });
        expect(await store.consume(record.tokenId, t)).toEqual({ ok: false, reason: 'uses_exhausted' });
        expect((await store.get(record.tokenId, t))?.usesCount).toBe(3);
      });

      it('hands back the whole record after counting the use', async () => {
        const record = await created({ usesLimit: 2, metadata: { a: [1, { b: true }] } });
        const result = await store.consume(record.tokenId, record.createdAt + 1);
        expect(result).toEqual({ ok: true, record: { ...record, usesCount: 1 } });
      });

      it('allows any number of uses when the limit is 0', async () => {
        const record = await created({ usesLimit: 0 });
        for (let i = 1; i <= 60; i++) {
          const result = await store.consume(record.tokenId, record.createdAt + i);
          expect(result.ok).toBe(true);
        }
        expect((await store.get(record.tokenId, record.createdAt))?.usesCount).toBe(60);
      });

      it('TOK-06: refuses a token at and after its expiry', async () => {
        const record = await created({ usesLimit: 10 });
        expect((await store.consume(record.tokenId, record.expiresAt - 1)).ok).toBe(true);
        expect(await store.consume(record.tokenId, record.expiresAt)).toEqual({
          ok: false,
          reason: 'expired',
        });
        const later = await store.consume(record.tokenId, record.expiresAt + 1000);
        expect(later.ok).toBe(false);
        if (!later.ok) expect(['expired', 'not_found']).toContain(later.reason);
      });

      it('refuses a revoked token even past its expiry with revoked', async () => {
        const record = await created();
        await store.revoke(record.tokenId);
        expect(await store.consume(record.tokenId, record.expiresAt + 1)).toEqual({
          ok: false,
          reason: 'revoked',
        });
      });

      it('TOK-04: 50 parallel uses of a 1-use token give exactly one success', async () => {
        const record = await created({ usesLimit: 1 });
        const results = await Promise.all(
          Array.from({ length: 50 }, () => store.consume(record.tokenId, record.createdAt + 1)),
        );
        expect(results.filter((r) => r.ok)).toHaveLength(1);
        expect(results.filter((r) => !r.ok && r.reason === 'uses_exhausted')).toHaveLength(49);
        expect((await store.get(record.tokenId, record.createdAt + 1))?.usesCount).toBe(1);
      });

      it('TOK-04: 50 parallel uses of a 5-use token give exactly five successes', async () => {
        const record = await created({ usesLimit: 5 });
        const results = await Promise.all(
          Array.from({ length: 50 }, () => store.consume(record.tokenId, record.createdAt + 1)),
        );
        expect(results.filter((r) => r.ok)).toHaveLength(5);
        expect((await store.get(record.tokenId, record.createdAt + 1))?.usesCount).toBe(5);
      });

      it('hands back a snapshot: each success sees its own use count, later uses change nothing', async () => {
        const record = await created({ usesLimit: 5 });
        const results = await Promise.all(
          Array.from({ length: 5 }, () => store.consume(record.tokenId, record.createdAt + 1)),
        );
        const counts = results.flatMap((r) => (r.ok ? [r.record.usesCount] : []));
        expect(counts.sort()).toEqual([1, 2, 3, 4, 5]);
      });
    });

    describe('extend (renew)', () => {
      it('TOK-07: moves the expiry to now + ttl and keeps the uses counted', async () => {
        const record = await created({ usesLimit: 5, ttlSeconds: 60 });
        await store.consume(record.tokenId, record.createdAt + 1);
        await store.consume(record.tokenId, record.createdAt + 2);
        const now = record.createdAt + 30_000;
        const result = await store.extend(record.tokenId, now);
        expect(result).toEqual({ ok: true, record: { ...record, usesCount: 2, expiresAt: now + 60_000 } });
        expect((await store.get(record.tokenId, now))?.expiresAt).toBe(now + 60_000);
        expect((await store.consume(record.tokenId, now + 59_000)).ok).toBe(true);
      });

      it('TOK-07: never passes the max expiry; once there, renewal is refused with max_ttl_reached', async () => {
        const record = await created({ ttlSeconds: 60 });
        let now = record.createdAt;
        let expiresAt = record.expiresAt;
        while (expiresAt < record.maxExpiresAt) {
          now += 45_000;
          const result = await store.extend(record.tokenId, now);
          if (!result.ok) throw new Error(`renew refused: ${result.reason}`);
          expect(result.record.expiresAt).toBe(Math.min(now + 60_000, record.maxExpiresAt));
          expiresAt = result.record.expiresAt;
        }
        expect(expiresAt).toBe(record.maxExpiresAt);
        expect(await store.extend(record.tokenId, now + 1000)).toEqual({
          ok: false,
          reason: 'max_ttl_reached',
        });
        expect((await store.consume(record.tokenId, record.maxExpiresAt - 1)).ok).toBe(true);
        // At the max expiry the token has also expired; expiry is checked first.
        expect(await store.extend(record.tokenId, record.maxExpiresAt)).toEqual({
          ok: false,
          reason: 'expired',
        });
      });

      it('TOK-07: refuses with max_ttl_reached when the expiry somehow passed the max', async () => {
        const now = Date.now();
        const record = await created({ expiresAt: now + 120_000, maxExpiresAt: now + 60_000 });
        expect(await store.extend(record.tokenId, now + 1000)).toEqual({
          ok: false,
          reason: 'max_ttl_reached',
        });
      });

      it('refuses an expired token', async () => {
        const record = await created();
        expect(await store.extend(record.tokenId, record.expiresAt)).toEqual({
          ok: false,
          reason: 'expired',
        });
      });

      it('refuses a used-up token', async () => {
        const record = await created({ usesLimit: 1 });
        await store.consume(record.tokenId, record.createdAt + 1);
        expect(await store.extend(record.tokenId, record.createdAt + 2)).toEqual({
          ok: false,
          reason: 'uses_exhausted',
        });
      });

      it('TOK-08: refuses a revoked token', async () => {
        const record = await created();
        await store.revoke(record.tokenId);
        expect(await store.extend(record.tokenId, record.createdAt + 1)).toEqual({
          ok: false,
          reason: 'revoked',
        });
      });
    });

    describe('revoke', () => {
      it('TOK-08: a revoked token is refused, including after a renewal', async () => {
        const record = await created();
        const renewed = await store.extend(record.tokenId, record.createdAt + 1000);
        expect(renewed.ok).toBe(true);
        await store.revoke(record.tokenId);
        expect(await store.consume(record.tokenId, record.createdAt + 2000)).toEqual({
          ok: false,
          reason: 'revoked',
        });
        expect((await store.get(record.tokenId, record.createdAt + 2000))?.revoked).toBe(true);
      });

      it('is idempotent', async () => {
        const record = await created();
        await store.revoke(record.tokenId);
        await store.revoke(record.tokenId);
        expect(await store.consume(record.tokenId, record.createdAt + 1)).toEqual({
          ok: false,
          reason: 'revoked',
        });
      });
    });

    describe('revokeIdentity', () => {
      it('TOK-08: revokes every token of the identity and counts the live ones', async () => {
        const identityId = `identity-${newId()}`;
        const live = await Promise.all([1, 2, 3].map(() => created({ identityId })));
        const now = Date.now();
        const expired = await created({ identityId, createdAt: now - 120_000, expiresAt: now - 60_000 });
        const revoked = await created({ identityId });
        await store.revoke(revoked.tokenId);
        const other = await created();

        expect(await store.revokeIdentity(identityId)).toBe(3);
        for (const record of [...live, revoked]) {
          expect(await store.consume(record.tokenId, Date.now())).toEqual({ ok: false, reason: 'revoked' });
        }
        expect((await store.consume(expired.tokenId, Date.now())).ok).toBe(false);
        expect((await store.consume(other.tokenId, Date.now())).ok).toBe(true);
        expect(await store.revokeIdentity(identityId)).toBe(0);
      });

      it('leaves tokens of logins that began afterwards alone', async () => {
        const identityId = `identity-${newId()}`;
        await created({ identityId });
        expect(await store.revokeIdentity(identityId)).toBe(1);
        const fresh = await created({ identityId, generation: await store.generation(identityId) });
        expect((await store.consume(fresh.tokenId, Date.now())).ok).toBe(true);
        expect(await store.revokeIdentity(identityId)).toBe(1);
      });
    });

    describe('#13.1 identity revocation leaves no survivor: generations', () => {
      it('an identity never revoked (or unknown) has generation 0', async () => {
        expect(await store.generation(`identity-${newId()}`)).toBe(0);
      });

      it('revokeIdentity raises the generation by one each time, for that identity only', async () => {
        const identityId = `identity-${newId()}`;
        const other = `identity-${newId()}`;
        expect(await store.revokeIdentity(identityId)).toBe(0);
        expect(await store.generation(identityId)).toBe(1);
        await store.revokeIdentity(identityId);
        await store.revokeIdentity(identityId);
        expect(await store.generation(identityId)).toBe(3);
        expect(await store.generation(other)).toBe(0);
      });

      it('get hands back the generation stamped on the record', async () => {
        const record = await created({ generation: 7 });
        expect((await store.get(record.tokenId, record.createdAt))?.generation).toBe(7);
      });

      it('a record stamped below the generation, stored after the revocation, is refused by consume and extend', async () => {
        // A login that read generation 0, was still in flight while revokeIdentity ran, and stored its
        // record afterwards.
        const identityId = `identity-${newId()}`;
        const before = await store.generation(identityId);
        await store.revokeIdentity(identityId);
        const late = await created({ identityId, generation: before });
        const t = late.createdAt + 1;
        expect(await store.consume(late.tokenId, t)).toEqual({ ok: false, reason: 'revoked' });
        expect(await store.extend(late.tokenId, t)).toEqual({ ok: false, reason: 'revoked' });
        expect(await store.consume(late.tokenId, t)).toEqual({ ok: false, reason: 'revoked' });
        // Many uses at once (batched by the shared stores) are refused alike.
        const results = await Promise.all(Array.from({ length: 20 }, () => store.consume(late.tokenId, t)));
        expect(results.every((r) => !r.ok && r.reason === 'revoked')).toBe(true);
      });

      it('a record stamped at the current generation works; one stamped below it stops working once revoked', async () => {
        const identityId = `identity-${newId()}`;
        await store.revokeIdentity(identityId);
        await store.revokeIdentity(identityId);
        const current = await created({ identityId, generation: 2 });
        const t = current.createdAt + 1;
        expect((await store.consume(current.tokenId, t)).ok).toBe(true);
        expect((await store.extend(current.tokenId, t + 1000)).ok).toBe(true);
        await store.revokeIdentity(identityId);
        expect(await store.consume(current.tokenId, t + 2000)).toEqual({ ok: false, reason: 'revoked' });
        expect(await store.extend(current.tokenId, t + 2000)).toEqual({ ok: false, reason: 'revoked' });
      });

      it("another identity's revocation leaves a record alone", async () => {
        const record = await created({ generation: 0 });
        await store.revokeIdentity(`identity-${newId()}`);
        expect((await store.consume(record.tokenId, record.createdAt + 1)).ok).toBe(true);
      });
    });

    describe('unknown ids', () => {
      it('are not found, and revoking them is harmless', async () => {
        const id = newId();
        const now = Date.now();
        expect(await store.get(id, now)).toBeUndefined();
        expect(await store.consume(id, now)).toEqual({ ok: false, reason: 'not_found' });
        expect(await store.extend(id, now)).toEqual({ ok: false, reason: 'not_found' });
        await expect(store.revoke(id)).resolves.toBeUndefined();
        expect(await store.get(id, now)).toBeUndefined();
        expect(await store.revokeIdentity(`identity-${newId()}`)).toBe(0);
      });
    });
  });
}
