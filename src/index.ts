export {
  createOidcAuth,
  type OidcAuth,
  type OidcAuthOptions,
  type AccessTokenGrant,
  type CallContext,
} from './engine/auth.js';
export {
  OidcAuthError,
  BadRequestError,
  UnauthorizedError,
  ForbiddenError,
  RequestBodyError,
  ServiceUnavailableError,
  TooManyRequestsError,
  ConfigError,
  bearerChallenge,
  type ReasonCode,
  type ErrorName,
  type ErrorBody,
} from './errors.js';
export {
  parseIdentityConfig,
  parseIdentityConfigs,
  IDENTITY_ID_PATTERN,
  DEFAULT_ALGORITHMS,
} from './trust/config.js';
export { RULE_LIMITS } from './policy/limits.js';
export {
  KeyManager,
  KeyError,
  MemoryKeyCache,
  type KeyCache,
  type CachedJwks,
  type KeyManagerOptions,
  type KeyManagerStats,
  type VerificationKey,
} from './trust/keys.js';
export {
  httpGet,
  createHttpGet,
  FetchError,
  type HttpGet,
  type HttpGetOptions,
  type HttpGetResult,
  type Resolver,
  type ResolvedAddress,
} from './trust/fetch.js';
export {
  MemoryIdentityStore,
  MemoryTokenStore,
  type MemoryIdentityStoreOptions,
  type MemoryTokenStoreOptions,
} from './stores/memory.js';
export { MemoryReplayCache, type MemoryReplayCacheOptions } from './stores/memory-replay.js';
export { type ReplayCache, type ReplayVerdict, MAX_REPLAY_WINDOW_MS } from './tokens/replay.js';
export {
  DPOP_ALGORITHMS,
  DEFAULT_DPOP_ALGORITHMS,
  DPOP_JWT_TYPE,
  MAX_DPOP_PROOF_LENGTH,
  accessTokenHash,
  type DpopAlgorithm,
  type DpopOptions,
  type DpopRequest,
  type DpopService,
} from './tokens/dpop.js';
export { dpopRequest, platformDpopRequest, type PlatformDpopSource } from './http/dpop.js';
export {
  type RateLimiter,
  type RateLimitRule,
  type RateLimitDecision,
  MAX_RATE_LIMIT_KEY_LENGTH,
} from './limits/rate-limiter.js';
export { MemoryRateLimiter, type MemoryRateLimiterOptions } from './limits/memory.js';
export { DEFAULT_RATE_LIMITS, type RateLimitsOptions } from './limits/options.js';
export {
  AccessTokenCodec,
  ACCESS_TOKEN_PREFIX,
  type SigningKey,
  type SigningKeysInput,
} from './tokens/opaque.js';
export { type AccessTokensOptions } from './tokens/options.js';
export { type TokenGrantRequest, type AccessTokenFormat } from './tokens/grant.js';
export {
  type AccessTokenSigningKeyInput,
  type AccessTokenSigner,
  type AccessTokenAlgorithm,
  type KeyMaterial,
} from './tokens/signing-keys.js';
export { AT_JWT_TYPE, METADATA_CLAIM } from './tokens/jwt.js';
export {
  jwksAnswer,
  metadataAnswer,
  authorizationServerMetadata,
  rootMetadataPath,
  requireRootMetadataPath,
  DEFAULT_OAUTH_ENDPOINTS,
  recordOAuthEndpoints,
  mountedOAuthEndpoints,
  WELL_KNOWN_ROUTES,
  KEYS_CACHE_CONTROL,
  type OAuthEndpoints,
} from './tokens/metadata.js';
export type { ExplainReport, ExplainCheck, ExplainItem, ExplainTimes } from './policy/explain.js';
export {
  createIdentityAdmin,
  identityOidcAuthView,
  adminErrorAnswer,
  ADMIN_ROUTES,
  type IdentityAdmin,
  type IdentityAdminOptions,
  type IdentityChange,
  type IdentityOidcAuthView,
  type TrustedIpView,
  type AdminRequest,
} from './http/identity-admin.js';
export {
  createMetrics,
  combineEventHandlers,
  type AuthMetrics,
  type MetricsOptions,
  type MetricsSnapshot,
  type KeyStatsSource,
} from './observe/metrics.js';
export {
  redactingLogger,
  pinoLogger,
  redact,
  redactString,
  REDACTED,
  type PinoLike,
} from './observe/redact.js';
export {
  NOOP_SPAN,
  type Instrumentation,
  type TraceSpan,
  type SpanFields,
  type OperationName,
  type StepName,
  type StoreOperation,
} from './observe/trace.js';
export {
  loginAnswer,
  renewAnswer,
  revokeAnswer,
  errorAnswer,
  guard,
  extractBearer,
  parseRequestBody,
  bodyKind,
  rawHeaderValues,
  hasTokenInQuery,
  nodeGuardRequest,
  usesDpopScheme,
  authorizeRequest,
  readRequestBody,
  rightmostUntrustedHop,
  bodyTooLarge,
  unsupportedMediaType,
  invalidBody,
  DEFAULT_BODY_LIMIT,
  DEFAULT_PREFIX,
  ROUTES,
  type HttpAnswer,
  type GuardRequest,
  type BodyKind,
  type Authorize,
  type NodeRequestLike,
} from './http/answers.js';
export {
  OAUTH_ROUTES,
  oauthTokenAnswer,
  oauthIntrospectAnswer,
  oauthRevokeAnswer,
  type OAuthRequest,
} from './http/oauth.js';
export { oauthErrorAnswer, type OAuthErrorBody, type OAuthErrorCode } from './oauth/errors.js';
export {
  exchange,
  parseExchangeRequest,
  TOKEN_EXCHANGE_GRANT,
  TOKEN_TYPE,
  type TokenExchangeRequest,
  type TokenExchangeResult,
} from './oauth/exchange.js';

export type * from './types.js';
export type { TrustEntry, TrustEntryInput } from './trust/entries.js';
export type { TrustEntries } from './trust/engine.js';
export { MemoryTrustStore, TrustInUseError, type TrustStore } from './trust/store.js';
export {
  createTrustAdmin,
  TRUST_ADMIN_ROUTES,
  type TrustAdmin,
  type TrustAdminRequest,
} from './trust/admin.js';
export type { PatternIssuerOptions } from './trust/pattern-issuers.js';
export {
  RevocationLimitError,
  DEFAULT_REVOCABLE_CLAIMS,
  MAX_REVOCABLE_CLAIMS,
  MAX_REVOCABLE_VALUE_LENGTH,
  REVOCATION_KEEP_MS,
  MAX_REVOCATION_ENTRIES,
} from './tokens/revoke-where.js';
export type { RevokeWhereInput } from './tokens/revoke-where-engine.js';
