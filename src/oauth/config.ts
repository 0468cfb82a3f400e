import { ConfigError } from '../errors.js';

/** Most scopes an identity declares. */
export const MAX_SCOPES = 64;
/** Most audiences an identity declares. */
export const MAX_AUDIENCES = 32;
const MAX_ITEM_LENGTH = 512;

/** RFC 6749 §3.3: `scope-token = 1*( %x21 / %x23-5B / %x5D-7E )`. */
export const SCOPE_TOKEN = /^[\x21\x23-\x5B\x5D-\x7E]+$/;
/** An audience or resource: printable ASCII, no space (it is compared exactly, never as a pattern). */
const AUDIENCE = /^[\x21-\x7E]+$/;

/** The identity fields the OAuth token exchange reads, as {@link parseIdentityConfig} keeps them. */
export interface OAuthIdentityFields {
  scopes?: readonly string[];
  accessTokenAudiences?: readonly string[];
}

/**
 * Parse `scopes` and `accessTokenAudiences` (array, or comma/space-separated string). Each is
 * present in the result only when given, so configs without them keep their shape.
 */
export function parseOAuthFields(
  value: (field: 'scopes' | 'accessTokenAudiences') => unknown,
  id: string,
): OAuthIdentityFields {
  const out: { scopes?: readonly string[]; accessTokenAudiences?: readonly string[] } = {};
  const scopes = list(value('scopes'), 'scopes', id, MAX_SCOPES, SCOPE_TOKEN, 'an RFC 6749 scope token');
  if (scopes) out.scopes = scopes;
  const audiences = list(
    value('accessTokenAudiences'),
    'accessTokenAudiences',
    id,
    MAX_AUDIENCES,
    AUDIENCE,
    'printable ASCII without spaces',
  );
  if (audiences) out.accessTokenAudiences = audiences;
  return out;
}

function list(
  input: unknown,
  field: string,
  id: string,
  max: number,
  pattern: RegExp,
  what: string,
): readonly string[] | undefined {
  if (input === undefined) return undefined;
  let items: unknown[];
  if (typeof input === 'string') items = input.split(/[\s,]+/).filter((item) => item !== '');
  else if (Array.isArray(input)) items = input;
  else throw new ConfigError(field, 'must be an array of strings or a comma-separated string', id);
  if (items.length > max) throw new ConfigError(field, `has more than ${max} items`, id);
  const out: string[] = [];
  items.forEach((item, i) => {
    if (typeof item !== 'string' || item.length > MAX_ITEM_LENGTH || !pattern.test(item)) {
      throw new ConfigError(`${field}[${i}]`, `must be ${what}, at most ${MAX_ITEM_LENGTH} characters`, id);
    }
    if (!out.includes(item)) out.push(item);
  });
  return Object.freeze(out);
}
