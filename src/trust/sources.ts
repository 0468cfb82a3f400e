import { LRUCache } from 'lru-cache';
import { parseExactIssuers, parseKeySourceFields, type FlatKeySource } from './config.js';
import { ConfigError } from '../errors.js';
import type { IdentityConfig, KeySource } from '../types.js';
import { compileIssuerPattern, type IssuerPattern } from './pattern.js';

/** Most key sources one identity or trust entry lists. */
export const MAX_KEY_SOURCES = 8;
/** The flat key-source fields an identity may give instead of `keySources`. */
const FLAT_FIELDS = [
  'oidcDiscoveryUrl',
  'jwksUrl',
  'publicKeys',
  'caCert',
  'discoveryIssuer',
  'allowPrivateNetwork',
  'allowInsecureLoopback',
] as const;
/** Every field of a key source. */
export const SOURCE_FIELDS: ReadonlySet<string> = new Set(['issuer', 'issuerPattern', ...FLAT_FIELDS]);
const TRUST_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;
const NO_FLAGS: FlatKeySource = Object.freeze({
  oidcDiscoveryUrl: undefined,
  jwksUrl: undefined,
  publicKeys: undefined,
  caCert: undefined,
  discoveryIssuer: undefined,
  allowPrivateNetwork: false,
  allowInsecureLoopback: false,
});

/** What {@link parseIdentitySources} makes of an identity's key-source fields. */
export interface IdentitySources {
  /** The top-level key-source fields: a flat config's own, else unset. */
  flat: FlatKeySource;
  /** A flat config's `boundIssuer`; empty with `keySources` or `trust` (see {@link exactIssuers}). */
  boundIssuer: string[];
  keySources: readonly KeySource[] | undefined;
  trust: string | undefined;
}

/**
 * Read the key-source part of an identity config: either the flat fields (`oidcDiscoveryUrl` |
 * `jwksUrl` | `publicKeys`, `caCert`, … and `boundIssuer`: exactly one key source, as before),
 * or `keySources` (several, each with its own issuer or issuer pattern), or `trust` (a trust entry
 * id; the key sources come from the entry when the identity is resolved). Never two of them.
 *
 * @internal
 */
export function parseIdentitySources(raw: Record<string, unknown>, id: string): IdentitySources {
  const value = (key: string): unknown => {
    const v = Object.hasOwn(raw, key) ? raw[key] : undefined;
    return v === null || v === '' ? undefined : v;
  };
  const trustInput = value('trust');
  const sourcesInput = value('keySources');
  if (trustInput === undefined && sourcesInput === undefined) {
    return {
      flat: parseKeySourceFields(value, id, true),
      boundIssuer: parseExactIssuers(value('boundIssuer'), id, 'boundIssuer'),
      keySources: undefined,
      trust: undefined,
    };
  }
  const given = FLAT_FIELDS.filter((field) => value(field) !== undefined && value(field) !== false);
  const issuers = value('boundIssuer');
  if (issuers !== undefined && !(Array.isArray(issuers) && issuers.length === 0))
    given.push('boundIssuer' as never);
  const via = trustInput !== undefined ? 'trust' : 'keySources';
  if (trustInput !== undefined && sourcesInput !== undefined) {
    throw new ConfigError(
      'keySources',
      'is given together with trust; the trust entry holds the key sources',
      id,
    );
  }
  if (given.length > 0) {
    throw new ConfigError(
      given[0] as string,
      via === 'trust'
        ? 'is given together with trust; the trust entry holds the key sources and issuers'
        : 'is given together with keySources; put it inside the key source it belongs to',
      id,
    );
  }
  if (trustInput !== undefined) {
    if (typeof trustInput !== 'string' || !TRUST_ID.test(trustInput)) {
      throw new ConfigError('trust', 'must be a trust entry id (letters, digits, ".", "_", ":", "-")', id);
    }
    return { flat: NO_FLAGS, boundIssuer: [], keySources: undefined, trust: trustInput };
  }
  return {
    flat: NO_FLAGS,
    boundIssuer: [],
    keySources: parseKeySources(sourcesInput, 'keySources', id),
    trust: undefined,
  };
}

/**
 * Validate a `keySources` list: 1-8 entries, each with exactly one of `issuer` (exact, like
 * `boundIssuer`) and `issuerPattern` (host-pinned, see {@link compileIssuerPattern}), and a key
 * source (`oidcDiscoveryUrl` | `jwksUrl` | `publicKeys`; a pattern source without one discovers
 * from the token's own issuer). No exact issuer may belong to two sources.
 *
 * @internal
 */
export function parseKeySources(input: unknown, field: string, id: string | undefined): readonly KeySource[] {
  if (!Array.isArray(input) || input.length === 0) {
    throw new ConfigError(field, 'must be a non-empty array of key sources', id);
  }
  if (input.length > MAX_KEY_SOURCES) {
    throw new ConfigError(field, `has more than ${MAX_KEY_SOURCES} key sources`, id);
  }
  const seen = new Map<string, number>();
  const sources = input.map((entry: unknown, i): KeySource => {
    const at = `${field}[${i}]`;
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) {
      throw new ConfigError(at, 'must be an object', id);
    }
    const raw = entry as Record<string, unknown>;
    for (const key of Object.keys(raw)) {
      if (!SOURCE_FIELDS.has(key)) {
        throw new ConfigError(
          `${at}.${/^[\w.-]{1,64}$/.test(key) ? key : '?'}`,
          'is not a key-source field',
          id,
        );
      }
    }
    const value = (key: string): unknown => {
      const v = Object.hasOwn(raw, key) ? raw[key] : undefined;
      return v === null || v === '' ? undefined : v;
    };
    const rawPattern = value('issuerPattern');
    const rawIssuer = value('issuer');
    const issuerEmpty = rawIssuer === undefined || (Array.isArray(rawIssuer) && rawIssuer.length === 0);
    if (rawPattern !== undefined && !issuerEmpty) {
      throw new ConfigError(`${at}.issuerPattern`, 'is given together with issuer; give one of them', id);
    }
    if (rawPattern === undefined && issuerEmpty) {
      throw new ConfigError(
        `${at}.issuer`,
        'is required (or issuerPattern): the iss value(s) this source signs for',
        id,
      );
    }
    const flat = prefixed(at, () => parseKeySourceFields(value, id ?? '', rawPattern === undefined));
    let issuer: string[] = [];
    let issuerPattern: string | undefined;
    if (rawPattern !== undefined) {
      for (const key of ['oidcDiscoveryUrl', 'discoveryIssuer'] as const) {
        if (flat[key] !== undefined) {
          throw new ConfigError(
            `${at}.${key}`,
            "is given with issuerPattern; discovery is fetched from the token's own issuer",
            id,
          );
        }
      }
      issuerPattern = compileIssuerPattern(
        rawPattern,
        `${at}.issuerPattern`,
        id,
        flat.allowInsecureLoopback,
      ).pattern;
    } else {
      issuer = prefixed(at, () => parseExactIssuers(rawIssuer, id ?? '', 'issuer'));
      for (const one of issuer) {
        const other = seen.get(one);
        if (other !== undefined) {
          throw new ConfigError(
            `${at}.issuer`,
            `names ${JSON.stringify(one)}, which ${field}[${other}] names too; a token of one issuer verifies against one source`,
            id,
          );
        }
        seen.set(one, i);
      }
    }
    return Object.freeze({ ...flat, issuer: Object.freeze(issuer), issuerPattern });
  });
  return Object.freeze(sources);
}

/** Run `parse`, naming fields inside `at` in its ConfigError (`keySources[1].jwksUrl`). */
function prefixed<T>(at: string, parse: () => T): T {
  try {
    return parse();
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    const marker = `${error.field}: `;
    const problem = error.message.slice(error.message.indexOf(marker) + marker.length);
    throw new ConfigError(`${at}.${error.field}`, problem, error.identityId, { cause: error });
  }
}

/** The exact issuers a config vouches for: `boundIssuer`, or its key sources' `issuer`s. */
export function exactIssuers(config: IdentityConfig): readonly string[] {
  if (!config.keySources) return config.boundIssuer;
  return config.keySources.flatMap((source) => source.issuer);
}

const views = new WeakMap<IdentityConfig, readonly IdentityConfig[]>();
const patternViews = new WeakMap<IdentityConfig, LRUCache<string, IdentityConfig>>();
const compiled = new WeakMap<KeySource, IssuerPattern>();
/** Pattern views kept per config (one per issuer seen): bounded, rebuilt when evicted. */
const PATTERN_VIEWS_PER_CONFIG = 256;

/**
 * One config per exact-issuer key source of `config`: `config` itself for a flat config, else a
 * flat copy whose key-source fields and `boundIssuer` are that source's (its id, algorithms and
 * bindings are `config`'s). What the key manager registers and fetches keys for.
 */
export function sourceViews(config: IdentityConfig): readonly IdentityConfig[] {
  if (!config.keySources) return [config];
  let list = views.get(config);
  if (!list) {
    list = Object.freeze(
      config.keySources
        .filter((source) => source.issuerPattern === undefined)
        .map((source) => viewOf(config, source, source.issuer)),
    );
    views.set(config, list);
  }
  return list;
}

/** The pattern key sources of `config` (none for a flat config). */
export function patternSources(config: IdentityConfig): readonly KeySource[] {
  return config.keySources?.filter((source) => source.issuerPattern !== undefined) ?? [];
}

/** Whether `source`'s issuer pattern matches `issuer`. */
export function patternMatches(source: KeySource, issuer: string): boolean {
  if (source.issuerPattern === undefined) return false;
  let pattern = compiled.get(source);
  if (!pattern) {
    pattern = compileIssuerPattern(
      source.issuerPattern,
      'issuerPattern',
      undefined,
      source.allowInsecureLoopback,
    );
    compiled.set(source, pattern);
  }
  return pattern.matches(issuer);
}

/**
 * The view of `config` (see {@link sourceViews}) whose source a token of `issuer` must verify
 * against: the source naming `issuer` exactly, else the first pattern source matching it (its
 * discovery is then the token's own issuer, unless it has `jwksUrl` or `publicKeys`), else
 * `undefined`: `config` does not accept `issuer`.
 */
export function sourceViewFor(config: IdentityConfig, issuer: string): IdentityConfig | undefined {
  if (!config.keySources) return config.boundIssuer.includes(issuer) ? config : undefined;
  const list = sourceViews(config);
  for (const view of list) if (view.boundIssuer.includes(issuer)) return view;
  const index = config.keySources.findIndex((source) => patternMatches(source, issuer));
  if (index < 0) return undefined;
  let cache = patternViews.get(config);
  if (!cache) patternViews.set(config, (cache = new LRUCache({ max: PATTERN_VIEWS_PER_CONFIG })));
  const key = `${index}\n${issuer}`;
  let view = cache.get(key);
  if (!view) {
    const source = config.keySources[index] as KeySource;
    const discovered =
      source.jwksUrl === undefined && source.publicKeys === undefined
        ? { oidcDiscoveryUrl: withoutTrailingSlash(issuer), discoveryIssuer: issuer }
        : {};
    view = viewOf(config, { ...source, ...discovered }, [issuer]);
    cache.set(key, view);
  }
  return view;
}

/** Whether `config` accepts tokens of `issuer` (an exact issuer of a source, or a pattern's match). */
export function acceptsIssuer(config: IdentityConfig, issuer: unknown): boolean {
  return typeof issuer === 'string' && sourceViewFor(config, issuer) !== undefined;
}

function viewOf(
  config: IdentityConfig,
  source: Omit<KeySource, 'issuer'>,
  issuers: readonly string[],
): IdentityConfig {
  const { keySources: _sources, ...rest } = config;
  return Object.freeze({
    ...rest,
    oidcDiscoveryUrl: source.oidcDiscoveryUrl,
    jwksUrl: source.jwksUrl,
    publicKeys: source.publicKeys,
    caCert: source.caCert,
    discoveryIssuer: source.discoveryIssuer,
    allowPrivateNetwork: source.allowPrivateNetwork,
    allowInsecureLoopback: source.allowInsecureLoopback,
    boundIssuer: Object.freeze([...issuers]),
  });
}

function withoutTrailingSlash(value: string): string {
  return value.endsWith('/') ? value.slice(0, -1) : value;
}
