import { createHash } from 'node:crypto';
import type { JWTPayload } from 'jose';
import { OidcAuthError, ServiceUnavailableError } from '../errors.js';
import type { IdentityConfig, Logger } from '../types.js';
import { LoginFailure } from '../trust/verify-idp-token.js';
import { MAX_REPLAY_KEY_LENGTH, MAX_REPLAY_WINDOW_MS, type ReplayCache } from './replay.js';

/**
 * Single-use IdP tokens (identity option `singleUseTokens`): each IdP token logs in once, on every
 * instance sharing the engine's replay cache; a second exchange is refused with
 * `token_already_used`. SECURITY-CASES TIME-09: the key is never the raw token string.
 */

/** A `jti` used as it is in the key: printable ASCII, at most this long; any other is hashed. */
const PLAIN_JTI = /^[\x21-\x7e]{1,256}$/;

/**
 * The replay-cache key of a verified IdP token: `idp:<iss>:<jti>`, or, without a string `jti`,
 * `idp:<iss>:sha256:<base64url SHA-256 of the JWS signing input>` (the header and payload segments
 * and the dot between them).
 *
 * Why the signing input and not the whole string: the signature covers exactly those bytes, so any
 * other header or payload text fails verification, while the signature segment can be altered
 * without the IdP's key and still verify (unused bits of its last base64url character; an ECDSA
 * signature's `s` replaced by `n - s`). Hashing it would let one token log in again as "another".
 * Padding, whitespace or a trailing newline never reach here: the token is refused as malformed first.
 *
 * A `jti` that is not printable ASCII (or longer than 256) goes in hashed (`idp:<iss>:jti-sha256:…`),
 * so every key is text every cache keeps as sent (PostgreSQL `text` refuses U+0000). A key longer
 * than the cache allows (a very long `iss`) becomes `idp:sha256:<hash of that key>`.
 */
export function singleUseKey(jwt: string, payload: JWTPayload): string {
  const iss = String(payload.iss);
  const jti = payload.jti;
  let key: string;
  if (typeof jti === 'string' && PLAIN_JTI.test(jti)) key = `idp:${iss}:${jti}`;
  else if (typeof jti === 'string' && jti.length > 0) key = `idp:${iss}:jti-sha256:${sha256(jti)}`;
  else key = `idp:${iss}:sha256:${sha256(jwt.slice(0, jwt.lastIndexOf('.')))}`;
  return key.length <= MAX_REPLAY_KEY_LENGTH ? key : `idp:sha256:${sha256(key)}`;
}

/**
 * Until when the key of a verified IdP token is remembered (epoch ms): as long as a login could
 * still accept it (its `exp` plus the identity's clock skew), at most {@link MAX_REPLAY_WINDOW_MS}.
 * A token a login would accept for longer than that is refused by {@link spendIdpToken}.
 */
export function singleUseExpiry(payload: JWTPayload, config: IdentityConfig, now: number): number {
  const acceptedUntil = ((payload.exp as number) + config.clockSkewSeconds) * 1000;
  return Math.max(now + 1, Math.min(acceptedUntil, now + MAX_REPLAY_WINDOW_MS));
}

/**
 * Spend a verified IdP token of a single-use identity: remember its key, or refuse the login as
 * `token_already_used` (a {@link LoginFailure} after the signature verified, `detail.seenAt` the
 * epoch ms of the exchange that spent it). A cache that cannot answer fails closed: 503
 * `store_unavailable`, and the caller mints nothing.
 */
export async function spendIdpToken(
  cache: ReplayCache,
  jwt: string,
  payload: JWTPayload,
  config: IdentityConfig,
  now: number,
  logger?: Logger,
): Promise<void> {
  // A token a login would still accept after its key is forgotten (a day at most) could be exchanged
  // again then: a single-use identity refuses it rather than let it through twice.
  const acceptedUntil = ((payload.exp as number) + config.clockSkewSeconds) * 1000;
  if (acceptedUntil > now + MAX_REPLAY_WINDOW_MS) {
    throw new LoginFailure('token_lifetime_too_long', true, { singleUse: true });
  }
  let verdict;
  try {
    verdict = await cache.remember(singleUseKey(jwt, payload), singleUseExpiry(payload, config, now), now);
  } catch (error) {
    throw replayCacheDown(error, 'remember', logger);
  }
  if (verdict?.first === true) return;
  if (verdict?.first === false && Number.isFinite(verdict.seenAt)) {
    throw new LoginFailure('token_already_used', true, { seenAt: verdict.seenAt });
  }
  throw replayCacheDown(
    new TypeError('the replay cache answered neither first nor seenAt'),
    'remember',
    logger,
  );
}

/**
 * When a verified IdP token was spent, if it was and is still remembered (epoch ms); remembers
 * nothing (for `explain`). Throws 503 `store_unavailable` when the cache cannot answer.
 */
export async function idpTokenSpentAt(
  cache: ReplayCache,
  jwt: string,
  payload: JWTPayload,
  now: number,
): Promise<number | undefined> {
  try {
    return await cache.seenAt(singleUseKey(jwt, payload), now);
  } catch (error) {
    throw replayCacheDown(error, 'seenAt');
  }
}

function replayCacheDown(error: unknown, operation: string, logger?: Logger): OidcAuthError {
  const name = error instanceof Error ? error.name : typeof error;
  logger?.error(
    { event: 'store.error', operation: `replay.${operation}`, err: { name } },
    'replay cache failed',
  );
  if (error instanceof ServiceUnavailableError && error.code === 'store_unavailable') return error;
  return new ServiceUnavailableError('store_unavailable', 'The replay cache is unavailable', {
    cause: error,
  });
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('base64url');
}
