import { ConfigError, ServiceUnavailableError } from '../errors.js';
import type { KeyManager } from './keys.js';
import type { IdentityConfig, IdentityConfigInput, IdentityStore, Logger } from '../types.js';
import {
  TrustRegistry,
  parseTrustEntry,
  resolveWithEntry,
  type TrustEntry,
  type TrustEntryInput,
} from './entries.js';
import {
  MAX_REFERENCING_IDS,
  MemoryTrustStore,
  TrustInUseError,
  isTrustStore,
  type TrustStore,
} from './store.js';

/** The trust entries of an engine (`auth.trust`). */
export interface TrustEntries {
  /** The entry as the store holds it now (read from the store, not the engine's snapshot). */
  get(trustId: string): Promise<TrustEntry | undefined>;
  /** Every entry of the store. */
  list(): Promise<TrustEntry[]>;
  /**
   * Validate (a ConfigError naming `trust["id"].field` when invalid), then write the entry to the
   * store; every identity using it logs in against it from its next login on this engine, and on
   * every other engine sharing the store within its `trustMaxAgeSeconds`.
   */
  put(input: TrustEntryInput): Promise<TrustEntry>;
  /**
   * Remove an entry. Refused with {@link TrustInUseError} (409 `trust_in_use`, naming up to 20
   * identity ids) while identities of the engine's identity store name it. Identities still
   * naming it (written meanwhile, or by hand) are refused at login.
   */
  delete(trustId: string): Promise<boolean>;
  /** The store the entries live in. */
  readonly store: TrustStore;
  /** Longest an engine uses its snapshot of the store's entries before reading them again. */
  readonly maxAgeSeconds: number;
}

/** The engine's side of trust entries: the public API plus resolution for login. @internal */
export interface TrustBinding extends TrustEntries {
  /**
   * The effective config of `config` (itself without `trust`), from the engine's snapshot.
   *
   * @throws {ConfigError} the entry is not in the snapshot (deleted), or the identity binds nothing.
   * @throws {ServiceUnavailableError} the snapshot is older than `maxAgeSeconds` and the store could
   *   not be read: an identity naming an entry fails closed.
   */
  resolve(config: IdentityConfig): IdentityConfig;
  /**
   * Read the store again when the snapshot is older than `maxAgeSeconds` (one read at a time; after
   * a failed read, at most one more a second). `undefined` when the snapshot is fresh: nothing to wait for.
   */
  fresh(): Promise<void> | undefined;
}

/** Options of {@link bindTrust}. @internal */
export interface BindTrustOptions {
  /** `createOidcAuth({ trust })`: entries (kept in a {@link MemoryTrustStore}) or a store. */
  trust: readonly TrustEntryInput[] | TrustStore | undefined;
  /** Default {@link DEFAULT_TRUST_MAX_AGE_SECONDS}. */
  maxAgeSeconds: number | undefined;
  keys: KeyManager;
  /** `createOidcAuth({ identities })` as given: an array is checked against the entries now. */
  identityInputs: unknown;
  /** The engine's identity store: which identities name an entry (see {@link TrustEntries.delete}). */
  identities: IdentityStore;
  clock: () => number;
  logger: Logger | undefined;
}

/** Default `trustMaxAgeSeconds`. */
export const DEFAULT_TRUST_MAX_AGE_SECONDS = 30;
const MAX_AGE_LIMIT_SECONDS = 3600;
/** Least time between two reads of an unreachable trust store. */
const RETRY_MS = 1000;

/**
 * Build an engine's trust entries from `createOidcAuth({ trust })` and register every entry's key
 * sources with `keys`, so tokens of their issuers verify before any identity is read.
 *
 * Given an array, the entries are validated and held in a {@link MemoryTrustStore} of this engine,
 * and identities given as an array are checked now: one naming an unknown entry fails start-up.
 * Given a store, the engine reads its entries at the first login and again whenever its snapshot
 * is older than `maxAgeSeconds`; a write through `auth.trust` updates this engine's snapshot at once.
 *
 * @throws {ConfigError}
 */
export function bindTrust(options: BindTrustOptions): TrustBinding {
  const { keys, identities, clock, logger } = options;
  const maxAgeSeconds = options.maxAgeSeconds ?? DEFAULT_TRUST_MAX_AGE_SECONDS;
  if (
    typeof maxAgeSeconds !== 'number' ||
    !Number.isFinite(maxAgeSeconds) ||
    maxAgeSeconds < 0 ||
    maxAgeSeconds > MAX_AGE_LIMIT_SECONDS
  ) {
    throw new ConfigError('trustMaxAgeSeconds', `must be a number from 0 to ${MAX_AGE_LIMIT_SECONDS}`);
  }
  const maxAgeMs = maxAgeSeconds * 1000;
  const given = options.trust;
  let store: TrustStore;
  let initial: TrustEntry[] = [];
  if (given === undefined || Array.isArray(given)) {
    const memory = new MemoryTrustStore(given ?? []);
    initial = memory.entries();
    store = memory;
  } else if (isTrustStore(given)) {
    store = given;
  } else {
    throw new ConfigError('trust', 'must be an array of trust entries or a TrustStore');
  }
  const registry = new TrustRegistry();
  for (const entry of registry.replaceAll(initial)) keys.registerIssuers(registry.sourceConfig(entry));
  if (Array.isArray(options.identityInputs) && given !== undefined && !isTrustStore(given)) {
    for (const input of options.identityInputs as IdentityConfigInput[]) {
      const trustId = input?.trust;
      if (typeof trustId === 'string' && !registry.get(trustId)) {
        throw new ConfigError('trust', `names no trust entry (${JSON.stringify(trustId)})`, input.identityId);
      }
    }
  }

  // The snapshot: read at `readAt` (−∞: never, so the first login reads a store given as such).
  let readAt = given === undefined || Array.isArray(given) ? clock() : -Infinity;
  let unavailable = false;
  let attemptAt = -Infinity;
  let pending: Promise<void> | undefined;
  /**
   * Writes through this engine while a store read runs (trust id → the entry written, or null when
   * deleted): the read may predate them, so they are applied again on top of what it found.
   */
  let overlay: Map<string, TrustEntry | null> | undefined;

  function isFresh(now: number): boolean {
    return !unavailable && now >= readAt && now - readAt < maxAgeMs;
  }

  function fresh(): Promise<void> | undefined {
    if (pending) return pending;
    const now = clock();
    if (isFresh(now)) return undefined;
    if (unavailable && now >= attemptAt && now - attemptAt < RETRY_MS) return undefined;
    attemptAt = now;
    const written = (overlay = new Map());
    pending = Promise.resolve()
      .then(() => store.list())
      .then((entries) => {
        if (!Array.isArray(entries)) throw new TypeError('TrustStore.list did not answer an array');
        const changed = registry.replaceAll(entries);
        for (const [trustId, entry] of written) {
          if (entry) changed.push(registry.put(entry));
          else registry.delete(trustId);
        }
        for (const entry of changed) keys.registerIssuers(registry.sourceConfig(entry));
        readAt = now;
        unavailable = false;
      })
      .then(
        () => undefined,
        (error: unknown) => {
          unavailable = true;
          logger?.error(
            { event: 'store.error', operation: 'trust.list', err: errorName(error) },
            'trust store failed',
          );
        },
      )
      .finally(() => {
        pending = undefined;
        overlay = undefined;
      });
    return pending;
  }

  function resolve(config: IdentityConfig): IdentityConfig {
    if (config.trust === undefined) return config;
    if (unavailable) {
      throw new ServiceUnavailableError('store_unavailable', 'The trust store is unavailable');
    }
    return registry.resolve(config);
  }

  async function referencing(trustId: string): Promise<string[]> {
    if (typeof identities.trustReferences === 'function') {
      return (await identities.trustReferences(trustId, MAX_REFERENCING_IDS)).slice(0, MAX_REFERENCING_IDS);
    }
    if (typeof identities.list === 'function') {
      const all = await identities.list();
      return all
        .filter((config) => config.trust === trustId)
        .map((config) => config.identityId)
        .slice(0, MAX_REFERENCING_IDS);
    }
    throw new ConfigError(
      'identities',
      'the identity store has neither trustReferences nor list, so whether the trust entry is in use cannot be told: not deleted',
    );
  }

  /**
   * Refuse an entry that would leave an identity using it unresolvable (binding nothing, or
   * `allowAnyAudience` under entry audiences): a ConfigError naming the identity and field. Needs
   * the identity store's `list`; skipped without it, or when a stored config no longer validates
   * (`list` throws ConfigError): such identities are refused at login.
   */
  async function checkUsers(entry: TrustEntry): Promise<void> {
    if (typeof identities.list !== 'function') return;
    let all: IdentityConfig[];
    try {
      all = await identities.list();
    } catch (error) {
      if (error instanceof ConfigError) return;
      throw error;
    }
    for (const config of all) {
      if (config.trust !== entry.trustId) continue;
      try {
        resolveWithEntry(config, entry);
      } catch (error) {
        if (!(error instanceof ConfigError)) throw error;
        throw new ConfigError(
          `trust[${JSON.stringify(entry.trustId)}]`,
          `would leave identity ${JSON.stringify(config.identityId)} unusable: ${error.message}`,
          undefined,
          { cause: error },
        );
      }
    }
  }

  return {
    store,
    maxAgeSeconds,
    get: (trustId) => store.get(trustId),
    list: () => store.list(),
    async put(input) {
      const entry = parseTrustEntry(input);
      await checkUsers(entry);
      await store.put(entry);
      overlay?.set(entry.trustId, entry);
      const held = registry.put(entry);
      keys.registerIssuers(registry.sourceConfig(held));
      return held;
    },
    async delete(trustId) {
      const users = await referencing(trustId);
      if (users.length > 0) throw new TrustInUseError(trustId, users);
      const deleted = await store.delete(trustId);
      overlay?.set(trustId, null);
      registry.delete(trustId);
      return deleted;
    },
    resolve,
    fresh,
  };
}

function errorName(error: unknown): { name: string; code?: string } {
  if (!(error instanceof Error)) return { name: typeof error };
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' ? { name: error.name, code } : { name: error.name };
}
