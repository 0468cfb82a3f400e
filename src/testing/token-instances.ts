import assert from 'node:assert/strict';
import { assertGranted, assertRefused, assertSameData } from './assertions.js';
import { newIdentityId } from './records.js';
import type { TokenCaseContext } from './token-context.js';

/** Two app instances on one backend: what one does, the other sees at once. */
export function tokenInstanceCases({ test, stores, created }: TokenCaseContext): void {
  const { describe, it } = test;

  describe('two instances on one backend', () => {
    it('a token created on one instance is read, used and renewed on the other', async () => {
      const [a, b] = await stores();
      const record = await created({ usesLimit: 5 });
      assertSameData(await b.get(record.tokenId, record.createdAt), record, 'get on the other instance');
      assert.equal(
        assertGranted(await b.consume(record.tokenId, record.createdAt + 1), 'use on B').usesCount,
        1,
      );
      const renewed = assertGranted(await b.extend(record.tokenId, record.createdAt + 2), 'renew on B');
      assert.equal((await a.get(record.tokenId, record.createdAt + 3))?.expiresAt, renewed.expiresAt);
    });

    it('uses counted on both instances add up to the limit (TOK-04)', async () => {
      const [a, b] = await stores();
      const record = await created({ usesLimit: 4 });
      const t = record.createdAt + 1;
      const counts = [];
      for (const store of [a, b, a, b])
        counts.push(assertGranted(await store.consume(record.tokenId, t), 'use').usesCount);
      assert.deepEqual(counts, [1, 2, 3, 4], 'each instance must count on the shared state, not its own');
      assertRefused(await a.consume(record.tokenId, t), 'uses_exhausted', 'use 5 of 4 on A');
      assertRefused(await b.consume(record.tokenId, t), 'uses_exhausted', 'use 5 of 4 on B');
    });

    it('TOK-04: a k-use token hit in parallel from two instances at once gives exactly k successes (k = 1, 2, 5, 10; 40 uses each)', async () => {
      const [a, b] = await stores();
      const limits = [1, 2, 5, 10];
      const records = await Promise.all(limits.map((usesLimit) => created({ usesLimit })));
      const now = Date.now();
      // Interleaved: the uses of every token reach both instances in the same turns.
      const uses = records.flatMap((record) =>
        Array.from({ length: 40 }, (_, i) => ({ record, store: i % 2 ? b : a })),
      );
      const results = await Promise.all(uses.map(({ record, store }) => store.consume(record.tokenId, now)));
      records.forEach((record, r) => {
        const mine = results.filter((_, i) => uses[i]!.record === record);
        const granted = mine.flatMap((result) => (result.ok ? [result.record.usesCount] : []));
        assert.deepEqual(
          granted.sort((x, y) => x - y),
          Array.from({ length: limits[r]! }, (_, i) => i + 1),
          `a ${limits[r]}-use token: the counts handed back across both instances (check and count must be one atomic step on the backend)`,
        );
        assert.ok(
          mine.every((result) => result.ok || result.reason === 'uses_exhausted'),
          'every other use is refused uses_exhausted',
        );
      });
      for (const [r, record] of records.entries()) {
        for (const store of [a, b]) {
          assert.equal((await store.get(record.tokenId, now))?.usesCount, limits[r], 'the count stored');
        }
      }
    });

    it('TOK-08: a token revoked on one instance is refused on the other at once', async () => {
      const [a, b] = await stores();
      const record = await created();
      assertGranted(await b.consume(record.tokenId, record.createdAt + 1), 'use on B before the revoke');
      await a.revoke(record.tokenId);
      assertRefused(await b.consume(record.tokenId, record.createdAt + 2), 'revoked', 'use on B');
      assertRefused(await b.extend(record.tokenId, record.createdAt + 2), 'revoked', 'renew on B');
    });

    it('TOK-08: an identity revoked on one instance: its tokens are refused and its generation raised on the other', async () => {
      const [a, b] = await stores();
      const identityId = newIdentityId();
      const record = await created({ identityId });
      assert.equal(await a.revokeIdentity(identityId), 1);
      assert.equal(await b.generation(identityId), 1, 'the generation read on B');
      assertRefused(await b.consume(record.tokenId, record.createdAt + 1), 'revoked', 'use on B');
    });
  });
}
