import assert from 'node:assert/strict';
import { assertGranted, assertSameData } from './assertions.js';
import { makeRecord } from './records.js';
import type { TokenCaseContext } from './token-context.js';

/**
 * What a token exchange (RFC 8693) narrowed a token to: its `scope` and `audience` live on the
 * record and must come back from every read, or the engine would hand out the token unnarrowed.
 */
export function tokenGrantCases({ test, stores, created }: TokenCaseContext): void {
  const { describe, it } = test;
  const scope = 'secrets:read deploy';
  const audience = ['https://api.example.com', 'urn:example:ledger'];

  describe('token exchange grant (scope and audience)', () => {
    it('RFC 8693 §2.1, §2.2.1: get, consume and extend hand back the scope and audience a record was created with, on either instance', async () => {
      const [a, b] = await stores();
      const record = await created({ scope, audience });
      const t = record.createdAt + 1;
      const both = [
        ['A', a],
        ['B', b],
      ] as const;
      for (const [name, store] of both) {
        const got = await store.get(record.tokenId, t);
        assertSameData(got, record, `get on ${name} must hand back the record with its scope and audience`);
      }
      for (const [name, store] of both) {
        const used = assertGranted(await store.consume(record.tokenId, t), `use on ${name}`);
        assert.equal(used.scope, scope, `consume on ${name} must hand back the scope`);
        assert.deepEqual(used.audience, audience, `consume on ${name} must hand back the audience`);
        const renewed = assertGranted(await store.extend(record.tokenId, t), `renew on ${name}`);
        assert.equal(renewed.scope, scope, `extend on ${name} must hand back the scope`);
        assert.deepEqual(renewed.audience, audience, `extend on ${name} must hand back the audience`);
      }
    });

    it('a record with a scope but no audience (and one audience but no scope) keeps exactly that', async () => {
      const [store] = await stores();
      const scoped = await created({ scope: 'read' });
      const aimed = await created({ audience: ['https://api.example.com'] });
      for (const record of [scoped, aimed]) {
        const t = record.createdAt + 1;
        assertSameData(await store.get(record.tokenId, t), record, 'get');
        assertSameData(
          { ...assertGranted(await store.consume(record.tokenId, t), 'use'), usesCount: 0 },
          record,
          'consume',
        );
        const renewed = assertGranted(await store.extend(record.tokenId, t), 'renew');
        assert.equal(renewed.scope, record.scope, 'extend must hand back the scope as created');
        assert.deepEqual(renewed.audience, record.audience, 'extend must hand back the audience as created');
      }
    });

    it('a record created without scope and audience reads back without them from get, consume and extend', async () => {
      const [store] = await stores();
      const record = await created();
      const t = record.createdAt + 1;
      const reads = [
        await store.get(record.tokenId, t),
        assertGranted(await store.consume(record.tokenId, t), 'use'),
        assertGranted(await store.extend(record.tokenId, t), 'renew'),
      ];
      for (const [i, got] of reads.entries()) {
        const what = ['get', 'consume', 'extend'][i]!;
        assert.ok(got, `${what} must find the record`);
        assert.equal(
          got.scope,
          undefined,
          `${what}: scope must read back absent (undefined), not null or ""`,
        );
        assert.equal(
          got.audience,
          undefined,
          `${what}: audience must read back absent (undefined), not null or []`,
        );
      }
    });

    it('create on a known token id replaces its scope and audience, removing them when the new record has none', async () => {
      const [store] = await stores();
      const record = await created({ scope, audience });
      const { scope: _s, audience: _a, ...bare } = record;
      await store.create(bare);
      const got = await store.get(record.tokenId, record.createdAt);
      assert.equal(got?.scope, undefined, 'the replaced record has no scope');
      assert.equal(got?.audience, undefined, 'the replaced record has no audience');
      const narrowed = makeRecord({ tokenId: record.tokenId, scope: 'read', audience: ['urn:x'] });
      await store.create(narrowed);
      assertSameData(await store.get(record.tokenId, record.createdAt), narrowed, 'the third create');
    });
  });
}
