import { randomBytes, randomFillSync } from 'node:crypto';

/** Larger requests skip the pool. */
const MAX_POOLED = 64;

/**
 * Random bytes from node:crypto's CSPRNG, drawn into a pool many at a time and handed out in small
 * pieces, as Node's own `randomUUID` does: each draw is a call into OpenSSL, which on a VM where a
 * system call costs microseconds made the two draws of a login some 7 µs each. Bytes handed out
 * are zeroed in the pool, so a later read of this process's memory cannot recover ids and nonces
 * already issued.
 */
export class RandomPool {
  readonly #pool: Buffer;
  #offset: number;

  /** `storage` holds the pool (default 4 KiB); it is filled on first use. */
  constructor(storage: Buffer = Buffer.allocUnsafeSlow(4096)) {
    this.#pool = storage;
    this.#offset = storage.length;
  }

  /** `size` random bytes as base64url; more than 64 (or than the pool holds) are drawn directly. */
  base64url(size: number): string {
    if (size > MAX_POOLED || size > this.#pool.length) return randomBytes(size).toString('base64url');
    if (this.#offset + size > this.#pool.length) {
      randomFillSync(this.#pool);
      this.#offset = 0;
    }
    const start = this.#offset;
    const text = this.#pool.toString('base64url', start, start + size);
    this.#pool.fill(0, start, start + size);
    this.#offset = start + size;
    return text;
  }
}

const shared = new RandomPool();

/** `size` random bytes as base64url, from the process's {@link RandomPool}. */
export function randomBase64url(size: number): string {
  return shared.base64url(size);
}
