import type { OidcAuthError } from '../errors.js';
import type { AccessTokenRecord, AuthEvent, RevocationStamps, TokenStore } from '../types.js';
import {
  MAX_REVOCATION_ENTRIES,
  REVOCATION_KEEP_MS,
  RevocationLimitError,
  compileRevocableClaims,
  requireRevokeWhere,
  revocableClaimValues,
  revokeWhereFilter,
} from './revoke-where.js';
import type { TokenStateCache } from './token-state.js';

/** What `auth.revokeWhere` takes: `value` a string, or a number as the token carries it. */
export interface RevokeWhereInput {
  identityId?: string;
  claim: string;
  value: string | number;
}

/**
 * The engine's part of revocation by claim: the stamps a login reads (one store call), the claim
 * values it records, and `auth.revokeWhere`.
 *
 * @internal
 */
export function revokeWhereEngine(deps: {
  tokens: TokenStore;
  option: readonly string[] | undefined;
  clock: () => number;
  state: TokenStateCache;
  emit: (event: Omit<AuthEvent, 'time'>) => void;
  storeDown: (error: unknown, operation: string) => OidcAuthError;
}) {
  const { tokens, clock, state, emit, storeDown } = deps;
  const claims = compileRevocableClaims(deps.option);
  // A store without revokeWhere stays valid: its logins record no claims and read no claim epoch.
  const supported = typeof tokens.revokeWhere === 'function' && typeof tokens.revocationStamps === 'function';

  /** The identity's generation and the store's claim epoch, in one store call when it can. */
  async function stamps(identityId: string): Promise<RevocationStamps> {
    if (supported) return tokens.revocationStamps!(identityId);
    return { generation: await tokens.generation(identityId), claimEpoch: 0 };
  }

  /** Record the login's revocable claim values and the claim epoch it read on `record`. */
  function stamp(record: AccessTokenRecord, payload: Record<string, unknown>, claimEpoch: number): void {
    if (!supported) return;
    const values = revocableClaimValues(payload, claims);
    if (values !== undefined) record.claims = values;
    if (claimEpoch > 0) record.claimEpoch = claimEpoch;
  }

  async function revokeWhere(input: RevokeWhereInput): Promise<number> {
    const store = requireRevokeWhere(tokens);
    const filter = revokeWhereFilter(input, claims);
    state.forgetWhere(filter);
    let count: number;
    try {
      count = await store.revokeWhere(filter, clock(), {
        keepMs: REVOCATION_KEEP_MS,
        maxEntries: MAX_REVOCATION_ENTRIES,
      });
    } catch (error) {
      if (error instanceof RevocationLimitError) throw error;
      throw storeDown(error, 'revokeWhere');
    }
    // Again once the store has it: a state read between the two is not kept either.
    state.forgetWhere(filter);
    // The claim's name, never its value: values are token data (docs/OBSERVABILITY.md).
    emit({
      type: 'tokens.revoked_where',
      ...(filter.identityId === undefined ? {} : { identityId: filter.identityId }),
      detail: { claim: filter.claim, revoked: count },
    });
    return count;
  }

  return { stamps, stamp, revokeWhere, claims };
}
