import { OidcAuthError } from '../errors.js';
import { ConfigError } from '../errors.js';
import { MAX_TRUST_ENTRIES, parseTrustEntry, type TrustEntry, type TrustEntryInput } from './entries.js';

/**
 * Where an engine's trust entries live. Give every instance of a fleet the same store
 * (`PostgresTrustStore`) and a change made on one reaches the others within their
 * `trustMaxAgeSeconds` (docs/TRUST.md, "A fleet sharing trust entries").
 *
 * Entries are validated ({@link parseTrustEntry}) before they are written and again when read: a
 * row edited by hand into something invalid is never used (`get` throws `ConfigError`, `list`
 * leaves it out), so the identities naming it are refused. Failures other than an invalid entry
 * throw (`ServiceUnavailableError('store_unavailable')` for a database): the engine then fails
 * closed for identities that name a trust entry.
 */
export interface TrustStore {
  get(trustId: string): Promise<TrustEntry | undefined>;
  /** Every valid entry, by trust id; at most 10,000 (`MAX_TRUST_ENTRIES`). */
  list(): Promise<TrustEntry[]>;
  /** Insert or replace a validated entry. */
  put(entry: TrustEntry): Promise<void>;
  delete(trustId: string): Promise<boolean>;
  close?(): Promise<void>;
}

/** Trust entries in one process: the default store, made from `createOidcAuth({ trust: [...] })`. */
export class MemoryTrustStore implements TrustStore {
  readonly #entries = new Map<string, TrustEntry>();

  /** @throws {ConfigError} on an invalid entry, a trust id given twice, or more than 10,000 entries. */
  constructor(inputs: readonly (TrustEntryInput | TrustEntry)[] = []) {
    if (!Array.isArray(inputs))
      throw new ConfigError('trust', 'must be an array of trust entries or a TrustStore');
    for (const input of inputs) {
      const entry = parseTrustEntry(input);
      if (this.#entries.has(entry.trustId)) {
        throw new ConfigError(`trust[${JSON.stringify(entry.trustId)}]`, 'is declared twice');
      }
      this.#set(entry);
    }
  }

  /** The entries held now, synchronously (the engine seeds its snapshot with them). @internal */
  entries(): TrustEntry[] {
    return [...this.#entries.values()];
  }

  async get(trustId: string): Promise<TrustEntry | undefined> {
    return this.#entries.get(trustId);
  }

  async list(): Promise<TrustEntry[]> {
    return this.entries();
  }

  async put(entry: TrustEntry): Promise<void> {
    this.#set(parseTrustEntry(entry));
  }

  async delete(trustId: string): Promise<boolean> {
    return this.#entries.delete(trustId);
  }

  #set(entry: TrustEntry): void {
    if (!this.#entries.has(entry.trustId) && this.#entries.size >= MAX_TRUST_ENTRIES) {
      throw new ConfigError('trust', `holds more than ${MAX_TRUST_ENTRIES} entries`);
    }
    this.#entries.set(entry.trustId, entry);
  }
}

/** Whether `value` has the methods of a {@link TrustStore}. @internal */
export function isTrustStore(value: unknown): value is TrustStore {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const store = value as Record<string, unknown>;
  return ['get', 'list', 'put', 'delete'].every((method) => typeof store[method] === 'function');
}

/** Identity ids a {@link TrustInUseError} names at most. */
export const MAX_REFERENCING_IDS = 20;

/**
 * 409 `trust_in_use`: a trust entry cannot be deleted while identities name it. `identityIds`
 * lists up to 20 of them (the admin API answers them); move or delete those identities first.
 */
export class TrustInUseError extends OidcAuthError {
  override name = 'TrustInUseError';
  readonly trustId: string;
  readonly identityIds: readonly string[];
  constructor(trustId: string, identityIds: readonly string[]) {
    super(
      409,
      'trust_in_use',
      `Trust entry ${JSON.stringify(trustId)} is used by ${identityIds.length >= MAX_REFERENCING_IDS ? 'at least ' : ''}${identityIds.length} identit${identityIds.length === 1 ? 'y' : 'ies'}: change or delete them first`,
    );
    this.trustId = trustId;
    this.identityIds = identityIds;
  }
}
