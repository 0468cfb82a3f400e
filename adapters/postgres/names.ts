import { ConfigError } from '../../src/errors.js';

/** Where the tables live. */
export interface TableOptions {
  /** Schema of the tables; created by `migrate` when missing. Default `'public'`. */
  schema?: string;
  /**
   * Prepended to table names (`oma_access_tokens`, `oma_identity_generations`, `oma_identities`,
   * `oma_replay`, `oma_trust_entries`).
   * Default `'oma_'`.
   */
  tablePrefix?: string;
}

/** Quoted, qualified table names. @internal */
export interface TableNames {
  schema: string;
  prefix: string;
  tokens: string;
  identities: string;
  generations: string;
  replay: string;
  /** Revocations by claim in force (`revokeWhere`). */
  claimRevocations: string;
  /** One row: the claim-revocation epoch and floor. */
  claimEpoch: string;
  trust: string;
}

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]{0,39}$/;
const PREFIX = /^[A-Za-z0-9_]{0,30}$/;

/** Validates the schema and prefix (they go into SQL text, never as values) and quotes them. @internal */
export function tableNames(options: TableOptions = {}): TableNames {
  const schema = options.schema ?? 'public';
  const prefix = options.tablePrefix ?? 'oma_';
  if (typeof schema !== 'string' || !IDENTIFIER.test(schema)) {
    throw new ConfigError('schema', 'must be 1-40 characters of A-Z a-z 0-9 _, not starting with a digit');
  }
  if (typeof prefix !== 'string' || !PREFIX.test(prefix)) {
    throw new ConfigError('tablePrefix', 'must be at most 30 characters of A-Z a-z 0-9 _');
  }
  return {
    schema,
    prefix,
    tokens: `"${schema}"."${prefix}access_tokens"`,
    identities: `"${schema}"."${prefix}identities"`,
    generations: `"${schema}"."${prefix}identity_generations"`,
    replay: `"${schema}"."${prefix}replay"`,
    claimRevocations: `"${schema}"."${prefix}claim_revocations"`,
    claimEpoch: `"${schema}"."${prefix}claim_epoch"`,
    trust: `"${schema}"."${prefix}trust_entries"`,
  };
}
