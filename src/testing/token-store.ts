import type { AccessTokenRecord, TokenStore } from '../types.js';
import { makeRecord } from './records.js';
import type { TestFunctions } from './test-functions.js';
import { storeFixture } from './test-functions.js';
import type { TokenCaseContext } from './token-context.js';
import { tokenGrantCases } from './token-grants.js';
import { tokenBindingCases } from './token-binding.js';
import { tokenInstanceCases } from './token-instances.js';
import { tokenLimitCases } from './token-limits.js';
import type { OutageHook } from './outage-hook.js';
import { tokenOutageCases } from './token-outage.js';
import { tokenRevocationCases } from './token-revocation.js';
import { tokenRevokeWhereCases } from './token-revoke-where.js';
import { tokenUseCases } from './token-uses.js';

/** Options of {@link tokenStoreConformance}. */
export interface TokenStoreSuiteOptions {
  /** Names the suite: `<name>: TokenStore conformance`. */
  name: string;
  /** The test framework's `describe`, `it` and (optional) `before`/`after`. */
  test: TestFunctions;
  /**
   * A store on the backend under test. Called twice (two app instances on one database): the
   * instances must share state. A store kept in process memory can only pass by returning the same
   * instance both times. Every case uses fresh random ids: the backend need not be empty, and the
   * suite deletes nothing.
   */
  create(): TokenStore | Promise<TokenStore>;
  /**
   * Makes the stores' backend unreachable, then reachable again: adds the cases proving the store
   * fails closed (every method throws, within `failWithinMs`) and recovers by itself.
   */
  outage?: OutageHook;
  /**
   * `false` for a store without revocation by claim (`revokeWhere`, `revocationStamps`, both
   * optional): its cases are then not declared. Default true.
   */
  revokeWhere?: boolean;
}

/**
 * Declares the cases every {@link TokenStore} must pass, with the test framework's functions:
 * records kept exactly, atomic uses (also from two instances at once), renewal caps and uses left,
 * revoke idempotence, the scope and audience a token exchange granted, the DPoP key a token is bound to, identity revocation with logins in flight (no survivor),
 * revocation by claim with logins in flight (unless `revokeWhere: false`), expiry to the
 * millisecond at the `now` given, the largest values the library accepts, and, with `outage`,
 * failing closed and recovering. Case names state the guarantee they check (with the ids of the
 * library's security cases, such as TOK-04).
 *
 * The library's own memory, Redis and PostgreSQL stores run through this same suite.
 *
 * @example
 * ```ts
 * import { describe, it, beforeAll, afterAll } from 'vitest';
 * import { tokenStoreConformance } from 'oidc-machine-auth/testing';
 *
 * tokenStoreConformance({
 *   name: 'MyTokenStore',
 *   test: { describe, it, before: beforeAll, after: afterAll },
 *   create: () => new MyTokenStore({ pool }),
 * });
 * ```
 */
export function tokenStoreConformance(options: TokenStoreSuiteOptions): void {
  const { test } = options;
  test.describe(`${options.name}: TokenStore conformance`, () => {
    const instances = storeFixture(test, () => options.create(), 2);
    const stores = async () => {
      const [a, b] = await instances();
      return [a!, b!] as const;
    };
    const created = async (overrides: Partial<AccessTokenRecord> = {}) => {
      const [store] = await stores();
      const record = makeRecord(overrides);
      await store.create(record);
      return record;
    };
    const context: TokenCaseContext = { test, stores, created };
    tokenUseCases(context);
    tokenRevocationCases(context);
    tokenLimitCases(context);
    tokenInstanceCases(context);
    tokenGrantCases(context);
    if (options.revokeWhere !== false) tokenRevokeWhereCases(context);
    tokenBindingCases(context);
    // Last: the outage cases break the backend every other case uses.
    if (options.outage) tokenOutageCases(context, options.outage);
  });
}
