import assert from 'node:assert/strict';
import { assertGranted, assertRefused, assertSameData } from './assertions.js';
import { makeRecord } from './records.js';
import type { TokenCaseContext } from './token-context.js';

/** Storing and reading records, counting uses (`consume`) and renewing (`extend`). */
export function tokenUseCases({ test, stores, created }: TokenCaseContext): void {
  const { describe, it } = test;

  describe('create and get', () => {
    it('get returns the record as created, every field and type intact', async () => {
      const [store] = await stores();
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
      assertSameData(got, record, 'get must hand back exactly what create stored');
    });

    it('keeps issuer and subject absent when the record has none', async () => {
      const [store] = await stores();
      const { issuer: _i, subject: _s, ...bare } = makeRecord();
      await store.create(bare);
      const got = await store.get(bare.tokenId, bare.createdAt);
      assertSameData(got, bare, 'a record without issuer and subject');
      assert.equal(got?.issuer, undefined, 'issuer must read back absent (undefined), not null or ""');
      assert.equal(got?.subject, undefined, 'subject must read back absent (undefined), not null or ""');
    });

    it('CLM-06: claim values with newline, CR, ESC and NUL are stored untruncated', async () => {
      const [store] = await stores();
      const value = 'a\nb\rc\u001bd\u0000e';
      // The engine refuses a login whose iss or sub holds NUL (PostgreSQL text cannot); metadata can.
      const subject = 'repo:a\nb\rc\u001bd';
      const record = await created({ metadata: { ref: value, [value]: 1 }, subject });
      const got = await store.get(record.tokenId, record.createdAt);
      assertSameData(got?.metadata, { ref: value, [value]: 1 }, 'metadata with control characters');
      assert.equal(got?.subject, subject, 'subject with control characters');
    });

    it('get counts no use', async () => {
      const [store] = await stores();
      const record = await created({ usesLimit: 1 });
      await store.get(record.tokenId, record.createdAt);
      await store.get(record.tokenId, record.createdAt);
      assertGranted(await store.consume(record.tokenId, record.createdAt + 1), 'the one use after two gets');
    });

    it('get of an expired token returns nothing usable', async () => {
      const [store] = await stores();
      const record = await created();
      const got = await store.get(record.tokenId, record.expiresAt);
      // A store may hand the record back at its expiry (the engine checks expiresAt), never later.
      if (got) assert.ok(got.expiresAt <= record.expiresAt, 'get at expiry handed back a later expiry');
      const again = await store.get(record.tokenId, record.expiresAt + 1);
      assert.equal(again, undefined, 'get past the expiry of a token not revoked must give undefined');
    });

    it('create on a known token id replaces its record', async () => {
      const [store] = await stores();
      const record = await created({ usesLimit: 1 });
      const replacement = { ...record, usesLimit: 5, metadata: { replaced: true } };
      await store.create(replacement);
      assertSameData(await store.get(record.tokenId, record.createdAt), replacement, 'the second create');
    });
  });

  describe('consume', () => {
    it('counts uses until exhausted, then refuses with uses_exhausted', async () => {
      const [store] = await stores();
      const record = await created({ usesLimit: 3 });
      const t = record.createdAt + 1;
      for (let expected = 1; expected <= 3; expected++) {
        const got = assertGranted(await store.consume(record.tokenId, t), `use ${expected} of 3`);
        assert.equal(got.tokenId, record.tokenId);
        assert.equal(got.usesCount, expected, `use ${expected} of 3 must hand back usesCount ${expected}`);
      }
      assertRefused(await store.consume(record.tokenId, t), 'uses_exhausted', 'use 4 of 3');
      assertRefused(await store.consume(record.tokenId, t), 'uses_exhausted', 'use 5 of 3');
      assert.equal((await store.get(record.tokenId, t))?.usesCount, 3, 'refused uses must not be counted');
    });

    it('hands back the whole record with the use counted', async () => {
      const [store] = await stores();
      const record = await created({ usesLimit: 2, metadata: { a: [1, { b: true }] } });
      const got = assertGranted(await store.consume(record.tokenId, record.createdAt + 1), 'first use');
      assertSameData(got, { ...record, usesCount: 1 }, 'the record a use hands back');
    });

    it('a limit of 0 allows any number of uses, each counted', async () => {
      const [store] = await stores();
      const record = await created({ usesLimit: 0 });
      for (let i = 1; i <= 60; i++) {
        assertGranted(await store.consume(record.tokenId, record.createdAt + i), `use ${i} of unlimited`);
      }
      assert.equal((await store.get(record.tokenId, record.createdAt))?.usesCount, 60);
    });

    it('TOK-06: refuses a token at and after its expiry with expired (valid while now < expiresAt)', async () => {
      const [store] = await stores();
      const record = await created({ usesLimit: 10 });
      assertGranted(await store.consume(record.tokenId, record.expiresAt - 1), 'use at expiresAt - 1');
      assertRefused(await store.consume(record.tokenId, record.expiresAt), 'expired', 'use at expiresAt');
      const later = await store.consume(record.tokenId, record.expiresAt + 1000);
      assert.ok(
        !later.ok && (later.reason === 'expired' || later.reason === 'not_found'),
        `use after expiry must be refused expired (or not_found once dropped), got ${JSON.stringify(later)}`,
      );
    });

    it('refuses a revoked token with revoked, even past its expiry', async () => {
      const [store] = await stores();
      const record = await created();
      await store.revoke(record.tokenId);
      assertRefused(await store.consume(record.tokenId, record.expiresAt + 1), 'revoked', 'use past expiry');
    });

    it('TOK-04: 50 parallel uses of a 1-use token give exactly one success', async () => {
      const [store] = await stores();
      const record = await created({ usesLimit: 1 });
      const results = await Promise.all(
        Array.from({ length: 50 }, () => store.consume(record.tokenId, record.createdAt + 1)),
      );
      assert.equal(
        results.filter((r) => r.ok).length,
        1,
        'check and count must be one atomic step: more than one use got through',
      );
      assert.equal(results.filter((r) => !r.ok && r.reason === 'uses_exhausted').length, 49);
      assert.equal((await store.get(record.tokenId, record.createdAt + 1))?.usesCount, 1);
    });

    it('TOK-04: 50 parallel uses of a 5-use token give exactly five successes', async () => {
      const [store] = await stores();
      const record = await created({ usesLimit: 5 });
      const results = await Promise.all(
        Array.from({ length: 50 }, () => store.consume(record.tokenId, record.createdAt + 1)),
      );
      assert.equal(results.filter((r) => r.ok).length, 5, 'exactly the 5 uses allowed may succeed');
      assert.equal((await store.get(record.tokenId, record.createdAt + 1))?.usesCount, 5);
    });

    it('hands back a snapshot: each of parallel successes sees its own use count', async () => {
      const [store] = await stores();
      const record = await created({ usesLimit: 5 });
      const results = await Promise.all(
        Array.from({ length: 5 }, () => store.consume(record.tokenId, record.createdAt + 1)),
      );
      const counts = results.flatMap((r) => (r.ok ? [r.record.usesCount] : []));
      assert.deepEqual(
        counts.sort((a, b) => a - b),
        [1, 2, 3, 4, 5],
        'each success must carry the count after its own use, not a shared object later uses change',
      );
    });
  });

  describe('extend (renew)', () => {
    it('TOK-07: moves the expiry to now + ttl and keeps the uses counted', async () => {
      const [store] = await stores();
      const record = await created({ usesLimit: 5, ttlSeconds: 60 });
      await store.consume(record.tokenId, record.createdAt + 1);
      await store.consume(record.tokenId, record.createdAt + 2);
      const now = record.createdAt + 30_000;
      const renewed = assertGranted(await store.extend(record.tokenId, now), 'renew');
      assertSameData(renewed, { ...record, usesCount: 2, expiresAt: now + 60_000 }, 'the renewed record');
      assert.equal((await store.get(record.tokenId, now))?.expiresAt, now + 60_000, 'the stored expiry');
      assertGranted(await store.consume(record.tokenId, now + 59_000), 'use within the renewed lifetime');
    });

    it('TOK-07: never passes the max expiry; at it, renewal is refused with max_ttl_reached', async () => {
      const [store] = await stores();
      const record = await created({ ttlSeconds: 60 });
      let now = record.createdAt;
      let expiresAt = record.expiresAt;
      while (expiresAt < record.maxExpiresAt) {
        now += 45_000;
        const renewed = assertGranted(
          await store.extend(record.tokenId, now),
          `renew at +${now - record.createdAt} ms`,
        );
        assert.equal(
          renewed.expiresAt,
          Math.min(now + 60_000, record.maxExpiresAt),
          'min(now + ttl, maxExpiresAt)',
        );
        expiresAt = renewed.expiresAt;
      }
      assert.equal(expiresAt, record.maxExpiresAt);
      assertRefused(await store.extend(record.tokenId, now + 1000), 'max_ttl_reached', 'renew at the max');
      assertGranted(await store.consume(record.tokenId, record.maxExpiresAt - 1), 'use just before the max');
      // At the max expiry the token has also expired; expiry is checked first.
      assertRefused(
        await store.extend(record.tokenId, record.maxExpiresAt),
        'expired',
        'renew at maxExpiresAt',
      );
    });

    it('TOK-07: refuses with max_ttl_reached when the expiry somehow passed the max', async () => {
      const [store] = await stores();
      const now = Date.now();
      const record = await created({ expiresAt: now + 120_000, maxExpiresAt: now + 60_000 });
      assertRefused(await store.extend(record.tokenId, now + 1000), 'max_ttl_reached', 'renew past the max');
    });

    it('refuses an expired token with expired', async () => {
      const [store] = await stores();
      const record = await created();
      assertRefused(await store.extend(record.tokenId, record.expiresAt), 'expired', 'renew at expiresAt');
    });

    it('refuses a used-up token with uses_exhausted', async () => {
      const [store] = await stores();
      const record = await created({ usesLimit: 1 });
      await store.consume(record.tokenId, record.createdAt + 1);
      assertRefused(await store.extend(record.tokenId, record.createdAt + 2), 'uses_exhausted', 'renew');
    });

    it('TOK-08: refuses a revoked token with revoked', async () => {
      const [store] = await stores();
      const record = await created();
      await store.revoke(record.tokenId);
      assertRefused(await store.extend(record.tokenId, record.createdAt + 1), 'revoked', 'renew');
    });

    it('TOK-05: renewing neither resets nor spends uses: the uses left carry over', async () => {
      const [store] = await stores();
      const record = await created({ usesLimit: 3 });
      const t = record.createdAt;
      assertGranted(await store.consume(record.tokenId, t + 1), 'use 1 of 3');
      const renewed = assertGranted(await store.extend(record.tokenId, t + 2), 'renew after one use');
      assert.equal(renewed.usesCount, 1, 'renew must keep the uses counted');
      assertGranted(await store.extend(record.tokenId, t + 3), 'a second renew');
      assert.equal(assertGranted(await store.consume(record.tokenId, t + 4), 'use 2 of 3').usesCount, 2);
      assert.equal(assertGranted(await store.consume(record.tokenId, t + 5), 'use 3 of 3').usesCount, 3);
      assertRefused(
        await store.consume(record.tokenId, t + 6),
        'uses_exhausted',
        'use 4 of 3 after renewals',
      );
      assertRefused(await store.extend(record.tokenId, t + 7), 'uses_exhausted', 'renew of a used-up token');
    });

    it('TOK-07: parallel renewals that reach the max expiry: exactly one succeeds, the rest are refused max_ttl_reached', async () => {
      const [a, b] = await stores();
      // now + ttl reaches the max: the first renewal moves the expiry to it, none is left for the rest.
      const now = Date.now();
      const record = await created({ createdAt: now, expiresAt: now + 60_000, maxExpiresAt: now + 90_000 });
      const results = await Promise.all(
        Array.from({ length: 20 }, (_, i) => (i % 2 ? b : a).extend(record.tokenId, now + 30_000)),
      );
      const granted = results.filter((r) => r.ok);
      assert.equal(
        granted.length,
        1,
        'check and renew must be one atomic step: more than one renewal got through',
      );
      assert.equal(granted[0]!.ok && granted[0]!.record.expiresAt, record.maxExpiresAt);
      const reasons = results.filter((r) => !r.ok).map((r) => !r.ok && r.reason);
      assert.deepEqual(new Set(reasons), new Set(['max_ttl_reached']));
    });
  });
}
