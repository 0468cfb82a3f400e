import { DEFAULT_ALGORITHMS, parseTrustSettings } from './config.js';
import { ConfigError } from '../errors.js';
import type { AsymmetricAlgorithm, IdentityConfig, KeySource, KeySourceInput, ListInput } from '../types.js';
import { SOURCE_FIELDS, parseKeySources } from './sources.js';

/**
 * A trust entry as written: who is trusted (one key source inline, or `keySources`) and the token
 * settings every identity using it shares. Declared once in `createOidcAuth({ trust })`, referenced
 * by identities as `trust: '<trustId>'`.
 */
export interface TrustEntryInput extends KeySourceInput {
  /** Id the identities name in `trust`. Same characters as an identity id. */
  trustId: string;
  /** Several key sources, each with its own issuer or pattern; instead of the inline source fields. */
  keySources?: readonly KeySourceInput[];
  /** Audience globs of the identities using the entry, unless one sets its own `boundAudiences`. */
  audiences?: ListInput;
  /** JWS algorithms accepted. Default: as for an identity. */
  allowedAlgorithms?: ListInput;
  /** Default 60, at most 300. */
  clockSkewSeconds?: number | string;
  /** Default 86400. */
  maxTokenLifetimeSeconds?: number | string;
}

/** A validated trust entry. */
export interface TrustEntry {
  readonly trustId: string;
  readonly keySources: readonly KeySource[];
  readonly audiences: readonly string[];
  readonly allowedAlgorithms: readonly AsymmetricAlgorithm[];
  readonly clockSkewSeconds: number;
  readonly maxTokenLifetimeSeconds: number;
}

/** The fields of a key source, given inline on an entry instead of `keySources`. */
const INLINE_FIELDS = [...SOURCE_FIELDS];
const ENTRY_FIELDS: ReadonlySet<string> = new Set([
  'trustId',
  'keySources',
  'audiences',
  'allowedAlgorithms',
  'clockSkewSeconds',
  'maxTokenLifetimeSeconds',
  ...INLINE_FIELDS,
]);
const TRUST_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;
/** Trust entries one engine holds. */
export const MAX_TRUST_ENTRIES = 10_000;

/**
 * Validate a trust entry like an identity is: every problem is a ConfigError whose field names
 * the entry, `trust["github"].keySources[0].jwksUrl`.
 */
export function parseTrustEntry(input: unknown): TrustEntry {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new ConfigError('trust', 'each trust entry must be an object');
  }
  const raw = input as Record<string, unknown>;
  const trustId = raw.trustId;
  if (typeof trustId !== 'string' || !TRUST_ID.test(trustId)) {
    throw new ConfigError(
      'trust[].trustId',
      'is required: 1-128 letters, digits, ".", "_", ":" or "-", starting with a letter or digit',
    );
  }
  const at = `trust[${JSON.stringify(trustId)}]`;
  try {
    for (const key of Object.keys(raw)) {
      if (!ENTRY_FIELDS.has(key)) {
        throw new ConfigError(/^[\w.-]{1,64}$/.test(key) ? key : '?', 'is not a trust entry field');
      }
    }
    const value = (key: string): unknown => {
      const v = Object.hasOwn(raw, key) ? raw[key] : undefined;
      return v === null || v === '' ? undefined : v;
    };
    const inline = INLINE_FIELDS.filter((field) => value(field) !== undefined);
    let keySources: readonly KeySource[];
    if (value('keySources') !== undefined) {
      if (inline.length > 0) {
        throw new ConfigError(
          inline[0] as string,
          'is given together with keySources; put it inside a key source',
        );
      }
      keySources = parseKeySources(value('keySources'), 'keySources', undefined);
    } else {
      const one: Record<string, unknown> = {};
      for (const field of inline) one[field] = value(field);
      try {
        keySources = parseKeySources([one], 'inline', undefined);
      } catch (error) {
        if (error instanceof ConfigError && error.field.startsWith('inline[0].')) {
          throw new ConfigError(error.field.slice('inline[0].'.length), problemOf(error));
        }
        throw error;
      }
    }
    const settings = parseTrustSettings(value, '');
    return Object.freeze({ trustId, keySources, ...settings });
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    throw new ConfigError(`${at}.${error.field}`, problemOf(error), undefined, { cause: error });
  }
}

function problemOf(error: ConfigError): string {
  const marker = `${error.field}: `;
  return error.message.slice(error.message.indexOf(marker) + marker.length);
}

/**
 * An identity naming a trust entry takes its algorithms, skew and token lifetime from the entry:
 * set on the identity to anything but the defaults, they are refused (they would be ignored).
 *
 * @internal
 */
export function checkTrustIdentity(config: IdentityConfig): void {
  const id = config.identityId;
  if (
    config.allowedAlgorithms.length !== DEFAULT_ALGORITHMS.length ||
    config.allowedAlgorithms.some((alg, i) => alg !== DEFAULT_ALGORITHMS[i])
  ) {
    throw new ConfigError('allowedAlgorithms', 'is set together with trust; the trust entry sets it', id);
  }
  if (config.clockSkewSeconds !== 60) {
    throw new ConfigError('clockSkewSeconds', 'is set together with trust; the trust entry sets it', id);
  }
  if (config.maxTokenLifetimeSeconds !== 86_400) {
    throw new ConfigError(
      'maxTokenLifetimeSeconds',
      'is set together with trust; the trust entry sets it',
      id,
    );
  }
}

/**
 * The trust entries of one engine, and the resolution of an identity that names one into the
 * effective config login uses: the entry's key sources, algorithms, skew and lifetime, and its
 * audiences unless the identity binds its own. Resolutions are memoised per (config, entry), so a
 * changed entry takes effect at the next login of every identity using it.
 */
export class TrustRegistry {
  readonly #entries = new Map<string, TrustEntry>();
  readonly #resolved = new WeakMap<IdentityConfig, { entry: TrustEntry; config: IdentityConfig }>();
  readonly #sourceConfigs = new WeakMap<TrustEntry, IdentityConfig>();

  /** @throws {ConfigError} on an invalid entry or a trust id given twice. */
  constructor(inputs: readonly TrustEntryInput[] = []) {
    if (!Array.isArray(inputs)) throw new ConfigError('trust', 'must be an array of trust entries');
    for (const input of inputs) {
      const entry = parseTrustEntry(input);
      if (this.#entries.has(entry.trustId)) {
        throw new ConfigError(`trust[${JSON.stringify(entry.trustId)}]`, 'is declared twice');
      }
      this.#set(entry);
    }
  }

  get size(): number {
    return this.#entries.size;
  }

  get(trustId: string): TrustEntry | undefined {
    return this.#entries.get(trustId);
  }

  list(): TrustEntry[] {
    return [...this.#entries.values()];
  }

  /** Validate and add or replace an entry; identities using it see it at their next login. */
  put(input: TrustEntryInput | TrustEntry): TrustEntry {
    const entry = parseTrustEntry(input);
    this.#set(entry);
    return entry;
  }

  delete(trustId: string): boolean {
    return this.#entries.delete(trustId);
  }

  /**
   * Make the entries exactly `entries` (a store's list). An entry equal to the one held (same JSON)
   * keeps the object held, so resolutions memoised on it stay; the others replace it.
   *
   * @returns the entries added or changed.
   */
  replaceAll(entries: readonly TrustEntry[]): TrustEntry[] {
    const changed: TrustEntry[] = [];
    const seen = new Set<string>();
    for (const entry of entries.slice(0, MAX_TRUST_ENTRIES)) {
      seen.add(entry.trustId);
      const held = this.#entries.get(entry.trustId);
      if (held === entry || (held && JSON.stringify(held) === JSON.stringify(entry))) continue;
      this.#entries.set(entry.trustId, entry);
      changed.push(entry);
    }
    for (const trustId of [...this.#entries.keys()]) if (!seen.has(trustId)) this.#entries.delete(trustId);
    return changed;
  }

  #set(entry: TrustEntry): void {
    if (!this.#entries.has(entry.trustId) && this.#entries.size >= MAX_TRUST_ENTRIES) {
      throw new ConfigError('trust', `holds more than ${MAX_TRUST_ENTRIES} entries`);
    }
    this.#entries.set(entry.trustId, entry);
  }

  /**
   * A config holding only the entry's key sources (no id, no binding, every algorithm the entry
   * allows), for `KeyManager.registerIssuers`: one per entry, however many identities use it.
   */
  sourceConfig(entry: TrustEntry): IdentityConfig {
    let config = this.#sourceConfigs.get(entry);
    if (!config) {
      config = Object.freeze({
        identityId: '',
        oidcDiscoveryUrl: undefined,
        jwksUrl: undefined,
        publicKeys: undefined,
        caCert: undefined,
        boundIssuer: Object.freeze([]),
        boundSubject: Object.freeze([]),
        boundAudiences: entry.audiences,
        allowAnyAudience: false,
        boundClaims: Object.freeze({}),
        claimMetadataMapping: Object.freeze({}),
        accessTokenTTL: 1,
        accessTokenMaxTTL: 1,
        accessTokenNumUsesLimit: 0,
        accessTokenTrustedIps: Object.freeze([]),
        allowedAlgorithms: entry.allowedAlgorithms,
        clockSkewSeconds: entry.clockSkewSeconds,
        maxTokenLifetimeSeconds: entry.maxTokenLifetimeSeconds,
        discoveryIssuer: undefined,
        allowPrivateNetwork: false,
        allowInsecureLoopback: false,
        metadata: Object.freeze({}),
        keySources: entry.keySources,
        trust: entry.trustId,
      });
      this.#sourceConfigs.set(entry, config);
    }
    return config;
  }

  /**
   * The effective config of `config`: itself when it names no trust entry, else resolved with its
   * entry (see the class doc).
   *
   * @throws {ConfigError} `trust` names no entry; or the resolved identity binds nothing (no
   *   subject, audience or claim of its own and no entry audiences), or sets `allowAnyAudience`
   *   while the entry binds audiences.
   */
  resolve(config: IdentityConfig): IdentityConfig {
    if (config.trust === undefined) return config;
    const id = config.identityId;
    const entry = this.#entries.get(config.trust);
    if (!entry) throw new ConfigError('trust', `names no trust entry (${JSON.stringify(config.trust)})`, id);
    const memo = this.#resolved.get(config);
    if (memo?.entry === entry) return memo.config;
    const resolved = resolveWithEntry(config, entry);
    this.#resolved.set(config, { entry, config: resolved });
    return resolved;
  }
}

/**
 * `config` (naming `entry`) resolved with `entry`: see {@link TrustRegistry.resolve}.
 *
 * @throws {ConfigError} the resolved identity binds nothing, or sets `allowAnyAudience` while the
 *   entry binds audiences.
 */
export function resolveWithEntry(config: IdentityConfig, entry: TrustEntry): IdentityConfig {
  const id = config.identityId;
  const boundAudiences = config.boundAudiences.length > 0 ? config.boundAudiences : entry.audiences;
  if (config.allowAnyAudience && boundAudiences.length > 0) {
    throw new ConfigError(
      'allowAnyAudience',
      `is true while trust entry ${JSON.stringify(entry.trustId)} binds audiences; remove allowAnyAudience`,
      id,
    );
  }
  if (
    config.boundSubject.length === 0 &&
    boundAudiences.length === 0 &&
    Object.keys(config.boundClaims).length === 0 &&
    !config.rules?.length // each allow rule binds a subject, audience or claim (checked at config time)
  ) {
    throw new ConfigError(
      'boundSubject, boundAudiences, boundClaims',
      `the identity must have at least one bound constraint (trust entry ${JSON.stringify(entry.trustId)} binds no audience): without one, every token of the issuer logs in`,
      id,
    );
  }
  const resolved: IdentityConfig = Object.freeze({
    ...config,
    boundIssuer: Object.freeze([]),
    boundAudiences,
    allowedAlgorithms: entry.allowedAlgorithms,
    clockSkewSeconds: entry.clockSkewSeconds,
    maxTokenLifetimeSeconds: entry.maxTokenLifetimeSeconds,
    keySources: entry.keySources,
  });
  return resolved;
}
