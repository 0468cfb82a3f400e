import { describe, expect, it } from 'vitest';
import type { RateLimitRule, RateLimiter } from '../../src/index.js';

const T0 = Date.UTC(2026, 0, 1);

/**
 * The behaviour every {@link RateLimiter} owes (GCRA: `burst` at once, then one hit every
 * `60 / perMinute` s), driven with explicit times. `make` gives a limiter and a key prefix no other
 * test shares.
 */
export function describeRateLimiterSemantics(
  name: string,
  make: () => { limiter: RateLimiter; key: (k: string) => string },
): void {
  describe(`${name}: rate limiter semantics`, () => {
    const rule: RateLimitRule = { perMinute: 60, burst: 3 }; // one a second, three at once

    it('allows the burst at once, counting down what remains, then refuses with Retry-After', async () => {
      const { limiter, key } = make();
      const k = key('burst');
      const seen = [];
      for (let i = 0; i < 4; i++) seen.push(await limiter.hit(k, rule, 1, T0));
      expect(seen.map((d) => [d.allowed, d.remaining])).toEqual([
        [true, 2],
        [true, 1],
        [true, 0],
        [false, 0],
      ]);
      expect(seen[3]!.retryAfterSeconds).toBe(1);
      expect(seen.slice(0, 3).every((d) => d.retryAfterSeconds === 0)).toBe(true);
    });

    it('refills one hit per emission interval, never more than the burst', async () => {
      const { limiter, key } = make();
      const k = key('refill');
      for (let i = 0; i < 3; i++) expect((await limiter.hit(k, rule, 1, T0)).allowed).toBe(true);
      expect((await limiter.hit(k, rule, 1, T0 + 999)).allowed).toBe(false);
      expect((await limiter.hit(k, rule, 1, T0 + 1000)).allowed).toBe(true);
      expect((await limiter.hit(k, rule, 1, T0 + 1000)).allowed).toBe(false);
      // An hour idle: back to the burst, not to 3,600 hits.
      const later = T0 + 3_600_000;
      const burst = [];
      for (let i = 0; i < 4; i++) burst.push((await limiter.hit(k, rule, 1, later)).allowed);
      expect(burst).toEqual([true, true, true, false]);
    });

    it('a refused hit spends nothing: hammering a spent key does not push its Retry-After out', async () => {
      const { limiter, key } = make();
      const k = key('hammer');
      const slow: RateLimitRule = { perMinute: 6, burst: 2 }; // one every 10 s
      await limiter.hit(k, slow, 1, T0);
      await limiter.hit(k, slow, 1, T0);
      for (let i = 0; i < 50; i++) {
        const refused = await limiter.hit(k, slow, 1, T0 + 1000);
        expect(refused).toMatchObject({ allowed: false, retryAfterSeconds: 9 });
      }
      expect((await limiter.hit(k, slow, 1, T0 + 10_000)).allowed).toBe(true);
    });

    it('cost 0 asks without counting; it is refused once one more hit would be', async () => {
      const { limiter, key } = make();
      const k = key('peek');
      for (let i = 0; i < 10; i++)
        expect(await limiter.hit(k, rule, 0, T0)).toMatchObject({ allowed: true, remaining: 3 });
      await limiter.hit(k, rule, 1, T0);
      expect(await limiter.hit(k, rule, 0, T0)).toMatchObject({ allowed: true, remaining: 2 });
      await limiter.hit(k, rule, 2, T0);
      expect(await limiter.hit(k, rule, 0, T0)).toMatchObject({ allowed: false, retryAfterSeconds: 1 });
      expect(await limiter.hit(k, rule, 0, T0 + 1000)).toMatchObject({ allowed: true, remaining: 1 });
    });

    it('a cost above what remains is refused whole, and says when it would fit', async () => {
      const { limiter, key } = make();
      const k = key('cost');
      expect((await limiter.hit(k, rule, 2, T0)).remaining).toBe(1);
      expect(await limiter.hit(k, rule, 3, T0)).toMatchObject({ allowed: false, retryAfterSeconds: 2 });
      expect((await limiter.hit(k, rule, 1, T0)).allowed).toBe(true);
    });

    it('keys are independent', async () => {
      const { limiter, key } = make();
      for (let i = 0; i < 3; i++) await limiter.hit(key('a'), rule, 1, T0);
      expect((await limiter.hit(key('a'), rule, 1, T0)).allowed).toBe(false);
      expect((await limiter.hit(key('b'), rule, 1, T0)).allowed).toBe(true);
    });

    it('over any minute, at most burst + perMinute hits pass (no double rate at a window edge)', async () => {
      const { limiter, key } = make();
      const k = key('minute');
      const r: RateLimitRule = { perMinute: 30, burst: 10 };
      const passed: number[] = [];
      // Ask every 100 ms for three minutes.
      for (let t = 0; t < 180_000; t += 100) {
        if ((await limiter.hit(k, r, 1, T0 + t)).allowed) passed.push(t);
      }
      for (let i = 0; i < passed.length; i++) {
        const inMinute = passed.filter((t) => t >= passed[i]! && t < passed[i]! + 60_000).length;
        expect(inMinute).toBeLessThanOrEqual(r.burst + r.perMinute);
      }
      // And the sustained rate is the rule's: 10 at once, then one every 2 s.
      expect(passed.length).toBe(10 + 89);
    });

    it('fractional rates: one hit every two minutes at perMinute 0.5', async () => {
      const { limiter, key } = make();
      const k = key('slow');
      const r: RateLimitRule = { perMinute: 0.5, burst: 1 };
      expect((await limiter.hit(k, r, 1, T0)).allowed).toBe(true);
      expect(await limiter.hit(k, r, 1, T0 + 60_000)).toMatchObject({
        allowed: false,
        retryAfterSeconds: 60,
      });
      expect((await limiter.hit(k, r, 1, T0 + 120_000)).allowed).toBe(true);
    });

    it('a clock that jumps back more than a minute beyond the budget counts the key from scratch; smaller skew keeps it spent', async () => {
      const { limiter, key } = make();
      const k = key('jump');
      const r: RateLimitRule = { perMinute: 6, burst: 2 }; // capacity 20 s
      await limiter.hit(k, r, 2, T0);
      // 30 s back: 50 s of budget ahead, within capacity + 1 min: still spent.
      expect(await limiter.hit(k, r, 1, T0 - 30_000)).toMatchObject({
        allowed: false,
        retryAfterSeconds: 40,
      });
      // 10 min back: a jump, not a flood.
      expect(await limiter.hit(k, r, 1, T0 - 600_000)).toMatchObject({ allowed: true, remaining: 1 });
    });

    it('refuses bad arguments as a caller bug (RangeError), counting nothing', async () => {
      const { limiter, key } = make();
      const bad: Array<[string, RateLimitRule, number, number]> = [
        ['', rule, 1, T0],
        [key('x'.repeat(600)), rule, 1, T0],
        [key('r'), { perMinute: 0, burst: 1 }, 1, T0],
        [key('r'), { perMinute: 10, burst: 0 }, 1, T0],
        [key('r'), { perMinute: 10, burst: 1.5 }, 1, T0],
        [key('r'), { perMinute: Number.NaN, burst: 1 }, 1, T0],
        [key('r'), rule, -1, T0],
        [key('r'), rule, 1, Number.NaN],
      ];
      for (const args of bad) {
        await expect(Promise.resolve().then(() => limiter.hit(...args))).rejects.toThrow(RangeError);
      }
      expect(await limiter.hit(key('r'), rule, 0, T0)).toMatchObject({ allowed: true, remaining: 3 });
    });
  });
}
