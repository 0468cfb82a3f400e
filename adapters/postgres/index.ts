/**
 * PostgreSQL stores for many app instances: `PostgresTokenStore`, `PostgresIdentityStore`,
 * `PostgresReplayCache`, `PostgresTrustStore`, and `migrate` to create their tables. `pg` is a peer
 * dependency; pass your own `Pool`.
 *
 * @module
 */
export { migrate, type MigrateOptions } from './migrate.js';
export type { TableOptions } from './names.js';
export { PostgresIdentityStore, type PostgresIdentityStoreOptions } from './identity-store.js';
export { PostgresTokenStore, type PostgresTokenStoreOptions } from './token-store.js';
export { PostgresReplayCache, type PostgresReplayCacheOptions } from './replay-cache.js';
export { PostgresTrustStore, type PostgresTrustStoreOptions } from './trust-store.js';
