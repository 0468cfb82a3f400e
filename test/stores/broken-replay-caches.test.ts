import { beforeAll, describe, expect, it } from 'vitest';
import { ServiceUnavailableError } from '../../src/errors.js';
import { MemoryReplayCache } from '../../src/stores/memory-replay.js';
import { replayCacheConformance, type OutageHook } from '../../src/testing/index.js';
import { checkReplayArguments, type ReplayCache, type ReplayVerdict } from '../../src/tokens/replay.js';
import { runSuite, type CaseResult } from './suite-runner.js';

/**
 * Issue 16, "Replay cache": the exported replay-cache suite is shown to fail when a cache is wrong.
 * It runs (outside vitest, through a capturing runner) against caches each broken in one named way,
 * and the cases that state the broken guarantee must fail, while the same cases pass on a correct
 * cache over the same fake backend and on MemoryReplayCache.
 */

interface Flaws {
  /** Reads the key, awaits a round trip, then writes it. */
  nonAtomic?: boolean;
  /** Answers `first: true` when its backend is down. */
  failOpen?: boolean;
  /** Never settles while its backend is down. */
  hangsWhenDown?: boolean;
  /** Still holds a key at `now === expiresAt`. */
  expiryOffByOne?: boolean;
  /** Decides expiry with its own clock instead of the `now` it is given. */
  readsOwnClock?: boolean;
  /** `seenAt` remembers the key it is asked about. */
  seenAtRemembers?: boolean;
  /** A later remember of a held key moves its expiry. */
  extendsOnRepeat?: boolean;
  /** Remembers whatever it is given (no argument checks). */
  noArgumentChecks?: boolean;
  /** Keys compared trimmed and lower-cased. */
  foldsKeys?: boolean;
  /** Remembers nothing: every call is first. */
  neverRemembers?: boolean;
  /** Keeps every key at least a minute, whatever expiry it is given. */
  clampsExpiry?: boolean;
}

/** One shared "server": what every instance of a case sees. */
class FakeBackend {
  readonly entries = new Map<string, [seenAt: number, expiresAt: number]>();
  down = false;
}

class FlawedReplayCache implements ReplayCache {
  constructor(
    private readonly backend: FakeBackend,
    private readonly flaws: Flaws,
  ) {}

  async remember(key: string, expiresAt: number, now: number): Promise<ReplayVerdict> {
    if (!this.flaws.noArgumentChecks) checkReplayArguments(key, expiresAt, now);
    await this.#roundTrip();
    if (this.backend.down) return this.#down({ first: true });
    const k = this.#key(key);
    const held = this.backend.entries.get(k);
    if (held && this.#live(held, now)) {
      if (this.flaws.extendsOnRepeat) held[1] = Math.max(held[1], expiresAt);
      return { first: false, seenAt: held[0] };
    }
    if (this.flaws.nonAtomic) await this.#roundTrip();
    if (!this.flaws.neverRemembers) {
      this.backend.entries.set(k, [
        now,
        this.flaws.clampsExpiry ? Math.max(expiresAt, now + 60_000) : expiresAt,
      ]);
    }
    return { first: true };
  }

  async seenAt(key: string, now: number): Promise<number | undefined> {
    await this.#roundTrip();
    if (this.backend.down) return this.#down(undefined);
    const held = this.backend.entries.get(this.#key(key));
    if (!held && this.flaws.seenAtRemembers) this.backend.entries.set(this.#key(key), [now, now + 60_000]);
    return held && this.#live(held, now) ? held[0] : undefined;
  }

  #key(key: string): string {
    return this.flaws.foldsKeys ? key.trim().toLowerCase() : key;
  }

  #live([, expiresAt]: [number, number], now: number): boolean {
    const at = this.flaws.readsOwnClock ? Date.now() : now;
    return this.flaws.expiryOffByOne ? expiresAt >= at : expiresAt > at;
  }

  async #down<T>(answer: T): Promise<T> {
    if (this.flaws.failOpen) return answer;
    if (this.flaws.hangsWhenDown) return new Promise<T>(() => {});
    throw new ServiceUnavailableError('store_unavailable', 'down');
  }

  #roundTrip(): Promise<void> {
    return new Promise((resolve) => setImmediate(resolve));
  }
}

const ONCE =
  'a new key is first; the same key again, on either instance, is not, and says when it was first seen';
const NO_EXTEND =
  'a later remember of a key still remembered neither moves its seenAt nor extends its expiry';
const APART =
  'keys are kept apart exactly: case, separators, braces, whitespace, NUL, astral characters, the longest key allowed';
const EXACT_EXPIRY = 'remembered while now < expiresAt, forgotten from expiresAt on, to the millisecond';
const PAST_EXPIRY = 'an expiry at or before now remembers nothing that outlives the call';
const FIFTY =
  '50 concurrent remembers of one key, split over two instances, give exactly one first; the rest say when';
const FIFTY_EXPIRED =
  '50 concurrent remembers of one expired key, split over two instances, give exactly one first';
const READ_ONLY =
  'seenAt of a key never remembered is undefined, and remembers nothing: a remember afterwards is first';
const ARGUMENTS =
  'refuses an empty key, a key over the length limit, an expiry more than a day ahead, and non-finite times; remembers nothing for them';
const FAILS_CLOSED =
  'fails closed while its backend is unreachable: remember and seenAt of both instances throw within the bound, none says first';

const BREAKAGES: Array<{ label: string; flaws: Flaws; cases: string[]; message: RegExp }> = [
  {
    label: 'a cache that remembers nothing',
    flaws: { neverRemembers: true },
    cases: [ONCE, FIFTY],
    message: /again on the same instance: expected \{ first: false, seenAt: \d+ \}/,
  },
  {
    label: 'a cache that keeps keys longer than their expiry',
    flaws: { clampsExpiry: true },
    cases: [PAST_EXPIRY],
    message: /the same key, a live expiry: expected \{ first: true \}/,
  },
  {
    label: 'a non-atomic remember (read, await a round trip, write)',
    flaws: { nonAtomic: true },
    cases: [FIFTY, FIFTY_EXPIRED],
    message: /exactly one first among 50, got \d+/,
  },
  {
    label: 'a cache that fails open (answers first when its backend is down)',
    flaws: { failOpen: true },
    cases: [FAILS_CLOSED],
    message: /resolved .* while the backend was unreachable; it must throw/,
  },
  {
    label: 'a cache that waits for an unreachable backend forever (no timeout)',
    flaws: { hangsWhenDown: true },
    cases: [FAILS_CLOSED],
    message: /neither resolved nor rejected within 1000 ms/,
  },
  {
    label: 'an expiry off by one millisecond (held at now === expiresAt)',
    flaws: { expiryOffByOne: true },
    cases: [EXACT_EXPIRY, NO_EXTEND],
    message: /seenAt at expiry/,
  },
  {
    label: 'a cache that reads its own clock instead of the now it is given',
    flaws: { readsOwnClock: true },
    cases: [EXACT_EXPIRY, FIFTY_EXPIRED],
    message: /seenAt at expiry/,
  },
  {
    label: 'a seenAt that remembers',
    flaws: { seenAtRemembers: true },
    cases: [READ_ONLY],
    message: /seenAt again, other instance/,
  },
  {
    label: 'a remember that extends a held key',
    flaws: { extendsOnRepeat: true },
    cases: [NO_EXTEND],
    message: /gone at its first expiry/,
  },
  {
    label: 'a cache without argument checks',
    flaws: { noArgumentChecks: true },
    cases: [ARGUMENTS],
    message: /must be refused \(throw\), never remembered/,
  },
  {
    label: 'a cache that folds keys (trimmed, lower-cased)',
    flaws: { foldsKeys: true },
    cases: [APART],
    message: /first .*: expected \{ first: true \}/,
  },
];

function runOnFake(flaws: Flaws): Promise<CaseResult[]> {
  const backend = new FakeBackend();
  const outage: OutageHook = {
    break: async () => void (backend.down = true),
    restore: async () => void (backend.down = false),
    failWithinMs: 1000,
    recoverWithinMs: 2000,
  };
  return runOn(() => new FlawedReplayCache(backend, flaws), outage);
}

function runOn(create: () => ReplayCache, outage?: OutageHook): Promise<CaseResult[]> {
  return runSuite((test) => replayCacheConformance({ name: 'under test', test, create, outage }));
}

const failed = (results: CaseResult[]) => results.filter((r) => !r.ok).map((r) => r.name);
const passed = (results: CaseResult[]) => results.filter((r) => r.ok).map((r) => r.name);
const report = (results: CaseResult[]) =>
  results.filter((r) => !r.ok).map((r) => `${r.name}: ${(r.error as Error)?.message ?? String(r.error)}`);

let reference: CaseResult[];
let memory: CaseResult[];

beforeAll(async () => {
  reference = await runOnFake({});
  const cache = new MemoryReplayCache();
  memory = await runOn(() => cache);
});

describe('the replay-cache conformance suite is shown to fail when a cache is wrong', () => {
  it('catches nothing on a correct cache: the reference cache over the fake backend passes every case, outage included, and MemoryReplayCache every case', () => {
    expect(reference.length).toBeGreaterThan(10);
    expect(report(reference)).toEqual([]);
    expect(passed(reference)).toContain(FAILS_CLOSED);
    expect(report(memory)).toEqual([]);
    expect(memory.map((r) => r.name)).toEqual(
      reference.filter((r) => !r.path.includes('backend outage')).map((r) => r.name),
    );
    const names = reference.map((r) => r.name);
    expect(new Set(names).size).toBe(names.length);
  });

  for (const breakage of BREAKAGES) {
    it(`catches ${breakage.label}`, async () => {
      const results = await runOnFake(breakage.flaws);
      expect(failed(results), report(results).join('\n')).toEqual(expect.arrayContaining(breakage.cases));
      for (const name of breakage.cases) {
        expect(passed(reference)).toContain(name);
        if (name !== FAILS_CLOSED) expect(passed(memory)).toContain(name);
      }
      const first = results.find((r) => r.name === breakage.cases[0])!;
      expect((first.error as Error).message).toMatch(breakage.message);
    });
  }
});
