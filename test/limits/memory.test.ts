import { describe, expect, it } from 'vitest';
import { MemoryRateLimiter } from '../../src/index.js';
import { describeRateLimiterSemantics } from './semantics.js';

describeRateLimiterSemantics('MemoryRateLimiter', () => ({
  limiter: new MemoryRateLimiter(),
  key: (k) => k,
}));

const T0 = Date.UTC(2026, 0, 1);

describe('MemoryRateLimiter: bounded, and fair at the bound', () => {
  const rule = { perMinute: 600, burst: 10 }; // back at full budget 100 ms after one hit

  it('holds at most maxKeys under a flood of distinct addresses', () => {
    const limiter = new MemoryRateLimiter({ maxKeys: 1000 });
    let max = 0;
    for (let i = 0; i < 50_000; i++) {
      limiter.hit(`l:a:10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, rule, 1, T0 + (i % 7));
      max = Math.max(max, limiter.size);
    }
    expect(max).toBeLessThanOrEqual(1000);
    expect(limiter.size).toBeLessThanOrEqual(1000);
  });

  it('a flood of new keys drops keys back at full budget first, so a spent key stays spent', () => {
    const limiter = new MemoryRateLimiter({ maxKeys: 100 });
    const strict = { perMinute: 6, burst: 10 }; // once spent, one more hit 10 s later
    for (let i = 0; i < 10; i++) limiter.hit('victim', strict, 1, T0);
    expect(limiter.hit('victim', strict, 1, T0).allowed).toBe(false);
    // 5,000 one-off addresses over 5 s, each back at full budget 1 ms after its hit: the spent key,
    // the oldest, is kept while they come and go.
    const oneOff = { perMinute: 60_000, burst: 1 };
    for (let i = 1; i <= 5000; i++) limiter.hit(`flood-${i}`, oneOff, 1, T0 + i);
    expect(limiter.size).toBeLessThanOrEqual(100);
    expect(limiter.hit('victim', strict, 1, T0 + 5000)).toMatchObject({
      allowed: false,
      retryAfterSeconds: 5,
    });
    expect(limiter.hit('victim', strict, 1, T0 + 10_000).allowed).toBe(true);
  });

  it('when every held key is still spending, the oldest is forgotten (never a refusal of the new key)', () => {
    const limiter = new MemoryRateLimiter({ maxKeys: 3 });
    const slow = { perMinute: 1, burst: 1 };
    for (const k of ['a', 'b', 'c']) expect(limiter.hit(k, slow, 1, T0).allowed).toBe(true);
    expect(limiter.hit('d', slow, 1, T0).allowed).toBe(true);
    expect(limiter.size).toBe(3);
    expect(limiter.hit('a', slow, 1, T0).allowed).toBe(true); // forgotten: full budget again
    expect(limiter.hit('c', slow, 1, T0).allowed).toBe(false); // still held
  });

  it('retryAfter answers what a cost-0 hit answers, without recording', () => {
    const limiter = new MemoryRateLimiter();
    const slow = { perMinute: 6, burst: 2 };
    expect(limiter.retryAfter('k', slow, T0)).toBe(0);
    limiter.hit('k', slow, 1, T0);
    expect(limiter.retryAfter('k', slow, T0)).toBe(0);
    limiter.hit('k', slow, 1, T0);
    expect(limiter.retryAfter('k', slow, T0)).toBe(10);
    expect(limiter.hit('k', slow, 0, T0).retryAfterSeconds).toBe(10);
    expect(limiter.retryAfter('k', slow, T0 + 10_000)).toBe(0);
  });

  it('refuses a bad maxKeys at construction', () => {
    for (const maxKeys of [0, -1, 1.5, Number.NaN]) {
      expect(() => new MemoryRateLimiter({ maxKeys })).toThrow(RangeError);
    }
  });
});
