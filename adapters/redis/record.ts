import type { AccessTokenRecord } from '../../src/types.js';

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
  const record: AccessTokenRecord = {
    tokenId,
    identityId: text(map, 'i'),
    createdAt: num(map, 'c'),
    expiresAt: num(map, 'e'),
    maxExpiresAt: num(map, 'm'),
    ttlSeconds: num(map, 't'),
    usesLimit: num(map, 'l'),
    usesCount: num(map, 'u'),
    revoked: text(map, 'r') === '1',
    trustedIps: JSON.parse(text(map, 'ip')) as string[],
    metadata: JSON.parse(text(map, 'md')) as Record<string, unknown>,
  };
  const issuer = map.get('is');
  if (issuer !== undefined) record.issuer = issuer;
  const subject = map.get('sb');
  if (subject !== undefined) record.subject = subject;
  return record;
}

function text(map: Map<string, string>, field: string): string {
  const value = map.get(field);
  if (value === undefined) throw new TypeError(`token hash lacks field ${field}`);
  return value;
}

function num(map: Map<string, string>, field: string): number {
  const value = Number(text(map, field));
  if (Number.isNaN(value)) throw new TypeError(`token hash field ${field} is not a number`);
  return value;
}
