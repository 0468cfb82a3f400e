import {
  createRemoteJWKSet,
  customFetch,
  decodeJwt,
  decodeProtectedHeader,
  errors,
  jwtVerify,
  type JWTVerifyGetKey,
  type ProtectedHeaderParameters,
} from 'jose';
import { checkAccessTokenClaims, REQUIRED_CLAIMS, type AccessTokenClaims } from './claims.js';
import { discoverMetadata, type AuthorizationServerMetadata } from './discovery.js';
import { VerifyError } from './errors.js';
import type { HttpContext } from './http.js';
import { createIntrospector, type IntrospectionOptions, type Introspector } from './introspection.js';
import {
  parseAlgorithms,
  parseSeconds,
  parseServerUrl,
  type FetchLike,
  type VerifyAlgorithm,
} from './options.js';
import { createVerifiedTokenCache, type VerifiedTokenCache } from './token-cache.js';

/** Longest token looked at, in characters. Ours are well under 2 KB. */
export const MAX_TOKEN_LENGTH = 16 * 1024;
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;
/** After a failed discovery, how long verifications fail fast before the issuer is asked again. */
const DISCOVERY_RETRY_MS = 5_000;

/** Options of {@link createVerifier}. Checked once: a bad option throws `invalid_config` right away. */
export interface VerifierOptions {
  /**
   * Our issuer URL exactly as the token service is configured with it (the `iss` of its tokens and
   * the `issuer` of its RFC 8414 metadata), e.g. `https://app.example/api/v1/auth`.
   */
  issuer: string;
  /** The audience this service expects (RFC 9068 section 4: `aud` must contain it); any one of a list. */
  audience: string | readonly string[];
  /** JWS algorithms accepted, asymmetric only. Default `EdDSA`, `Ed25519`, `ES256`, `RS256`. */
  algorithms?: readonly VerifyAlgorithm[];
  /** Leeway for `exp`, `nbf` and `iat`, in seconds. Default 60, at most 300. */
  clockToleranceSeconds?: number;
  /** The `fetch` used for metadata, JWKS and introspection. Default: the global `fetch`. */
  fetch?: FetchLike;
  /** Per request to the issuer, in milliseconds. Default 5,000. */
  timeoutMs?: number;
  /** Accept `http:` URLs on 127.0.0.1, [::1] and localhost (tests, sidecars). Default false. */
  allowInsecureLoopback?: boolean;
  /** How long discovered metadata is used before it is fetched again, in seconds. Default 3,600. */
  metadataMaxAgeSeconds?: number;
  /** JWKS cache (jose `createRemoteJWKSet` semantics). */
  jwks?: {
    /** Keys are fetched again after this many seconds. Default 600. */
    maxAgeSeconds?: number;
    /**
     * A token with an unknown `kid` refetches the JWKS at most once per this many seconds; within it,
     * such a token is refused with `key_not_found` and nothing is fetched. Default 30.
     */
    cooldownSeconds?: number;
  };
  /**
   * Verified tokens kept so a token seen again skips the signature check: `max` entries (default
   * 10,000), each for at most `maxAgeSeconds` (default 60, at most 600) and never past its `exp`.
   * `false` verifies every call from scratch.
   */
  cache?: { max?: number; maxAgeSeconds?: number } | false;
  /** Credentials for the RFC 7662 introspection endpoint; needed for `verify(token, { introspect: true })`. */
  introspection?: IntrospectionOptions;
}

/** Options of one {@link Verifier.verify} call. */
export interface VerifyCallOptions {
  /**
   * After the local checks pass, also ask the issuer's RFC 7662 introspection endpoint and refuse
   * unless it answers `active: true` (catches revoked tokens and exhausted uses). Default false.
   */
  introspect?: boolean;
}

/** Verifies our RFC 9068 JWT access tokens. */
export interface Verifier {
  /**
   * Verify a JWT access token (without the `Bearer ` prefix). Resolves with its claims; rejects
   * with a {@link VerifyError} whose `code` says why.
   */
  verify(token: string, options?: VerifyCallOptions): Promise<AccessTokenClaims>;
  /** The issuer's RFC 8414 metadata, discovered (and checked) on first use. */
  metadata(): Promise<AuthorizationServerMetadata>;
}

interface IssuerState {
  metadata: AuthorizationServerMetadata;
  jwks: JWTVerifyGetKey;
  fetchedAt: number;
}

/**
 * Build a verifier for the access tokens of one issuer. Nothing is fetched until the first
 * `verify`: then the RFC 8414 metadata (section 3.1 location first), then the JWKS from its
 * `jwks_uri`.
 */
export function createVerifier(options: VerifierOptions): Verifier {
  if (typeof options !== 'object' || options === null) {
    throw new VerifyError('invalid_config', 'createVerifier needs an options object');
  }
  const allowInsecureLoopback = options.allowInsecureLoopback === true;
  const issuerUrl = parseServerUrl(options.issuer, 'issuer', allowInsecureLoopback);
  if (issuerUrl.search)
    throw new VerifyError('invalid_config', 'issuer must not have a query (RFC 8414 section 2)');
  const issuer = options.issuer;
  const audiences = typeof options.audience === 'string' ? [options.audience] : options.audience;
  if (
    !Array.isArray(audiences) ||
    audiences.length === 0 ||
    audiences.some((a) => typeof a !== 'string' || a === '')
  ) {
    throw new VerifyError('invalid_config', 'audience must be a non-empty string or array of them');
  }
  const algorithms = parseAlgorithms(options.algorithms);
  const tolerance = parseSeconds(options.clockToleranceSeconds, 'clockToleranceSeconds', 60, 0, 300);
  const timeoutMs = parseSeconds(options.timeoutMs, 'timeoutMs', 5_000, 1, 60_000);
  const metadataMaxAgeMs =
    parseSeconds(options.metadataMaxAgeSeconds, 'metadataMaxAgeSeconds', 3_600, 1, 86_400) * 1000;
  const jwksMaxAgeMs = parseSeconds(options.jwks?.maxAgeSeconds, 'jwks.maxAgeSeconds', 600, 1, 86_400) * 1000;
  const jwksCooldownMs =
    parseSeconds(options.jwks?.cooldownSeconds, 'jwks.cooldownSeconds', 30, 0, 3_600) * 1000;
  if (options.fetch !== undefined && typeof options.fetch !== 'function') {
    throw new VerifyError('invalid_config', 'fetch must be a function');
  }
  const hostFetch = options.fetch;
  // Called unbound on some runtimes (Workers) the global fetch throws "Illegal invocation".
  const fetchImpl: FetchLike = hostFetch ?? ((input, init) => globalThis.fetch(input, init));
  const http: HttpContext = { fetch: fetchImpl, timeoutMs };
  const cache: VerifiedTokenCache | undefined =
    options.cache === false
      ? undefined
      : createVerifiedTokenCache(
          parseSeconds(options.cache?.max, 'cache.max', 10_000, 1, 1_000_000),
          parseSeconds(options.cache?.maxAgeSeconds, 'cache.maxAgeSeconds', 60, 1, 600),
        );
  const introspector: Introspector | undefined = options.introspection
    ? createIntrospector(options.introspection, http)
    : undefined;

  let current: IssuerState | undefined;
  let pending: Promise<IssuerState> | undefined;
  let failedAt = Number.NEGATIVE_INFINITY;
  let lastFailure: unknown;

  function issuerState(): Promise<IssuerState> {
    const now = Date.now();
    if (current && now - current.fetchedAt < metadataMaxAgeMs) return Promise.resolve(current);
    if (pending) return pending;
    if (now - failedAt < DISCOVERY_RETRY_MS) {
      return current ? Promise.resolve(current) : Promise.reject(lastFailure);
    }
    pending = discoverMetadata(issuer, { ...http, allowInsecureLoopback })
      .then((metadata) => {
        const jwks =
          current && current.metadata.jwks_uri === metadata.jwks_uri
            ? current.jwks
            : createRemoteJWKSet(new URL(metadata.jwks_uri), {
                timeoutDuration: timeoutMs,
                cooldownDuration: jwksCooldownMs,
                cacheMaxAge: jwksMaxAgeMs,
                ...(hostFetch ? { [customFetch]: hostFetch } : {}),
              });
        current = { metadata, jwks, fetchedAt: Date.now() };
        return current;
      })
      .catch((error: unknown) => {
        failedAt = Date.now();
        lastFailure = error;
        if (current) return current; // keep the last good metadata while the issuer is unreachable
        throw error;
      })
      .finally(() => {
        pending = undefined;
      });
    return pending;
  }

  async function verifyFresh(token: string): Promise<AccessTokenClaims> {
    if (!COMPACT_JWS.test(token)) throw new VerifyError('token_malformed', 'not a compact JWS');
    let header: ProtectedHeaderParameters;
    let unverifiedIssuer: unknown;
    try {
      header = decodeProtectedHeader(token);
      unverifiedIssuer = decodeJwt(token).iss;
    } catch (cause) {
      throw new VerifyError('token_malformed', 'the token header or payload cannot be read', { cause });
    }
    // Refused before any key lookup, so a forged or foreign token never makes us fetch anything.
    if (typeof header.alg !== 'string' || !(algorithms as readonly string[]).includes(header.alg)) {
      throw new VerifyError('algorithm_not_allowed', 'the token "alg" is not in the allowlist');
    }
    const typ = typeof header.typ === 'string' ? header.typ.toLowerCase() : undefined;
    if (typ !== 'at+jwt' && typ !== 'application/at+jwt') {
      throw new VerifyError('token_type_invalid', 'the token "typ" is not "at+jwt" (RFC 9068 section 4)');
    }
    if (unverifiedIssuer !== issuer) {
      throw new VerifyError('issuer_mismatch', 'the token "iss" is not the configured issuer');
    }
    const state = await issuerState();
    const getKey: JWTVerifyGetKey = async (protectedHeader, input) => {
      try {
        return await state.jwks(protectedHeader, input);
      } catch (cause) {
        if (cause instanceof errors.JWKSNoMatchingKey || cause instanceof errors.JWKSMultipleMatchingKeys)
          throw cause;
        throw new VerifyError('jwks_unavailable', 'the JWKS could not be fetched or read', { cause });
      }
    };
    let payload;
    try {
      ({ payload } = await jwtVerify(token, getKey, {
        issuer,
        audience: audiences as string[],
        algorithms: algorithms as string[],
        typ: 'at+jwt',
        clockTolerance: tolerance,
        requiredClaims: [...REQUIRED_CLAIMS],
      }));
    } catch (cause) {
      throw joseFailure(cause);
    }
    if (payload.iat! > Math.floor(Date.now() / 1000) + tolerance) {
      throw new VerifyError('claim_invalid', 'the token "iat" is in the future');
    }
    return checkAccessTokenClaims(payload);
  }

  return {
    async verify(token, callOptions) {
      if (typeof token !== 'string' || token === '') throw new VerifyError('token_malformed', 'no token');
      if (token.length > MAX_TOKEN_LENGTH) throw new VerifyError('token_too_large', 'the token is too large');
      if (callOptions?.introspect && !introspector) {
        throw new VerifyError('invalid_config', 'introspect: true needs the introspection option');
      }
      const now = Math.floor(Date.now() / 1000);
      let claims = cache?.get(token, now, tolerance);
      if (!claims) {
        claims = await verifyFresh(token);
        cache?.set(token, claims, now);
      }
      if (callOptions?.introspect) {
        const { metadata } = await issuerState();
        if (!metadata.introspection_endpoint) {
          throw new VerifyError('introspection_unavailable', 'the metadata names no introspection_endpoint');
        }
        await introspector!.check(new URL(metadata.introspection_endpoint), token, claims.exp);
      }
      return claims;
    },
    async metadata() {
      return (await issuerState()).metadata;
    },
  };
}

/** A jose failure, as one of our codes. */
function joseFailure(cause: unknown): VerifyError {
  if (cause instanceof VerifyError) return cause;
  const fail = (code: ConstructorParameters<typeof VerifyError>[0], message: string) =>
    new VerifyError(code, message, { cause });
  if (cause instanceof errors.JWTExpired) return fail('token_expired', 'the token has expired');
  if (cause instanceof errors.JWTClaimValidationFailed) {
    if (cause.reason === 'missing')
      return fail('claim_missing', `the "${cause.claim}" claim is missing (RFC 9068 section 2.2)`);
    switch (cause.claim) {
      case 'nbf':
        return fail('token_not_yet_valid', 'the token is not valid yet ("nbf")');
      case 'aud':
        return fail('audience_mismatch', 'the token "aud" does not contain this service');
      case 'iss':
        return fail('issuer_mismatch', 'the token "iss" is not the configured issuer');
      case 'typ':
        return fail('token_type_invalid', 'the token "typ" is not "at+jwt" (RFC 9068 section 4)');
      default:
        return fail('claim_invalid', `the "${cause.claim}" claim is invalid`);
    }
  }
  if (cause instanceof errors.JOSEAlgNotAllowed)
    return fail('algorithm_not_allowed', 'the token "alg" is not in the allowlist');
  if (cause instanceof errors.JWSSignatureVerificationFailed)
    return fail('signature_invalid', 'the signature does not verify');
  if (cause instanceof errors.JWKSNoMatchingKey || cause instanceof errors.JWKSMultipleMatchingKeys) {
    return fail('key_not_found', 'no single key of the JWKS matches the token');
  }
  return fail('token_malformed', 'the token cannot be verified');
}
