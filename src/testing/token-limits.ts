import assert from 'node:assert/strict';
import { CONFIG_LIMITS } from '../trust/config.js';
import { assertGranted, assertRefused, assertSameData } from './assertions.js';
import { newId } from './records.js';
import type { TokenCaseContext } from './token-context.js';

/** Metadata a store must keep as given: astral characters, empty keys and values, deep arrays. */
const AWKWARD_METADATA = {
  '': '',
  empty: '',
  emptyList: [],
  emptyObject: {},
  astral: '\u{1F512}\u{1F600}\u{10FFFF}𝄞',
  mixed: 'żółć ✓ 漢字 العربية \u200d\u{1F469}\u200d\u{1F4BB}',
  'key with "quotes", dots.and/slashes\\': 'v',
  '\u{1F511}': 'astral key',
  nested: [[[]], [[1, ['a', [true, [null]]]]], [{ deep: [[[['x']]]] }]],
  numbers: [0, -1, 1.5, 9_007_199_254_740_991, -9_007_199_254_740_991, 1e21, 5e-324],
  long: 'x'.repeat(16 * 1024),
};

/** Edges of time and size: expiry to the millisecond, the `now` a store is given, the largest values. */
export function tokenLimitCases({ test, stores, created }: TokenCaseContext): void {
  const { describe, it } = test;

  describe('expiry at the edges', () => {
    it('TOK-06: a token is usable at expiresAt - 1 and refused expired at expiresAt, by consume and extend alike', async () => {
      const [store] = await stores();
      const used = await created({ usesLimit: 0 });
      assertGranted(await store.consume(used.tokenId, used.expiresAt - 1), 'consume at expiresAt - 1');
      assertRefused(await store.consume(used.tokenId, used.expiresAt), 'expired', 'consume at expiresAt');
      const renewed = await created();
      assertRefused(await store.extend(renewed.tokenId, renewed.expiresAt), 'expired', 'extend at expiresAt');
      const edge = await created();
      const moved = assertGranted(
        await store.extend(edge.tokenId, edge.expiresAt - 1),
        'extend at expiresAt - 1',
      );
      assert.equal(moved.expiresAt, edge.expiresAt - 1 + edge.ttlSeconds * 1000, 'now + ttl');
      assert.ok((await store.get(edge.tokenId, edge.expiresAt - 1)) !== undefined, 'get at expiresAt - 1');
    });

    it('TOK-06: a renewed expiry is exact: usable until new expiresAt - 1, refused expired at it', async () => {
      const [store] = await stores();
      const record = await created();
      const now = record.createdAt + 10_000;
      const renewed = assertGranted(await store.extend(record.tokenId, now), 'renew');
      assertGranted(
        await store.consume(record.tokenId, renewed.expiresAt - 1),
        'use at the new expiresAt - 1',
      );
      assertRefused(
        await store.consume(record.tokenId, renewed.expiresAt),
        'expired',
        'use at the new expiresAt',
      );
    });

    it('TOK-07: a renewal that lands exactly on the max expiry succeeds, and the next is refused max_ttl_reached', async () => {
      const [store] = await stores();
      const now = Date.now();
      const record = await created({ createdAt: now, expiresAt: now + 60_000, maxExpiresAt: now + 90_000 });
      const exact = assertGranted(
        await store.extend(record.tokenId, now + 30_000),
        'now + ttl = maxExpiresAt',
      );
      assert.equal(exact.expiresAt, record.maxExpiresAt);
      assertRefused(
        await store.extend(record.tokenId, now + 30_001),
        'max_ttl_reached',
        'renew once at the max',
      );
    });

    it('decides with the now it is given, never its own clock: a token expired by the wall clock is usable at a now before its expiry', async () => {
      const [store] = await stores();
      const wall = Date.now();
      // Expired 30 s ago by the wall clock, renewable for ten more minutes (the backend keeps it).
      const record = await created({
        createdAt: wall - 90_000,
        expiresAt: wall - 30_000,
        maxExpiresAt: wall + 600_000,
      });
      assertGranted(
        await store.consume(record.tokenId, record.expiresAt - 1),
        'consume at the now passed in',
      );
      assertGranted(await store.extend(record.tokenId, record.expiresAt - 1), 'extend at the now passed in');
      const fresh = await created();
      assertRefused(
        await store.consume(fresh.tokenId, fresh.expiresAt + 5_000),
        'expired',
        'consume at a now past the expiry (the wall clock says it is live)',
      );
    });
  });

  describe('values at the limits the library accepts', () => {
    it(`counts against a uses limit of ${CONFIG_LIMITS.maxUsesLimit.toLocaleString('en-US')} (CONFIG_LIMITS.maxUsesLimit)`, async () => {
      const [store] = await stores();
      const limit = CONFIG_LIMITS.maxUsesLimit;
      const record = await created({ usesLimit: limit, usesCount: limit - 2 });
      const t = record.createdAt + 1;
      assert.equal(
        assertGranted(await store.consume(record.tokenId, t), 'use limit - 1').usesCount,
        limit - 1,
      );
      const last = assertGranted(await store.consume(record.tokenId, t), 'the last use');
      assert.equal(last.usesCount, limit);
      assert.equal(last.usesLimit, limit, 'the limit must read back exactly');
      assertRefused(await store.consume(record.tokenId, t), 'uses_exhausted', 'a use past the limit');
    });

    it(`holds TTLs of ${CONFIG_LIMITS.maxTtlSeconds.toLocaleString('en-US')} s (CONFIG_LIMITS.maxTtlSeconds): a ten-year max expiry, renewed exactly`, async () => {
      const [store] = await stores();
      const now = Date.now();
      const ttl = CONFIG_LIMITS.maxTtlSeconds;
      const record = await created({
        createdAt: now,
        expiresAt: now + ttl * 1000 - 1000,
        maxExpiresAt: now + ttl * 1000,
        ttlSeconds: ttl,
      });
      assertSameData(await store.get(record.tokenId, now), record, 'a record with the largest TTLs');
      const renewed = assertGranted(await store.extend(record.tokenId, now + 1), 'renew');
      assert.equal(
        renewed.expiresAt,
        record.maxExpiresAt,
        'min(now + ttl, maxExpiresAt), to the millisecond',
      );
      assertGranted(
        await store.consume(record.tokenId, record.maxExpiresAt - 1),
        'use a millisecond before it',
      );
    });

    it('keeps a 16 KiB subject and issuer, and a 128-character identity id, untruncated', async () => {
      const [store] = await stores();
      const identityId = `i${'d'.repeat(105)}${newId()}`;
      assert.equal(identityId.length, 128);
      const subject = `repo:${'s'.repeat(16 * 1024 - 7)}:ż`;
      const issuer = `https://idp.example.com/${'i'.repeat(16 * 1024 - 24)}`;
      const record = await created({ identityId, subject, issuer });
      const got = await store.get(record.tokenId, record.createdAt);
      assert.equal(got?.subject, subject, 'a 16 KiB subject must read back whole');
      assert.equal(got?.issuer, issuer, 'a 16 KiB issuer must read back whole');
      assert.equal(got?.identityId, identityId);
      assert.equal(await store.revokeIdentity(identityId), 1, 'revokeIdentity by a 128-character id');
    });

    it('keeps metadata exactly: astral characters, empty strings and keys, nested arrays, number edges, 16 KiB values', async () => {
      const [store] = await stores();
      const record = await created({ metadata: AWKWARD_METADATA, usesLimit: 2 });
      assertSameData(
        (await store.get(record.tokenId, record.createdAt))?.metadata,
        AWKWARD_METADATA,
        'metadata read by get',
      );
      const used = assertGranted(await store.consume(record.tokenId, record.createdAt + 1), 'use');
      assertSameData(used.metadata, AWKWARD_METADATA, 'metadata handed back by consume');
      const renewed = assertGranted(await store.extend(record.tokenId, record.createdAt + 2), 'renew');
      assertSameData(renewed.metadata, AWKWARD_METADATA, 'metadata handed back by extend');
    });

    it('keeps 256 trusted IP ranges (the most an identity may list) in order, and empty metadata', async () => {
      const [store] = await stores();
      const trustedIps = Array.from({ length: 256 }, (_, i) =>
        i % 2 ? `10.${i}.0.0/16` : `2001:db8:${i.toString(16)}::/48`,
      );
      const record = await created({ trustedIps, metadata: {} });
      assertSameData(await store.get(record.tokenId, record.createdAt), record, 'a record with 256 ranges');
    });
  });
}
