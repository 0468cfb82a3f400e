import { randomBytes } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import {
  ConfigError,
  ForbiddenError,
  OidcAuthError,
  ServiceUnavailableError,
  UnauthorizedError,
  bearerChallenge,
  type ReasonCode,
} from '../errors.js';
import type { HttpGet } from '../trust/fetch.js';
import { compileIpAllowList, type IpAllowList } from '../policy/trusted-ips.js';
import { KeyManager, MAX_ISSUERS, MAX_SOURCES_PER_ISSUER, type KeyManagerOptions } from '../trust/keys.js';
import { compileIdentityPolicy } from '../policy/match.js';
import { MemoryIdentityStore, MemoryTokenStore } from '../stores/memory.js';
import { AccessTokenCodec, newTokenId, type SigningKeysInput } from '../tokens/opaque.js';
import type {
  AccessTokenRecord,
  AuthContext,
  AuthEvent,
  Clock,
  IdentityConfig,
  IdentityConfigInput,
  IdentityStore,
  Logger,
  TokenStore,
} from '../types.js';
import {
  LoginFailure,
  readHeader,
  unstorableClaim,
  verifyLogin,
  type LoginContext,
} from '../trust/verify-idp-token.js';
import { explainLogin, type ExplainReport } from '../policy/explain.js';
import { IDENTITY_ID_PATTERN, isParsedIdentityConfig, parseIdentityConfig } from '../trust/config.js';
import type { TrustEntryInput } from '../trust/entries.js';
import { bindTrust, type TrustEntries } from '../trust/engine.js';
import type { TrustStore } from '../trust/store.js';
import { acceptsIssuer } from '../trust/sources.js';
import type { JWK } from 'jose';
import {
  checkGrantRequest,
  narrowGrant,
  type AccessTokenFormat,
  type TokenGrantRequest,
} from '../tokens/grant.js';
import { looksLikeJwt, type ParsedJwtAccessToken } from '../tokens/jwt.js';
import { resolveAccessTokens, type AccessTokensOptions } from '../tokens/options.js';
import type { ReplayCache } from '../tokens/replay.js';
import { MemoryReplayCache } from '../stores/memory-replay.js';
import { spendIdpToken } from '../tokens/single-use.js';
import { revokeWhereEngine, type RevokeWhereInput } from '../tokens/revoke-where-engine.js';
import {
  DpopVerifier,
  checkBinding,
  proveUse,
  type DpopOptions,
  type DpopRequest,
  type DpopService,
} from '../tokens/dpop.js';
import { EngineRateLimits } from '../limits/engine.js';
import { resolveRateLimits, type RateLimitsOptions } from '../limits/options.js';
import { NOOP_SPAN, STORE_STEP, step, stepSync, traceOperation } from '../observe/trace.js';
import type { Instrumentation, TraceSpan } from '../observe/trace.js';

/** Options of {@link createOidcAuth}. */
export interface OidcAuthOptions {
  /** Identity configs: a store, or an array of configs for an in-memory store. */
  identities: IdentityStore | ReadonlyArray<IdentityConfigInput>;
  /** Access-token state. Default: a {@link MemoryTokenStore} (one process only). */
  tokens?: TokenStore;
  /**
   * Own token signing keys (`{ kid: secret }` or `[{ kid, secret }]`, secrets ≥ 32 bytes); the
   * first one signs, all verify, so keys rotate without logging clients out. Default: one random
   * key per process (tokens do not survive a restart; a warning is logged).
   */
  signingKeys?: SigningKeysInput;
  /** Outbound GET used for discovery and JWKS (a seam for tests and custom transports). */
  httpGet?: HttpGet;
  /** Key cache tuning, or a shared {@link KeyManager}. */
  keys?: KeyManager | Omit<KeyManagerOptions, 'httpGet' | 'clock' | 'logger'>;
  /** Epoch-ms clock. Default `Date.now`. */
  clock?: Clock;
  /** pino-style logger. Nothing logged carries a token. */
  logger?: Logger;
  /** Audit hook: login success/failure, renew, revoke, guard denials. Exceptions in it are logged. */
  onEvent?: (event: AuthEvent) => void;
  /**
   * Tell a caller whose IdP token verified which check failed (`subject_not_allowed`…). Default true.
   * When false every login failure answers `invalid_credentials`. Events and logs always have the reason.
   */
  revealLoginFailureReasons?: boolean;
  /** `realm` of `WWW-Authenticate` challenges. Default `oidc-machine-auth`. */
  realm?: string;
  /**
   * Shared trust entries, referenced by identities as `trust: '<trustId>'` (docs/TRUST.md): the
   * entries (this engine's own), or a {@link TrustStore} a fleet shares.
   */
  trust?: readonly TrustEntryInput[] | TrustStore;
  /** With a shared `trust` store: longest a change made elsewhere takes to reach this engine. Default 30. */
  trustMaxAgeSeconds?: number;
  /**
   * Our issuer URL, exactly as clients see it (`https://app.example/api/v1/auth`): the `iss` of JWT
   * access tokens and the RFC 8414 `issuer`. Required for JWT access tokens and the metadata routes.
   */
  issuer?: string;
  /** Token kinds and the keys of JWT access tokens (docs/TOKENS.md). */
  accessTokens?: AccessTokensOptions;
  /** Spans, events and key statistics for a telemetry library (`oidc-machine-auth/opentelemetry`). */
  instrumentation?: Instrumentation;
  /**
   * What may be seen only once (DPoP proof `jti`s, single-use IdP tokens). Default: a
   * {@link MemoryReplayCache} (one process); a fleet shares a Redis or PostgreSQL one.
   */
  replayCache?: ReplayCache;
  /**
   * Claim paths a login records on its token for `auth.revokeWhere` (at most 32; values up to 256
   * characters). Default `run_id`, `repository`, `sha`, `sub`, `pipeline_id`, `project_path`,
   * `kubernetes.io.pod.uid` (docs/SECURITY.md, guarantee 9).
   */
  revocableClaims?: readonly string[];
  /**
   * DPoP proof checks (RFC 9449): algorithms, `iat` window, server nonces (docs/DPOP.md). DPoP
   * logins and tokens work without it; given (even `{}`), the guard's 401 to a request without a
   * token also offers the DPoP scheme beside Bearer (RFC 9449 §7.1).
   */
  dpop?: DpopOptions;
  /**
   * Budgets per client address and per identity on login, renew and the token exchange, failed-login
   * lockouts, and a per-address budget of invalid bearer tokens (429 with `Retry-After`). On by
   * default, sized so a busy CI fleet never meets them (docs/RATE-LIMITS.md); `false` turns all off.
   */
  rateLimits?: RateLimitsOptions | false;
}

/** Options of a call made on behalf of a client. */
export interface CallContext {
  /** The client's address, as the framework's trust-proxy logic determined it. */
  clientIp?: string | undefined;
  /**
   * The request's DPoP proof, method and URL (RFC 9449). A login with a proof binds its token; a
   * bound token is used, renewed or revoked only with a proof by its key (docs/DPOP.md).
   */
  dpop?: DpopRequest | undefined;
}

/** What a successful login or renew grants. */
export interface AccessTokenGrant {
  accessToken: string;
  /** Seconds this token string is valid for (capped by the max TTL). */
  expiresIn: number;
  /** The identity's max TTL in seconds. */
  accessTokenMaxTTL: number;
  /** `DPoP` for a token bound to the login's DPoP proof key (RFC 9449 §5). */
  tokenType: 'Bearer' | 'DPoP';
  tokenId: string;
  identityId: string;
  /** Epoch ms. */
  expiresAt: number;
  /** `opaque` (an `omat_` string) or `jwt` (an RFC 9068 access token). */
  format: AccessTokenFormat;
  /** Space-separated scopes granted (see `grant` of {@link OidcAuth.login}); absent when none. */
  scope?: string;
  /** Audiences granted; absent when none was asked for. */
  audience?: readonly string[];
}

/** The engine: login, authenticate, renew, revoke, explain. */
export interface OidcAuth {
  /** `grant` narrows what the identity would get (shorter TTL, fewer audiences or scopes, opaque for JWT). */
  login(
    input: { identityId: string; jwt: string; grant?: TokenGrantRequest | undefined } & CallContext,
  ): Promise<AccessTokenGrant>;
  authenticate(accessToken: string, context?: CallContext): Promise<AuthContext>;
  renew(accessToken: string, context?: CallContext): Promise<AccessTokenGrant>;
  revoke(accessToken: string, context?: CallContext): Promise<void>;
  /**
   * The record of a live access token (genuine, unexpired, unrevoked, uses left), its `expiresAt`
   * that of this very token string; `undefined` for anything else. Counts no use (RFC 7662).
   */
  introspect(accessToken: string): Promise<AccessTokenRecord | undefined>;
  /** Revoke every token of an identity; returns how many were live. */
  revokeIdentity(identityId: string): Promise<number>;
  /**
   * Revoke every token whose login carried `claim` = `value` (of `identityId` only, when given),
   * logins in flight included; returns how many were live. A login that begins afterwards is not
   * affected. `claim` must be one of `revocableClaims`; the store must implement `revokeWhere`.
   */
  revokeWhere(filter: RevokeWhereInput): Promise<number>;
  /** Every login check in order, with pass/fail and why. Never throws for a bad token. */
  explain(input: { identityId: string; jwt: string } & CallContext): Promise<ExplainReport>;
  readonly identities: IdentityStore;
  readonly tokens: TokenStore;
  /** Where single-use things are remembered (DPoP proofs, single-use IdP tokens). */
  readonly replayCache: ReplayCache;
  /** DPoP: accepted proof algorithms, server nonces, challenges. */
  readonly dpop: DpopService;
  readonly keys: KeyManager;
  /** Shared trust entries (docs/TRUST.md). */
  readonly trust: TrustEntries;
  /** `realm` used in challenges. */
  readonly realm: string;
  /** The configured `issuer` (undefined without one). */
  readonly issuer: string | undefined;
  /** The public keys of JWT access tokens (empty without an `issuer`). */
  jwks(): { keys: JWK[] };
  /** Log through the configured logger (used by adapters for unexpected errors). */
  readonly logger: Logger | undefined;
  close(): Promise<void>;
}

const LOGIN_MESSAGES: Partial<Record<ReasonCode, string>> = {
  issuer_mismatch: 'The token was not issued by an issuer this identity trusts',
  token_expired: 'The token has expired',
  token_not_yet_valid: 'The token is not valid yet',
  token_issued_in_future: 'The token was issued in the future',
  token_lifetime_too_long: 'The token lives longer than this identity accepts',
  subject_not_allowed: 'The token subject is not allowed for this identity',
  audience_not_allowed: 'The token audience is not allowed for this identity',
  claim_not_allowed: 'A bound claim of the token is not allowed for this identity',
  claim_missing: 'A bound claim is missing from the token',
  denied_by_rule: 'A deny rule of this identity matches the token',
  no_rule_matched: 'No allow rule of this identity matches the token',
  claim_value_unsupported: 'A claim value of the token holds U+0000 or invalid Unicode and cannot be stored',
  token_malformed: 'The token is malformed',
  scope_not_allowed: 'A requested scope is not one this identity may be granted',
  target_not_allowed: 'A requested audience is not one this identity may be granted',
  grant_format_not_allowed: 'This identity is not granted JWT access tokens',
  invalid_request: 'The requested grant is malformed',
  token_already_used: 'This IdP token was already exchanged',
};

const GUARD_MESSAGES: Partial<Record<ReasonCode, string>> = {
  invalid_token: 'Invalid access token',
  token_expired: 'Access token expired',
  token_revoked: 'Access token revoked',
  uses_exhausted: 'Access token has no uses left',
  max_ttl_reached: 'Access token reached its max TTL and cannot be renewed',
};

const STORE_REASONS = {
  not_found: 'invalid_token',
  revoked: 'token_revoked',
  expired: 'token_expired',
  uses_exhausted: 'uses_exhausted',
  max_ttl_reached: 'max_ttl_reached',
} as const satisfies Record<string, ReasonCode>;

/** Build the engine. Validates every option now, so a bad option fails at start-up. */
export function createOidcAuth(options: OidcAuthOptions): OidcAuth {
  const clock = options.clock ?? Date.now;
  const logger = options.logger;
  const realm = options.realm ?? 'oidc-machine-auth';
  const reveal = options.revealLoginFailureReasons ?? true;
  const identities = Array.isArray(options.identities)
    ? new MemoryIdentityStore(options.identities as IdentityConfigInput[])
    : (options.identities as IdentityStore);
  requireMethods(identities, 'identities', 'identity store', IDENTITY_STORE_METHODS);
  if (options.tokens !== undefined)
    requireMethods(options.tokens, 'tokens', 'token store', TOKEN_STORE_METHODS, TAKES_NOW);
  const ownsTokens = !options.tokens;
  const tokens = options.tokens ?? new MemoryTokenStore({ clock });
  let signingKeys = options.signingKeys;
  if (!signingKeys) {
    signingKeys = { k0: randomBytes(32) };
    logger?.warn(
      { event: 'signing_keys.ephemeral' },
      'no signingKeys given: using a random key; access tokens will not survive a restart',
    );
  }
  const codec = new AccessTokenCodec(signingKeys);
  const ownsReplayCache = options.replayCache === undefined;
  const replayCache = options.replayCache ?? new MemoryReplayCache();
  requireMethods(replayCache, 'replayCache', 'replay cache', ['remember', 'seenAt']);
  const dpop = new DpopVerifier(options.dpop, replayCache, realm, clock);
  const access = resolveAccessTokens(options.issuer, options.accessTokens, logger);
  const keys =
    options.keys instanceof KeyManager
      ? options.keys
      : new KeyManager({
          ...options.keys,
          onFetch: keyFetchEvents(options.keys?.onFetch),
          httpGet: options.httpGet,
          clock,
          logger,
        });
  // Logins verify a token against the key sources registered for its issuer before they read the
  // identity store (see verifyLogin). A memory store (an array is one) lists the distinct issuers
  // and key sources it holds, so all are registered from the first request and as configs are put;
  // other stores register each config a login or the admin API loads or writes.
  const memoryStore = identities instanceof MemoryIdentityStore ? identities : undefined;
  /** Key sources of `memoryStore` registered so far (its list only grows), and whether every one registered. */
  let storeSourcesRegistered = 0;
  let everyStoreIssuerRegistered = true;
  /** Every issuer the memory store binds is registered, as of the last login (never: another store). */
  let allIssuersRegistered = false;
  let closed = false;
  /** Issuer → epoch ms of its last key-source refresh (see refreshIssuer); only registered issuers. */
  const refreshedAt = new LRUCache<string, number>({ max: MAX_REFRESHED_ISSUERS });
  /** Issuers whose key-source refresh is running (single flight). */
  const refreshing = new Set<string>();
  registerStoreIssuers();
  const trust = bindTrust({
    trust: options.trust,
    maxAgeSeconds: options.trustMaxAgeSeconds,
    keys,
    identityInputs: options.identities,
    identities,
    clock,
    logger,
  });

  const invalidTokenChallenge = bearerChallenge(realm, 'invalid_token');
  const ipLists = new WeakMap<readonly string[], IpAllowList>();
  // Verdicts on configs that did not come from parseIdentityConfig, by their JSON (see validated).
  const checkedConfigs = new LRUCache<string, { config: IdentityConfig | undefined }>({
    max: 1000,
    maxSize: 16 * 1024 * 1024,
    sizeCalculation: (_verdict, json) => json.length + 64,
  });

  // Closures below take single fields, never `options`: holding it would keep the caller's whole
  // `identities` array (a million input objects, say) alive beside the store's own copy.
  const onEvent = options.onEvent;
  const instrumentation = options.instrumentation;
  if (instrumentation !== undefined && typeof instrumentation?.startSpan !== 'function') {
    throw new ConfigError('instrumentation', 'must be an object with a startSpan method');
  }
  const instrumented = instrumentation?.onEvent ? instrumentation : undefined;
  instrumentation?.observeKeys?.(keys);
  const rateLimits = resolveRateLimits(options.rateLimits);
  const limits = rateLimits && new EngineRateLimits(rateLimits, emit, logger);

  function emit(event: Omit<AuthEvent, 'time'>): void {
    if (!onEvent && !instrumented) return;
    const full: AuthEvent = { time: clock(), ...event };
    try {
      instrumented?.onEvent?.(full);
    } catch (error) {
      logger?.error({ event: 'instrumentation.error', err: describe(error) }, 'instrumentation threw');
    }
    if (!onEvent) return;
    try {
      onEvent(full);
    } catch (error) {
      logger?.error({ event: 'on_event.error', err: describe(error) }, 'onEvent hook threw');
    }
  }

  /**
   * The engine's own key manager reports each discovery/JWKS fetch as a `keys.fetch` or
   * `keys.fetch.failure` event (after the host's `keys.onFetch`, if any). A shared `KeyManager`
   * passed as `keys` reports to its own `onFetch` only.
   */
  function keyFetchEvents(hook: KeyManagerOptions['onFetch']): KeyManagerOptions['onFetch'] {
    return (info) => {
      try {
        hook?.(info);
      } finally {
        const detail = { kind: info.kind, url: info.url, durationMs: Math.round(info.durationMs) };
        if (info.ok) emit({ type: 'keys.fetch', detail });
        else {
          const reasonCode = info.error === 'issuer_mismatch' ? 'issuer_mismatch' : 'idp_unavailable';
          emit({ type: 'keys.fetch.failure', reasonCode, detail: { ...detail, error: info.error } });
        }
      }
    };
  }

  /**
   * Register the key sources a memory store added since the last call (a comparison when none),
   * and note whether every issuer its identities bind is registered: then a refused login has no
   * key source left to find, and {@link refreshIssuer} does nothing.
   */
  function registerStoreIssuers(): void {
    if (!memoryStore) return;
    const sources = memoryStore.keySources();
    for (; storeSourcesRegistered < sources.length; storeSourcesRegistered++) {
      if (!keys.registerIssuers(sources[storeSourcesRegistered]!)) everyStoreIssuerRegistered = false;
    }
    allIssuersRegistered = everyStoreIssuerRegistered && memoryStore.keySourcesComplete;
  }

  /**
   * After a login was refused because no registered source of its token's issuer verified it (and
   * so no identity was read), ask the store for the key sources of that issuer
   * (`IdentityStore.issuerKeySources`) off the answer's path and register them, so that an identity
   * whose key source this instance has not seen yet (written by another instance, or by hand) logs
   * in on its next attempt. Keyed by the issuer only: which identity id the client named plays no
   * part, so probing an existing id and an unknown one leave the same state behind. Single flight
   * and at most once per 30 s per issuer; never when every issuer is registered, nor for a store
   * without the method (see `IdentityStore.issuerKeySources`).
   */
  function refreshIssuer(issuer: string): void {
    if (allIssuersRegistered || closed || refreshing.has(issuer)) return;
    const list = identities.issuerKeySources;
    if (typeof list !== 'function') return;
    const now = clock();
    const last = refreshedAt.get(issuer);
    if (last !== undefined && now - last < ISSUER_REFRESH_MS && now >= last) return;
    refreshedAt.set(issuer, now);
    refreshing.add(issuer);
    setImmediate(() => {
      Promise.resolve()
        .then(() => list.call(identities, issuer))
        .then((found) => {
          if (closed || !Array.isArray(found)) return;
          for (const candidate of found.slice(0, ISSUER_SOURCES_READ)) {
            // A memory store's entries are its own validated key sources (no id): used as they are.
            const config = memoryStore ? (candidate as IdentityConfig) : validated(candidate);
            if (config && acceptsIssuer(config, issuer)) {
              keys.registerIssuers(config);
            }
          }
        })
        .catch((error: unknown) => {
          logger?.warn(
            { event: 'store.error', operation: 'identity.issuerKeySources', err: describe(error) },
            'identity store failed to list key sources',
          );
        })
        .finally(() => refreshing.delete(issuer));
    });
  }

  const loginContext: LoginContext = {
    keys,
    load: loadIdentity,
    noIdentityBinds: (issuer) => memoryStore !== undefined && !memoryStore.bindsIssuer(issuer),
    refused: refreshIssuer,
  };

  function ipAllowList(list: readonly string[]): IpAllowList {
    let compiled = ipLists.get(list);
    if (!compiled) ipLists.set(list, (compiled = compileIpAllowList(list)));
    return compiled;
  }

  function storeDown(error: unknown, operation: string): OidcAuthError {
    if (error instanceof OidcAuthError) return error;
    logger?.error({ event: 'store.error', operation, err: describe(error) }, 'token store failed');
    return new ServiceUnavailableError('store_unavailable', 'The token store is unavailable', {
      cause: error,
    });
  }

  function tokenDenied(code: ReasonCode, event: Omit<AuthEvent, 'time' | 'type'>): OidcAuthError {
    if (code === 'invalid_token') limits?.bearerFailed(event.clientIp, clock());
    emit({ type: 'guard.denied', reasonCode: code, ...event });
    return new UnauthorizedError(code, GUARD_MESSAGES[code] ?? 'Invalid access token', {
      headers: { 'www-authenticate': invalidTokenChallenge },
    });
  }

  /** A DPoP refusal of a token use, reported like the guard's other refusals. */
  function dpopDenied(error: unknown, event: Omit<AuthEvent, 'time' | 'type'>): unknown {
    if (error instanceof OidcAuthError && error.status === 401) {
      emit({ type: 'guard.denied', reasonCode: error.code, ...event });
    }
    return error;
  }

  /** The DPoP proof of a token use and its check against the token's binding (`bound`, when known now). */
  async function proveTokenUse(
    accessToken: string,
    context: CallContext,
    now: number,
    bound: { jkt?: string | undefined; tokenId: string } | undefined,
  ): Promise<string | undefined> {
    try {
      const presented = await proveUse(dpop, context.dpop, accessToken, now);
      if (bound) checkBinding(dpop, bound.jkt, presented, invalidTokenChallenge);
      return presented;
    } catch (error) {
      throw dpopDenied(error, { clientIp: context.clientIp, tokenId: bound?.tokenId });
    }
  }

  function bindingHolds(
    bound: string | undefined,
    presented: string | undefined,
    clientIp: string | undefined,
    tokenId: string,
  ): void {
    try {
      checkBinding(dpop, bound, presented, invalidTokenChallenge);
    } catch (error) {
      throw dpopDenied(error, { clientIp, tokenId });
    }
  }

  /**
   * The binding a token string states, checked before any store call: a JWT's (`cnf.jkt`, or none:
   * unbound), a bound opaque string's `jkt` part. `undefined` for an opaque string without one: bound
   * or not, only its record says (a string minted before the binding was put in it).
   */
  function statedBinding(
    jwt: boolean,
    parsed: { tokenId: string; jkt?: string | undefined },
  ): { tokenId: string; jkt?: string | undefined } | undefined {
    return jwt || parsed.jkt !== undefined ? parsed : undefined;
  }

  /**
   * Whether a record is the one the token string names: a JWT's identity, a bound opaque string's
   * `jkt` (a string and a record that disagree are never genuine together: refused as invalid).
   */
  function recordMatches(
    jwt: boolean,
    parsed: { jkt?: string | undefined; identityId?: string },
    record: AccessTokenRecord,
  ): boolean {
    if (jwt) return record.identityId === parsed.identityId;
    return parsed.jkt === undefined || record.jkt === parsed.jkt;
  }

  function loginDenied(
    failure: LoginFailure,
    context: Omit<AuthEvent, 'time' | 'type' | 'reasonCode'>,
  ): OidcAuthError {
    // Only a well-formed identity id reaches events and logs: a direct login() call may pass any text.
    const fields = { ...context, identityId: wellFormedId(context.identityId) };
    emit({ type: 'login.failure', reasonCode: failure.code, ...fields, detail: failure.detail });
    logger?.info({ event: 'login.failure', reasonCode: failure.code, ...fields }, 'login refused');
    if (failure.code === 'idp_unavailable') {
      const retry = failure.detail.retryAfterSeconds;
      return new ServiceUnavailableError('idp_unavailable', 'The identity provider cannot be reached', {
        retryAfterSeconds: typeof retry === 'number' ? retry : 30,
        cause: failure,
      });
    }
    if (failure.code === 'store_unavailable') {
      return new ServiceUnavailableError('store_unavailable', 'The identity store is unavailable', {
        cause: failure.cause,
      });
    }
    // Every 401 carries a challenge (RFC 9110 §11.6.1, RFC 6750 §3): the credential refused is the
    // IdP token, a bearer token, so `invalid_token`; the same value for every login 401 (ENUM-01).
    const headers = { 'www-authenticate': invalidTokenChallenge };
    if (reveal && failure.verified) {
      if (failure.code === 'ip_not_allowed') {
        return new ForbiddenError('ip_not_allowed', 'The client address is not trusted for this identity');
      }
      return new UnauthorizedError(failure.code, LOGIN_MESSAGES[failure.code] ?? 'Invalid credentials', {
        headers,
      });
    }
    return new UnauthorizedError('invalid_credentials', 'Invalid credentials', { headers });
  }

  /**
   * The validated config of `identityId`, or `undefined` when there is none the engine may use: not
   * stored, stored but invalid, or filed under another id. Either way the login goes on as for an
   * unknown identity (see `verifyLogin`), so the answer does not tell them apart.
   */
  async function loadIdentity(identityId: string): Promise<IdentityConfig | undefined> {
    let stored: IdentityConfig | undefined;
    try {
      stored = await identities.get(identityId);
    } catch (error) {
      if (error instanceof OidcAuthError && error.code === 'invalid_config') {
        // A stored config that no longer validates is never used.
        logger?.error(
          { event: 'identity.invalid', identityId: wellFormedId(identityId), err: describe(error) },
          'invalid identity',
        );
        return undefined;
      }
      logger?.error(
        { event: 'store.error', operation: 'identity.get', err: describe(error) },
        'store failed',
      );
      throw new LoginFailure('store_unavailable', false, {}, { cause: error });
    }
    if (stored === undefined || stored === null) return undefined;
    const config = validated(stored);
    let reason = config ? 'filed_under_another_id' : 'does_not_validate';
    if (config?.identityId === identityId) {
      try {
        return trust.resolve(config);
      } catch (error) {
        if (error instanceof ServiceUnavailableError) {
          throw new LoginFailure('store_unavailable', false, {}, { cause: error });
        }
        reason = 'trust_unresolved';
      }
    }
    logger?.error(
      { event: 'identity.invalid', identityId: wellFormedId(identityId), reason },
      'invalid identity',
    );
    return undefined;
  }

  /**
   * `candidate` as a config the engine may use. One {@link parseIdentityConfig} returned is used as
   * is; anything else a store hands back (JSON read back, a row edited by hand, a config without
   * bindings) is validated, and the verdict kept by content (its JSON text, in a bounded cache), so a
   * store that reads the same row back as a new object every time pays a serialisation, not a parse,
   * and an object changed in place is validated again. A candidate that is not plain JSON data (a
   * function, `NaN`, a `Date`…) is validated every time, never cached. `undefined` when it does not
   * validate: such a config is never used.
   */
  function validated(candidate: unknown): IdentityConfig | undefined {
    if (isParsedIdentityConfig(candidate)) return candidate;
    if (typeof candidate !== 'object' || candidate === null) return undefined;
    const json = plainJson(candidate);
    const seen = json === undefined ? undefined : checkedConfigs.get(json);
    if (seen) return seen.config;
    let config: IdentityConfig | undefined;
    try {
      config = parseIdentityConfig(candidate);
    } catch {
      config = undefined;
    }
    if (json !== undefined) checkedConfigs.set(json, { config });
    return config;
  }

  async function grant(
    record: AccessTokenRecord,
    maxTTLSeconds: number,
    now: number,
    jwt?: { audience: readonly string[]; scopes: readonly string[] | undefined; minted?: string },
  ): Promise<AccessTokenGrant> {
    const accessToken = jwt
      ? (jwt.minted ?? (await mintJwt(record, now, jwt.audience, jwt.scopes)))
      : codec.mint(record.tokenId, record.expiresAt, record.jkt);
    return {
      accessToken,
      expiresIn: Math.max(0, Math.round((record.expiresAt - now) / 1000)),
      accessTokenMaxTTL: maxTTLSeconds,
      tokenType: record.jkt === undefined ? 'Bearer' : 'DPoP',
      tokenId: record.tokenId,
      identityId: record.identityId,
      expiresAt: record.expiresAt,
      format: jwt ? 'jwt' : 'opaque',
      ...(record.scope === undefined ? {} : { scope: record.scope }),
      ...(record.audience === undefined ? {} : { audience: record.audience }),
    };
  }

  async function mintJwt(
    record: AccessTokenRecord,
    now: number,
    audience: readonly string[],
    scopes: readonly string[] | undefined,
  ): Promise<string> {
    if (!access.jwt) {
      throw new ConfigError(
        'issuer',
        `identity ${record.identityId} mints JWT access tokens: give createOidcAuth an issuer`,
      );
    }
    try {
      return await access.jwt.mint({
        tokenId: record.tokenId,
        identityId: record.identityId,
        audience,
        scopes,
        expiresAt: record.expiresAt,
        issuedAt: now,
        metadata: record.metadata,
        jkt: record.jkt,
      });
    } catch (error) {
      // A signer (a KMS) that fails or answers wrong: fail closed, as for a store that is down.
      logger?.error(
        { event: 'access_token.sign_failed', err: describe(error) },
        'access token signing failed',
      );
      throw new ServiceUnavailableError('store_unavailable', 'Access tokens cannot be signed now', {
        cause: error,
      });
    }
  }

  async function login(
    input: { identityId: string; jwt: string; grant?: TokenGrantRequest | undefined } & CallContext,
    span: TraceSpan = NOOP_SPAN,
  ): Promise<AccessTokenGrant> {
    const { identityId, jwt, clientIp } = input;
    const context: Omit<AuthEvent, 'time' | 'type' | 'reasonCode'> = { identityId, clientIp };
    try {
      await limits?.admitLogin(clientIp, clock());
      const requested = checkGrantRequest(input.grant);
      // RFC 9449 §4.3 at the door: a proof (POST, this URL, no ath) binds the token to its key.
      const proof =
        input.dpop?.proof === undefined
          ? undefined
          : await dpop.verify(input.dpop, clock(), 'token', undefined, true).catch((error: unknown) => {
              if (error instanceof OidcAuthError) {
                emit({
                  type: 'login.failure',
                  reasonCode: error.code,
                  ...context,
                  identityId: wellFormedId(identityId),
                });
              }
              throw error;
            });
      // No identity has an id outside the pattern: refused as an unknown id, before any store read
      // (a direct call may pass any text; U+0000 made PostgreSQL's generation read a 503).
      if (wellFormedId(identityId) === undefined) throw new LoginFailure('identity_not_found', false);
      const header = readHeader(jwt);
      // Read before the config is loaded: a revocation that lands after this read raises the
      // generation above the one stamped on the record, so the token is refused however late it is
      // stored (reading it after loading would let a delete and revoke slip in between).
      const { generation, claimEpoch } = await step(span, 'store', STORE_STEP.generation, () =>
        byClaim.stamps(identityId),
      ).catch((error: unknown) => {
        throw storeDown(error, 'generation');
      });
      registerStoreIssuers();
      // A trust store's entries, read again once older than trustMaxAgeSeconds (else no wait).
      const trustRead = trust.fresh();
      if (trustRead) await trustRead;
      const now = clock();
      // The identity is read only once the token verified against its issuer's keys (verifyLogin):
      // until then the work and the answer depend on the token, never on whether the id exists.
      const { payload, config } = await step(span, 'verify', undefined, (verify) =>
        verifyLogin(jwt, header, identityId, loginContext, now, verify),
      );
      context.issuer = payload.iss;
      if (typeof payload.sub === 'string') context.subject = payload.sub;
      if (typeof payload.jti === 'string') context.jti = payload.jti;
      await limits?.admitVerifiedLogin(config.identityId, payload.iss!, context.subject ?? '', clientIp, now);
      const policy = compileIdentityPolicy(config);
      const verdict = stepSync(
        span,
        'policy',
        () => policy.check(payload),
        (v) => (v.ok ? undefined : v.code),
      );
      // Audit mode: candidate rules never change the answer, they only report a different decision.
      const mismatch = policy.audit?.(payload, verdict);
      if (mismatch) emit({ type: 'login.candidate_mismatch', ...context, detail: { ...mismatch } });
      if (!verdict.ok) {
        const detail = verdict.claim ? { claim: verdict.claim } : {};
        throw new LoginFailure(verdict.code, true, verdict.rule ? { ...detail, rule: verdict.rule } : detail);
      }
      const metadata = policy.metadata(payload);
      const unstorable = unstorableClaim(payload, metadata, config);
      if (unstorable) throw new LoginFailure('claim_value_unsupported', true, { claim: unstorable });
      if (!ipAllowList(config.accessTokenTrustedIps).allows(clientIp)) {
        throw new LoginFailure('ip_not_allowed', true);
      }
      if (config.requireDpop && !proof) throw new LoginFailure('dpop_required', true);
      const narrowed = narrowGrant(config, requested, access);
      const record: AccessTokenRecord = {
        tokenId: newTokenId(),
        identityId: config.identityId,
        createdAt: now,
        expiresAt: now + narrowed.ttlSeconds * 1000,
        maxExpiresAt: now + narrowed.maxTtlSeconds * 1000,
        ttlSeconds: narrowed.ttlSeconds,
        usesLimit: config.accessTokenNumUsesLimit,
        usesCount: 0,
        revoked: false,
        trustedIps: config.accessTokenTrustedIps,
        metadata,
        issuer: payload.iss,
        subject: context.subject,
        generation,
      };
      byClaim.stamp(record, payload, claimEpoch);
      if (narrowed.scopes !== undefined) record.scope = narrowed.scopes.join(' ');
      if (narrowed.askedAudience !== undefined) record.audience = narrowed.askedAudience;
      if (proof) record.jkt = proof.jkt;
      // A JWT is signed before the record is stored: a signer (KMS) that fails leaves no record behind.
      const jwtGrant =
        narrowed.format === 'jwt'
          ? { ...narrowed, minted: await mintJwt(record, now, narrowed.audience, narrowed.scopes) }
          : undefined;
      // The proof's jti is spent only now that the IdP token verified and every check passed.
      await proof?.remember?.();
      // Last of the checks, so a refused login never spends a single-use IdP token (single-use.ts).
      if (config.singleUseTokens) await spendIdpToken(replayCache, jwt, payload, config, now, logger);
      try {
        await step(span, 'store', STORE_STEP.create, () => tokens.create(record));
      } catch (error) {
        throw storeDown(error, 'create');
      }
      emit({ type: 'login.success', ...context, tokenId: record.tokenId });
      return await grant(record, narrowed.maxTtlSeconds, now, jwtGrant);
    } catch (error) {
      if (error instanceof LoginFailure) span.fail(error.code); // the detailed reason, even when hidden
      if (error instanceof LoginFailure)
        await limits?.loginFailed(error, { ...context, identityId }, jwt, clock());
      if (error instanceof LoginFailure) throw loginDenied(error, context);
      if (error instanceof ConfigError) {
        // A config that bypassed validation is never used, and the caller learns nothing of it.
        logger?.error(
          { event: 'identity.invalid', identityId: wellFormedId(identityId), err: describe(error) },
          'invalid identity',
        );
        throw loginDenied(new LoginFailure('identity_not_found', false, { invalidConfig: true }), context);
      }
      if (error instanceof OidcAuthError) throw error;
      // Never a 500 for a login: an unexpected error is a refusal, with the reason in the log only.
      logger?.error(
        { event: 'login.error', identityId: wellFormedId(identityId), err: describe(error) },
        'unexpected login error',
      );
      throw loginDenied(new LoginFailure('token_malformed', false), context);
    }
  }

  function parseOwnToken(accessToken: string, clientIp: string | undefined, now: number) {
    const parsed = typeof accessToken === 'string' ? codec.parse(accessToken) : undefined;
    if (!parsed) throw tokenDenied('invalid_token', { clientIp });
    if (now >= parsed.expiresAt) throw tokenDenied('token_expired', { clientIp, tokenId: parsed.tokenId });
    return parsed;
  }

  /**
   * A JWT access token we signed (signature, `typ`, `iss`, claims), or a refusal. `allowExpired` for
   * revocation; the guard also wants one of `acceptedAudiences` in its `aud`.
   */
  async function parseJwtToken(
    accessToken: string,
    clientIp: string | undefined,
    now: number,
    check: { allowExpired?: boolean; audience?: boolean } = {},
  ): Promise<ParsedJwtAccessToken> {
    const parsed = access.jwt ? await access.jwt.verify(accessToken) : undefined;
    if (!parsed) throw tokenDenied('invalid_token', { clientIp });
    if (check.audience && !parsed.audience.some((a) => access.acceptedAudiences.includes(a))) {
      throw tokenDenied('invalid_token', { clientIp, tokenId: parsed.tokenId, detail: { audience: false } });
    }
    if (!check.allowExpired && now >= parsed.expiresAt) {
      throw tokenDenied('token_expired', { clientIp, tokenId: parsed.tokenId });
    }
    return parsed;
  }

  /** The store's record of a token use: for a JWT of an identity without a uses limit, from the state cache while fresh. */
  async function consumeUse(
    tokenId: string,
    jwt: boolean,
    clientIp: string | undefined,
    now: number,
    span: TraceSpan,
  ) {
    const cached = jwt ? access.state.fresh(tokenId, now) : undefined;
    if (cached) return cached;
    const epoch = access.state.epoch;
    let result;
    try {
      result = await step(span, 'store', STORE_STEP.consume, () => tokens.consume(tokenId, now));
    } catch (error) {
      throw storeDown(error, 'consume');
    }
    if (!result.ok) throw tokenDenied(STORE_REASONS[result.reason], { clientIp, tokenId });
    if (jwt) access.state.remember(result.record, now, epoch);
    return result.record;
  }

  async function authenticate(
    accessToken: string,
    context: CallContext = {},
    span: TraceSpan = NOOP_SPAN,
  ): Promise<AuthContext> {
    const clientIp = context.clientIp;
    const now = clock();
    limits?.admitBearer(clientIp, now);
    const jwt = typeof accessToken === 'string' && looksLikeJwt(accessToken);
    const parsed = jwt
      ? await parseJwtToken(accessToken, clientIp, now, { audience: true })
      : parseOwnToken(accessToken, clientIp, now);
    // The string says its binding (a JWT's cnf.jkt, a bound opaque token's jkt part): checked before
    // a use is counted. An opaque string minted before it carried the jkt: once the record is read.
    const presented = await proveTokenUse(accessToken, context, now, statedBinding(jwt, parsed));
    const record = await consumeUse(parsed.tokenId, jwt, clientIp, now, span);
    if (!recordMatches(jwt, parsed, record)) {
      throw tokenDenied('invalid_token', { clientIp, tokenId: parsed.tokenId });
    }
    bindingHolds(record.jkt, presented, clientIp, record.tokenId);
    if (!ipAllowList(record.trustedIps).allows(clientIp)) {
      emit({
        type: 'guard.denied',
        reasonCode: 'ip_not_allowed',
        clientIp,
        tokenId: record.tokenId,
        identityId: record.identityId,
      });
      throw new ForbiddenError('ip_not_allowed', 'The client address is not trusted for this token');
    }
    return {
      identityId: record.identityId,
      tokenId: record.tokenId,
      metadata: record.metadata,
      issuer: record.issuer,
      subject: record.subject,
      expiresAt: parsed.expiresAt,
      usesRemaining: record.usesLimit > 0 ? record.usesLimit - record.usesCount : undefined,
      clientIp,
      ...(record.scope === undefined ? {} : { scope: record.scope }),
      ...(record.audience === undefined ? {} : { audience: record.audience }),
      ...(record.jkt === undefined ? {} : { jkt: record.jkt }),
    };
  }

  async function introspect(
    accessToken: string,
    span: TraceSpan = NOOP_SPAN,
  ): Promise<AccessTokenRecord | undefined> {
    const now = clock();
    const jwt = typeof accessToken === 'string' && looksLikeJwt(accessToken);
    const parsed =
      typeof accessToken !== 'string'
        ? undefined
        : jwt
          ? await access.jwt?.verify(accessToken)
          : codec.parse(accessToken);
    if (!parsed || now >= parsed.expiresAt) return undefined;
    let record: AccessTokenRecord | undefined;
    let generation = 0;
    try {
      record = await step(span, 'store', STORE_STEP.get, () => tokens.get(parsed.tokenId, now));
      const found = record;
      if (found)
        generation = await step(span, 'store', STORE_STEP.generation, () =>
          tokens.generation(found.identityId),
        );
    } catch (error) {
      throw storeDown(error, 'get');
    }
    if (!record || record.revoked || (record.generation ?? 0) < generation) return undefined;
    if (!recordMatches(jwt, parsed, record)) return undefined;
    if (now >= record.expiresAt || (record.usesLimit > 0 && record.usesCount >= record.usesLimit))
      return undefined;
    return { ...record, expiresAt: Math.min(parsed.expiresAt, record.expiresAt) };
  }

  async function renew(
    accessToken: string,
    context: CallContext = {},
    span: TraceSpan = NOOP_SPAN,
  ): Promise<AccessTokenGrant> {
    const clientIp = context.clientIp;
    const now = clock();
    await limits?.admitRenew(clientIp, now);
    const jwt = typeof accessToken === 'string' && looksLikeJwt(accessToken);
    // A JWT renews into a JWT with the same jti, audience and scope, and a new exp and iat.
    const parsed = jwt
      ? await parseJwtToken(accessToken, clientIp, now)
      : parseOwnToken(accessToken, clientIp, now);
    const presented = await proveTokenUse(accessToken, context, now, statedBinding(jwt, parsed));
    let record: AccessTokenRecord | undefined;
    try {
      record = await step(span, 'store', STORE_STEP.get, () => tokens.get(parsed.tokenId, now));
    } catch (error) {
      throw storeDown(error, 'get');
    }
    if (!record || !recordMatches(jwt, parsed, record)) {
      throw tokenDenied('invalid_token', { clientIp, tokenId: parsed.tokenId });
    }
    bindingHolds(record.jkt, presented, clientIp, record.tokenId);
    await limits?.admitRenewIdentity(record.identityId, clientIp, now);
    if (!ipAllowList(record.trustedIps).allows(clientIp)) {
      emit({ type: 'guard.denied', reasonCode: 'ip_not_allowed', clientIp, tokenId: record.tokenId });
      throw new ForbiddenError('ip_not_allowed', 'The client address is not trusted for this token');
    }
    let result;
    try {
      result = await step(span, 'store', STORE_STEP.extend, () => tokens.extend(parsed.tokenId, now));
    } catch (error) {
      throw storeDown(error, 'extend');
    }
    if (!result.ok) {
      const code = STORE_REASONS[result.reason];
      emit({ type: 'token.renew.failure', reasonCode: code, clientIp, tokenId: parsed.tokenId });
      throw new UnauthorizedError(code, GUARD_MESSAGES[code] ?? 'Invalid access token', {
        headers: { 'www-authenticate': invalidTokenChallenge },
      });
    }
    limits?.renewed(result.record.identityId, now);
    emit({
      type: 'token.renew',
      identityId: result.record.identityId,
      clientIp,
      tokenId: result.record.tokenId,
    });
    const maxTTL = Math.round((result.record.maxExpiresAt - result.record.createdAt) / 1000);
    return grant(result.record, maxTTL, now, jwt ? (parsed as ParsedJwtAccessToken) : undefined);
  }

  async function revoke(
    accessToken: string,
    context: CallContext = {},
    span: TraceSpan = NOOP_SPAN,
  ): Promise<void> {
    const clientIp = context.clientIp;
    limits?.admitBearer(clientIp, clock());
    const parsed =
      typeof accessToken !== 'string'
        ? undefined
        : looksLikeJwt(accessToken)
          ? await parseJwtToken(accessToken, clientIp, 0, { allowExpired: true })
          : codec.parse(accessToken);
    // An expired but genuine token may still be revoked; a forged one is refused.
    if (!parsed) throw tokenDenied('invalid_token', { clientIp });
    // Through a revoke route (context.dpop given) a bound token needs a proof by its key.
    if (context.dpop) await proveRevoke(accessToken, context, parsed);
    access.state.forgetToken(parsed.tokenId);
    try {
      await step(span, 'store', STORE_STEP.revoke, () => tokens.revoke(parsed.tokenId));
    } catch (error) {
      throw storeDown(error, 'revoke');
    }
    // Again once the store has it: a state read between the two bumps is not kept either.
    access.state.forgetToken(parsed.tokenId);
    emit({ type: 'token.revoke', clientIp, tokenId: parsed.tokenId });
  }

  async function proveRevoke(
    accessToken: string,
    context: CallContext,
    parsed: { tokenId: string; jkt?: string | undefined },
  ): Promise<void> {
    const jwt = looksLikeJwt(accessToken);
    const presented = await proveTokenUse(accessToken, context, clock(), statedBinding(jwt, parsed));
    if (jwt) return;
    let record: AccessTokenRecord | undefined;
    try {
      record = await tokens.get(parsed.tokenId, clock());
    } catch (error) {
      throw storeDown(error, 'get');
    }
    if (!record) return;
    if (!recordMatches(false, parsed, record)) {
      throw tokenDenied('invalid_token', { clientIp: context.clientIp, tokenId: parsed.tokenId });
    }
    bindingHolds(record.jkt, presented, context.clientIp, parsed.tokenId);
  }

  async function revokeIdentity(identityId: string, span: TraceSpan = NOOP_SPAN): Promise<number> {
    let count: number;
    access.state.forgetIdentity(identityId);
    try {
      count = await step(span, 'store', STORE_STEP.revoke_identity, () => tokens.revokeIdentity(identityId));
    } catch (error) {
      throw storeDown(error, 'revokeIdentity');
    }
    access.state.forgetIdentity(identityId);
    emit({ type: 'identity.revoke', identityId, detail: { revoked: count } });
    return count;
  }

  const byClaim = revokeWhereEngine({
    tokens,
    option: options.revocableClaims,
    clock,
    state: access.state,
    emit,
    storeDown,
  });

  async function explain(input: { identityId: string; jwt: string } & CallContext): Promise<ExplainReport> {
    // Through loadIdentity: explain uses exactly the configs login would (validated, right id).
    await trust.fresh();
    return explainLogin(input, { identities: { get: loadIdentity }, keys, clock, ipAllowList, replayCache });
  }

  const at = (context: CallContext | undefined) => ({ clientIp: context?.clientIp });
  return {
    login: traceOperation(instrumentation, 'login', 1, at, login),
    authenticate: traceOperation(instrumentation, 'authenticate', 2, (_t, c) => at(c), authenticate),
    renew: traceOperation(instrumentation, 'renew', 2, (_t, c) => at(c), renew),
    revoke: traceOperation(instrumentation, 'revoke', 2, (_t, c) => at(c), revoke),
    introspect: traceOperation(instrumentation, 'introspect', 1, (_token: string) => ({}), introspect),
    revokeIdentity: traceOperation(
      instrumentation,
      'revoke_identity',
      1,
      (_id: string) => ({}),
      revokeIdentity,
    ),
    revokeWhere: byClaim.revokeWhere,
    explain,
    identities,
    tokens,
    replayCache,
    dpop,
    keys,
    trust,
    realm,
    logger,
    issuer: access.issuer,
    jwks: () => access.jwt?.jwks() ?? { keys: [] },
    async close() {
      closed = true;
      if (ownsTokens) await tokens.close?.();
      if (ownsReplayCache) await replayCache.close?.();
    },
  };
}

/** Methods every token store must have: the engine calls each of them. */
const TOKEN_STORE_METHODS = [
  'create',
  'get',
  'consume',
  'extend',
  'revoke',
  'revokeIdentity',
  'generation',
] as const satisfies ReadonlyArray<keyof TokenStore>;
const IDENTITY_STORE_METHODS = ['get'] as const satisfies ReadonlyArray<keyof IdentityStore>;
/**
 * Token-store methods the engine passes `now` to, as their second parameter: a store must decide with
 * it (never its own clock), so one that declares a single parameter ignores it. A declared count of 0
 * (rest parameters, a wrapper) says nothing and is accepted.
 */
const TAKES_NOW: ReadonlySet<string> = new Set<keyof TokenStore>(['get', 'consume', 'extend']);
/** Least time between two key-source refreshes of one issuer (see `refreshIssuer`). */
const ISSUER_REFRESH_MS = 30_000;
/** Issuers whose last refresh time is kept: as many as a KeyManager registers. */
const MAX_REFRESHED_ISSUERS = MAX_ISSUERS;
/** Key sources of one issuer read from the store per refresh (8 kept, a ninth marks it full). */
const ISSUER_SOURCES_READ = MAX_SOURCES_PER_ISSUER + 1;

/**
 * Refuse at start-up a store without a method the engine calls, naming it (a token store without
 * `generation` made every login a 401 `token_malformed` through the catch-all), or whose method in
 * `takesNow` declares a single parameter (see {@link TAKES_NOW}).
 */
function requireMethods(
  store: unknown,
  option: string,
  what: string,
  methods: readonly string[],
  takesNow: ReadonlySet<string> = new Set(),
): void {
  if (typeof store !== 'object' || store === null) {
    throw new ConfigError(option, `must be a ${what} object (methods ${methods.join(', ')})`);
  }
  for (const method of methods) {
    const fn = (store as Record<string, unknown>)[method];
    if (typeof fn !== 'function') {
      throw new ConfigError(
        `${option}.${method}`,
        `the ${what} has no ${method} method: it must implement ${methods.join(', ')}`,
      );
    }
    if (takesNow.has(method) && fn.length === 1) {
      throw new ConfigError(
        `${option}.${method}`,
        `the ${what}'s ${method} declares one parameter, but it is called as ${method}(tokenId, now) and ` +
          'must decide expiry with that now, never with a clock of its own (docs/STORES.md)',
      );
    }
  }
}

/** An identity id as events and logs may carry it: only a well-formed one (`A-Z a-z 0-9 . _ : -`, ≤ 128). */
function wellFormedId(identityId: unknown): string | undefined {
  return typeof identityId === 'string' && IDENTITY_ID_PATTERN.test(identityId) ? identityId : undefined;
}

/**
 * The JSON text of `value` when it is plain JSON data (strings, finite numbers, booleans, `null`,
 * arrays and plain objects all the way down), so that its text says all a parser reads of it; else
 * `undefined`.
 */
function plainJson(value: object): string | undefined {
  let plain = true;
  let json: string | undefined;
  try {
    json = JSON.stringify(value, function (this: Record<string, unknown>, key: string, serialised: unknown) {
      const original = key === '' ? value : this[key];
      const type = typeof original;
      if (type === 'object' && original !== null && !Array.isArray(original)) {
        const proto: unknown = Object.getPrototypeOf(original);
        if (proto !== Object.prototype && proto !== null) plain = false;
      } else if (
        type === 'number' ? !Number.isFinite(original) : !['string', 'boolean', 'object'].includes(type)
      ) {
        plain = false;
      }
      return serialised;
    });
  } catch {
    return undefined;
  }
  return plain ? json : undefined;
}

/** A loggable description of an error: class name and code only, never its message or payload. */
export function describe(error: unknown): { name: string; code?: string } {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    return typeof code === 'string' ? { name: error.name, code } : { name: error.name };
  }
  return { name: typeof error };
}
