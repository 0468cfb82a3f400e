import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { MAX_REPLAY_KEY_LENGTH, MAX_REPLAY_WINDOW_MS, type ReplayCache } from '../tokens/replay.js';
import { assertFailsClosed, eventually, show } from './assertions.js';
import type { OutageHook } from './outage-hook.js';
import type { TestFunctions } from './test-functions.js';
import { storeFixture } from './test-functions.js';

/** Options of {@link replayCacheConformance}. */
export interface ReplayCacheSuiteOptions {
  /** Names the suite: `<name>: ReplayCache conformance`. */
  name: string;
  /** The test framework's `describe`, `it` and (optional) `before`/`after`. */
  test: TestFunctions;
  /**
   * A cache on the backend under test. Called twice (two app instances): the instances must share
   * what they remember. A cache kept in process memory can only pass by returning the same instance
   * both times. Every case uses fresh random keys: the backend need not be empty.
   */
  create(): ReplayCache | Promise<ReplayCache>;
  /** Makes the backend unreachable, then reachable again: adds the fail-closed cases. */
  outage?: OutageHook;
}

/** A fresh key no other case or run uses. */
const newKey = (what = 'k') => `conformance:${what}:${randomUUID()}`;

/** `verdict` is `{ first: true }`. */
function assertFirst(verdict: unknown, what: string): void {
  if ((verdict as { first?: unknown })?.first !== true) {
    assert.fail(`${what}: expected { first: true }, got ${show(verdict)}`);
  }
}

/** `verdict` is `{ first: false, seenAt }` with exactly that `seenAt`. */
function assertSeen(verdict: unknown, seenAt: number, what: string): void {
  const v = verdict as { first?: unknown; seenAt?: unknown };
  if (v?.first !== false || v.seenAt !== seenAt) {
    assert.fail(`${what}: expected { first: false, seenAt: ${seenAt} }, got ${show(verdict)}`);
  }
}

/**
 * Declares the cases every {@link ReplayCache} must pass: a key remembered once and then answered
 * with when it was first seen, on both instances; expiry to the millisecond at the `now` given (and
 * an expired key taken over exactly once); exactly one `first` among 50 concurrent calls with one key
 * split over two instances; `seenAt` that remembers nothing; keys kept apart exactly (unicode,
 * separators, the longest allowed); arguments the interface refuses; and, with `outage`, failing
 * closed and recovering.
 *
 * Cases pass `now` values near the real clock (within minutes of `Date.now()`), so a backend that
 * also drops keys by its own clock, some margin after their expiry, passes as long as whether a key
 * counts as expired is decided by the `now` it is given.
 *
 * The library's own memory, Redis and PostgreSQL caches run through this same suite.
 *
 * @example
 * ```ts
 * import { describe, it, beforeAll, afterAll } from 'vitest';
 * import { replayCacheConformance } from 'oidc-machine-auth/testing';
 *
 * replayCacheConformance({
 *   name: 'MyReplayCache',
 *   test: { describe, it, before: beforeAll, after: afterAll },
 *   create: () => new MyReplayCache({ client }),
 * });
 * ```
 */
export function replayCacheConformance(options: ReplayCacheSuiteOptions): void {
  const { test } = options;
  const { describe, it } = test;
  describe(`${options.name}: ReplayCache conformance`, () => {
    const instances = storeFixture(test, () => options.create(), 2);
    const caches = async () => {
      const [a, b] = await instances();
      return [a!, b!] as const;
    };

    describe('remember once', () => {
      it('a new key is first; the same key again, on either instance, is not, and says when it was first seen', async () => {
        const [a, b] = await caches();
        const key = newKey();
        const now = Date.now();
        assertFirst(await a.remember(key, now + 60_000, now), 'first remember');
        assertSeen(await a.remember(key, now + 60_000, now + 5), now, 'again on the same instance');
        assertSeen(await b.remember(key, now + 90_000, now + 10), now, 'again on the other instance');
        assert.equal(await b.seenAt(key, now + 20), now, 'seenAt on the other instance');
        assert.equal(await a.seenAt(key, now + 20), now, 'seenAt on the same instance');
      });

      it('a later remember of a key still remembered neither moves its seenAt nor extends its expiry', async () => {
        const [a] = await caches();
        const key = newKey();
        const now = Date.now();
        assertFirst(await a.remember(key, now + 30_000, now), 'first remember');
        assertSeen(await a.remember(key, now + 90_000, now + 1_000), now, 'a remember asking for longer');
        assert.equal(await a.seenAt(key, now + 30_000), undefined, 'gone at its first expiry');
        assertFirst(await a.remember(key, now + 60_000, now + 30_000), 'taken again at its first expiry');
      });

      it('keys are kept apart exactly: case, separators, braces, whitespace, NUL, astral characters, the longest key allowed', async () => {
        const [a, b] = await caches();
        const base = newKey();
        const now = Date.now();
        const keys = [
          base,
          base.toUpperCase(),
          `${base}:`,
          `${base}:x`,
          `{${base}}`,
          `${base} `,
          `${base}\n`,
          `${base}\u0000`,
          `${base}\u{1F512}`,
          `${base}é`,
          `${base}e\u0301`,
          `${base}${'x'.repeat(MAX_REPLAY_KEY_LENGTH - base.length)}`,
        ];
        assert.equal(keys.at(-1)!.length, MAX_REPLAY_KEY_LENGTH);
        for (const key of keys) assertFirst(await a.remember(key, now + 60_000, now), `first ${show(key)}`);
        for (const key of keys) {
          assertSeen(await b.remember(key, now + 60_000, now + 1), now, `again ${show(key)}`);
        }
      });

      it('a key with a lone surrogate is remembered and then refused (a backend may fold such keys together, never apart)', async () => {
        const [a, b] = await caches();
        const key = `${newKey()}\ud800`;
        const now = Date.now();
        assertFirst(await a.remember(key, now + 60_000, now), 'first remember');
        assertSeen(await b.remember(key, now + 60_000, now + 1), now, 'again on the other instance');
      });
    });

    describe('expiry at the now given', () => {
      it('remembered while now < expiresAt, forgotten from expiresAt on, to the millisecond', async () => {
        const [a, b] = await caches();
        const key = newKey();
        const now = Date.now();
        const expiresAt = now + 60_000;
        assertFirst(await a.remember(key, expiresAt, now), 'first remember');
        assert.equal(await b.seenAt(key, expiresAt - 1), now, 'seenAt 1 ms before expiry');
        assertSeen(
          await b.remember(key, expiresAt + 60_000, expiresAt - 1),
          now,
          'remember 1 ms before expiry',
        );
        assert.equal(await b.seenAt(key, expiresAt), undefined, 'seenAt at expiry');
        assertFirst(await b.remember(key, expiresAt + 60_000, expiresAt), 'remember at expiry');
        assertSeen(await a.remember(key, expiresAt + 60_000, expiresAt + 1), expiresAt, 'the new entry');
        assert.equal(await a.seenAt(key, expiresAt + 1), expiresAt, 'seenAt of the new entry');
      });

      it('an expiry at or before now remembers nothing that outlives the call', async () => {
        const [a] = await caches();
        const key = newKey();
        const now = Date.now();
        assertFirst(await a.remember(key, now, now), 'expiresAt = now');
        assertFirst(await a.remember(key, now + 60_000, now), 'the same key, a live expiry');
        const other = newKey();
        assertFirst(await a.remember(other, now - 1_000, now), 'expiresAt before now');
        assert.equal(await a.seenAt(other, now), undefined, 'seenAt after an expiry in the past');
      });

      it('an expiry exactly a day ahead is accepted', async () => {
        const [a, b] = await caches();
        const key = newKey();
        const now = Date.now();
        assertFirst(await a.remember(key, now + MAX_REPLAY_WINDOW_MS, now), 'a day ahead');
        assert.equal(await b.seenAt(key, now + MAX_REPLAY_WINDOW_MS - 1), now, 'seenAt just before');
      });
    });

    describe('concurrency', () => {
      it('50 concurrent remembers of one key, split over two instances, give exactly one first; the rest say when', async () => {
        const [a, b] = await caches();
        const key = newKey();
        const now = Date.now();
        const verdicts = await Promise.all(
          Array.from({ length: 50 }, (_, i) => (i % 2 ? b : a).remember(key, now + 60_000, now)),
        );
        const firsts = verdicts.filter((v) => v?.first === true).length;
        assert.equal(firsts, 1, `exactly one first among 50, got ${firsts}`);
        for (const v of verdicts) if (v.first === false) assertSeen(v, now, 'a concurrent loser');
      });

      it('50 concurrent remembers of one expired key, split over two instances, give exactly one first', async () => {
        const [a, b] = await caches();
        const key = newKey();
        const now = Date.now();
        assertFirst(await a.remember(key, now + 1_000, now), 'first remember');
        const later = now + 1_000;
        const verdicts = await Promise.all(
          Array.from({ length: 50 }, (_, i) => (i % 2 ? a : b).remember(key, later + 60_000, later)),
        );
        const firsts = verdicts.filter((v) => v?.first === true).length;
        assert.equal(firsts, 1, `exactly one takes over the expired key among 50, got ${firsts}`);
        for (const v of verdicts) if (v.first === false) assertSeen(v, later, 'a concurrent loser');
      });

      it('concurrent remembers of 50 different keys are each first', async () => {
        const [a, b] = await caches();
        const now = Date.now();
        const verdicts = await Promise.all(
          Array.from({ length: 50 }, (_, i) => (i % 2 ? b : a).remember(newKey(), now + 60_000, now)),
        );
        verdicts.forEach((v, i) => assertFirst(v, `key ${i + 1} of 50`));
      });
    });

    describe('seenAt reads only', () => {
      it('seenAt of a key never remembered is undefined, and remembers nothing: a remember afterwards is first', async () => {
        const [a, b] = await caches();
        const key = newKey();
        const now = Date.now();
        assert.equal(await a.seenAt(key, now), undefined, 'seenAt of a new key');
        assert.equal(await b.seenAt(key, now), undefined, 'seenAt again, other instance');
        assertFirst(await b.remember(key, now + 60_000, now + 1), 'remember after seenAt');
      });
    });

    describe('arguments', () => {
      it('refuses an empty key, a key over the length limit, an expiry more than a day ahead, and non-finite times; remembers nothing for them', async () => {
        const [a] = await caches();
        const now = Date.now();
        const key = newKey();
        const refused: Array<[string, () => Promise<unknown>]> = [
          ['an empty key', () => a.remember('', now + 60_000, now)],
          [
            'a key over the limit',
            () => a.remember('x'.repeat(MAX_REPLAY_KEY_LENGTH + 1), now + 60_000, now),
          ],
          ['an expiry a day and 1 ms ahead', () => a.remember(key, now + MAX_REPLAY_WINDOW_MS + 1, now)],
          ['a NaN expiry', () => a.remember(key, Number.NaN, now)],
          ['an infinite expiry', () => a.remember(key, Number.POSITIVE_INFINITY, now)],
          ['a NaN now', () => a.remember(key, now + 60_000, Number.NaN)],
        ];
        for (const [what, call] of refused) {
          await assert.rejects(
            Promise.resolve().then(call),
            (error: unknown) => error instanceof Error,
            `${what} must be refused (throw), never remembered`,
          );
        }
        assertFirst(await a.remember(key, now + 60_000, now), 'the key after the refused calls');
      });
    });

    if (options.outage) replayOutageCases(caches, test, options.outage);
  });
}

/** Fail closed while the backend is unreachable, and recover once it is back. */
function replayOutageCases(
  caches: () => Promise<readonly [ReplayCache, ReplayCache]>,
  test: TestFunctions,
  outage: OutageHook,
): void {
  const { describe, it } = test;
  const failWithinMs = outage.failWithinMs ?? 5000;
  const recoverWithinMs = outage.recoverWithinMs ?? 15_000;
  const recovered = (cache: ReplayCache, which: string) =>
    eventually(
      async () => {
        const now = Date.now();
        assertFirst(await cache.remember(newKey('probe'), now + 60_000, now), 'a remember after the outage');
      },
      recoverWithinMs,
      `${which} after the backend came back`,
    );

  describe('backend outage (fail closed)', () => {
    it('fails closed while its backend is unreachable: remember and seenAt of both instances throw within the bound, none says first', async () => {
      const [a, b] = await caches();
      const seen = newKey();
      const now = Date.now();
      assertFirst(await a.remember(seen, now + 120_000, now), 'a key remembered before the outage');
      await outage.break();
      try {
        await Promise.all(
          [a, b].flatMap((cache, i) => [
            assertFailsClosed(
              () => cache.remember(newKey(), now + 60_000, now),
              failWithinMs,
              `remember of a new key on instance ${i + 1}`,
            ),
            assertFailsClosed(
              () => cache.remember(seen, now + 60_000, now + 1),
              failWithinMs,
              `remember of a known key on instance ${i + 1}`,
            ),
            assertFailsClosed(() => cache.seenAt(seen, now + 1), failWithinMs, `seenAt on instance ${i + 1}`),
          ]),
        );
      } finally {
        await outage.restore();
      }
      await recovered(a, 'instance 1');
      await recovered(b, 'instance 2');
      assertSeen(await b.remember(seen, now + 60_000, now + 2), now, 'the key remembered before the outage');
    });
  });
}
