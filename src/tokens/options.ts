import { ConfigError } from '../errors.js';
import type { Logger } from '../types.js';
import type { AccessTokenFormat } from './grant.js';
import { JwtAccessTokens } from './jwt.js';
import {
  ephemeralAccessTokenKey,
  parseAccessTokenKeys,
  type AccessTokenSigningKeyInput,
} from './signing-keys.js';
import { TokenStateCache } from './token-state.js';

/** `createOidcAuth({ accessTokens })`: the token kinds and the keys of JWT access tokens. */
export interface AccessTokensOptions {
  /** Format for identities that set no `accessTokenFormat`. Default `opaque`. `jwt` needs `issuer`. */
  format?: AccessTokenFormat;
  /**
   * Keys of JWT access tokens (needs `issuer`): the first signs, all are published at
   * `/.well-known/jwks.json` and verify. Default: one random Ed25519 key per process (a warning is
   * logged; JWT access tokens then die with the process and differ between instances).
   */
  signingKeys?: readonly AccessTokenSigningKeyInput[];
  /**
   * `aud` values the engine's own guard accepts in a JWT access token (any one suffices). Default:
   * the `issuer`. A token minted for another audience is refused by this guard (`invalid_token`).
   */
  acceptedAudiences?: readonly string[];
  /**
   * Seconds the guard reuses a JWT access token's store state (revoked or not) before asking the
   * store again; tokens with a uses limit always ask. Bounds how late a revocation made on ANOTHER
   * instance is seen here (on the instance that revoked it is immediate). 0 asks on every request.
   * Default 10, at most 300.
   */
  revocationCheckSeconds?: number;
  /** Token states and verified JWT strings kept (each cache, LRU). Default 10 000. */
  cacheSize?: number;
}

/** The engine's resolved view of `issuer` and `accessTokens`. */
export interface AccessTokenSetup {
  issuer: string | undefined;
  format: AccessTokenFormat;
  jwt: JwtAccessTokens | undefined;
  acceptedAudiences: readonly string[];
  state: TokenStateCache;
}

/**
 * Validate the `issuer` (RFC 8414 §2: https, no query, no fragment; plain http only to a loopback
 * host, for tests) and `accessTokens`. Throws a {@link ConfigError} at start-up.
 */
export function resolveAccessTokens(
  issuer: unknown,
  options: AccessTokensOptions | undefined,
  logger: Logger | undefined,
): AccessTokenSetup {
  const checkedIssuer = issuer === undefined ? undefined : checkIssuer(issuer);
  const opts = options ?? {};
  const format = opts.format ?? 'opaque';
  if (format !== 'opaque' && format !== 'jwt') {
    throw new ConfigError('accessTokens.format', 'must be "opaque" or "jwt"');
  }
  if (checkedIssuer === undefined && (format === 'jwt' || opts.signingKeys !== undefined)) {
    throw new ConfigError('issuer', 'is required for JWT access tokens (it is their iss)');
  }
  const seconds = opts.revocationCheckSeconds ?? 10;
  if (!Number.isSafeInteger(seconds) || seconds < 0 || seconds > 300) {
    throw new ConfigError('accessTokens.revocationCheckSeconds', 'must be an integer from 0 to 300');
  }
  const cacheSize = opts.cacheSize ?? 10_000;
  if (!Number.isSafeInteger(cacheSize) || cacheSize < 0 || cacheSize > 1_000_000) {
    throw new ConfigError('accessTokens.cacheSize', 'must be an integer from 0 to 1000000');
  }
  const accepted = opts.acceptedAudiences ?? (checkedIssuer === undefined ? [] : [checkedIssuer]);
  if (!Array.isArray(accepted) || !accepted.every((a) => typeof a === 'string' && a !== '')) {
    throw new ConfigError('accessTokens.acceptedAudiences', 'must be an array of non-empty strings');
  }
  let jwt: JwtAccessTokens | undefined;
  if (checkedIssuer !== undefined) {
    let input = opts.signingKeys;
    if (input === undefined) {
      input = [ephemeralAccessTokenKey()];
      logger?.warn(
        { event: 'access_token_keys.ephemeral' },
        'no accessTokens.signingKeys given: JWT access tokens are signed with a random key that dies with the process',
      );
    }
    jwt = new JwtAccessTokens({
      issuer: checkedIssuer,
      keys: parseAccessTokenKeys(input),
      verifiedCacheSize: cacheSize,
    });
  }
  return {
    issuer: checkedIssuer,
    format,
    jwt,
    acceptedAudiences: Object.freeze([...accepted]),
    state: new TokenStateCache({ max: cacheSize, maxAgeMs: seconds * 1000 }),
  };
}

const LOOPBACK = /^(localhost|127(\.\d{1,3}){3}|\[::1\])$/;

function checkIssuer(value: unknown): string {
  if (typeof value !== 'string' || value.length > 1024) {
    throw new ConfigError('issuer', 'must be a URL string of at most 1024 characters');
  }
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new ConfigError('issuer', 'must be an absolute URL such as https://app.example/api/v1/auth');
  }
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && LOOPBACK.test(url.hostname))) {
    throw new ConfigError('issuer', 'must use https (plain http only on a loopback host, for tests)');
  }
  if (url.search || url.hash || value.includes('?') || value.includes('#')) {
    throw new ConfigError('issuer', 'must have no query and no fragment (RFC 8414 §2)');
  }
  if (url.username || url.password) throw new ConfigError('issuer', 'must have no user information');
  if (value.endsWith('/')) {
    throw new ConfigError(
      'issuer',
      'must not end with "/" (it is compared exactly, and paths are appended to it)',
    );
  }
  if (url.href !== value && `${url.href.replace(/\/$/, '')}` !== value) {
    throw new ConfigError('issuer', `must be written in normal form (${url.href.replace(/\/$/, '')})`);
  }
  return value;
}

/** The issuer's path for RFC 8414 §3.1 (`""` for an issuer without one). */
export function issuerPath(issuer: string): string {
  const path = new URL(issuer).pathname;
  return path === '/' ? '' : path;
}
