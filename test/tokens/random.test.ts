import { describe, expect, it } from 'vitest';
import { RandomPool, randomBase64url } from '../../src/tokens/random.js';
import { AccessTokenCodec, newTokenId } from '../../src/tokens/opaque.js';

describe('random bytes for token ids and nonces', () => {
  it('gives base64url text of the asked size: 16 bytes are 22 characters, 6 are 8, 100 (past the pool) are 134', () => {
    expect(randomBase64url(16)).toMatch(/^[A-Za-z0-9_-]{22}$/);
    expect(randomBase64url(6)).toMatch(/^[A-Za-z0-9_-]{8}$/);
    expect(randomBase64url(100)).toMatch(/^[A-Za-z0-9_-]{134}$/);
    expect(newTokenId()).toMatch(/^[A-Za-z0-9_-]{22}$/);
  });

  it('never repeats across many refills of the pool: 20,000 token ids (78 pools of 4 KiB) are all distinct', () => {
    const ids = new Set(Array.from({ length: 20_000 }, () => newTokenId()));
    expect(ids.size).toBe(20_000);
  });

  it('zeroes the bytes it handed out, and refills only when the rest is too short', () => {
    const storage = Buffer.alloc(40);
    const pool = new RandomPool(storage);
    const first = pool.base64url(16);
    expect(storage.subarray(0, 16).every((b) => b === 0)).toBe(true);
    expect(storage.subarray(16).some((b) => b !== 0)).toBe(true);
    const second = pool.base64url(16);
    expect(storage.subarray(0, 32).every((b) => b === 0)).toBe(true);
    const rest = Buffer.from(storage.subarray(32));
    // 8 bytes left, 16 asked: the pool is drawn again and the answer starts at its beginning.
    const third = pool.base64url(16);
    expect(new Set([first, second, third]).size).toBe(3);
    expect(storage.subarray(0, 16).every((b) => b === 0)).toBe(true);
    expect(storage.subarray(32).equals(rest)).toBe(false);
  });

  it('two access tokens minted for one token id in the same second differ (their nonces)', () => {
    const codec = new AccessTokenCodec({ k0: Buffer.alloc(32, 7) });
    const expiresAt = Date.now() + 60_000;
    expect(codec.mint('id', expiresAt)).not.toBe(codec.mint('id', expiresAt));
  });
});
