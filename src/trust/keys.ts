import { createHash, createPublicKey, type KeyObject } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { JWK } from 'jose';
import { LRUCache } from 'lru-cache';
import { discoveryDocumentUrl } from './config.js';
import { ConfigError } from '../errors.js';
import { FetchError, httpGet as defaultHttpGet, redactUrl, validateFetchUrl, type HttpGet } from './fetch.js';
import type { AsymmetricAlgorithm, IdentityConfig, Logger } from '../types.js';
import { patternSources, sourceViewFor, sourceViews } from './sources.js';
import { PatternIssuers, type PatternIssuerOptions } from './pattern-issuers.js';

/** A public key the IdP token may be verified with. */
export interface VerificationKey {
  kid: string | undefined;
  /** The JWK `alg`, when the key set names one. */
  alg: string | undefined;
  kty: string;
  crv: string | undefined;
  /** A node:crypto public key; jose's `jwtVerify` accepts it as is. */
  key: KeyObject;
}

/** Why no key could be handed out. Callers branch on `code`. */
export type KeyErrorCode = 'key_not_found' | 'algorithm_not_allowed' | 'idp_unavailable' | 'issuer_mismatch';

/**
 * No usable key for a token header. `idp_unavailable` carries `retryAfterSeconds`; `issuer_mismatch`
 * means the discovery document names another issuer (OIDC Discovery §4.3). The message is generic:
 * no kid, no URL, no upstream text; the reason behind it is in `cause`, for logs only.
 */
export class KeyError extends Error {
  override name = 'KeyError';
  readonly code: KeyErrorCode;
  /** Seconds until the next fetch attempt is allowed, for `idp_unavailable` and `issuer_mismatch`. */
  readonly retryAfterSeconds: number | undefined;

  constructor(code: KeyErrorCode, options: { cause?: unknown; retryAfterSeconds?: number } = {}) {
    super(MESSAGES[code], options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.retryAfterSeconds = options.retryAfterSeconds;
  }
}

const MESSAGES: Record<KeyErrorCode, string> = {
  key_not_found: 'no identity provider key matches the token',
  algorithm_not_allowed: 'the token algorithm is not allowed',
  idp_unavailable: 'the identity provider keys are unavailable',
  issuer_mismatch: 'the identity provider discovery document names another issuer',
};

/** A JWKS as kept in a {@link KeyCache}: the raw public JWKs and when they were fetched. */
export interface CachedJwks {
  keys: JWK[];
  /** Epoch ms of the fetch, by the {@link KeyManager}'s clock. */
  fetchedAt: number;
}

/**
 * Where fetched key sets are kept, so a deployment can warm the cache or share it between instances.
 * Consulted only when the local copy is missing, stale or lacks a kid; never on the hot path. Keys
 * read from it go through the same checks as fetched ones.
 */
export interface KeyCache {
  get(key: string): Promise<CachedJwks | undefined>;
  set(key: string, value: CachedJwks): Promise<void>;
}

/** In-process {@link KeyCache} (lru-cache). */
export class MemoryKeyCache implements KeyCache {
  readonly #entries: LRUCache<string, CachedJwks>;
  /** @param max Key sets kept. Default 1000. */
  constructor(max = 1000) {
    this.#entries = new LRUCache({ max });
  }
  async get(key: string): Promise<CachedJwks | undefined> {
    return this.#entries.get(key);
  }
  async set(key: string, value: CachedJwks): Promise<void> {
    this.#entries.set(key, value);
  }
}

/** The key sources registered for one issuer (see {@link KeyManager.keySourcesFor}). */
export interface IssuerKeySources {
  /**
   * One config per distinct key source of the identities seen binding the issuer, in the order
   * they were registered, at most 8. Each has the source's fields only: it binds nothing, grants
   * nothing and allows every algorithm we verify.
   */
  readonly sources: readonly IdentityConfig[];
  /** An identity of this issuer offered a ninth source, which was not kept: some source may be missing. */
  readonly full: boolean;
  /**
   * Set when `issuer` matches a registered issuer pattern but is new while the rate of new pattern
   * issuers is spent: nothing is fetched; retry after this many seconds.
   */
  readonly retryAfterSeconds?: number;
}

/** Tuning and seams of a {@link KeyManager}. */
export interface KeyManagerOptions {
  /** Outbound GET. Default: {@link defaultHttpGet | httpGet} (SSRF guard, caps, pinned DNS). */
  httpGet?: HttpGet;
  /** Epoch ms. Default `Date.now`. */
  clock?: () => number;
  /** Age in ms after which discovery documents and key sets are refreshed. Default 10 min. */
  cacheMaxAgeMs?: number;
  /** Least time in ms between two fetch attempts of one URL (unknown kid, failures). Default 30 s. */
  cooldownMs?: number;
  /**
   * Least time in ms between two fetch attempts of one URL while its last attempt failed and the
   * request has nothing usable in hand (cold cache, data past `maxStaleMs`, or a kid not cached):
   * one probe per interval, single-flight, so a login succeeds about this long after the IdP is back
   * while a flood of tokens makes at most one fetch per interval. Default 1 s (at most `cooldownMs`).
   */
  probeIntervalMs?: number;
  /** Age in ms up to which cached data keeps serving while the IdP fails (stale-if-error). Default 24 h. */
  maxStaleMs?: number;
  /** Total time budget of one fetch in ms. Default 5 s. */
  timeoutMs?: number;
  /** Largest discovery document in bytes. Default 256 KiB. */
  maxDiscoveryBytes?: number;
  /** Largest JWKS in bytes. Default 512 KiB. */
  maxJwksBytes?: number;
  /** Usable keys kept per key set; later ones are ignored. Default 100. */
  maxKeys?: number;
  /** Most keys handed out for one token header (no kid, or a duplicated kid); more is refused. Default 5. */
  maxCandidates?: number;
  /** Key sources (issuers, JWKS URLs, static key lists) kept. Default 1000. */
  cacheSize?: number;
  /** Where raw key sets are kept. Default: a {@link MemoryKeyCache} of `cacheSize`. */
  keyCache?: KeyCache;
  /** Bounds of issuers admitted through issuer patterns (see docs/TRUST.md). */
  patternIssuers?: PatternIssuerOptions;
  /** Called after every fetch attempt. `error` is a stable code, never upstream text. */
  onFetch?: (info: {
    url: string;
    kind: 'discovery' | 'jwks';
    ok: boolean;
    durationMs: number;
    error?: string;
  }) => void;
  logger?: Logger;
}

/** Counters for observability. */
export interface KeyManagerStats {
  /** Outbound fetches started. */
  fetches: number;
  /** Fetches that failed or returned an unusable document. */
  failures: number;
  /** `getKeys` calls served from fresh cached keys without waiting. */
  hits: number;
  /** `getKeys` calls that had to wait for, or try, a fetch (or found nothing). */
  misses: number;
}

type KeyType = 'RSA' | 'EC' | 'OKP';
const ALGORITHMS: Record<string, { kty: KeyType; crv?: string }> = {
  RS256: { kty: 'RSA' },
  RS384: { kty: 'RSA' },
  RS512: { kty: 'RSA' },
  PS256: { kty: 'RSA' },
  PS384: { kty: 'RSA' },
  PS512: { kty: 'RSA' },
  ES256: { kty: 'EC', crv: 'P-256' },
  ES384: { kty: 'EC', crv: 'P-384' },
  ES512: { kty: 'EC', crv: 'P-521' },
  EdDSA: { kty: 'OKP', crv: 'Ed25519' },
  Ed25519: { kty: 'OKP', crv: 'Ed25519' },
};
const EC_CURVES = new Set(['P-256', 'P-384', 'P-521']);
const NAMED_CURVES: Record<string, string> = {
  prime256v1: 'P-256',
  secp384r1: 'P-384',
  secp521r1: 'P-521',
};
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'];
const MIN_RSA_BITS = 2048;
const MAX_RSA_BITS = 16384;
const MAX_KID_LENGTH = 1024;
/** Issuers whose key sources {@link KeyManager.registerIssuers} remembers. @internal */
export const MAX_ISSUERS = 10_000;
/** Distinct key sources remembered per issuer (one more offered marks it full). @internal */
export const MAX_SOURCES_PER_ISSUER = 8;
const EMPTY: readonly VerificationKey[] = Object.freeze([]);

function sameAlgorithm(a: string, b: string): boolean {
  return a === b || (a === 'EdDSA' && b === 'Ed25519') || (a === 'Ed25519' && b === 'EdDSA');
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Matches of one algorithm: per kid the set holds, and one answer shared by every other kid. */
interface AlgorithmMatches {
  byKid: Map<string | undefined, readonly VerificationKey[]>;
  /** The answer for a kid no key of the set carries. */
  otherKid: readonly VerificationKey[] | undefined;
}

/**
 * A key set with its imported keys and a memo of matches per (alg, kid). The memo is bounded by
 * the set, never by what tokens ask for: it holds the algorithms we verify times the kids the set
 * carries (plus "no kid" and "any other kid"), so a flood of random kids adds nothing.
 */
class KeySet {
  readonly #memo = new Map<string, AlgorithmMatches>();
  readonly #kids: ReadonlySet<string | undefined>;

  /** @param kidlessMatchAnyKid Static keys without a kid match every kid (the admin pinned them). */
  constructor(
    readonly keys: readonly VerificationKey[],
    readonly raw: JWK[],
    private readonly kidlessMatchAnyKid: boolean,
  ) {
    this.#kids = new Set(keys.map((key) => key.kid));
  }

  /** Memoised matches held (for the memory bound's tests). */
  get memoSize(): number {
    let size = 0;
    for (const matches of this.#memo.values()) size += matches.byKid.size + (matches.otherKid ? 1 : 0);
    return size;
  }

  /** The keys fitting `alg` (and `kid`), frozen and shared between calls: do not mutate. */
  match(alg: string, kid: string | undefined): readonly VerificationKey[] {
    if (!Object.hasOwn(ALGORITHMS, alg)) return EMPTY;
    let matches = this.#memo.get(alg);
    if (!matches) this.#memo.set(alg, (matches = { byKid: new Map(), otherKid: undefined }));
    // A kid no key carries can only match kid-less static keys: one answer for all such kids.
    const held = kid === undefined || this.#kids.has(kid);
    const memoised = held ? matches.byKid.get(kid) : matches.otherKid;
    if (memoised) return memoised;
    const found = this.keys.filter(
      (key) =>
        fits(key, alg) &&
        (kid === undefined || key.kid === kid || (this.kidlessMatchAnyKid && key.kid === undefined)),
    );
    const frozen = found.length === 0 ? EMPTY : Object.freeze(found);
    if (held) matches.byKid.set(kid, frozen);
    else matches.otherKid = frozen;
    return frozen;
  }
}

function fits(key: VerificationKey, alg: string): boolean {
  const family = ALGORITHMS[alg];
  if (!family || key.kty !== family.kty || (family.crv !== undefined && key.crv !== family.crv)) return false;
  if (key.alg !== undefined && !sameAlgorithm(key.alg, alg)) return false;
  // An RSASSA-PSS-only key (from a PEM) cannot do PKCS#1 v1.5.
  return !(key.key.asymmetricKeyType === 'rsa-pss' && !alg.startsWith('PS'));
}

function rsaSizeOk(key: KeyObject): boolean {
  const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
  return bits >= MIN_RSA_BITS && bits <= MAX_RSA_BITS;
}

/**
 * Import one public JWK, or `undefined` when it is not usable for signatures here: symmetric or
 * unknown `kty`, unsupported curve, `use` other than `sig` or `jwt-svid`, `key_ops` without `verify`, an `alg`
 * we do not verify, RSA under 2048 (or over 16384) bits, or material that does not import.
 */
function importJwk(jwk: Record<string, unknown>): VerificationKey | undefined {
  const { kty, crv, kid, alg, use, key_ops: keyOps } = jwk;
  // `jwt-svid`: a SPIFFE trust bundle's JWT-SVID signing key (SPIFFE Trust Domain and Bundle §4.2.2);
  // `x509-svid` and any other use are not for JWT signatures.
  if (use !== undefined && use !== 'sig' && use !== 'jwt-svid') return undefined;
  if (keyOps !== undefined && !(Array.isArray(keyOps) && keyOps.includes('verify'))) return undefined;
  if (kid !== undefined && typeof kid !== 'string') return undefined;
  if (alg !== undefined && (typeof alg !== 'string' || !ALGORITHMS[alg])) return undefined;
  let material: JWK;
  if (kty === 'RSA' && typeof jwk.n === 'string' && typeof jwk.e === 'string') {
    material = { kty, n: jwk.n, e: jwk.e };
  } else if (kty === 'EC' && typeof crv === 'string' && EC_CURVES.has(crv)) {
    if (typeof jwk.x !== 'string' || typeof jwk.y !== 'string') return undefined;
    material = { kty, crv, x: jwk.x, y: jwk.y };
  } else if (kty === 'OKP' && crv === 'Ed25519' && typeof jwk.x === 'string') {
    material = { kty, crv, x: jwk.x };
  } else {
    return undefined;
  }
  let key: KeyObject;
  try {
    key = createPublicKey({ key: material, format: 'jwk' });
  } catch {
    return undefined;
  }
  if (kty === 'RSA' && !rsaSizeOk(key)) return undefined;
  return { kid, alg, kty, crv: typeof crv === 'string' ? crv : undefined, key };
}

/** Import a PEM public key or certificate. Private keys are refused (never derive from one). */
function importPem(pem: string): VerificationKey | undefined {
  if (/PRIVATE KEY/.test(pem)) return undefined;
  let key: KeyObject;
  try {
    key = createPublicKey(pem);
  } catch {
    return undefined;
  }
  const type = key.asymmetricKeyType;
  if (type === 'rsa' || type === 'rsa-pss') {
    return rsaSizeOk(key) ? { kid: undefined, alg: undefined, kty: 'RSA', crv: undefined, key } : undefined;
  }
  if (type === 'ec') {
    const crv = NAMED_CURVES[key.asymmetricKeyDetails?.namedCurve ?? ''];
    return crv ? { kid: undefined, alg: undefined, kty: 'EC', crv, key } : undefined;
  }
  if (type === 'ed25519') return { kid: undefined, alg: undefined, kty: 'OKP', crv: 'Ed25519', key };
  return undefined;
}

/** A fetched document that cannot be used; `reason` is a stable code for logs and `onFetch`. */
class DocumentError extends Error {
  override name = 'DocumentError';
  /**
   * What the document said instead, for `explain` only (never logged: it is the IdP's text): the
   * issuer a discovery document names.
   */
  readonly found: string | undefined;
  constructor(
    readonly reason: string,
    found?: string,
  ) {
    super(reason);
    this.found = found;
  }
}

/**
 * Build a key set from JWKs. Any key with private members rejects the whole set: an IdP that
 * publishes private material is compromised or misconfigured, and nothing from it is trusted.
 */
function buildKeySet(jwks: readonly unknown[], maxKeys: number): KeySet {
  for (const jwk of jwks) {
    if (isObject(jwk) && PRIVATE_MEMBERS.some((member) => Object.hasOwn(jwk, member))) {
      throw new DocumentError('private_key_material');
    }
  }
  const keys: VerificationKey[] = [];
  const raw: JWK[] = [];
  for (const jwk of jwks) {
    if (keys.length >= maxKeys) break;
    const imported = isObject(jwk) ? importJwk(jwk) : undefined;
    if (imported) {
      keys.push(imported);
      raw.push(jwk as JWK);
    }
  }
  return new KeySet(keys, raw, false);
}

function parseJson(body: string): unknown {
  try {
    return JSON.parse(body.charCodeAt(0) === 0xfeff ? body.slice(1) : body);
  } catch {
    throw new DocumentError('invalid_json');
  }
}

function withoutTrailingSlash(value: string): string {
  return value.endsWith('/') ? value.slice(0, -1) : value;
}

interface FetchParams {
  caCert: string | undefined;
  allowPrivateNetwork: boolean;
  allowInsecureLoopback: boolean;
}

/** What every refreshable source keeps about its last fetch attempt. */
interface Refreshable {
  readonly url: string;
  readonly params: FetchParams;
  /** Epoch ms of the data in hand; `-Infinity` when none. */
  fetchedAt: number;
  /** Epoch ms of the last fetch attempt, successful or not; `-Infinity` when none. */
  lastAttemptAt: number;
  /** Why the last attempt failed; cleared by a successful one. */
  failure: KeyError | undefined;
  inflight: Promise<void> | undefined;
}

interface JwksSource extends Refreshable {
  readonly kind: 'jwks';
  /** Key of this set in the {@link KeyCache}. */
  readonly cacheKey: string;
  set: KeySet | undefined;
}

interface DiscoveredIssuer {
  jwks: JwksSource;
  /** `id_token_signing_alg_values_supported`, when the document lists them. */
  algorithms: ReadonlySet<string> | undefined;
}

interface DiscoverySource extends Refreshable {
  readonly kind: 'discovery';
  readonly expectedIssuer: string;
  doc: DiscoveredIssuer | undefined;
}

interface StaticSource {
  readonly kind: 'static';
  readonly set: KeySet;
}

type Source = JwksSource | DiscoverySource | StaticSource;

const DEFAULTS = {
  cacheMaxAgeMs: 10 * 60_000,
  cooldownMs: 30_000,
  probeIntervalMs: 1_000,
  maxStaleMs: 24 * 3_600_000,
  timeoutMs: 5_000,
  maxDiscoveryBytes: 256 * 1024,
  maxJwksBytes: 512 * 1024,
  maxKeys: 100,
  maxCandidates: 5,
  cacheSize: 1000,
};

function flagsOf(params: FetchParams): string {
  return `${params.allowPrivateNetwork ? 'p' : '-'}${params.allowInsecureLoopback ? 'l' : '-'}`;
}

/**
 * Discovery documents and JWKS per issuer, with a cache shared by every identity that points at the
 * same source (same URL, CA and network flags), single-flight fetches, a cooldown between fetch
 * attempts of one URL, and stale-if-error.
 *
 * Key source per identity: `publicKeys` (imported once, never fetched) > `jwksUrl` > discovery
 * (`oidcDiscoveryUrl` + `/.well-known/openid-configuration`, whose `issuer` must equal
 * `discoveryIssuer ?? oidcDiscoveryUrl`, one trailing `/` aside, and whose `jwks_uri` passes the same
 * URL rules as the discovery URL).
 *
 * - A JWKS with any private member (`d`, `p`, `q`, `dp`, `dq`, `qi`, `oth`, `k`) is rejected as a
 *   whole (`idp_unavailable`): an IdP that publishes private material is not trusted at all. Other
 *   unusable keys (`oct`, `use` ≠ `sig`, `key_ops` without `verify`, unknown kty/crv/alg, RSA under
 *   2048 bits, import failures) are skipped; the first `maxKeys` usable keys are kept.
 * - Any fetch attempt (refresh, unknown kid, failure) starts the cooldown of its URL, as jose does:
 *   a kid rotated in right after a fetch is found once the cooldown has passed. While the last
 *   attempt failed, a request with nothing usable in hand (cold cache, a kid not cached) may probe
 *   once per `probeIntervalMs` (1 s) instead, so logins recover about a second after the IdP does.
 * - When the last attempt failed, a kid not in hand gives `idp_unavailable`, not `key_not_found`.
 * - Static PEM keys have no kid and match any kid; static JWKs with a kid match that kid only.
 * - The discovery document is cached in memory only; the {@link KeyCache} holds key sets.
 */
export class KeyManager {
  readonly #httpGet: HttpGet;
  readonly #clock: () => number;
  readonly #o: typeof DEFAULTS;
  readonly #keyCache: KeyCache;
  readonly #onFetch: KeyManagerOptions['onFetch'];
  readonly #logger: Logger | undefined;
  readonly #sources: LRUCache<string, Source>;
  readonly #sourceKeys = new WeakMap<IdentityConfig, string>();
  /** Issuer → the key sources of the identities seen binding it (see {@link registerIssuers}). */
  readonly #issuers = new Map<string, RegisteredIssuer>();
  readonly #stats: KeyManagerStats = { fetches: 0, failures: 0, hits: 0, misses: 0 };
  /** Issuer patterns registered, and the bounded set of concrete issuers admitted through them. */
  readonly #patterns: PatternIssuers;

  /**
   * @throws {ConfigError} on a non-positive number, or unless
   *   `probeIntervalMs <= cooldownMs <= cacheMaxAgeMs <= maxStaleMs`.
   */
  constructor(options: KeyManagerOptions = {}) {
    const o = { ...DEFAULTS };
    for (const name of Object.keys(DEFAULTS) as (keyof typeof DEFAULTS)[]) {
      const value = options[name];
      if (value === undefined) continue;
      if (typeof value !== 'number' || !(value > 0) || !Number.isFinite(value)) {
        throw new ConfigError(`keys.${name}`, 'must be a positive number');
      }
      o[name] = value;
    }
    if (options.probeIntervalMs === undefined) o.probeIntervalMs = Math.min(o.probeIntervalMs, o.cooldownMs);
    if (o.probeIntervalMs > o.cooldownMs)
      throw new ConfigError('keys.probeIntervalMs', 'must not exceed cooldownMs');
    if (o.cooldownMs > o.cacheMaxAgeMs)
      throw new ConfigError('keys.cooldownMs', 'must not exceed cacheMaxAgeMs');
    if (o.cacheMaxAgeMs > o.maxStaleMs)
      throw new ConfigError('keys.maxStaleMs', 'must not be below cacheMaxAgeMs');
    this.#o = o;
    this.#httpGet = options.httpGet ?? defaultHttpGet;
    this.#clock = options.clock ?? Date.now;
    this.#keyCache = options.keyCache ?? new MemoryKeyCache(o.cacheSize);
    this.#onFetch = options.onFetch;
    this.#logger = options.logger;
    this.#sources = new LRUCache({ max: o.cacheSize });
    this.#patterns = new PatternIssuers(
      options.patternIssuers,
      this.#clock,
      (config) => this.#sourceKey(config),
      (config) => keySourceOf(config),
    );
  }

  /** Counters since construction. */
  stats(): KeyManagerStats {
    return { ...this.#stats };
  }

  /**
   * Remember, for each issuer `config` binds, where its keys come from, so that a login can verify a
   * token against the keys of its issuer before it knows (or looks up) the identity it names: no
   * identity oracle, see `verifyLogin`. Per issuer, up to 8 distinct key sources are kept (compared
   * as the key cache does: URLs, static keys, CA and network flags), in the order first seen; a
   * ninth marks the issuer {@link IssuerKeySources.full | full}. At most 10,000 issuers. Once the
   * source is known this is one map lookup and a few string comparisons per bound issuer, and no
   * config is held: only its key-source fields.
   *
   * @returns false when an issuer of `config` could not be registered (the 10,000 are taken).
   */
  registerIssuers(config: IdentityConfig): boolean {
    if (config.keySources) {
      // Several key sources: each exact one is registered for its own issuers only, so a token
      // naming one source's issuer is never tried against another source's keys.
      let every = true;
      for (const view of sourceViews(config)) every = this.registerIssuers(view) && every;
      for (const source of patternSources(config)) every = this.#patterns.register(config, source) && every;
      return every;
    }
    let key: string | undefined;
    let source: IdentityConfig | undefined;
    let every = true;
    for (const issuer of config.boundIssuer) {
      let registered = this.#issuers.get(issuer);
      if (!registered) {
        if (this.#issuers.size >= MAX_ISSUERS) {
          every = false;
          continue;
        }
        this.#issuers.set(issuer, (registered = { sources: [], keys: [], full: false }));
      }
      key ??= this.#sourceKey(config);
      if (registered.keys.includes(key)) continue;
      if (registered.keys.length >= MAX_SOURCES_PER_ISSUER) {
        registered.full = true;
        continue;
      }
      if (!source) {
        source = keySourceOf(config);
        this.#sourceKeys.set(source, key);
      }
      registered.keys.push(key);
      registered.sources.push(source);
    }
    return every;
  }

  /**
   * The key sources registered for `issuer` ({@link registerIssuers}), or `undefined` when no
   * identity seen binds it: nothing is then looked up or fetched. The object is live: do not keep it.
   */
  keySourcesFor(issuer: string): IssuerKeySources | undefined {
    const exact = this.#issuers.get(issuer);
    return this.#patterns.size === 0 ? exact : this.#patterns.sourcesFor(issuer, exact);
  }

  /**
   * The registered source of `issuer` that is `config`'s own key source (the same object
   * {@link keySourcesFor} lists), or `undefined` when `config`'s source is not registered for it.
   */
  registeredSource(issuer: string, config: IdentityConfig): IdentityConfig | undefined {
    const view = sourceViewFor(config, issuer);
    if (!view) return undefined;
    const key = this.#sourceKey(view);
    const registered = this.#issuers.get(issuer);
    const index = registered ? registered.keys.indexOf(key) : -1;
    if (index >= 0) return registered?.sources[index];
    return this.#patterns.registeredSource(issuer, key);
  }

  /**
   * Entries held: key sources, issuers registered and memoised key matches. For the tests of the
   * memory bounds.
   *
   * @internal
   */
  sizes(): {
    sources: number;
    issuers: number;
    issuerSources: number;
    matches: number;
    patternIssuers: number;
  } {
    let matches = 0;
    for (const source of this.#sources.values()) {
      if (source.kind !== 'discovery') matches += source.set?.memoSize ?? 0;
    }
    let issuerSources = 0;
    for (const registered of this.#issuers.values()) issuerSources += registered.sources.length;
    return {
      sources: this.#sources.size,
      issuers: this.#issuers.size,
      issuerSources,
      matches,
      patternIssuers: this.#patterns.issuerCount,
    };
  }

  /**
   * The keys a token with this header may be verified with: those with the header's `kid` (or,
   * without a kid, every key; more than `maxCandidates` is refused) whose type and curve fit `alg`.
   * Only `alg` and `kid` of the header are ever looked at. The array is shared: do not mutate it.
   *
   * @throws {KeyError} `algorithm_not_allowed` (not an asymmetric algorithm this identity allows, or
   *   not in the discovery document's `id_token_signing_alg_values_supported`), `key_not_found` (the
   *   IdP answered and has no such key), `idp_unavailable` with `retryAfterSeconds` (no keys to be
   *   had: IdP down or answering garbage, cold cache or data older than `maxStaleMs`, or a new kid
   *   while the IdP is down), `issuer_mismatch` (the discovery document names another issuer).
   */
  async getKeys(
    config: IdentityConfig,
    header: { alg: string; kid?: string | undefined },
  ): Promise<readonly VerificationKey[]> {
    const { alg, kid } = header;
    if (!ALGORITHMS[alg] || !(config.allowedAlgorithms as readonly string[]).includes(alg)) {
      throw new KeyError('algorithm_not_allowed');
    }
    if (kid !== undefined && (typeof kid !== 'string' || kid.length > MAX_KID_LENGTH)) {
      this.#stats.misses++;
      throw new KeyError('key_not_found');
    }
    const source = this.#source(config);
    if (source.kind === 'static') return this.#pick(source.set.match(alg, kid), true);

    let now = this.#clock();
    let hit = true;
    let jwks: JwksSource;
    if (source.kind === 'discovery') {
      let doc = source.doc;
      if (!doc || now - source.fetchedAt >= this.#o.cacheMaxAgeMs) {
        hit = false;
        doc = await this.#discovered(source);
        now = this.#clock();
      }
      if (doc.algorithms && !supports(doc.algorithms, alg)) {
        this.#stats.misses++;
        throw new KeyError('algorithm_not_allowed');
      }
      jwks = doc.jwks;
    } else {
      jwks = source;
    }
    const set = jwks.set;
    if (set && now - jwks.fetchedAt < this.#o.cacheMaxAgeMs) {
      const found = set.match(alg, kid);
      if (found.length > 0) return this.#pick(found, hit);
    }
    return this.#slowKeys(jwks, alg, kid);
  }

  /**
   * The keys {@link getKeys} would hand out for `header` at once, from what is in hand (static keys,
   * or a fresh discovery document and key set holding a match), without fetching, waiting or
   * throwing; `undefined` when `getKeys` would have to fetch, or would refuse. Lets a caller with
   * several sources try those in hand first and fetch only if none of them verifies.
   */
  keysInHand(
    config: IdentityConfig,
    header: { alg: string; kid?: string | undefined },
  ): readonly VerificationKey[] | undefined {
    const { alg, kid } = header;
    if (!ALGORITHMS[alg] || !(config.allowedAlgorithms as readonly string[]).includes(alg)) return undefined;
    if (kid !== undefined && (typeof kid !== 'string' || kid.length > MAX_KID_LENGTH)) return undefined;
    const source = this.#source(config);
    let set: KeySet | undefined;
    if (source.kind === 'static') {
      set = source.set;
    } else {
      const now = this.#clock();
      let jwks: JwksSource | undefined = source.kind === 'jwks' ? source : undefined;
      if (source.kind === 'discovery') {
        const doc = source.doc;
        if (!doc || now - source.fetchedAt >= this.#o.cacheMaxAgeMs) return undefined;
        if (doc.algorithms && !supports(doc.algorithms, alg)) return undefined;
        jwks = doc.jwks;
      }
      if (jwks?.set && now - jwks.fetchedAt < this.#o.cacheMaxAgeMs) set = jwks.set;
    }
    const found = set?.match(alg, kid);
    if (!found || found.length === 0 || found.length > this.#o.maxCandidates) return undefined;
    this.#stats.hits++;
    return found;
  }

  #pick(found: readonly VerificationKey[], hit: boolean): readonly VerificationKey[] {
    if (found.length === 0 || found.length > this.#o.maxCandidates) {
      this.#stats.misses++;
      throw new KeyError('key_not_found');
    }
    if (hit) this.#stats.hits++;
    else this.#stats.misses++;
    return found;
  }

  async #slowKeys(
    source: JwksSource,
    alg: string,
    kid: string | undefined,
  ): Promise<readonly VerificationKey[]> {
    const before = this.#clock();
    const usable =
      source.set !== undefined &&
      before - source.fetchedAt < this.#o.maxStaleMs &&
      source.set.match(alg, kid).length > 0;
    await this.#refresh(
      source,
      () => this.#loadJwks(source, (set) => set.match(alg, kid).length > 0),
      usable,
    );
    const now = this.#clock();
    const set = source.set;
    if (set && now - source.fetchedAt < this.#o.maxStaleMs) {
      const found = set.match(alg, kid);
      if (found.length > 0) return this.#pick(found, false);
      if (now - source.fetchedAt < this.#o.cacheMaxAgeMs && !source.failure) return this.#pick(EMPTY, false);
    }
    this.#stats.misses++;
    throw this.#unavailable(source, now);
  }

  async #discovered(source: DiscoverySource): Promise<DiscoveredIssuer> {
    const usable = source.doc !== undefined && this.#clock() - source.fetchedAt < this.#o.maxStaleMs;
    await this.#refresh(source, () => this.#loadDiscovery(source), usable);
    const now = this.#clock();
    if (source.doc && now - source.fetchedAt < this.#o.maxStaleMs) return source.doc;
    this.#stats.misses++;
    throw this.#unavailable(source, now);
  }

  /** Called when nothing usable is in hand: the next attempt is a probe if the last one failed. */
  #unavailable(source: Refreshable, now: number): KeyError {
    const retryAfterSeconds = Math.max(
      1,
      Math.ceil((source.lastAttemptAt + this.#waitAfterAttempt(source, false) - now) / 1000),
    );
    const code = source.failure?.code === 'issuer_mismatch' ? 'issuer_mismatch' : 'idp_unavailable';
    return new KeyError(code, { retryAfterSeconds, cause: source.failure?.cause });
  }

  /**
   * Least time between two attempts: the cooldown, or the probe interval while the last attempt
   * failed and the caller has nothing usable (it would answer 503 otherwise). A healthy IdP asked
   * for unknown kids, or a failing one whose stale keys still serve, keeps the full cooldown.
   */
  #waitAfterAttempt(source: Refreshable, usable: boolean): number {
    return source.failure && !usable ? this.#o.probeIntervalMs : this.#o.cooldownMs;
  }

  /**
   * Join the fetch in flight, or start one unless the last attempt is within the wait
   * ({@link #waitAfterAttempt}); `usable` tells whether the caller has data it can serve without it.
   */
  #refresh(source: Refreshable, load: () => Promise<void>, usable: boolean): Promise<void> {
    if (source.inflight) return source.inflight;
    const now = this.#clock();
    if (now - source.lastAttemptAt < this.#waitAfterAttempt(source, usable)) return Promise.resolve();
    source.lastAttemptAt = now;
    const attempt = load().then(
      () => {
        source.failure = undefined;
      },
      (error: unknown) => {
        const reason = error instanceof DocumentError ? error.reason : undefined;
        source.failure = new KeyError(reason === 'issuer_mismatch' ? 'issuer_mismatch' : 'idp_unavailable', {
          cause: error,
        });
      },
    );
    source.inflight = attempt.finally(() => {
      source.inflight = undefined;
    });
    return source.inflight;
  }

  async #loadDiscovery(source: DiscoverySource): Promise<void> {
    const doc = await this.#fetchDocument(source, 'discovery', this.#o.maxDiscoveryBytes, (body) => {
      const parsed = parseJson(body);
      if (!isObject(parsed)) throw new DocumentError('not_an_object');
      const { issuer, jwks_uri: jwksUri } = parsed;
      if (
        typeof issuer !== 'string' ||
        withoutTrailingSlash(issuer) !== withoutTrailingSlash(source.expectedIssuer)
      ) {
        throw new DocumentError(
          'issuer_mismatch',
          typeof issuer === 'string' ? issuer.slice(0, 1024) : undefined,
        );
      }
      if (typeof jwksUri !== 'string') throw new DocumentError('missing_jwks_uri');
      try {
        validateFetchUrl(jwksUri, source.params);
      } catch {
        throw new DocumentError('jwks_uri_rejected');
      }
      const supported = parsed.id_token_signing_alg_values_supported;
      const algorithms = Array.isArray(supported)
        ? new Set(supported.filter((x): x is string => typeof x === 'string'))
        : undefined;
      return { jwks: this.#jwksSource(jwksUri, source.params), algorithms };
    });
    source.doc = doc;
    source.fetchedAt = this.#clock();
  }

  /**
   * Load a key set: first from the {@link KeyCache} when it holds a newer one that satisfies the
   * caller (fresh, and has the wanted key), else from the IdP.
   */
  async #loadJwks(source: JwksSource, wanted: (set: KeySet) => boolean): Promise<void> {
    const cached = await this.#readCache(source.cacheKey);
    if (cached && cached.fetchedAt > source.fetchedAt) {
      try {
        source.set = buildKeySet(cached.keys, this.#o.maxKeys);
        source.fetchedAt = cached.fetchedAt;
      } catch (error) {
        this.#logger?.warn(
          { event: 'keys.cache_unusable', error: String(error) },
          'key cache entry unusable: fetching from the IdP',
        );
      }
      if (source.set && this.#clock() - source.fetchedAt < this.#o.cacheMaxAgeMs && wanted(source.set))
        return;
    }
    const set = await this.#fetchDocument(source, 'jwks', this.#o.maxJwksBytes, (body) => {
      const parsed = parseJson(body);
      if (!isObject(parsed) || !Array.isArray(parsed.keys)) throw new DocumentError('not_a_jwks');
      return buildKeySet(parsed.keys, this.#o.maxKeys);
    });
    const fetchedAt = this.#clock();
    source.set = set;
    source.fetchedAt = fetchedAt;
    this.#keyCache.set(source.cacheKey, { keys: set.raw, fetchedAt }).catch((error: unknown) => {
      this.#logger?.warn(
        { event: 'keys.cache_write_failed', error: String(error) },
        'key cache write failed',
      );
    });
  }

  /** A custom {@link HttpGet} that ignores its timeout must not hold the single flight forever. */
  async #withDeadline<T>(promise: Promise<T>, url: string): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        promise,
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new FetchError('timeout', url)), this.#o.timeoutMs + 1_000);
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  async #readCache(key: string): Promise<CachedJwks | undefined> {
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        this.#keyCache.get(key),
        new Promise<undefined>(
          (resolve) => (timer = setTimeout(() => resolve(undefined), this.#o.timeoutMs)),
        ),
      ]);
    } catch (error) {
      this.#logger?.warn(
        { event: 'keys.cache_read_failed', error: String(error) },
        'key cache read failed: fetching from the IdP',
      );
      return undefined;
    } finally {
      clearTimeout(timer);
    }
  }

  async #fetchDocument<T>(
    source: Refreshable,
    kind: 'discovery' | 'jwks',
    maxBytes: number,
    parse: (body: string) => T,
  ): Promise<T> {
    const started = performance.now();
    const url = redactUrl(source.url);
    this.#stats.fetches++;
    try {
      const { body } = await this.#withDeadline(
        this.#httpGet(source.url, { timeoutMs: this.#o.timeoutMs, maxBytes, ...source.params }),
        source.url,
      );
      const result = parse(body);
      this.#onFetch?.({ url, kind, ok: true, durationMs: performance.now() - started });
      this.#logger?.debug({ event: 'keys.fetch', kind, url }, `${kind} fetched`);
      return result;
    } catch (error) {
      this.#stats.failures++;
      const code =
        error instanceof FetchError ? error.code : error instanceof DocumentError ? error.reason : 'network';
      this.#onFetch?.({ url, kind, ok: false, durationMs: performance.now() - started, error: code });
      const cause =
        error instanceof FetchError && error.cause instanceof Error ? error.cause.message : undefined;
      this.#logger?.warn(
        { event: 'keys.fetch.failure', kind, url, error: code, cause: cause?.slice(0, 200) },
        `${kind} fetch failed: ${code}`,
      );
      throw error;
    }
  }

  /** The cache key of `config`'s key source, memoised per config object. */
  #sourceKey(config: IdentityConfig): string {
    let key = this.#sourceKeys.get(config);
    if (key === undefined) {
      key = sourceKey(config);
      this.#sourceKeys.set(config, key);
    }
    return key;
  }

  #source(config: IdentityConfig): Source {
    const key = this.#sourceKey(config);
    let source = this.#sources.get(key);
    if (!source) {
      source = this.#createSource(config);
      this.#sources.set(key, source);
    }
    return source;
  }

  #createSource(config: IdentityConfig): Source {
    const params: FetchParams = {
      caCert: config.caCert,
      allowPrivateNetwork: config.allowPrivateNetwork,
      allowInsecureLoopback: config.allowInsecureLoopback,
    };
    if (config.publicKeys && config.publicKeys.length > 0) return this.#staticSource(config.publicKeys);
    if (config.jwksUrl) return this.#jwksSource(config.jwksUrl, params);
    const base = config.oidcDiscoveryUrl;
    if (!base) throw new KeyError('key_not_found', { cause: new Error('identity has no key source') });
    return {
      kind: 'discovery',
      url: discoveryDocumentUrl(config),
      params,
      expectedIssuer: config.discoveryIssuer ?? base,
      fetchedAt: -Infinity,
      lastAttemptAt: -Infinity,
      failure: undefined,
      inflight: undefined,
      doc: undefined,
    };
  }

  /** One JWKS source per URL, CA and flags, shared by direct `jwksUrl` configs and discovery. */
  #jwksSource(url: string, params: FetchParams): JwksSource {
    const key = jwksKey(url, params);
    const existing = this.#sources.get(key);
    if (existing?.kind === 'jwks') return existing;
    const caHash = params.caCert ? createHash('sha256').update(params.caCert).digest('hex').slice(0, 16) : '';
    const source: JwksSource = {
      kind: 'jwks',
      url,
      params,
      cacheKey: `jwks:${flagsOf(params)}:${caHash}:${url}`,
      fetchedAt: -Infinity,
      lastAttemptAt: -Infinity,
      failure: undefined,
      inflight: undefined,
      set: undefined,
    };
    this.#sources.set(key, source);
    return source;
  }

  #staticSource(publicKeys: ReadonlyArray<string | JWK>): StaticSource {
    const keys: VerificationKey[] = [];
    const raw: JWK[] = [];
    let set: KeySet;
    try {
      for (const entry of publicKeys.slice(0, this.#o.maxKeys)) {
        if (typeof entry === 'string') {
          const imported = importPem(entry);
          if (imported) keys.push(imported);
        } else {
          raw.push(entry);
        }
      }
      const fromJwks = buildKeySet(raw, this.#o.maxKeys);
      set = new KeySet([...keys, ...fromJwks.keys].slice(0, this.#o.maxKeys), fromJwks.raw, true);
    } catch (error) {
      this.#logger?.warn(
        { event: 'keys.static_unusable', error: String(error) },
        'static publicKeys unusable: no key verifies',
      );
      set = new KeySet([], [], true);
    }
    if (set.keys.length < publicKeys.length) {
      this.#logger?.warn(
        { event: 'keys.static_ignored', ignored: publicKeys.length - set.keys.length },
        'some static publicKeys are unusable and ignored',
      );
    }
    return { kind: 'static', set };
  }
}

const EVERY_ALGORITHM = Object.freeze(Object.keys(ALGORITHMS)) as readonly AsymmetricAlgorithm[];
const NONE: readonly string[] = Object.freeze([]);
const NO_FIELDS: Readonly<Record<string, never>> = Object.freeze({});

/** What {@link KeyManager.registerIssuers} keeps of one issuer. */
interface RegisteredIssuer extends IssuerKeySources {
  readonly sources: IdentityConfig[];
  /** {@link sourceKey} of each source, same order. */
  readonly keys: string[];
  full: boolean;
}

/**
 * A config with the key-source fields of `config` (URLs, static keys, CA, network flags) that binds
 * nothing (but its issuers, when `keepIssuers`), grants nothing and allows every algorithm we
 * verify; {@link sourceKey} maps it to the same source as `config`. Held per issuer by
 * {@link KeyManager.registerIssuers}; with its issuers, by `MemoryIdentityStore` ({@link issuerSourceOf}).
 */
function keySourceOf(config: IdentityConfig, keepIssuers = false): IdentityConfig {
  return Object.freeze({
    ...config,
    identityId: '',
    boundIssuer: keepIssuers ? config.boundIssuer : NONE,
    boundSubject: NONE,
    boundAudiences: NONE,
    boundClaims: NO_FIELDS,
    claimMetadataMapping: NO_FIELDS,
    accessTokenTrustedIps: NONE,
    allowedAlgorithms: EVERY_ALGORITHM,
    metadata: NO_FIELDS,
  });
}

/**
 * A text equal for two configs exactly when what {@link KeyManager.registerIssuers} reads of them
 * (bound issuers and key-source fields) is equal; with {@link issuerSourceOf}, lets an identity
 * store keep one entry per distinct (issuers, key source) instead of every config.
 *
 * @internal
 */
export function issuerSourceSpelling(config: IdentityConfig): string {
  return `${JSON.stringify(config.boundIssuer)}\n${sourceKey(config)}`;
}

/**
 * A text equal for two configs exactly when they reach the same keys the same way (the key cache's
 * and {@link KeyManager.registerIssuers}'s comparison of key sources; issuers not included).
 *
 * @internal
 */
export function keySourceSpelling(config: IdentityConfig): string {
  return sourceKey(config);
}

/**
 * What {@link KeyManager.registerIssuers} reads of `config`, as a small frozen config: its bound
 * issuers and key-source fields, no other binding, no id, every algorithm we verify.
 *
 * @internal
 */
export function issuerSourceOf(config: IdentityConfig): IdentityConfig {
  return keySourceOf(config, true);
}

/** Whether the discovery document's algorithm list admits `alg` (`EdDSA` and `Ed25519` are one). */
function supports(algorithms: ReadonlySet<string>, alg: string): boolean {
  if (algorithms.has(alg)) return true;
  return (alg === 'EdDSA' && algorithms.has('Ed25519')) || (alg === 'Ed25519' && algorithms.has('EdDSA'));
}

function jwksKey(url: string, params: FetchParams): string {
  return `jwks\n${flagsOf(params)}\n${url}\n${params.caCert ?? ''}`;
}

/**
 * The cache key of `config`'s key source: equal for two configs exactly when they reach the same
 * keys the same way (a login accepts a token only if its identity's own source, by this key,
 * verified it). Static keys are one JSON array, so no two lists spell alike (a PEM holds newlines).
 */
function sourceKey(config: IdentityConfig): string {
  if (config.keySources) return `sources\n${JSON.stringify(config.keySources)}`;
  if (config.publicKeys && config.publicKeys.length > 0) {
    return `static\n${JSON.stringify(config.publicKeys)}`;
  }
  const params = {
    caCert: config.caCert,
    allowPrivateNetwork: config.allowPrivateNetwork,
    allowInsecureLoopback: config.allowInsecureLoopback,
  };
  if (config.jwksUrl) return jwksKey(config.jwksUrl, params);
  const issuer = config.discoveryIssuer ?? config.oidcDiscoveryUrl ?? '';
  return `discovery\n${flagsOf(params)}\n${config.oidcDiscoveryUrl ?? ''}\n${issuer}\n${config.caCert ?? ''}`;
}
