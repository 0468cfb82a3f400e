import type { AccessTokenRecord, TokenStore } from '../types.js';
import type { TestFunctions } from './test-functions.js';

/** What every group of token-store cases gets. */
export interface TokenCaseContext {
  test: TestFunctions;
  /** Two instances of the store under test, on one backend (two app instances on one database). */
  stores(): Promise<readonly [TokenStore, TokenStore]>;
  /** Stores a record (`makeRecord(overrides)`) through the first instance and returns it. */
  created(overrides?: Partial<AccessTokenRecord>): Promise<AccessTokenRecord>;
}
