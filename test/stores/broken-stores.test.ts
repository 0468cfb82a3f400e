import { beforeAll, describe, expect, it } from 'vitest';
import { MemoryTokenStore } from '../../src/stores/memory.js';
import { tokenStoreConformance, type OutageHook } from '../../src/testing/index.js';
import type { TokenStore } from '../../src/types.js';
import { FakeBackend, FlawedTokenStore, type Flaws } from './flawed-store.js';
import { runSuite, type CaseResult } from './suite-runner.js';

/**
 * The exported token-store suite is shown to fail when a store is wrong: it runs (outside vitest,
 * through a capturing runner) against stores each broken in one named way, and the cases that state
 * the broken guarantee must fail, while the same cases pass on a correct store over the same fake
 * backend and on MemoryTokenStore.
 */

const NO_SURVIVOR =
  '#13.1 identity revocation leaves no survivor: records created on two instances while revokeIdentity runs, stamped with the generation read before it, are all refused afterwards by consume and extend on both';
const STAMPED_BELOW =
  'a record stamped below the generation, stored after the revocation, is refused by consume and extend';
const FAILS_CLOSED =
  'fails closed while its backend is unreachable: every method of both instances throws within the bound, none resolves, none grants';

interface Breakage {
  /** What is wrong, as the test title says it. */
  label: string;
  flaws: Flaws;
  /** Cases that must fail. */
  cases: string[];
  /** What the first of them must say. */
  message: RegExp;
}

const BREAKAGES: Breakage[] = [
  {
    label: 'a non-atomic consume (read, await a round trip, write)',
    flaws: { nonAtomicConsume: true },
    cases: [
      'TOK-04: 50 parallel uses of a 1-use token give exactly one success',
      'TOK-04: 50 parallel uses of a 5-use token give exactly five successes',
      'TOK-04: a k-use token hit in parallel from two instances at once gives exactly k successes (k = 1, 2, 5, 10; 40 uses each)',
    ],
    message: /one atomic step/,
  },
  {
    label: 'a store that fails open (answers from what it saw when its backend throws)',
    flaws: { failOpen: true },
    cases: [FAILS_CLOSED],
    message: /resolved .* while the backend was unreachable; it must throw/,
  },
  {
    label: 'a store that waits for an unreachable backend forever (no timeout)',
    flaws: { hangsWhenDown: true },
    cases: [FAILS_CLOSED],
    message: /neither resolved nor rejected within 1000 ms/,
  },
  {
    label: 'a store that answers an outage with a 401 error instead of store_unavailable',
    flaws: { throws401WhenDown: true },
    cases: [FAILS_CLOSED],
    message: /threw UnauthorizedError \(401 invalid_token\)/,
  },
  {
    label: 'a revokeIdentity that skips tokens created during it (no generations)',
    flaws: { revokeSkipsConcurrent: true },
    cases: [NO_SURVIVOR, STAMPED_BELOW],
    message: /tokens of logins in flight during revokeIdentity survived it/,
  },
  {
    label: 'a consume that ignores the generation stamp',
    flaws: { consumeIgnoresGeneration: true },
    cases: [STAMPED_BELOW, NO_SURVIVOR],
    message: /consume of a record stamped below: expected \{ ok: false, reason: 'revoked' \}/,
  },
  {
    label: 'an expiry off by one millisecond (valid at now === expiresAt)',
    flaws: { expiryOffByOne: true },
    cases: [
      'TOK-06: refuses a token at and after its expiry with expired (valid while now < expiresAt)',
      'TOK-06: a token is usable at expiresAt - 1 and refused expired at expiresAt, by consume and extend alike',
      'TOK-06: a renewed expiry is exact: usable until new expiresAt - 1, refused expired at it',
    ],
    message: /use at expiresAt: expected \{ ok: false, reason: 'expired' \}/,
  },
  {
    label: 'a store that reads its own clock instead of the now it is given',
    flaws: { readsOwnClock: true },
    cases: [
      'decides with the now it is given, never its own clock: a token expired by the wall clock is usable at a now before its expiry',
      'TOK-06: refuses a token at and after its expiry with expired (valid while now < expiresAt)',
    ],
    message: /consume at the now passed in: expected \{ ok: true, record \}/,
  },
  {
    label: 'a renewal that resets the uses counted',
    flaws: { renewResetsUses: true },
    cases: ['TOK-05: renewing neither resets nor spends uses: the uses left carry over'],
    message: /renew must keep the uses counted/,
  },
  {
    label: 'subject and issuer truncated to 255 characters (a VARCHAR(255) column)',
    flaws: { truncatesClaims: true },
    cases: ['keeps a 16 KiB subject and issuer, and a 128-character identity id, untruncated'],
    message: /a 16 KiB subject must read back whole/,
  },
  {
    label: 'a store that drops the scope and audience a token exchange granted (no columns for them)',
    flaws: { dropsGrant: true },
    cases: [
      'RFC 8693 §2.1, §2.2.1: get, consume and extend hand back the scope and audience a record was created with, on either instance',
      'a record with a scope but no audience (and one audience but no scope) keeps exactly that',
      'create on a known token id replaces its scope and audience, removing them when the new record has none',
    ],
    message: /get on A must hand back the record with its scope and audience/,
  },
];

/** The suite on instances over one fake backend, with an outage hook that takes the backend down. */
function runOnFake(flaws: Flaws): Promise<CaseResult[]> {
  const backend = new FakeBackend();
  const outage: OutageHook = {
    break: async () => void (backend.down = true),
    restore: async () => void (backend.down = false),
    failWithinMs: 1000,
    recoverWithinMs: 2000,
  };
  return runOn(() => new FlawedTokenStore(backend, flaws), outage);
}

function runOn(create: () => TokenStore, outage?: OutageHook): Promise<CaseResult[]> {
  // The fake backend's stores have no revocation by claim (test/stores/revoke-where.test.ts covers it).
  return runSuite((test) =>
    tokenStoreConformance({ name: 'under test', test, create, outage, revokeWhere: false }),
  );
}

const failed = (results: CaseResult[]) => results.filter((r) => !r.ok).map((r) => r.name);
const passed = (results: CaseResult[]) => results.filter((r) => r.ok).map((r) => r.name);
const report = (results: CaseResult[]) =>
  results.filter((r) => !r.ok).map((r) => `${r.name}: ${(r.error as Error)?.message ?? String(r.error)}`);

let reference: CaseResult[];
let memory: CaseResult[];

beforeAll(async () => {
  reference = await runOnFake({});
  const store = new MemoryTokenStore({ sweepIntervalMs: 0 });
  memory = await runOn(() => store);
});

describe('#18 the conformance suite is shown to fail when a store is wrong', () => {
  it('#18 the conformance suite catches nothing on a correct store: the reference store over the fake backend passes every case, outage included, and MemoryTokenStore every case', () => {
    expect(reference.length).toBeGreaterThan(50);
    expect(report(reference)).toEqual([]);
    expect(passed(reference)).toContain(FAILS_CLOSED);
    expect(report(memory)).toEqual([]);
    // Without an outage hook there are no outage cases; everything else is the same list.
    expect(memory.map((r) => r.name)).toEqual(
      reference.filter((r) => !r.path.includes('backend outage')).map((r) => r.name),
    );
  });

  it('#18 the conformance suite names every case once, so a failure says which guarantee broke', () => {
    const names = reference.map((r) => r.name);
    expect(new Set(names).size).toBe(names.length);
  });

  for (const breakage of BREAKAGES) {
    it(`#18 the conformance suite catches ${breakage.label}`, async () => {
      const results = await runOnFake(breakage.flaws);
      const failures = failed(results);
      expect(failures, report(results).join('\n')).toEqual(expect.arrayContaining(breakage.cases));
      // The same cases pass on a correct store, and on the memory store.
      for (const name of breakage.cases) {
        expect(passed(reference)).toContain(name);
        if (name !== FAILS_CLOSED) expect(passed(memory)).toContain(name);
      }
      const first = results.find((r) => r.name === breakage.cases[0])!;
      expect((first.error as Error).message).toMatch(breakage.message);
      console.info(
        `${breakage.label}: ${failures.length} of ${results.length} cases fail:\n  ${failures.join('\n  ')}`,
      );
    });
  }
});
