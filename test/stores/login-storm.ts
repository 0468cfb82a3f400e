import type { OidcAuth } from '../../src/engine/auth.js';
import { OidcAuthError } from '../../src/errors.js';

/** A token a storm login obtained, with when that login returned (epoch ms, sub-ms). */
export interface StormToken {
  token: string;
  endedAt: number;
  /** When that login was called (epoch ms, sub-ms). */
  startedAt?: number;
}

/** Epoch ms with sub-millisecond resolution, comparable across processes of one machine. */
export function preciseNow(): number {
  return performance.timeOrigin + performance.now();
}

/**
 * `concurrency` login loops on one engine, each starting its next login as soon as the last one
 * answers, until {@link stop}. Every login uses the same IdP token (the engine has no replay check),
 * so the loops spend their time in the engine, not in signing.
 */
export class LoginStorm {
  readonly #tokens: StormToken[] = [];
  #stopped = false;
  #loops: Promise<void>[] = [];

  constructor(
    private readonly auth: Pick<OidcAuth, 'login'>,
    private readonly identityId: string,
    private readonly jwt: string,
    private readonly concurrency: number,
  ) {}

  start(): this {
    this.#loops = Array.from({ length: this.concurrency }, () => this.#loop());
    return this;
  }

  /** Logins granted so far. */
  get successes(): number {
    return this.#tokens.length;
  }

  /** The latest token granted, if any. */
  get sample(): string | undefined {
    return this.#tokens.at(-1)?.token;
  }

  /** Stops starting logins, waits for those in flight, and gives back every token they were granted. */
  async stop(): Promise<StormToken[]> {
    this.#stopped = true;
    await Promise.all(this.#loops);
    return this.#tokens;
  }

  async #loop(): Promise<void> {
    while (!this.#stopped) {
      try {
        const startedAt = preciseNow();
        const grant = await this.auth.login({ identityId: this.identityId, jwt: this.jwt });
        this.#tokens.push({ token: grant.accessToken, endedAt: preciseNow(), startedAt });
      } catch {
        // Refused (the identity ended) or failed: only the granted tokens matter.
      }
      // Yield a macrotask now and then so the process stays responsive to its driver.
      await new Promise((resolve) => setImmediate(resolve));
    }
  }
}

/**
 * How the engine answers each token on `authenticate` and on `renew`: `'ok'` when it was accepted,
 * else the reason code of the refusal.
 */
export async function outcomes(
  auth: Pick<OidcAuth, 'authenticate' | 'renew'>,
  tokens: readonly string[],
): Promise<{ authenticate: string[]; renew: string[] }> {
  const answer = (call: Promise<unknown>) =>
    call.then(
      () => 'ok',
      (error: unknown) => (error instanceof OidcAuthError ? error.code : String(error)),
    );
  const authenticate: string[] = [];
  const renew: string[] = [];
  // In slices: thousands of concurrent calls would only measure the pool's queue.
  for (let start = 0; start < tokens.length; start += 50) {
    const slice = tokens.slice(start, start + 50);
    authenticate.push(...(await Promise.all(slice.map((t) => answer(auth.authenticate(t))))));
    renew.push(...(await Promise.all(slice.map((t) => answer(auth.renew(t))))));
  }
  return { authenticate, renew };
}
