import type { JWK } from 'jose';
import type { ReasonCode } from './errors.js';
import type { Rule, RuleInput } from './policy/types.js';

export type { ClaimMatch, ClaimMatchInput, Rule, RuleInput } from './policy/types.js';

/** A JWS algorithm an identity may accept. HMAC and `none` are never accepted. */
export type AsymmetricAlgorithm =
  | 'RS256'
  | 'RS384'
  | 'RS512'
  | 'PS256'
  | 'PS384'
  | 'PS512'
  | 'ES256'
  | 'ES384'
  | 'ES512'
  | 'EdDSA'
  | 'Ed25519';

/** A list given as an array or as a comma-separated string. */
export type ListInput = string | readonly string[];

/**
 * An identity's OIDC config as a user writes it (field names follow Infisical's).
 * Validated once by {@link parseIdentityConfig}, which names the field at fault.
 */
export interface IdentityConfigInput {
  /** The identity this config belongs to. */
  identityId: string;
  /** Issuer base URL; `/.well-known/openid-configuration` is appended. Required unless `jwksUrl` or `publicKeys`. */
  oidcDiscoveryUrl?: string;
  /** Static JWKS URL, used without discovery. */
  jwksUrl?: string;
  /** Static public keys (PEM SPKI strings or public JWKs), used without any fetch. */
  publicKeys?: ReadonlyArray<string | JWK>;
  /** PEM bundle trusted for this identity's discovery and JWKS fetches only. Default: system CAs. */
  caCert?: string;
  /**
   * Exact `iss` the token must carry; several allowed (Azure v1 and v2 issuers of one tenant).
   * Required unless `keySources` or `trust` is given.
   */
  boundIssuer?: ListInput;
  /** Glob(s) the `sub` must match. Default: any. */
  boundSubject?: ListInput;
  /**
   * Globs; any token audience matching any of them passes. When none is bound, a token that carries
   * an `aud` at all is refused (`audience_not_allowed`) unless `allowAnyAudience` is set.
   */
  boundAudiences?: ListInput;
  /**
   * With no `boundAudiences`, accept tokens whatever `aud` they carry (for IdPs that send no usable
   * audience). Tokens minted for any other service of the IdP then log in too. Default false; refused
   * together with `boundAudiences`.
   */
  allowAnyAudience?: boolean;
  /** `{claimPath: globs}`; every key must match. Dot path, or JSON pointer when it starts with `/`. */
  boundClaims?: Record<string, ListInput>;
  /** `{name: claimPath}` copied into the access token's metadata. */
  claimMetadataMapping?: Record<string, string>;
  /** Access token lifetime in seconds. Default 7200. */
  accessTokenTTL?: number | string;
  /** Seconds after creation past which no renewal reaches. Default 86400. */
  accessTokenMaxTTL?: number | string;
  /** Uses allowed per access token; 0 = unlimited. Default 0. */
  accessTokenNumUsesLimit?: number | string;
  /** CIDRs or addresses the caller must come from, at login and on every use. Default: anywhere. */
  accessTokenTrustedIps?: ListInput | ReadonlyArray<{ ipAddress: string }>;
  /** JWS algorithms accepted. Default: RS/PS/ES 256-512 and EdDSA. */
  allowedAlgorithms?: ListInput;
  /** Tolerance on `exp`/`nbf`/`iat` in seconds. Default 60, at most 300. */
  clockSkewSeconds?: number | string;
  /** Longest IdP token lifetime (`exp - iat`) accepted, in seconds. Default 86400. */
  maxTokenLifetimeSeconds?: number | string;
  /** The `issuer` the discovery document must carry when it is not the discovery URL (Azure v1). */
  discoveryIssuer?: string;
  /** Allow IdP addresses in private ranges (in-cluster Kubernetes issuers). Default false. */
  allowPrivateNetwork?: boolean;
  /** Allow plain `http://` to a loopback IdP (tests, demos). Default false. */
  allowInsecureLoopback?: boolean;
  /** Anything the host app wants back in the guard (roles, project ids). */
  metadata?: Record<string, unknown>;
  /** OAuth scopes a token exchange may grant (RFC 6749 §3.3 scope tokens). Default: none. */
  scopes?: ListInput;
  /** `opaque` (an `omat_` string) or `jwt` (an RFC 9068 access token). Default: `accessTokens.format` of the engine. */
  accessTokenFormat?: 'opaque' | 'jwt';
  /** Refuse a login without a DPoP proof (`dpop_required`): every token of this identity is DPoP-bound (docs/DPOP.md). Default false. */
  requireDpop?: boolean;
  /**
   * Exact audiences a token may be granted: a token exchange's `audience`/`resource` (or a login
   * `grant.audience`) must name some of them. Default: none may be requested; a JWT access token
   * granted no audience carries the engine's `issuer` as its `aud`.
   */
  accessTokenAudiences?: ListInput;
  /**
   * Several key sources, each with its own issuer(s) or issuer pattern (see docs/TRUST.md). A token
   * verifies only against the source whose issuer it names. Replaces the flat key-source fields and
   * `boundIssuer` (which, if given, must list exactly the sources' issuers).
   */
  keySources?: readonly KeySourceInput[];
  /** Id of a shared trust entry (`createOidcAuth({ trust })`) giving key sources, issuers, audiences. */
  trust?: string;
  /**
   * Allow and deny rules (docs/POLICIES.md): a login passes when at least one allow rule matches and no
   * deny rule does. The flat bindings above (`boundSubject`, `boundAudiences`, `boundClaims`) still
   * apply to every login; without rules they are exactly one allow rule.
   */
  rules?: readonly RuleInput[];
  /** Audit mode: rules evaluated beside `rules` on every login; they never change the answer. */
  candidateRules?: readonly RuleInput[];
  /**
   * Each IdP token (by `iss` + `jti`, or its signed content without a `jti`) logs in once, on every
   * instance sharing the engine's `replayCache`; a second exchange gets 401 `token_already_used`.
   * Default false.
   */
  singleUseTokens?: boolean;
}

/** One key source of an identity or trust entry: where keys come from and the issuer(s) it vouches for. */
export interface KeySourceInput {
  /** Exact `iss` value(s) this source's keys sign for. One of `issuer` and `issuerPattern` is required. */
  issuer?: ListInput;
  /** Host-pinned issuer pattern (`https://oidc.eks.*.amazonaws.com/id/*`); see docs/TRUST.md. */
  issuerPattern?: string;
  /** Issuer base URL (discovery). Not with `issuerPattern`: discovery is then the token's own issuer. */
  oidcDiscoveryUrl?: string;
  jwksUrl?: string;
  publicKeys?: ReadonlyArray<string | JWK>;
  caCert?: string;
  discoveryIssuer?: string;
  allowPrivateNetwork?: boolean;
  allowInsecureLoopback?: boolean;
}

/** A validated key source. */
export interface KeySource {
  /** Exact issuers; empty for a pattern source. */
  readonly issuer: readonly string[];
  readonly issuerPattern: string | undefined;
  readonly oidcDiscoveryUrl: string | undefined;
  readonly jwksUrl: string | undefined;
  readonly publicKeys: ReadonlyArray<string | JWK> | undefined;
  readonly caCert: string | undefined;
  readonly discoveryIssuer: string | undefined;
  readonly allowPrivateNetwork: boolean;
  readonly allowInsecureLoopback: boolean;
}

/** A validated, normalised identity config: lists are arrays, numbers are numbers, defaults applied. */
export interface IdentityConfig {
  readonly identityId: string;
  /** Normalised issuer base URL (no trailing `/.well-known/openid-configuration`). */
  readonly oidcDiscoveryUrl: string | undefined;
  readonly jwksUrl: string | undefined;
  readonly publicKeys: ReadonlyArray<string | JWK> | undefined;
  readonly caCert: string | undefined;
  readonly boundIssuer: readonly string[];
  readonly boundSubject: readonly string[];
  readonly boundAudiences: readonly string[];
  readonly allowAnyAudience: boolean;
  readonly boundClaims: Readonly<Record<string, readonly string[]>>;
  readonly claimMetadataMapping: Readonly<Record<string, string>>;
  readonly accessTokenTTL: number;
  readonly accessTokenMaxTTL: number;
  readonly accessTokenNumUsesLimit: number;
  readonly accessTokenTrustedIps: readonly string[];
  readonly allowedAlgorithms: readonly AsymmetricAlgorithm[];
  readonly clockSkewSeconds: number;
  readonly maxTokenLifetimeSeconds: number;
  readonly discoveryIssuer: string | undefined;
  readonly allowPrivateNetwork: boolean;
  readonly allowInsecureLoopback: boolean;
  readonly metadata: Readonly<Record<string, unknown>>;
  /**
   * Set only when the config lists `keySources` (or a trust entry resolved into it): then the flat
   * key-source fields above are unset and `boundIssuer` is the sources' exact issuers.
   */
  readonly keySources?: readonly KeySource[];
  /** The trust entry this identity uses, when it names one. */
  readonly trust?: string;
  /** Present only when set: see {@link IdentityConfigInput.scopes}. */
  readonly scopes?: readonly string[];
  /** Absent: the engine's default format. */
  readonly accessTokenFormat?: 'opaque' | 'jwt';
  /** Present (true) only when set: see {@link IdentityConfigInput.requireDpop}. */
  readonly requireDpop?: boolean;
  /** Present only when set: see {@link IdentityConfigInput.accessTokenAudiences}. */
  readonly accessTokenAudiences?: readonly string[];
  /**
   * The rules as given; absent without rules (`parseIdentityConfig` leaves out an empty list): the
   * flat bindings are then the one allow rule.
   */
  readonly rules?: readonly Rule[];
  /** Audit-mode rules; absent when audit mode is off. */
  readonly candidateRules?: readonly Rule[] | undefined;
  /** Present (`true`) only when set: see {@link IdentityConfigInput.singleUseTokens}. */
  readonly singleUseTokens?: true;
}

/** Where identity configs live. Implementations validate on write and on read. */
export interface IdentityStore {
  get(identityId: string): Promise<IdentityConfig | undefined>;
  put?(config: IdentityConfigInput | IdentityConfig): Promise<IdentityConfig>;
  delete?(identityId: string): Promise<boolean>;
  list?(): Promise<IdentityConfig[]>;
  /**
   * Optional. The configs of up to 9 distinct key sources (`publicKeys`, `jwksUrl`,
   * `oidcDiscoveryUrl`/`discoveryIssuer`, `caCert`, network flags) among the identities that bind
   * `issuer`, any one config per source. The engine calls it, at most once per 30 s per issuer and
   * never on a login's answer path, after a login on an issuer it has registered was refused, to
   * register a key source written elsewhere (another instance, by hand): the call depends on the
   * token's issuer only, never on the identity id a client named. What it returns is validated like
   * any config read, and used only for its issuers and key source. Without it, a new key source of
   * an issuer this instance registered already is picked up when a config of it is loaded here
   * (a cold login, a successful login, an admin write on this instance).
   */
  issuerKeySources?(issuer: string): Promise<IdentityConfig[]>;
  /**
   * Optional. Up to `limit` ids of the identities whose config names the trust entry `trustId`
   * (`trust`), so that `auth.trust.delete` refuses to delete an entry in use. Without it the
   * engine filters `list()`.
   */
  trustReferences?(trustId: string, limit: number): Promise<string[]>;
}

/** What the token store keeps about an access token. Never the token string itself. */
export interface AccessTokenRecord {
  /** Random id, shared by every token string issued for it (renewals). */
  tokenId: string;
  identityId: string;
  /** Epoch ms. */
  createdAt: number;
  /** Epoch ms; moves forward on renew. */
  expiresAt: number;
  /** Epoch ms: `createdAt + accessTokenMaxTTL`. */
  maxExpiresAt: number;
  /** Seconds granted on each renewal (the identity's `accessTokenTTL` at login). */
  ttlSeconds: number;
  /** 0 = unlimited. */
  usesLimit: number;
  /** Uses counted so far. */
  usesCount: number;
  revoked: boolean;
  /** Trusted CIDRs at login, checked on every use. */
  trustedIps: readonly string[];
  /** Identity metadata plus mapped claims. */
  metadata: Readonly<Record<string, unknown>>;
  /** IdP `iss` and `sub` of the login, for audit. */
  issuer?: string;
  subject?: string;
  /**
   * The identity's revocation generation ({@link TokenStore.generation}) read when the login began,
   * before its config was loaded. A record stamped lower than its identity's current generation is
   * refused as revoked. Records stored before generations existed read as 0.
   */
  generation: number;
  /** Space-separated scopes granted by a token exchange (absent: none asked for or declared). */
  scope?: string;
  /** Audiences a token exchange named (absent: none). */
  audience?: readonly string[];
  /**
   * The login's revocable claim values (engine option `revocableClaims`: claim path → value as a
   * string), which {@link TokenStore.revokeWhere} matches. Absent: none (or a store without it).
   */
  claims?: Readonly<Record<string, string>>;
  /**
   * The store's claim-revocation epoch ({@link TokenStore.revocationStamps}) read when the login
   * began. A record stamped below a matching `revokeWhere` is revoked when it is created. Absent: 0.
   */
  claimEpoch?: number;
  /**
   * DPoP binding (RFC 9449): the RFC 7638 SHA-256 thumbprint (base64url) of the key whose proof the
   * login carried; absent for a bearer token. Every use needs a proof by that key.
   */
  jkt?: string;
}

/** What {@link TokenStore.revokeWhere} revokes: tokens whose login carried `claims[claim] === value`. */
export interface RevokeWhereFilter {
  /** Only this identity's tokens; absent: every identity's. */
  identityId?: string;
  /** A claim path listed in the engine's `revocableClaims`. */
  claim: string;
  /** The claim's value as a string (a number claim as `String(n)`). */
  value: string;
}

/** The revocation stamps a login reads before it loads the identity's config, in one store read. */
export interface RevocationStamps {
  /** {@link TokenStore.generation} of the identity. */
  generation: number;
  /** The store's claim-revocation epoch: 0 until the first `revokeWhere`, then one more after each. */
  claimEpoch: number;
}

export type ConsumeResult =
  | { ok: true; record: AccessTokenRecord }
  | { ok: false; reason: 'not_found' | 'revoked' | 'expired' | 'uses_exhausted' };

export type ExtendResult =
  | { ok: true; record: AccessTokenRecord }
  | { ok: false; reason: 'not_found' | 'revoked' | 'expired' | 'max_ttl_reached' | 'uses_exhausted' };

/**
 * Where access-token state lives. Atomicity is the store's job: 50 parallel `consume` calls on a
 * token with one use left give exactly one `ok`. A store that cannot answer throws; the engine
 * turns that into a 503 and never grants access.
 *
 * Revoking an identity has no race: `revokeIdentity` raises the identity's generation before it
 * returns, login stamps the generation it read before loading the config on the record, and
 * `consume` and `extend` refuse (`revoked`) a record stamped lower than its identity's current
 * generation. Generations only grow, so once `revokeIdentity` has returned no token of the identity
 * works, on any instance, not even one a login that was already in flight stores afterwards.
 */
export interface TokenStore {
  create(record: AccessTokenRecord): Promise<void>;
  /** Read without counting a use. */
  get(tokenId: string, now: number): Promise<AccessTokenRecord | undefined>;
  /**
   * Atomically: refuse if unknown, revoked (or stamped below its identity's generation), expired or
   * used up; else count one use and return the record.
   */
  consume(tokenId: string, now: number): Promise<ConsumeResult>;
  /**
   * Atomically renew: `expiresAt = min(now + ttlSeconds, maxExpiresAt)`. Refuses (`max_ttl_reached`)
   * when `expiresAt` already equals `maxExpiresAt`: nothing is left to extend, the client must log in.
   * Refuses (`revoked`) like `consume` a record stamped below its identity's generation.
   */
  extend(tokenId: string, now: number): Promise<ExtendResult>;
  /** Revoke every token string issued for this id. Idempotent. */
  revoke(tokenId: string): Promise<void>;
  /**
   * The identity's revocation generation: 0 until its first `revokeIdentity`, then one more after
   * each. Kept for as long as any token of the identity can live (the stores here keep it for good).
   */
  generation(identityId: string): Promise<number>;
  /**
   * Revoke every token of an identity: raise its generation (atomically, before returning), and mark
   * its live tokens revoked. Returns how many were live.
   */
  revokeIdentity(identityId: string): Promise<number>;
  /**
   * Optional (with {@link revocationStamps}; the engine refuses `auth.revokeWhere` without them).
   * Revoke every token whose login carried `claims[filter.claim] === filter.value` (of
   * `filter.identityId` only, when given), atomically with respect to logins in flight: raise the
   * store's claim epoch to E and keep an entry `{identityId | *, claim, value} → E`; mark the
   * matching stored tokens revoked; and make `create` revoke (before it returns) a record whose
   * `claimEpoch` is below a matching entry's epoch, or (when it has claims) below the highest
   * epoch of the entries already dropped. So once this has returned no token of a login that began
   * before it and carried the value works, whenever that login stores its record. A login that
   * begins afterwards reads the raised epoch and is not affected. Entries are dropped once `keepMs`
   * old (longer than any login takes), and at most `maxEntries` are kept: past that it throws
   * `RevocationLimitError` (503 `revocation_limit_reached`).
   * Returns how many of the tokens it revoked were live at `now`. See docs/STORES.md.
   */
  revokeWhere?(
    filter: RevokeWhereFilter,
    now: number,
    limits: { keepMs: number; maxEntries: number },
  ): Promise<number>;
  /** Optional: the identity's generation and the store's claim epoch, read together (one round trip). */
  revocationStamps?(identityId: string): Promise<RevocationStamps>;
  close?(): Promise<void>;
}

/** What the guard hands the route. */
export interface AuthContext {
  identityId: string;
  tokenId: string;
  /** Identity metadata plus claims mapped by `claimMetadataMapping`. */
  metadata: Readonly<Record<string, unknown>>;
  issuer: string | undefined;
  subject: string | undefined;
  /** Epoch ms. */
  expiresAt: number;
  /** Uses left after this one; `undefined` when unlimited. */
  usesRemaining: number | undefined;
  clientIp: string | undefined;
  /** Space-separated scopes the token was granted by a token exchange; absent otherwise. */
  scope?: string;
  /** Audiences the token was granted by a token exchange; absent otherwise. */
  audience?: readonly string[];
  /** The DPoP key thumbprint the token is bound to (the request carried a proof by it); absent for a bearer token. */
  jkt?: string;
}

/** pino-style logger: `(object, message)`. Every field this library logs is free of tokens. */
export interface Logger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export type AuthEventType =
  | 'login.success'
  | 'login.failure'
  | 'token.renew'
  | 'token.renew.failure'
  | 'token.revoke'
  | 'identity.revoke'
  | 'tokens.revoked_where'
  | 'guard.denied'
  | 'keys.fetch'
  | 'keys.fetch.failure'
  | 'login.candidate_mismatch';

/** An audit event. Carries ids and reason codes, never a token or a token string. */
export interface AuthEvent {
  type: AuthEventType;
  /** Epoch ms. */
  time: number;
  identityId?: string;
  issuer?: string;
  subject?: string;
  jti?: string;
  clientIp?: string;
  tokenId?: string;
  reasonCode?: ReasonCode;
  /** Extra non-secret detail (which claim failed, which URL was fetched). */
  detail?: Record<string, unknown>;
}

export type Clock = () => number;
