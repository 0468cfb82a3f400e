import assert from 'node:assert/strict';
import { assertGranted, assertSameData } from './assertions.js';
import { makeRecord } from './records.js';
import type { TokenCaseContext } from './token-context.js';

/**
 * A DPoP-bound token (RFC 9449): the thumbprint of its key lives on the record and must come back
 * from every read, or the engine would take the token as a bearer token (anyone holding the string
 * could use it).
 */
export function tokenBindingCases({ test, stores, created }: TokenCaseContext): void {
  const { describe, it } = test;
  // An RFC 7638 SHA-256 thumbprint: 43 base64url characters.
  const jkt = '0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I';

  describe('DPoP binding (jkt)', () => {
    it('RFC 9449 §6: get, consume and extend hand back the jkt a record was created with, on either instance', async () => {
      const [a, b] = await stores();
      const record = await created({ jkt });
      const t = record.createdAt + 1;
      const both = [
        ['A', a],
        ['B', b],
      ] as const;
      for (const [name, store] of both) {
        assertSameData(await store.get(record.tokenId, t), record, `get on ${name} must keep the jkt`);
      }
      for (const [name, store] of both) {
        const used = assertGranted(await store.consume(record.tokenId, t), `use on ${name}`);
        assert.equal(used.jkt, jkt, `consume on ${name} must hand back the jkt`);
        const renewed = assertGranted(await store.extend(record.tokenId, t), `renew on ${name}`);
        assert.equal(
          renewed.jkt,
          jkt,
          `extend on ${name} must hand back the jkt (renewal keeps the binding)`,
        );
      }
    });

    it('a record created without jkt reads back without one (a bearer token), and create on its id with a jkt binds it', async () => {
      const [store] = await stores();
      const record = await created();
      const t = record.createdAt + 1;
      const got = await store.get(record.tokenId, t);
      assert.equal(got?.jkt, undefined, 'jkt must read back absent (undefined), not null or ""');
      const bound = makeRecord({ tokenId: record.tokenId, jkt });
      await store.create(bound);
      assertSameData(await store.get(record.tokenId, bound.createdAt), bound, 'the second create binds it');
    });
  });
}
