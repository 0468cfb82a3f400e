import type { Cluster, Redis } from 'ioredis';

/** A Lua script and its SHA-1, as `EVALSHA` wants it. */
export interface Script {
  lua: string;
  sha: string;
}

/**
 * How every Redis-backed store here talks to Redis: each call bounded by a deadline, scripts run by
 * their SHA (loaded once per server), and, for a client without an offline queue, the first call
 * waiting for the connection instead of failing. Any failure becomes the store's own error
 * (`unavailable`), so each store fails closed in its own words.
 */
export class RedisCalls {
  readonly #client: Redis | Cluster;
  readonly #timeoutMs: number;
  readonly #unavailable: (cause: unknown) => Error;
  readonly #waitForReady: boolean;
  #seenReady = false;
  #readyPromise: Promise<void> | undefined;

  constructor(client: Redis | Cluster, timeoutMs: number, unavailable: (cause: unknown) => Error) {
    this.#client = client;
    this.#timeoutMs = timeoutMs;
    this.#unavailable = unavailable;
    this.#waitForReady = (client as Redis).options?.enableOfflineQueue === false;
  }

  /** Runs a script by its SHA; loads it with `EVAL` once per server when the server lacks it. */
  async eval(script: Script, keys: readonly string[], args: readonly string[]): Promise<unknown> {
    try {
      return await this.#client.evalsha(script.sha, keys.length, ...keys, ...args);
    } catch (error) {
      if (!(error instanceof Error) || !error.message.startsWith('NOSCRIPT')) throw error;
      return this.#client.eval(script.lua, keys.length, ...keys, ...args);
    }
  }

  /** `operation` within the deadline, its failures turned into the store's unavailable error. */
  async run<T>(operation: () => Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('redis command timed out')), this.#timeoutMs);
    });
    try {
      if (this.#waitForReady && !this.#seenReady) await Promise.race([this.#ready(), deadline]);
      return await Promise.race([operation(), deadline]);
    } catch (error) {
      throw this.#unavailable(error);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Without an offline queue, commands sent before the first connection fail: wait for it once. */
  #ready(): Promise<void> {
    const client = this.#client;
    if (client.status === 'ready') {
      this.#seenReady = true;
      return Promise.resolve();
    }
    this.#readyPromise ??= new Promise<void>((resolve) => {
      client.once('ready', () => {
        this.#seenReady = true;
        resolve();
      });
      if (client.status === 'wait') client.connect().catch(() => {});
    });
    return this.#readyPromise;
  }
}

/**
 * The calls made in one turn of the event loop, sent together: `add` queues a call, and the first
 * call of a turn schedules `send` (on `setImmediate`) over every call queued by then, at most `max`
 * per `send`. Unbatched (a Cluster, whose keys live in different slots, or batching turned off),
 * every call is sent alone at once. `send` settles each call of its batch and never throws.
 */
export class TurnBatches<T> {
  #pending: T[] = [];

  constructor(
    readonly batched: boolean,
    readonly max: number,
    readonly send: (batch: readonly T[]) => Promise<void>,
  ) {}

  add(call: T): void {
    if (!this.batched) void this.send([call]);
    else if (this.#pending.push(call) === 1) setImmediate(this.#flush);
  }

  readonly #flush = (): void => {
    const pending = this.#pending;
    this.#pending = [];
    for (let start = 0; start < pending.length; start += this.max) {
      void this.send(pending.length <= this.max ? pending : pending.slice(start, start + this.max));
    }
  };
}
