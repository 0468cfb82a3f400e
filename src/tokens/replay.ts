/**
 * One replay cache for everything that may be seen only once: DPoP proof `jti`s (RFC 9449 §11.1)
 * and IdP tokens of identities that allow a single exchange each.
 *
 * Implementations: {@link MemoryReplayCache} (one process), `RedisReplayCache`
 * (`oidc-machine-auth/redis`) and `PostgresReplayCache` (`oidc-machine-auth/postgres`) for a fleet.
 * A custom one proves itself with `replayCacheConformance` from `oidc-machine-auth/testing`.
 */
export interface ReplayCache {
  /**
   * Atomically remember `key` until `expiresAt` (epoch ms) unless it is already remembered and not
   * expired. `{ first: true }` when this call remembered it; `{ first: false, seenAt }` (epoch ms of
   * the call that did) when it was already there. Two concurrent calls with one key, on any
   * instance sharing the cache, give exactly one `first: true`.
   *
   * Fails closed: a cache that cannot answer (down, full) throws, and the caller refuses the
   * request (503), never lets it through unchecked.
   */
  remember(key: string, expiresAt: number, now: number): Promise<ReplayVerdict>;
  /** When `key` was remembered, if it still is (epoch ms); remembers nothing (for `explain`). */
  seenAt(key: string, now: number): Promise<number | undefined>;
  close?(): Promise<void>;
}

export type ReplayVerdict = { first: true } | { first: false; seenAt: number };

/** Longest a key may be remembered: a day past `now`. Longer asks are refused as a caller bug. */
export const MAX_REPLAY_WINDOW_MS = 86_400_000;

/** Keys are namespaced by their user: `dpop:<jkt>:<jti>`, `idp:<iss>:<jti>`. At most this long. */
export const MAX_REPLAY_KEY_LENGTH = 1024;

/** The checks every implementation makes before it remembers anything. */
export function checkReplayArguments(key: string, expiresAt: number, now: number): void {
  if (typeof key !== 'string' || key.length === 0 || key.length > MAX_REPLAY_KEY_LENGTH) {
    throw new RangeError(`replay key must be 1..${MAX_REPLAY_KEY_LENGTH} characters`);
  }
  if (!Number.isFinite(expiresAt) || !Number.isFinite(now) || expiresAt - now > MAX_REPLAY_WINDOW_MS) {
    throw new RangeError('replay expiry must be finite and at most a day ahead');
  }
}
