import assert from 'node:assert/strict';
import type { TokenStore } from '../types.js';
import { assertGranted, assertRefused, expectAllRevoked, tick } from './assertions.js';
import { makeRecord, newId, newIdentityId } from './records.js';
import type { TokenCaseContext } from './token-context.js';

type ByClaim = TokenStore & Required<Pick<TokenStore, 'revokeWhere' | 'revocationStamps'>>;

/** Entries kept an hour, at most 100 000: what the cases pass unless they test the limits. */
const LIMITS = { keepMs: 3_600_000, maxEntries: 100_000 };

/**
 * Revocation by claim (`revokeWhere`, `revocationStamps`): matching tokens revoked and counted,
 * others untouched, and no survivor among records of logins in flight, created on either instance
 * while it runs or afterwards. Declared last but the outage cases: a case here raises the floor.
 */
export function tokenRevokeWhereCases({ test, stores, created }: TokenCaseContext): void {
  const { describe, it } = test;

  async function both(): Promise<readonly [ByClaim, ByClaim]> {
    const [a, b] = await stores();
    for (const store of [a, b]) {
      assert.equal(
        typeof store.revokeWhere === 'function' && typeof store.revocationStamps === 'function',
        true,
        'the store must implement revokeWhere and revocationStamps (or pass revokeWhere: false to the suite)',
      );
    }
    return [a as ByClaim, b as ByClaim];
  }

  const runId = () => `run-${newId()}`;

  describe('revokeWhere: revocation by claim', () => {
    it('revocationStamps reads the generation and a claim epoch that each revokeWhere raises by one, from either instance', async () => {
      const [a, b] = await both();
      const identityId = newIdentityId();
      await a.revokeIdentity(identityId);
      const before = await a.revocationStamps(identityId);
      assert.equal(before.generation, 1, 'the generation, as generation() reads it');
      assert.equal(Number.isSafeInteger(before.claimEpoch) && before.claimEpoch >= 0, true);
      await Promise.all(
        Array.from({ length: 10 }, (_, i) =>
          (i % 2 ? b : a).revokeWhere({ claim: 'run_id', value: runId() }, Date.now(), LIMITS),
        ),
      );
      for (const store of [a, b]) {
        assert.equal(
          (await store.revocationStamps(identityId)).claimEpoch,
          before.claimEpoch + 10,
          'ten parallel revocations raise the epoch by ten: none is lost',
        );
      }
    });

    it('revokes every token whose login carried the value, counts the live ones, and leaves other values alone', async () => {
      const [a, b] = await both();
      const run = runId();
      const other = runId();
      const now = Date.now();
      const hit = await Promise.all(
        [1, 2, 3].map(() => created({ claims: { run_id: run, repository: 'acme/api' } })),
      );
      const expired = await created({
        claims: { run_id: run },
        createdAt: now - 120_000,
        expiresAt: now - 60_000,
      });
      const revoked = await created({ claims: { run_id: run } });
      await a.revoke(revoked.tokenId);
      const untouched = [
        await created({ claims: { run_id: other, repository: 'acme/api' } }),
        await created({ claims: { repository: run } }), // the value under another claim
        await created(), // no claims at all
      ];
      assert.equal(
        await b.revokeWhere({ claim: 'run_id', value: run }, Date.now(), LIMITS),
        3,
        'the count is of tokens live and not yet revoked',
      );
      for (const store of [a, b]) {
        for (const record of [...hit, revoked]) {
          assertRefused(await store.consume(record.tokenId, Date.now()), 'revoked', 'use of a revoked run');
          assertRefused(await store.extend(record.tokenId, Date.now()), 'revoked', 'renew of a revoked run');
        }
        assert.equal((await store.consume(expired.tokenId, Date.now())).ok, false);
        for (const record of untouched) {
          assertGranted(await store.consume(record.tokenId, Date.now()), 'a token of another value');
        }
      }
      assert.equal(
        await a.revokeWhere({ claim: 'run_id', value: run }, Date.now(), LIMITS),
        0,
        'a second revocation finds none live',
      );
    });

    it('with identityId, revokes that identity’s matching tokens only', async () => {
      const [a] = await both();
      const run = runId();
      const identityId = newIdentityId();
      const mine = await created({ identityId, claims: { run_id: run } });
      const theirs = await created({ claims: { run_id: run } });
      assert.equal(await a.revokeWhere({ identityId, claim: 'run_id', value: run }, Date.now(), LIMITS), 1);
      assertRefused(await a.consume(mine.tokenId, Date.now()), 'revoked', 'the identity’s token');
      assertGranted(await a.consume(theirs.tokenId, Date.now()), 'another identity’s token of the run');
      // A late record of that identity is refused; one of another identity is not.
      const { claimEpoch } = await a.revocationStamps(identityId);
      const lateMine = await created({ identityId, claims: { run_id: run }, claimEpoch: claimEpoch - 1 });
      const lateTheirs = await created({ claims: { run_id: run }, claimEpoch: claimEpoch - 1 });
      assertRefused(
        await a.consume(lateMine.tokenId, Date.now()),
        'revoked',
        'a late record of the identity',
      );
      assertGranted(await a.consume(lateTheirs.tokenId, Date.now()), 'a late record of another identity');
    });

    it('a login that began after the revocation (stamped with the raised epoch) is not affected', async () => {
      const [a, b] = await both();
      const run = runId();
      await a.revokeWhere({ claim: 'run_id', value: run }, Date.now(), LIMITS);
      const { claimEpoch } = await b.revocationStamps(newIdentityId());
      const fresh = await created({ claims: { run_id: run }, claimEpoch });
      assertGranted(await b.consume(fresh.tokenId, Date.now()), 'a token stamped with the raised epoch');
      assertGranted(await b.extend(fresh.tokenId, Date.now() + 1000), 'its renewal');
    });

    it('#16 revoke-by-claim leaves no survivor: records of logins in flight, created on two instances while revokeWhere runs and after it returned, stamped with the epoch read before it, are all refused by consume and extend on both; other runs’ records are untouched', async () => {
      const [a, b] = await both();
      for (let round = 0; round < 4; round++) {
        const run = runId();
        const other = runId();
        // What a login does: read the stamps, then (verified, its config loaded) store the record.
        const { claimEpoch } = await (round % 2 ? b : a).revocationStamps(newIdentityId());
        const stamped = (value: string) =>
          makeRecord({ claims: { run_id: value, sha: 'abc' }, claimEpoch: claimEpoch || undefined });
        const records = Array.from({ length: 24 }, () => stamped(run));
        const others = Array.from({ length: 6 }, () => stamped(other));
        const creating: Promise<void>[] = [];
        let revoking: Promise<number> | undefined;
        for (let i = 0; i < records.length; i++) {
          if (i === 6) {
            revoking = (round % 2 ? a : b).revokeWhere({ claim: 'run_id', value: run }, Date.now(), LIMITS);
          }
          creating.push((i % 2 ? b : a).create(records[i]!));
          if (i < others.length) creating.push((i % 2 ? a : b).create(others[i]!));
          if (i % 3 === 2) await tick();
        }
        await Promise.all([revoking, ...creating]);
        const late = stamped(run);
        await (round % 2 ? a : b).create(late);
        await expectAllRevoked([a, b], [...records, late], `round ${round + 1}`, 'revokeWhere');
        for (const record of others) {
          assertGranted(
            await a.consume(record.tokenId, Date.now()),
            `round ${round + 1}: another run’s token`,
          );
        }
      }
    });

    it('past maxEntries entries in force, revokeWhere refuses with revocation_limit_reached (503, Retry-After) and changes nothing', async () => {
      const [a] = await both();
      const run = runId();
      const record = await created({ claims: { run_id: run } });
      const before = (await a.revocationStamps(record.identityId)).claimEpoch;
      await assert.rejects(
        a.revokeWhere({ claim: 'run_id', value: run }, Date.now(), { keepMs: LIMITS.keepMs, maxEntries: 0 }),
        (error: { code?: unknown; status?: unknown; headers?: Record<string, string> }) =>
          error.code === 'revocation_limit_reached' &&
          error.status === 503 &&
          Number(error.headers?.['retry-after']) >= 1,
      );
      assertGranted(await a.consume(record.tokenId, Date.now()), 'the token of a refused revocation');
      assert.equal(
        (await a.revocationStamps(record.identityId)).claimEpoch,
        before,
        'the epoch did not move',
      );
    });

    it('entries go once keepMs old, raising a floor: a record with claims stamped below a dropped entry is revoked as it is created; one without claims is not', async () => {
      const [a, b] = await both();
      const { claimEpoch: stamp } = await a.revocationStamps(newIdentityId());
      const now = Date.now();
      await a.revokeWhere({ claim: 'run_id', value: runId() }, now, LIMITS);
      // An hour later, the next revocation drops the first entry.
      await b.revokeWhere({ claim: 'run_id', value: runId() }, now + LIMITS.keepMs, LIMITS);
      const withClaims = await created({ claims: { run_id: runId() }, claimEpoch: stamp || undefined });
      const without = await created({ claimEpoch: stamp || undefined });
      assertRefused(
        await b.consume(withClaims.tokenId, Date.now()),
        'revoked',
        'a login in flight across a whole keepMs, its revocation forgotten',
      );
      assertGranted(
        await b.consume(without.tokenId, Date.now()),
        'a record no revocation by claim can match',
      );
    });
  });
}
