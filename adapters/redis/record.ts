import type { AccessTokenRecord } from '../../src/types.js';
import { RECORD_FIELDS } from './scripts.js';

/**
 * A record as the flat `field, value, …` list the hash stores (field names in `scripts.ts`).
 * The token id is the key, so it is not stored again.
 *
 * @internal
 */
export function encodeRecord(record: AccessTokenRecord): string[] {
  const fields = [
    'i',
    record.identityId,
    'c',
    String(record.createdAt),
    'e',
    String(record.expiresAt),
    'm',
    String(record.maxExpiresAt),
    't',
    String(record.ttlSeconds),
    'l',
    String(record.usesLimit),
    'u',
    String(record.usesCount),
    'r',
    record.revoked ? '1' : '0',
    'ip',
    JSON.stringify(record.trustedIps),
    'md',
    JSON.stringify(record.metadata),
  ];
  if (record.issuer !== undefined) fields.push('is', record.issuer);
  if (record.subject !== undefined) fields.push('sb', record.subject);
  // Absent reads as 0: hashes of never-revoked identities stay as small as before generations.
  if (record.generation) fields.push('g', String(record.generation));
  // A token exchange's narrowed scope and audience (absent for the usual login's tokens).
  if (record.scope !== undefined) fields.push('sc', record.scope);
  if (record.audience !== undefined) fields.push('au', JSON.stringify(record.audience));
  // Revocation by claim: the login's revocable claim values and the claim epoch it read.
  if (record.claims !== undefined) fields.push('cl', JSON.stringify(record.claims));
  if (record.claimEpoch) fields.push('ce', String(record.claimEpoch));
  // The DPoP key thumbprint a bound token needs proofs by (absent: a bearer token).
  if (record.jkt !== undefined) fields.push('jk', record.jkt);
  return fields;
}

/**
 * The record from a flat `field, value, …` list (`HGETALL`), starting at `offset`. Throws on a
 * hash that is not one of ours, so a damaged key fails closed.
 *
 * @internal
 */
export function decodeRecord(tokenId: string, flat: readonly unknown[], offset = 0): AccessTokenRecord {
  const map = new Map<string, string>();
  for (let i = offset; i + 1 < flat.length; i += 2) map.set(String(flat[i]), String(flat[i + 1]));
  return recordFrom(tokenId, (field) => map.get(field));
}

const POSITION = new Map<string, number>(RECORD_FIELDS.map((field, i) => [field, i]));

/**
 * The record from the values of `RECORD_FIELDS`, in that order (`HMGET`; nil for an absent field).
 * Throws on values that are not one of our records, so a damaged key fails closed.
 *
 * @internal
 */
export function decodeFields(tokenId: string, values: readonly unknown[]): AccessTokenRecord {
  if (values.length !== RECORD_FIELDS.length) throw new TypeError('token hash reply has the wrong length');
  return recordFrom(tokenId, (field) => {
    const value = values[POSITION.get(field)!];
    return value === null || value === undefined ? undefined : String(value);
  });
}

function recordFrom(tokenId: string, get: (field: string) => string | undefined): AccessTokenRecord {
  const record: AccessTokenRecord = {
    tokenId,
    identityId: text(get, 'i'),
    createdAt: num(get, 'c'),
    expiresAt: num(get, 'e'),
    maxExpiresAt: num(get, 'm'),
    ttlSeconds: num(get, 't'),
    usesLimit: num(get, 'l'),
    usesCount: num(get, 'u'),
    revoked: text(get, 'r') === '1',
    trustedIps: JSON.parse(text(get, 'ip')) as string[],
    metadata: JSON.parse(text(get, 'md')) as Record<string, unknown>,
    generation: get('g') === undefined ? 0 : num(get, 'g'),
  };
  const issuer = get('is');
  if (issuer !== undefined) record.issuer = issuer;
  const subject = get('sb');
  if (subject !== undefined) record.subject = subject;
  const scope = get('sc');
  if (scope !== undefined) record.scope = scope;
  const audience = get('au');
  if (audience !== undefined) record.audience = JSON.parse(audience) as string[];
  const claims = get('cl');
  if (claims !== undefined) record.claims = JSON.parse(claims) as Record<string, string>;
  if (get('ce') !== undefined) record.claimEpoch = num(get, 'ce');
  const jkt = get('jk');
  if (jkt !== undefined) record.jkt = jkt;
  return record;
}

function text(get: (field: string) => string | undefined, field: string): string {
  const value = get(field);
  if (value === undefined) throw new TypeError(`token hash lacks field ${field}`);
  return value;
}

function num(get: (field: string) => string | undefined, field: string): number {
  const value = Number(text(get, field));
  if (Number.isNaN(value)) throw new TypeError(`token hash field ${field} is not a number`);
  return value;
}
