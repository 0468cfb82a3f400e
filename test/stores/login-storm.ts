import type { OidcAuth } from '../../src/auth.js';
import { OidcAuthError } from '../../src/errors.js';

/** A token a storm login obtained, with when that login began and returned (epoch ms, sub-ms). */
export interface StormToken {
  token: string;
  startedAt: number;
  endedAt: number;
}

/** What a stopped storm obtained: every granted token, and refusals counted by reason code. */
export interface StormResult {
  tokens: StormToken[];
  failures: Record<string, number>;
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
  readonly #failures: Record<string, number> = {};
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

  /** Stops starting logins, waits for those in flight, and gives back what all of them got. */
  async stop(): Promise<StormResult> {
    this.#stopped = true;
    await Promise.all(this.#loops);
    return { tokens: this.#tokens, failures: this.#failures };
  }

  async #loop(): Promise<void> {
    while (!this.#stopped) {
      const startedAt = preciseNow();
      try {
        const grant = await this.auth.login({ identityId: this.identityId, jwt: this.jwt });
        this.#tokens.push({ token: grant.accessToken, startedAt, endedAt: preciseNow() });
      } catch (error) {
        const code = error instanceof OidcAuthError ? error.code : String(error);
        this.#failures[code] = (this.#failures[code] ?? 0) + 1;
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
