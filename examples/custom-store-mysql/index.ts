export { createPool } from './pool.js';
export { migrate, tableNames, type TableNames, type TableOptions } from './schema.js';
export { MySqlTokenStore, type MySqlTokenStoreOptions } from './token-store.js';
export { MySqlIdentityStore, type MySqlIdentityStoreOptions } from './identity-store.js';
