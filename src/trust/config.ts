import { X509Certificate, createPublicKey, type JsonWebKey, type KeyObject } from 'node:crypto';
import type { JWK } from 'jose';
import { ConfigError } from '../errors.js';
import { FetchError, validateFetchUrl } from './fetch.js';
import { ALLOW_ALL_IPS, parseTrustedIps } from '../policy/trusted-ips.js';
import { parseOAuthFields } from '../oauth/config.js';
import { validateClaimPath, validateGlob } from '../policy/match.js';
import { parseRules } from '../policy/parse-rules.js';
import type { AsymmetricAlgorithm, IdentityConfig } from '../types.js';
import { parseIdentitySources } from './sources.js';
import { checkTrustIdentity } from './entries.js';

/** What an identity id looks like; the login route refuses anything else before any store lookup. */
export const IDENTITY_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

/** `allowedAlgorithms` when the config sets none: RS/PS/ES 256-512 and EdDSA. */
export const DEFAULT_ALGORITHMS: readonly AsymmetricAlgorithm[] = Object.freeze([
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
]);

const SUPPORTED_ALGORITHMS: readonly AsymmetricAlgorithm[] = [...DEFAULT_ALGORITHMS, 'Ed25519'];
const WELL_KNOWN = '/.well-known/openid-configuration';
/**
 * Bounds of the numeric config fields. The upper ones are what every token store can hold, so an
 * accepted config never makes a login or a guarded request fail later (issue 13.5): the PostgreSQL
 * token table keeps `ttl_seconds` and `uses_limit` as `integer` (at most 2^31 - 1), the Redis
 * consume script reads a use count or limit of at most 15 digits, the memory store keeps numbers in
 * a `Float64Array` (exact up to 2^53), and every time is epoch ms, `now` plus at most the longest
 * TTL: a safe integer for millennia.
 */
export const CONFIG_LIMITS = Object.freeze({
  /** `accessTokenTTL` and `accessTokenMaxTTL`, seconds: ten years (under PostgreSQL's 2^31 - 1). */
  maxTtlSeconds: 315_360_000,
  /** `accessTokenNumUsesLimit`: 2^31 - 1, PostgreSQL's `integer` (Redis holds up to 15 digits). */
  maxUsesLimit: 2_147_483_647,
  /** `clockSkewSeconds`. */
  maxClockSkewSeconds: 300,
  /** `maxTokenLifetimeSeconds`: 366 days (one-year Kubernetes tokens). */
  maxTokenLifetimeSeconds: 31_622_400,
});
const STORE_BOUND = ', the largest every token store holds';
const MAX_URL_LENGTH = 2048;
const MAX_ISSUER_LENGTH = 1024;
const MAX_ISSUERS = 16;
const MAX_PATTERNS = 64;
const MAX_CLAIMS = 64;
const MAX_PUBLIC_KEYS = 100;
const MAX_CA_LENGTH = 256 * 1024;
const MAX_CA_CERTS = 100;
const MAX_METADATA_DEPTH = 16;
const MAX_METADATA_NODES = 10_000;
const FORBIDDEN_KEYS: ReadonlySet<string> = new Set(['__proto__', 'constructor', 'prototype']);
const METADATA_HOSTS: ReadonlySet<string> = new Set([
  'metadata.google.internal',
  'metadata.goog',
  'metadata',
]);
const AZURE_HOSTS =
  /^https?:\/\/(login\.microsoftonline\.com|login\.microsoft\.com|login\.windows\.net|sts\.windows\.net)\//i;

const FIELDS = [
  'identityId',
  'oidcDiscoveryUrl',
  'jwksUrl',
  'publicKeys',
  'caCert',
  'boundIssuer',
  'boundSubject',
  'boundAudiences',
  'allowAnyAudience',
  'boundClaims',
  'claimMetadataMapping',
  'accessTokenTTL',
  'accessTokenMaxTTL',
  'accessTokenNumUsesLimit',
  'accessTokenTrustedIps',
  'allowedAlgorithms',
  'clockSkewSeconds',
  'maxTokenLifetimeSeconds',
  'discoveryIssuer',
  'allowPrivateNetwork',
  'allowInsecureLoopback',
  'metadata',
  'keySources',
  'trust',
  'scopes',
  'accessTokenFormat',
  'requireDpop',
  'accessTokenAudiences',
  'rules',
  'candidateRules',
  'singleUseTokens',
] as const;
const KNOWN_FIELDS: ReadonlySet<string> = new Set(FIELDS);

const parsedConfigs = new WeakSet<IdentityConfig>();

/**
 * Whether `value` is a config {@link parseIdentityConfig} returned (valid and deeply frozen), as
 * opposed to an object that merely looks like one (JSON read back, a row edited by hand).
 */
export function isParsedIdentityConfig(value: unknown): value is IdentityConfig {
  return typeof value === 'object' && value !== null && parsedConfigs.has(value as IdentityConfig);
}

/**
 * Validate and normalise an identity's OIDC config (DESIGN.md "Identity OIDC config").
 *
 * Lists may be arrays or comma-separated strings (items of a comma string are trimmed; an array item
 * with surrounding whitespace is refused). Numbers may be numbers or decimal-integer strings. `null`
 * and `""` on an optional field mean absent (as Infisical stores them). Unknown fields are refused,
 * so a typo such as `boundAudience` cannot silently drop a binding. Defaults: `accessTokenTTL` 7200 s,
 * `accessTokenMaxTTL` 86400 s, `accessTokenNumUsesLimit` 0 (unlimited), `accessTokenTrustedIps`
 * `0.0.0.0/0` + `::/0`, `allowedAlgorithms` {@link DEFAULT_ALGORITHMS}, `clockSkewSeconds` 60,
 * `maxTokenLifetimeSeconds` 86400, `allowAnyAudience` false (so an identity without `boundAudiences`
 * refuses every token that carries an `aud`; the flag is refused together with `boundAudiences`).
 *
 * Idempotent: a parsed config parses to an equal config (the same object when it came from here).
 *
 * @returns A deeply frozen config.
 * @throws {ConfigError} naming the field (e.g. `boundClaims["ref"][1]`) and the problem.
 */
export function parseIdentityConfig(input: unknown): IdentityConfig {
  if (isParsedIdentityConfig(input)) return input;
  if (!isPlainObject(input)) throw new ConfigError('config', 'must be an object');
  const raw = input as Record<string, unknown>;
  const identityId = parseIdentityId(raw.identityId);
  const id = identityId;
  for (const key of Object.keys(raw)) {
    if (!KNOWN_FIELDS.has(key)) {
      const guess = closestField(key);
      throw new ConfigError(
        /^[\w.-]{1,64}$/.test(key) ? key : show(key, 64),
        `is not a known field${guess ? `; did you mean ${guess}?` : ''}`,
        id,
      );
    }
  }
  const value = (key: (typeof FIELDS)[number]): unknown => {
    const v = Object.hasOwn(raw, key) ? raw[key] : undefined;
    return v === null ? undefined : v;
  };

  const sources = parseIdentitySources(raw, id);
  const { oidcDiscoveryUrl, jwksUrl, publicKeys, caCert, discoveryIssuer } = sources.flat;
  const { allowPrivateNetwork, allowInsecureLoopback } = sources.flat;
  const boundIssuer = sources.boundIssuer;
  const boundSubject = parsePatterns(value('boundSubject'), 'boundSubject', id);
  const boundAudiences = parsePatterns(value('boundAudiences'), 'boundAudiences', id);
  boundAudiences.forEach((pattern, i) => checkAudiencePattern(pattern, `boundAudiences[${i}]`, id));
  const allowAnyAudience = parseFlag(value('allowAnyAudience'), 'allowAnyAudience', id);
  if (allowAnyAudience && boundAudiences.length > 0) {
    throw new ConfigError(
      'allowAnyAudience',
      'is true while boundAudiences is set; keep boundAudiences (tokens for other audiences are refused) and remove allowAnyAudience',
      id,
    );
  }
  const boundClaims = parseBoundClaims(value('boundClaims'), id);
  const flatBinds =
    boundSubject.length > 0 || boundAudiences.length > 0 || Object.keys(boundClaims).length > 0;
  const ruleTotals = { bindings: 0, patterns: 0, values: 0 };
  const rules = parseRules(value('rules'), 'rules', id, { boundIssuer, flatBinds }, ruleTotals) ?? [];
  const candidateRules = parseRules(
    value('candidateRules'),
    'candidateRules',
    id,
    { boundIssuer, flatBinds },
    ruleTotals,
  );
  if (sources.trust === undefined && !flatBinds && rules.length === 0) {
    throw new ConfigError(
      'boundSubject, boundAudiences, boundClaims',
      'the identity must have at least one bound constraint: without one, every token of the issuer logs in',
      id,
    );
  }
  const metadata = parseMetadata(value('metadata'), id);
  const claimMetadataMapping = parseMetadataMapping(value('claimMetadataMapping'), metadata, id);

  const accessTokenTTL = parseInteger(
    value('accessTokenTTL'),
    'accessTokenTTL',
    id,
    7200,
    1,
    CONFIG_LIMITS.maxTtlSeconds,
    STORE_BOUND,
  );
  const accessTokenMaxTTL = parseInteger(
    value('accessTokenMaxTTL'),
    'accessTokenMaxTTL',
    id,
    86_400,
    1,
    CONFIG_LIMITS.maxTtlSeconds,
    STORE_BOUND,
  );
  if (accessTokenTTL > accessTokenMaxTTL) {
    throw new ConfigError(
      'accessTokenTTL',
      `(${accessTokenTTL} s) cannot be greater than accessTokenMaxTTL (${accessTokenMaxTTL} s)`,
      id,
    );
  }
  const accessTokenNumUsesLimit = parseInteger(
    value('accessTokenNumUsesLimit'),
    'accessTokenNumUsesLimit',
    id,
    0,
    0,
    CONFIG_LIMITS.maxUsesLimit,
    `${STORE_BOUND} (PostgreSQL keeps it as integer); use 0 for unlimited`,
  );
  const trustedIpsInput = value('accessTokenTrustedIps');
  const accessTokenTrustedIps =
    trustedIpsInput === undefined ? [...ALLOW_ALL_IPS] : parseTrustedIps(trustedIpsInput, id);
  const allowedAlgorithms = parseAlgorithms(value('allowedAlgorithms'), id);
  const clockSkewSeconds = parseInteger(
    value('clockSkewSeconds'),
    'clockSkewSeconds',
    id,
    60,
    0,
    CONFIG_LIMITS.maxClockSkewSeconds,
  );
  const maxTokenLifetimeSeconds = parseInteger(
    value('maxTokenLifetimeSeconds'),
    'maxTokenLifetimeSeconds',
    id,
    86_400,
    60,
    CONFIG_LIMITS.maxTokenLifetimeSeconds,
  );
  const accessTokenFormat = parseAccessTokenFormat(value('accessTokenFormat'), id);
  const singleUseTokens = parseFlag(value('singleUseTokens'), 'singleUseTokens', id);
  const requireDpop = parseFlag(value('requireDpop'), 'requireDpop', id);

  const config: IdentityConfig = Object.freeze({
    identityId,
    oidcDiscoveryUrl,
    jwksUrl,
    publicKeys,
    caCert,
    boundIssuer: Object.freeze(boundIssuer),
    boundSubject: Object.freeze(boundSubject),
    boundAudiences: Object.freeze(boundAudiences),
    allowAnyAudience,
    boundClaims,
    claimMetadataMapping,
    accessTokenTTL,
    accessTokenMaxTTL,
    accessTokenNumUsesLimit,
    accessTokenTrustedIps: Object.freeze(accessTokenTrustedIps),
    allowedAlgorithms,
    clockSkewSeconds,
    maxTokenLifetimeSeconds,
    discoveryIssuer,
    allowPrivateNetwork,
    allowInsecureLoopback,
    metadata,
    ...(sources.keySources ? { keySources: sources.keySources } : {}),
    ...(sources.trust === undefined ? {} : { trust: sources.trust }),
    ...parseOAuthFields(value, id),
    ...(accessTokenFormat === undefined ? {} : { accessTokenFormat }),
    ...(requireDpop ? { requireDpop } : {}),
    ...(rules.length === 0 ? {} : { rules }),
    ...(candidateRules === undefined ? {} : { candidateRules }),
    ...(singleUseTokens ? { singleUseTokens: true as const } : {}),
  });
  if (sources.trust !== undefined) checkTrustIdentity(config);
  parsedConfigs.add(config);
  return config;
}

/** The flat key-source fields of a config or of one of its `keySources`. @internal */
export interface FlatKeySource {
  readonly oidcDiscoveryUrl: string | undefined;
  readonly jwksUrl: string | undefined;
  readonly publicKeys: ReadonlyArray<string | JWK> | undefined;
  readonly caCert: string | undefined;
  readonly discoveryIssuer: string | undefined;
  readonly allowPrivateNetwork: boolean;
  readonly allowInsecureLoopback: boolean;
}

/**
 * Validate the flat key-source fields read through `value` (`requireSource`: one of
 * `oidcDiscoveryUrl`, `jwksUrl`, `publicKeys` is required). @internal
 */
export function parseKeySourceFields(
  value: (key: string) => unknown,
  id: string,
  requireSource: boolean,
): FlatKeySource {
  const allowPrivateNetwork = parseFlag(value('allowPrivateNetwork'), 'allowPrivateNetwork', id);
  const allowInsecureLoopback = parseFlag(value('allowInsecureLoopback'), 'allowInsecureLoopback', id);
  const network = { allowPrivateNetwork, allowInsecureLoopback };

  const discoveryInput = optionalString(value('oidcDiscoveryUrl'), 'oidcDiscoveryUrl', id);
  const oidcDiscoveryUrl =
    discoveryInput === undefined ? undefined : normaliseDiscoveryUrl(discoveryInput, network, id);
  const jwksInput = optionalString(value('jwksUrl'), 'jwksUrl', id);
  const jwksUrl =
    jwksInput === undefined ? undefined : checkUrl(jwksInput, 'jwksUrl', network, id, { query: true }).href;
  const publicKeys = parsePublicKeys(value('publicKeys'), id);
  if (requireSource && oidcDiscoveryUrl === undefined && jwksUrl === undefined && publicKeys === undefined) {
    throw new ConfigError(
      'oidcDiscoveryUrl',
      'is required unless jwksUrl or publicKeys is given (the identity needs a key source)',
      id,
    );
  }
  const caCert = parseCaCert(value('caCert'), id);
  const issuerInput = optionalString(value('discoveryIssuer'), 'discoveryIssuer', id);
  const discoveryIssuer =
    issuerInput === undefined ? undefined : checkIssuerUrl(issuerInput, 'discoveryIssuer', network, id);
  return {
    oidcDiscoveryUrl,
    jwksUrl,
    publicKeys,
    caCert,
    discoveryIssuer,
    allowPrivateNetwork,
    allowInsecureLoopback,
  };
}

/**
 * The token settings a trust entry holds, validated as an identity's are (`audiences` like
 * `boundAudiences`). @internal
 */
export function parseTrustSettings(
  value: (key: string) => unknown,
  id: string,
): {
  audiences: readonly string[];
  allowedAlgorithms: readonly AsymmetricAlgorithm[];
  clockSkewSeconds: number;
  maxTokenLifetimeSeconds: number;
} {
  const audiences = parsePatterns(value('audiences'), 'audiences', id);
  audiences.forEach((pattern, i) => checkAudiencePattern(pattern, `audiences[${i}]`, id));
  return {
    audiences: Object.freeze(audiences),
    allowedAlgorithms: parseAlgorithms(value('allowedAlgorithms'), id),
    clockSkewSeconds: parseInteger(value('clockSkewSeconds'), 'clockSkewSeconds', id, 60, 0, 300),
    maxTokenLifetimeSeconds: parseInteger(
      value('maxTokenLifetimeSeconds'),
      'maxTokenLifetimeSeconds',
      id,
      86_400,
      60,
      CONFIG_LIMITS.maxTokenLifetimeSeconds,
    ),
  };
}

/**
 * Parse a list of identity configs (e.g. the array given to the memory store).
 *
 * @throws {ConfigError} for the first invalid config, or when an identity id appears twice.
 */
export function parseIdentityConfigs(list: unknown): IdentityConfig[] {
  if (!Array.isArray(list)) throw new ConfigError('identities', 'must be an array of identity configs');
  const seen = new Map<string, number>();
  return list.map((item: unknown, i) => {
    const config = parseIdentityConfig(item);
    const first = seen.get(config.identityId);
    if (first !== undefined) {
      throw new ConfigError(
        `[${i}].identityId`,
        `is the same as entry ${first}'s; identity ids must be unique`,
        config.identityId,
      );
    }
    seen.set(config.identityId, i);
    return config;
  });
}

/**
 * The discovery document URL of a config: its normalised issuer base plus
 * `/.well-known/openid-configuration`, appended exactly once (ISS-06).
 *
 * @throws {ConfigError} when the config has no `oidcDiscoveryUrl`.
 */
export function discoveryDocumentUrl(config: IdentityConfig): string {
  if (config.oidcDiscoveryUrl === undefined) {
    throw new ConfigError('oidcDiscoveryUrl', 'is not configured', config.identityId);
  }
  return config.oidcDiscoveryUrl + WELL_KNOWN;
}

// ---------------------------------------------------------------------------------------------
// Scalars

/** `accessTokenFormat`: `opaque` or `jwt`; absent means the engine's default (`accessTokens.format`). */
function parseAccessTokenFormat(value: unknown, id: string): 'opaque' | 'jwt' | undefined {
  if (value === undefined || value === '') return undefined;
  if (value === 'opaque' || value === 'jwt') return value;
  throw new ConfigError('accessTokenFormat', 'must be "opaque" or "jwt"', id);
}

function parseIdentityId(value: unknown): string {
  if (typeof value !== 'string' || value === '')
    throw new ConfigError('identityId', 'is required (a string)');
  if (!IDENTITY_ID_PATTERN.test(value)) {
    throw new ConfigError(
      'identityId',
      'must be 1-128 characters of letters, digits, ".", "_", ":" or "-", starting with a letter or digit',
    );
  }
  return value;
}

function parseFlag(value: unknown, field: string, id: string): boolean {
  if (value === undefined) return false;
  if (typeof value !== 'boolean') throw new ConfigError(field, 'must be true or false', id);
  return value;
}

function optionalString(value: unknown, field: string, id: string): string | undefined {
  if (value === undefined || value === '') return undefined;
  if (typeof value !== 'string') throw new ConfigError(field, 'must be a string', id);
  return value;
}

const INTEGER = /^-?[0-9]{1,64}$/;

/**
 * An integer field: a number, or a decimal-integer string of up to 64 digits (a long one is refused
 * as too large, not as malformed), between `min` and `max` (`why` says where `max` comes from).
 */
function parseInteger(
  value: unknown,
  field: string,
  id: string,
  fallback: number,
  min: number,
  max: number,
  why = '',
): number {
  if (value === undefined || value === '') return fallback;
  let n: number;
  if (typeof value === 'number' && Number.isInteger(value)) n = value;
  else if (typeof value === 'string' && INTEGER.test(value)) n = Number(value);
  else throw new ConfigError(field, 'must be an integer (a number or a decimal string)', id);
  if (n > max) throw new ConfigError(field, `must be at most ${max}${why}`, id);
  if (n < min) throw new ConfigError(field, `must be at least ${min}`, id);
  return n === 0 ? 0 : n;
}

// ---------------------------------------------------------------------------------------------
// Lists and patterns

/**
 * Array (items kept verbatim, whitespace-padded items refused) or comma string (items trimmed).
 *
 * @internal
 */
export function parseList(value: unknown, field: string, id: string, max: number): string[] {
  if (value === undefined || value === '') return [];
  let items: unknown[];
  let fromString = false;
  if (typeof value === 'string') {
    items = value.split(',').map((item) => item.trim());
    fromString = true;
  } else if (Array.isArray(value)) {
    items = value;
  } else {
    throw new ConfigError(field, 'must be an array of strings or a comma-separated string', id);
  }
  if (items.length > max) throw new ConfigError(field, `has more than ${max} items`, id);
  const out: string[] = [];
  items.forEach((item, i) => {
    const itemField = `${field}[${i}]`;
    if (typeof item !== 'string') throw new ConfigError(itemField, 'must be a string', id);
    if (item === '') {
      throw new ConfigError(itemField, fromString ? 'is empty (a stray comma?)' : 'must not be empty', id);
    }
    if (item.trim() !== item) {
      throw new ConfigError(itemField, 'has leading or trailing whitespace, so it would never match', id);
    }
    if (!fromString && /,\s/.test(item)) {
      throw new ConfigError(
        itemField,
        'looks like comma-joined values; give each as its own array item (escape a literal comma as "\\,")',
        id,
      );
    }
    if (!out.includes(item)) out.push(item);
  });
  return out;
}

function parsePatterns(value: unknown, field: string, id: string): string[] {
  const patterns = parseList(value, field, id, MAX_PATTERNS);
  patterns.forEach((pattern, i) => validateGlob(pattern, `${field}[${i}]`, id));
  return patterns;
}

/**
 * AUD-05: a wildcard in the host of an audience URL (`https://api.example.com*`) accepts tokens
 * minted for other relying parties such as `https://api.example.com.evil.tld`.
 */
export function checkAudiencePattern(pattern: string, field: string, id: string): void {
  const authority = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/([^/]*)/.exec(pattern)?.[1];
  if (authority !== undefined && /[*?[]/.test(authority)) {
    throw new ConfigError(
      field,
      'has a wildcard in the URL host, which also accepts tokens minted for other services; list audiences exactly',
      id,
    );
  }
}

/** An exact-issuer list (`boundIssuer`, a key source's `issuer`): required, no globs. @internal */
export function parseExactIssuers(value: unknown, id: string, name: string): string[] {
  const issuers = parseList(value, name, id, MAX_ISSUERS);
  if (issuers.length === 0) {
    throw new ConfigError(name, 'is required: the exact iss value(s) the tokens carry', id);
  }
  issuers.forEach((issuer, i) => {
    const field = `${name}[${i}]`;
    if (issuer.length > MAX_ISSUER_LENGTH) throw new ConfigError(field, 'is too long', id);
    if (/\s/.test(issuer) || hasControl(issuer)) throw new ConfigError(field, 'contains whitespace', id);
    if (/[*?]/.test(issuer)) {
      throw new ConfigError(field, 'is an exact string compared verbatim; globs are not supported here', id);
    }
    checkAzureTenant(issuer, field, id);
  });
  return issuers;
}

/** ISS-03: multi-tenant Azure endpoints and `{tenantid}` placeholders accept every tenant. */
function checkAzureTenant(value: string, field: string, id: string): void {
  const lower = value.toLowerCase();
  const placeholder = /\{tenant(id)?\}|%7btenant(id)?%7d/.test(lower);
  const multiTenant =
    AZURE_HOSTS.test(value) && /^https?:\/\/[^/]+\/(common|organizations|consumers)(\/|$)/.test(lower);
  if (placeholder || multiTenant) {
    throw new ConfigError(
      field,
      'is a multi-tenant Azure placeholder (common, organizations, consumers or {tenantid}); pin the tenant id',
      id,
    );
  }
}

function parseBoundClaims(value: unknown, id: string): Readonly<Record<string, readonly string[]>> {
  if (value === undefined) return Object.freeze({});
  if (!isPlainObject(value))
    throw new ConfigError('boundClaims', 'must be an object of claim path to patterns', id);
  const entries = Object.entries(value as Record<string, unknown>);
  if (entries.length > MAX_CLAIMS)
    throw new ConfigError('boundClaims', `has more than ${MAX_CLAIMS} claims`, id);
  const out: Record<string, readonly string[]> = {};
  for (const [path, patterns] of entries) {
    const field = `boundClaims[${show(path, 64)}]`;
    validateClaimPath(path, field, id);
    const list = parsePatterns(patterns, field, id);
    if (list.length === 0) {
      throw new ConfigError(field, 'has no patterns; a bound claim needs at least one allowed value', id);
    }
    Object.defineProperty(out, path, { value: Object.freeze(list), enumerable: true });
  }
  return Object.freeze(out);
}

function parseMetadataMapping(
  value: unknown,
  metadata: Readonly<Record<string, unknown>>,
  id: string,
): Readonly<Record<string, string>> {
  if (value === undefined) return Object.freeze({});
  if (!isPlainObject(value)) {
    throw new ConfigError('claimMetadataMapping', 'must be an object of metadata name to claim path', id);
  }
  const entries = Object.entries(value as Record<string, unknown>);
  if (entries.length > MAX_CLAIMS) {
    throw new ConfigError('claimMetadataMapping', `has more than ${MAX_CLAIMS} entries`, id);
  }
  const out: Record<string, string> = {};
  for (const [name, path] of entries) {
    const field = `claimMetadataMapping[${show(name, 64)}]`;
    if (name === '' || name.length > 128 || FORBIDDEN_KEYS.has(name) || hasControl(name)) {
      throw new ConfigError(field, 'is not a usable metadata name', id);
    }
    if (Object.hasOwn(metadata, name)) {
      throw new ConfigError(
        field,
        'is also a metadata key; a mapped claim must not shadow static metadata',
        id,
      );
    }
    if (typeof path !== 'string') throw new ConfigError(field, 'must be a claim path string', id);
    validateClaimPath(path, field, id);
    out[name] = path;
  }
  return Object.freeze(out);
}

function parseAlgorithms(value: unknown, id: string): readonly AsymmetricAlgorithm[] {
  if (value === undefined || value === '') return DEFAULT_ALGORITHMS;
  const list = parseList(value, 'allowedAlgorithms', id, SUPPORTED_ALGORITHMS.length * 2);
  if (list.length === 0) throw new ConfigError('allowedAlgorithms', 'must not be empty', id);
  list.forEach((alg, i) => {
    const field = `allowedAlgorithms[${i}]`;
    if ((SUPPORTED_ALGORITHMS as readonly string[]).includes(alg)) return;
    if (/^hs\d*$/i.test(alg)) {
      throw new ConfigError(field, 'HMAC algorithms are never accepted for OIDC identities (ALG-02)', id);
    }
    if (alg.toLowerCase() === 'none') throw new ConfigError(field, '"none" is never accepted (ALG-01)', id);
    const guess = SUPPORTED_ALGORITHMS.find((known) => known.toLowerCase() === alg.toLowerCase());
    throw new ConfigError(
      field,
      `${show(alg, 16)} is not supported${guess ? ` (algorithm names are case-sensitive: ${guess})` : ''}; use ${SUPPORTED_ALGORITHMS.join(', ')}`,
      id,
    );
  });
  return Object.freeze(list as AsymmetricAlgorithm[]);
}

// ---------------------------------------------------------------------------------------------
// URLs

interface NetworkFlags {
  allowPrivateNetwork: boolean;
  allowInsecureLoopback: boolean;
}

/**
 * WHATWG-parse and check a URL the library will fetch: https only (http only to a loopback host
 * with `allowInsecureLoopback`, SSRF-07), no userinfo (SSRF-03), no fragment, literal IP hosts in
 * private/loopback/link-local/reserved ranges refused unless opted in (SSRF-01). Host names are
 * checked per resolved address at fetch time.
 */
function checkUrl(
  input: string,
  field: string,
  network: NetworkFlags,
  id: string,
  options: { query: boolean },
): URL {
  const url = parseUrl(input, field, id, options);
  const host = url.hostname.toLowerCase().replace(/\.$/, '');
  if (METADATA_HOSTS.has(host)) throw new ConfigError(field, 'points at a cloud metadata service', id);
  if (url.protocol === 'http:' && !network.allowInsecureLoopback) {
    throw new ConfigError(
      field,
      'must use https (plain http only to a loopback IdP with allowInsecureLoopback)',
      id,
    );
  }
  try {
    validateFetchUrl(url.href, network);
  } catch (error) {
    if (!(error instanceof FetchError)) throw error;
    const problem =
      error.code === 'blocked_address'
        ? 'points at a private, loopback, link-local or reserved address; set allowPrivateNetwork for an in-cluster IdP on a private range, or allowInsecureLoopback for a local test IdP'
        : 'must be an https URL (plain http only to a loopback IdP with allowInsecureLoopback)';
    throw new ConfigError(field, problem, id);
  }
  return url;
}

function parseUrl(input: string, field: string, id: string, options: { query: boolean }): URL {
  if (input.length > MAX_URL_LENGTH)
    throw new ConfigError(field, `is longer than ${MAX_URL_LENGTH} characters`, id);
  if (/\s/.test(input) || hasControl(input)) throw new ConfigError(field, 'contains whitespace', id);
  let url: URL;
  try {
    url = new URL(input);
  } catch {
    throw new ConfigError(field, 'is not a URL', id);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new ConfigError(field, `must use https, not ${show(url.protocol, 16)}`, id);
  }
  const authority = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/([^/?#]*)/.exec(input)?.[1] ?? '';
  if (url.username !== '' || url.password !== '' || authority.includes('@')) {
    throw new ConfigError(field, 'must not carry credentials (user:password@)', id);
  }
  if (url.hash !== '' || input.includes('#'))
    throw new ConfigError(field, 'must not have a fragment (#)', id);
  if (!options.query && (url.search !== '' || input.includes('?'))) {
    throw new ConfigError(field, 'must not have a query string', id);
  }
  return url;
}

function normaliseDiscoveryUrl(input: string, network: NetworkFlags, id: string): string {
  checkAzureTenant(input, 'oidcDiscoveryUrl', id);
  const url = checkUrl(input, 'oidcDiscoveryUrl', network, id, { query: false });
  let path = withoutTrailingSlashes(url.pathname);
  if (path.endsWith(WELL_KNOWN)) path = withoutTrailingSlashes(path.slice(0, -WELL_KNOWN.length));
  if (path.includes('/.well-known/')) {
    throw new ConfigError(
      'oidcDiscoveryUrl',
      'points at a .well-known document other than openid-configuration; give the issuer URL (or use jwksUrl)',
      id,
    );
  }
  return url.origin + path;
}

/** `discoveryIssuer` is compared verbatim with the discovery document's `issuer`, never fetched. */
function checkIssuerUrl(input: string, field: string, network: NetworkFlags, id: string): string {
  checkAzureTenant(input, field, id);
  const url = parseUrl(input, field, id, { query: false });
  if (url.protocol === 'http:' && !network.allowInsecureLoopback)
    throw new ConfigError(field, 'must use https', id);
  return input;
}

// ---------------------------------------------------------------------------------------------
// Keys and certificates

const PEM_PUBLIC_KEY = /^-----BEGIN PUBLIC KEY-----\r?\n[A-Za-z0-9+/=\r\n]+-----END PUBLIC KEY-----$/;
const JWK_PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'];

function parsePublicKeys(value: unknown, id: string): ReadonlyArray<string | JWK> | undefined {
  if (value === undefined) return undefined;
  if (!Array.isArray(value))
    throw new ConfigError('publicKeys', 'must be an array of PEM strings or JWKs', id);
  if (value.length === 0) throw new ConfigError('publicKeys', 'is empty', id);
  if (value.length > MAX_PUBLIC_KEYS)
    throw new ConfigError('publicKeys', `has more than ${MAX_PUBLIC_KEYS} keys`, id);
  return Object.freeze(
    value.map((key: unknown, i) => {
      const field = `publicKeys[${i}]`;
      if (typeof key === 'string') return parsePemKey(key, field, id);
      if (isPlainObject(key)) return parseJwk(key as Record<string, unknown>, field, id);
      throw new ConfigError(field, 'must be a PEM public key string or a JWK object', id);
    }),
  );
}

function parsePemKey(pem: string, field: string, id: string): string {
  const text = pem.trim();
  if (text.includes('PRIVATE KEY'))
    throw new ConfigError(field, 'is a private key; give the public key only', id);
  if (!PEM_PUBLIC_KEY.test(text)) {
    throw new ConfigError(field, 'must be one PEM "BEGIN PUBLIC KEY" (SPKI) block', id);
  }
  let key: KeyObject;
  try {
    key = createPublicKey({ key: text, format: 'pem' });
  } catch {
    throw new ConfigError(field, 'is not a readable public key', id);
  }
  checkKeyStrength(key, field, id);
  return key.export({ type: 'spki', format: 'pem' }).toString();
}

function parseJwk(jwk: Record<string, unknown>, field: string, id: string): JWK {
  if (jwk.kty === 'oct')
    throw new ConfigError(field, 'is a symmetric (kty "oct") key; HMAC is never accepted', id);
  if (jwk.kty !== 'RSA' && jwk.kty !== 'EC' && jwk.kty !== 'OKP') {
    throw new ConfigError(`${field}.kty`, 'must be "RSA", "EC" or "OKP"', id);
  }
  for (const member of JWK_PRIVATE_MEMBERS) {
    if (Object.hasOwn(jwk, member)) {
      throw new ConfigError(`${field}.${member}`, 'is a private key member; give the public key only', id);
    }
  }
  if (jwk.alg !== undefined && !(SUPPORTED_ALGORITHMS as readonly unknown[]).includes(jwk.alg)) {
    throw new ConfigError(`${field}.alg`, 'is not a supported asymmetric algorithm', id);
  }
  if (jwk.use !== undefined && jwk.use !== 'sig' && jwk.use !== 'jwt-svid') {
    throw new ConfigError(`${field}.use`, 'must be "sig" (or "jwt-svid", a SPIFFE bundle key)', id);
  }
  if (jwk.key_ops !== undefined && !(Array.isArray(jwk.key_ops) && jwk.key_ops.includes('verify'))) {
    throw new ConfigError(`${field}.key_ops`, 'must include "verify"', id);
  }
  const copy = cloneJson(jwk, field, id, 4) as JWK;
  let key: KeyObject;
  try {
    key = createPublicKey({ key: copy as unknown as JsonWebKey, format: 'jwk' });
  } catch {
    throw new ConfigError(field, 'is not a readable public JWK', id);
  }
  checkKeyStrength(key, field, id);
  return copy;
}

function checkKeyStrength(key: KeyObject, field: string, id: string): void {
  const type = key.asymmetricKeyType;
  const details = key.asymmetricKeyDetails ?? {};
  if (type === 'rsa' || type === 'rsa-pss') {
    if ((details.modulusLength ?? 0) < 2048)
      throw new ConfigError(field, 'is an RSA key under 2048 bits', id);
    return;
  }
  if (type === 'ec') {
    if (!['prime256v1', 'secp384r1', 'secp521r1'].includes(details.namedCurve ?? '')) {
      throw new ConfigError(field, 'is an EC key on a curve other than P-256, P-384 or P-521', id);
    }
    return;
  }
  if (type === 'ed25519' || type === 'ed448') return;
  throw new ConfigError(field, 'is not an RSA, EC (P-256/384/521) or Ed25519/Ed448 signing key', id);
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[A-Za-z0-9+/=\s]+?-----END CERTIFICATE-----/g;

function parseCaCert(value: unknown, id: string): string | undefined {
  const pem = optionalString(value, 'caCert', id);
  if (pem === undefined) return undefined;
  if (pem.length > MAX_CA_LENGTH)
    throw new ConfigError('caCert', `is larger than ${MAX_CA_LENGTH} bytes`, id);
  if (pem.includes('PRIVATE KEY')) throw new ConfigError('caCert', 'contains a private key', id);
  const blocks = pem.match(PEM_CERTIFICATE) ?? [];
  if (blocks.length === 0) throw new ConfigError('caCert', 'must hold one or more PEM certificates', id);
  if (blocks.length > MAX_CA_CERTS)
    throw new ConfigError('caCert', `holds more than ${MAX_CA_CERTS} certificates`, id);
  if ((pem.match(/-----BEGIN /g) ?? []).length !== blocks.length) {
    throw new ConfigError('caCert', 'holds PEM blocks that are not certificates', id);
  }
  blocks.forEach((block, i) => {
    try {
      new X509Certificate(block);
    } catch {
      throw new ConfigError(`caCert[${i}]`, 'is not a readable X.509 certificate', id);
    }
  });
  return pem;
}

// ---------------------------------------------------------------------------------------------
// Metadata

function parseMetadata(value: unknown, id: string): Readonly<Record<string, unknown>> {
  if (value === undefined) return Object.freeze({});
  if (!isPlainObject(value)) throw new ConfigError('metadata', 'must be a plain object', id);
  return cloneJson(value, 'metadata', id, MAX_METADATA_DEPTH) as Readonly<Record<string, unknown>>;
}

/** Deep-copy JSON data with a bounded walk (depth and node count), freezing every level. */
function cloneJson(value: unknown, field: string, id: string, maxDepth: number): unknown {
  let nodes = 0;
  const walk = (node: unknown, path: string, depth: number): unknown => {
    if (++nodes > MAX_METADATA_NODES)
      throw new ConfigError(field, `has more than ${MAX_METADATA_NODES} values`, id);
    if (node === null || typeof node === 'string' || typeof node === 'boolean') return node;
    if (typeof node === 'number') {
      if (!Number.isFinite(node)) throw new ConfigError(path, 'must be a finite number', id);
      return node;
    }
    if (depth >= maxDepth) throw new ConfigError(path, `is nested deeper than ${maxDepth} levels`, id);
    if (Array.isArray(node))
      return Object.freeze(node.map((item: unknown, i) => walk(item, `${path}[${i}]`, depth + 1)));
    if (isPlainObject(node)) {
      const out: Record<string, unknown> = {};
      for (const [key, item] of Object.entries(node as Record<string, unknown>)) {
        const itemPath = `${path}[${show(key, 64)}]`;
        if (FORBIDDEN_KEYS.has(key)) throw new ConfigError(itemPath, 'is a reserved key', id);
        out[key] = walk(item, itemPath, depth + 1);
      }
      return Object.freeze(out);
    }
    throw new ConfigError(
      path,
      'must be JSON data (string, number, boolean, null, array or plain object)',
      id,
    );
  };
  return walk(value, field, 0);
}

// ---------------------------------------------------------------------------------------------
// Helpers

function hasControl(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x20 || code === 0x7f) return true;
  }
  return false;
}

function isPlainObject(value: unknown): boolean {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false;
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/** A user-supplied string for an error message: quoted and truncated, never a huge echo. */
function show(text: string, max: number): string {
  return JSON.stringify(text.length > max ? `${text.slice(0, max)}…` : text);
}

function closestField(key: string): string | undefined {
  let best: string | undefined;
  let bestDistance = 3;
  for (const field of FIELDS) {
    const d = field.toLowerCase() === key.toLowerCase() ? 0 : editDistance(field, key, bestDistance);
    if (d < bestDistance) {
      best = field;
      bestDistance = d;
    }
  }
  return best;
}

function editDistance(a: string, b: string, cap: number): number {
  if (Math.abs(a.length - b.length) >= cap || b.length > 64) return cap;
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(
        (previous[j] ?? cap) + 1,
        (current[j - 1] ?? cap) + 1,
        (previous[j - 1] ?? cap) + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
    }
    previous = current;
  }
  return previous[b.length] ?? cap;
}

/**
 * A string without its trailing `/`s, in linear time (`/\/+$/` backtracks on a long run of `/` not at the end).
 *
 * @internal
 */
export function withoutTrailingSlashes(value: string): string {
  let end = value.length;
  while (end > 0 && value.charCodeAt(end - 1) === 47 /* / */) end--;
  return value.slice(0, end);
}
