import assert from 'node:assert/strict';
import { assertGranted, assertRefused, expectAllRevoked, tick } from './assertions.js';
import { makeRecord, newId, newIdentityId } from './records.js';
import type { TokenCaseContext } from './token-context.js';

/** Revoking a token (`revoke`) and an identity (`revokeIdentity`, `generation`). */
export function tokenRevocationCases({ test, stores, created }: TokenCaseContext): void {
  const { describe, it } = test;

  describe('revoke', () => {
    it('TOK-08: a revoked token is refused, including after a renewal', async () => {
      const [store] = await stores();
      const record = await created();
      assertGranted(await store.extend(record.tokenId, record.createdAt + 1000), 'renew before the revoke');
      await store.revoke(record.tokenId);
      assertRefused(
        await store.consume(record.tokenId, record.createdAt + 2000),
        'revoked',
        'use after revoke',
      );
      assert.equal((await store.get(record.tokenId, record.createdAt + 2000))?.revoked, true);
    });

    it('revoke is idempotent: twice in a row, or at once from two instances, the token stays revoked', async () => {
      const [a, b] = await stores();
      const record = await created();
      await a.revoke(record.tokenId);
      await a.revoke(record.tokenId);
      assertRefused(
        await a.consume(record.tokenId, record.createdAt + 1),
        'revoked',
        'use after two revokes',
      );
      const other = await created();
      const answers = await Promise.all([a, b, a, b].map((store) => store.revoke(other.tokenId)));
      assert.deepEqual(answers, [undefined, undefined, undefined, undefined], 'revoke resolves with nothing');
      for (const store of [a, b]) {
        assertRefused(
          await store.consume(other.tokenId, other.createdAt + 1),
          'revoked',
          'use after parallel revokes',
        );
      }
    });

    it('revoke touches that token only', async () => {
      const [store] = await stores();
      const identityId = newIdentityId();
      const revoked = await created({ identityId });
      const sibling = await created({ identityId });
      await store.revoke(revoked.tokenId);
      assertGranted(
        await store.consume(sibling.tokenId, sibling.createdAt + 1),
        "another of the identity's tokens",
      );
      assert.equal(await store.generation(identityId), 0, 'revoke must not raise the identity generation');
    });
  });

  describe('revokeIdentity', () => {
    it('TOK-08: revokes every token of the identity and counts the live ones', async () => {
      const [store] = await stores();
      const identityId = newIdentityId();
      const live = await Promise.all([1, 2, 3].map(() => created({ identityId })));
      const now = Date.now();
      const expired = await created({ identityId, createdAt: now - 120_000, expiresAt: now - 60_000 });
      const revoked = await created({ identityId });
      await store.revoke(revoked.tokenId);
      const other = await created();

      assert.equal(
        await store.revokeIdentity(identityId),
        3,
        'the count is of tokens live and not yet revoked',
      );
      for (const record of [...live, revoked]) {
        assertRefused(
          await store.consume(record.tokenId, Date.now()),
          'revoked',
          "a revoked identity's token",
        );
      }
      assert.equal((await store.consume(expired.tokenId, Date.now())).ok, false);
      assertGranted(await store.consume(other.tokenId, Date.now()), "another identity's token");
      assert.equal(await store.revokeIdentity(identityId), 0, 'a second revocation finds none live');
    });

    it('leaves tokens of logins that began afterwards alone', async () => {
      const [store] = await stores();
      const identityId = newIdentityId();
      await created({ identityId });
      assert.equal(await store.revokeIdentity(identityId), 1);
      const fresh = await created({ identityId, generation: await store.generation(identityId) });
      assertGranted(
        await store.consume(fresh.tokenId, Date.now()),
        'a token stamped with the raised generation',
      );
      assert.equal(await store.revokeIdentity(identityId), 1);
    });
  });

  describe('#13.1 identity revocation leaves no survivor: generations', () => {
    it('an identity never revoked (or unknown) has generation 0', async () => {
      const [store] = await stores();
      assert.equal(await store.generation(newIdentityId()), 0);
    });

    it('revokeIdentity raises the generation by one each time, for that identity only', async () => {
      const [store] = await stores();
      const identityId = newIdentityId();
      const other = newIdentityId();
      assert.equal(await store.revokeIdentity(identityId), 0);
      assert.equal(await store.generation(identityId), 1, 'after one revocation');
      await store.revokeIdentity(identityId);
      await store.revokeIdentity(identityId);
      assert.equal(await store.generation(identityId), 3, 'after three revocations');
      assert.equal(await store.generation(other), 0, 'another identity');
    });

    it('parallel revocations from two instances each raise the generation: none is lost', async () => {
      const [a, b] = await stores();
      const identityId = newIdentityId();
      await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 ? b : a).revokeIdentity(identityId)));
      for (const store of [a, b]) {
        assert.equal(
          await store.generation(identityId),
          10,
          'raise the generation atomically (an increment)',
        );
      }
    });

    it('get hands back the generation stamped on the record', async () => {
      const [store] = await stores();
      const record = await created({ generation: 7 });
      assert.equal((await store.get(record.tokenId, record.createdAt))?.generation, 7);
    });

    it('a record stamped below the generation, stored after the revocation, is refused by consume and extend', async () => {
      // A login that read generation 0, was still in flight while revokeIdentity ran, and stored its
      // record afterwards.
      const [store] = await stores();
      const identityId = newIdentityId();
      const before = await store.generation(identityId);
      await store.revokeIdentity(identityId);
      const late = await created({ identityId, generation: before });
      const t = late.createdAt + 1;
      assertRefused(await store.consume(late.tokenId, t), 'revoked', 'consume of a record stamped below');
      assertRefused(await store.extend(late.tokenId, t), 'revoked', 'extend of a record stamped below');
      assertRefused(await store.consume(late.tokenId, t), 'revoked', 'consume after the extend');
      // Many uses at once (batched by some stores) are refused alike.
      const results = await Promise.all(Array.from({ length: 20 }, () => store.consume(late.tokenId, t)));
      assert.ok(
        results.every((r) => !r.ok && r.reason === 'revoked'),
        'parallel uses of a record stamped below must all be refused revoked',
      );
    });

    it('a record stamped at the current generation works; one stamped below it stops working once revoked', async () => {
      const [store] = await stores();
      const identityId = newIdentityId();
      await store.revokeIdentity(identityId);
      await store.revokeIdentity(identityId);
      const current = await created({ identityId, generation: 2 });
      const t = current.createdAt + 1;
      assertGranted(await store.consume(current.tokenId, t), 'consume at the current generation');
      assertGranted(await store.extend(current.tokenId, t + 1000), 'extend at the current generation');
      await store.revokeIdentity(identityId);
      assertRefused(
        await store.consume(current.tokenId, t + 2000),
        'revoked',
        'consume after the next revocation',
      );
      assertRefused(
        await store.extend(current.tokenId, t + 2000),
        'revoked',
        'extend after the next revocation',
      );
    });

    it("another identity's revocation leaves a record alone", async () => {
      const [store] = await stores();
      const record = await created({ generation: 0 });
      await store.revokeIdentity(newIdentityId());
      assertGranted(await store.consume(record.tokenId, record.createdAt + 1), 'use');
    });

    it('#13.1 identity revocation leaves no survivor: records created on two instances while revokeIdentity runs, stamped with the generation read before it, are all refused afterwards by consume and extend on both', async () => {
      const [a, b] = await stores();
      for (let round = 0; round < 4; round++) {
        const identityId = newIdentityId();
        // What a login does: read the generation, then (its config loaded) store the record.
        const stamp = await (round % 2 ? b : a).generation(identityId);
        const records = Array.from({ length: 24 }, () => makeRecord({ identityId, generation: stamp }));
        const creating: Promise<void>[] = [];
        let revoking: Promise<number> | undefined;
        for (let i = 0; i < records.length; i++) {
          if (i === 6) revoking = (round % 2 ? a : b).revokeIdentity(identityId);
          creating.push((i % 2 ? b : a).create(records[i]!));
          if (i % 3 === 2) await tick();
        }
        await Promise.all([revoking, ...creating]);
        // And one stored once the revocation had returned, by a login that read the generation before.
        const late = makeRecord({ identityId, generation: stamp });
        await (round % 2 ? a : b).create(late);
        await expectAllRevoked([a, b], [...records, late], `round ${round + 1}`, 'revokeIdentity');
      }
    });
  });

  describe('unknown ids', () => {
    it('are not found, and revoking them is harmless', async () => {
      const [store] = await stores();
      const id = newId();
      const now = Date.now();
      assert.equal(await store.get(id, now), undefined);
      assertRefused(await store.consume(id, now), 'not_found', 'consume of an unknown id');
      assertRefused(await store.extend(id, now), 'not_found', 'extend of an unknown id');
      assert.equal(await store.revoke(id), undefined);
      assert.equal(await store.get(id, now), undefined, 'revoking an unknown id must create nothing');
      assert.equal(await store.revokeIdentity(newIdentityId()), 0);
    });
  });
}
