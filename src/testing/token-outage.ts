import { assertFailsClosed, assertGranted, assertRefused, eventually } from './assertions.js';
import { makeRecord, newId, newIdentityId } from './records.js';
import type { OutageHook } from './outage-hook.js';
import type { TokenCaseContext } from './token-context.js';
import type { TokenStore } from '../types.js';

/** Every method of both instances, each expected to fail closed while the backend is down. */
function everyMethod(store: TokenStore, tokenId: string): Array<[string, () => Promise<unknown>]> {
  const now = Date.now();
  return [
    ['consume', () => store.consume(tokenId, now)],
    ['get', () => store.get(tokenId, now)],
    ['extend', () => store.extend(tokenId, now)],
    ['create', () => store.create(makeRecord())],
    ['revoke', () => store.revoke(newId())],
    ['revokeIdentity', () => store.revokeIdentity(newIdentityId())],
    ['generation', () => store.generation(newIdentityId())],
  ];
}

/** Fail closed while the backend is unreachable, and recover once it is back. */
export function tokenOutageCases({ test, stores }: TokenCaseContext, outage: OutageHook): void {
  const { describe, it } = test;
  const failWithinMs = outage.failWithinMs ?? 5000;
  const recoverWithinMs = outage.recoverWithinMs ?? 15_000;

  const recovered = (store: TokenStore, which: string) =>
    eventually(
      async () => {
        const probe = makeRecord({ usesLimit: 1 });
        await store.create(probe);
        assertGranted(await store.consume(probe.tokenId, Date.now()), 'a use after the outage');
      },
      recoverWithinMs,
      `${which} after the backend came back`,
    );

  describe('backend outage (fail closed)', () => {
    it('fails closed while its backend is unreachable: every method of both instances throws within the bound, none resolves, none grants', async () => {
      const [a, b] = await stores();
      const witness = makeRecord({ usesLimit: 0 });
      await a.create(witness);
      await outage.break();
      try {
        await Promise.all(
          [a, b].flatMap((store, s) =>
            everyMethod(store, witness.tokenId).map(([name, call]) =>
              assertFailsClosed(call, failWithinMs, `${name} on instance ${s + 1}`),
            ),
          ),
        );
        // Many uses at once (batched by some stores) fail alike, none granted.
        const now = Date.now();
        await Promise.all(
          Array.from({ length: 20 }, (_, i) =>
            assertFailsClosed(
              () => (i % 2 ? b : a).consume(witness.tokenId, now),
              failWithinMs,
              `parallel use ${i + 1} of 20`,
            ),
          ),
        );
      } finally {
        await outage.restore();
      }
      await recovered(a, 'instance 1');
      await recovered(b, 'instance 2');
    });

    it('recovers by itself once its backend is back: records from before the outage are intact, usable and revocable on both instances', async () => {
      const [a, b] = await stores();
      const kept = makeRecord({ usesLimit: 0 });
      const doomed = makeRecord({ usesLimit: 0 });
      await a.create(kept);
      await a.create(doomed);
      await outage.break();
      await outage.restore();
      await recovered(a, 'instance 1');
      await recovered(b, 'instance 2');
      assertGranted(await a.consume(kept.tokenId, Date.now()), 'a record from before, used on instance 1');
      assertGranted(await b.consume(kept.tokenId, Date.now()), 'a record from before, used on instance 2');
      await b.revoke(doomed.tokenId);
      assertRefused(
        await a.consume(doomed.tokenId, Date.now()),
        'revoked',
        'a record revoked after the outage',
      );
    });
  });
}
