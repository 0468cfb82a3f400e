/**
 * `oidc-machine-auth/testing`: the conformance suites a token store, identity store or replay cache
 * must pass, the same ones the library's memory, Redis and PostgreSQL stores run. Framework-free: pass your
 * test framework's `describe`/`it` (and `before`/`after`); cases assert with `node:assert/strict`.
 * See docs/STORES.md, "Writing your own store".
 *
 * @module
 */
export { tokenStoreConformance, type TokenStoreSuiteOptions } from './token-store.js';
export { identityStoreConformance, identityInput, type IdentityStoreSuiteOptions } from './identity-store.js';
export { replayCacheConformance, type ReplayCacheSuiteOptions } from './replay-cache.js';
export type { OutageHook } from './outage-hook.js';
export type { TestFunctions } from './test-functions.js';
export { makeRecord, newId, newIdentityId } from './records.js';
