import { afterAll, beforeAll, describe, it } from 'vitest';
import { tokenStoreConformance } from '../../src/testing/index.js';
import type { TokenStore } from '../../src/types.js';

export { makeRecord, newId } from '../../src/testing/index.js';

/**
 * The exported token-store suite (`oidc-machine-auth/testing`) under vitest, for the one test file
 * that still imports it from here (test/examples/custom-store-mysql.test.ts).
 *
 * @deprecated Call `tokenStoreConformance` from src/testing directly; delete this file once nothing
 * imports it.
 */
export function describeTokenStoreContract(
  name: string,
  makeStore: () => TokenStore | Promise<TokenStore>,
): void {
  tokenStoreConformance({
    name,
    test: { describe, it, before: beforeAll, after: afterAll },
    create: makeStore,
  });
}
