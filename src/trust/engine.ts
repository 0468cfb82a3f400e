import { ConfigError } from '../errors.js';
import type { KeyManager } from '../keys.js';
import type { IdentityConfig, IdentityConfigInput } from '../types.js';
import { TrustRegistry, type TrustEntry, type TrustEntryInput } from './entries.js';

/** The trust entries of an engine (`auth.trust`). */
export interface TrustEntries {
  get(trustId: string): TrustEntry | undefined;
  list(): TrustEntry[];
  /**
   * Validate and add or replace an entry (a ConfigError naming `trust["id"].field` when invalid);
   * every identity using it logs in against it from its next login on, on this engine.
   */
  put(input: TrustEntryInput): TrustEntry;
  /** Remove an entry; identities still naming it are refused at login as invalid configs. */
  delete(trustId: string): boolean;
}

/** The engine's side of trust entries: the public API plus resolution for login. @internal */
export interface TrustBinding extends TrustEntries {
  /** The effective config of `config` (itself without `trust`). @throws {ConfigError} */
  resolve(config: IdentityConfig): IdentityConfig;
}

/**
 * Build an engine's trust entries from `createOidcAuth({ trust })` and register every entry's key
 * sources with `keys`, so tokens of their issuers verify before any identity is read. Identities
 * given as an array are checked now: one naming an unknown entry fails start-up.
 *
 * @throws {ConfigError}
 */
export function bindTrust(
  inputs: readonly TrustEntryInput[] | undefined,
  keys: KeyManager,
  identities: unknown,
): TrustBinding {
  const registry = new TrustRegistry(inputs ?? []);
  for (const entry of registry.list()) keys.registerIssuers(registry.sourceConfig(entry));
  if (Array.isArray(identities)) {
    for (const input of identities as IdentityConfigInput[]) {
      const trustId = input?.trust;
      if (typeof trustId === 'string' && !registry.get(trustId)) {
        throw new ConfigError('trust', `names no trust entry (${JSON.stringify(trustId)})`, input.identityId);
      }
    }
  }
  return {
    get: (trustId) => registry.get(trustId),
    list: () => registry.list(),
    put(input) {
      const entry = registry.put(input);
      keys.registerIssuers(registry.sourceConfig(entry));
      return entry;
    },
    delete: (trustId) => registry.delete(trustId),
    resolve: (config) => registry.resolve(config),
  };
}
