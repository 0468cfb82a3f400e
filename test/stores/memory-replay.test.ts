import { describe, expect, it } from 'vitest';
import { MemoryReplayCache } from '../../src/index.js';

describe('MemoryReplayCache', () => {
  it('remembers a key once and answers when it was first seen until it expires', async () => {
    const cache = new MemoryReplayCache();
    expect(await cache.remember('dpop:a', 2_000, 1_000)).toEqual({ first: true });
    expect(await cache.remember('dpop:a', 3_000, 1_500)).toEqual({ first: false, seenAt: 1_000 });
    expect(await cache.seenAt('dpop:a', 1_999)).toBe(1_000);
    expect(await cache.seenAt('dpop:a', 2_000)).toBeUndefined();
    expect(await cache.remember('dpop:a', 4_000, 2_000)).toEqual({ first: true });
  });

  it('gives exactly one first answer to concurrent calls with one key', async () => {
    const cache = new MemoryReplayCache();
    const verdicts = await Promise.all(Array.from({ length: 50 }, () => cache.remember('k', 10_000, 0)));
    expect(verdicts.filter((v) => v.first)).toHaveLength(1);
  });

  it('refuses (503) rather than forget an unexpired key when full, and takes keys again once some expired', async () => {
    const cache = new MemoryReplayCache({ maxEntries: 3 });
    for (const key of ['a', 'b', 'c']) await cache.remember(key, 5_000, 0);
    await expect(cache.remember('d', 5_000, 100)).rejects.toMatchObject({
      status: 503,
      code: 'store_unavailable',
    });
    expect(await cache.remember('a', 5_000, 200)).toEqual({ first: false, seenAt: 0 });
    expect(await cache.remember('d', 9_000, 5_000)).toEqual({ first: true });
    expect(cache.size).toBe(1);
  });

  it('refuses empty or oversized keys and expiries more than a day ahead', async () => {
    const cache = new MemoryReplayCache();
    await expect(cache.remember('', 1, 0)).rejects.toThrow(RangeError);
    await expect(cache.remember('x'.repeat(1025), 1, 0)).rejects.toThrow(RangeError);
    await expect(cache.remember('x', 86_400_001, 0)).rejects.toThrow(RangeError);
    await expect(cache.remember('x', Number.NaN, 0)).rejects.toThrow(RangeError);
  });
});

describe('createOidcAuth({ replayCache })', () => {
  it('uses a memory replay cache by default and refuses one without remember/seenAt at start-up', async () => {
    const { createOidcAuth } = await import('../../src/index.js');

    const auth = createOidcAuth({ identities: [], signingKeys: { k: 'x'.repeat(32) } });
    expect(auth.replayCache).toBeInstanceOf(MemoryReplayCache);
    await auth.close();

    expect(() =>
      createOidcAuth({
        identities: [],
        signingKeys: { k: 'x'.repeat(32) },
        replayCache: { remember: async () => ({ first: true }) } as never,
      }),
    ).toThrow(/replayCache\.seenAt/);
  });
});
