import fc from 'fast-check';
import { b64text, objectText } from './support.js';

/** `[key, JSON value text]` pairs of a JSON object, in order (duplicates allowed). */
export type Entries = ReadonlyArray<readonly [string, string]>;

/** Deeply nested JSON text (arrays or objects), built as text so no serialiser recurses. */
export const deepNesting = fc
  .tuple(fc.integer({ min: 1, max: 6_000 }), fc.boolean())
  .map(([depth, arrays]) =>
    arrays ? `${'['.repeat(depth)}${']'.repeat(depth)}` : `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`,
  );

/** JSON texts of the wrong type, huge or NaN-ish numbers, unicode, nesting and prototype keys. */
export const hostileValue: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom(
    'null',
    'true',
    'false',
    '0',
    '-1',
    '1.5',
    '-0',
    '1e308',
    '-1e308',
    '1e20',
    '4.9e-324',
    '9007199254740993',
    '1.7976931348623157e308',
    '[]',
    '{}',
    '""',
    '[null]',
    '[1,2]',
    '{"a":1}',
    '"NaN"',
    '"Infinity"',
    '"-Infinity"',
    '"1e999"',
    '"0x10"',
    '" 123"',
    '"123abc"',
    '"undefined"',
    '"null"',
    '"RS256 "',
    '"rs256"',
    '"none"',
    '"HS256"',
    '"\\u0000"',
    '"\\r\\n\\u001b[31m"',
    '"\\ud800"',
    '{"__proto__":{"admin":true}}',
    '{"constructor":{"prototype":{"admin":true}}}',
    '{"__proto__":null}',
    '["b64"]',
    '["x-policy"]',
    '"https://token.actions.githubusercontent.com"',
    '"repo:acme-corp/payments-api:ref:refs/heads/main"',
    '["https://github.com/acme-corp"]',
    '612345678',
    '"612345678"',
    '["612345678", 1]',
  ),
  fc.string({ unit: 'grapheme', maxLength: 40 }).map((s) => JSON.stringify(s)),
  fc.string({ unit: 'binary', maxLength: 40 }).map((s) => JSON.stringify(s)),
  fc.double().map((n) => (Number.isFinite(n) ? JSON.stringify(n) : '0')),
  fc.integer({ min: -2_000_000_000, max: 4_000_000_000 }).map(String),
  fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)),
  deepNesting,
);

/** A whole segment text that is not an object, or not JSON. */
export const hostileDocument: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom('[]', '"str"', '1', 'null', 'true', '', ' ', '{', '{"a":1', '{"a":1}x', '\ufeff{}', '{}{}'),
  deepNesting,
  fc.jsonValue({ maxDepth: 2 }).map((v) => JSON.stringify(v)),
);

/** One edit of a JSON object's entries. */
export type EntryEdit =
  | { op: 'set'; key: string; value: string }
  | { op: 'delete'; key: string }
  | { op: 'append'; key: string; value: string }
  | { op: 'prepend'; key: string; value: string }
  | { op: 'replace'; text: string };

/** Edits of a JOSE header or claim set, over `keys` plus prototype keys. */
export function entryEdit(keys: readonly string[]): fc.Arbitrary<EntryEdit> {
  const key = fc.oneof(
    { weight: 4, arbitrary: fc.constantFrom(...keys) },
    { weight: 1, arbitrary: fc.constantFrom('__proto__', 'constructor', 'prototype') },
    { weight: 1, arbitrary: fc.string({ maxLength: 12 }) },
  );
  return fc.oneof(
    { weight: 5, arbitrary: fc.record({ op: fc.constant('set' as const), key, value: hostileValue }) },
    { weight: 2, arbitrary: fc.record({ op: fc.constant('delete' as const), key }) },
    { weight: 2, arbitrary: fc.record({ op: fc.constant('append' as const), key, value: hostileValue }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant('prepend' as const), key, value: hostileValue }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant('replace' as const), text: hostileDocument }) },
  );
}

/** Apply edits to entries; returns the document text. */
export function applyEdits(entries: Entries, edits: readonly EntryEdit[]): string {
  let list = [...entries];
  for (const edit of edits) {
    switch (edit.op) {
      case 'set':
        list = list.some(([k]) => k === edit.key)
          ? list.map(([k, v]) => [k, k === edit.key ? edit.value : v] as const)
          : [...list, [edit.key, edit.value] as const];
        break;
      case 'delete':
        list = list.filter(([k]) => k !== edit.key);
        break;
      case 'append':
        list = [...list, [edit.key, edit.value] as const];
        break;
      case 'prepend':
        list = [[edit.key, edit.value] as const, ...list];
        break;
      case 'replace':
        return edit.text;
    }
  }
  return objectText(list);
}

/** Entries of a plain object, values as JSON text. */
export function toEntries(value: Record<string, unknown>): Entries {
  return Object.entries(value).map(([k, v]) => [k, JSON.stringify(v)] as const);
}

const B64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/** One edit of a compact token string, unsigned (nothing is re-signed). */
export type StringEdit =
  | { op: 'flip'; at: number; bit: number }
  | { op: 'char'; at: number; char: string }
  | { op: 'insert'; at: number; text: string }
  | { op: 'remove'; at: number; count: number }
  | { op: 'segments'; order: number[] }
  | { op: 'wrap'; prefix: string; suffix: string }
  | { op: 'header' | 'payload'; text: string };

/** Unsigned edits of a compact token: bit flips, character edits, segment swaps, JSON swaps. */
export function stringEdit(headerEdits: fc.Arbitrary<string>, payloadEdits: fc.Arbitrary<string>) {
  const at = fc.nat({ max: 10_000 });
  return fc.oneof(
    { weight: 4, arbitrary: fc.record({ op: fc.constant('flip' as const), at, bit: fc.nat({ max: 15 }) }) },
    {
      weight: 3,
      arbitrary: fc.record({
        op: fc.constant('char' as const),
        at,
        char: fc.oneof(fc.constantFrom(...B64URL), fc.constantFrom('.', '=', '+', '/', ' ', '\n', '%')),
      }),
    },
    {
      weight: 1,
      arbitrary: fc.record({ op: fc.constant('insert' as const), at, text: fc.string({ maxLength: 4 }) }),
    },
    {
      weight: 1,
      arbitrary: fc.record({
        op: fc.constant('remove' as const),
        at,
        count: fc.integer({ min: 1, max: 3 }),
      }),
    },
    {
      weight: 2,
      arbitrary: fc.record({
        op: fc.constant('segments' as const),
        order: fc.array(fc.nat({ max: 3 }), { minLength: 0, maxLength: 6 }),
      }),
    },
    {
      weight: 1,
      arbitrary: fc.record({
        op: fc.constant('wrap' as const),
        prefix: fc.constantFrom('', 'Bearer ', ' ', '"'),
        suffix: fc.constantFrom('', '\n', '=', '==', ' ', '.', '.x'),
      }),
    },
    { weight: 2, arbitrary: fc.record({ op: fc.constant('header' as const), text: headerEdits }) },
    { weight: 2, arbitrary: fc.record({ op: fc.constant('payload' as const), text: payloadEdits }) },
  );
}

/** Apply unsigned edits to a compact token. Segment 3 in `order` is an empty segment. */
export function applyStringEdits(token: string, edits: readonly StringEdit[]): string {
  let t = token;
  for (const edit of edits) {
    const pos = t.length === 0 ? 0 : edit.op === 'segments' ? 0 : ('at' in edit ? edit.at : 0) % t.length;
    switch (edit.op) {
      case 'flip': {
        const code = t.charCodeAt(pos) ^ (1 << edit.bit);
        t = t.slice(0, pos) + String.fromCharCode(code) + t.slice(pos + 1);
        break;
      }
      case 'char':
        t = t.slice(0, pos) + edit.char + t.slice(pos + 1);
        break;
      case 'insert':
        t = t.slice(0, pos) + edit.text + t.slice(pos);
        break;
      case 'remove':
        t = t.slice(0, pos) + t.slice(pos + edit.count);
        break;
      case 'segments': {
        const parts = t.split('.');
        t = edit.order.map((i) => parts[i] ?? '').join('.');
        break;
      }
      case 'wrap':
        t = `${edit.prefix}${t}${edit.suffix}`;
        break;
      case 'header':
      case 'payload': {
        const parts = t.split('.');
        parts[edit.op === 'header' ? 0 : 1] = b64text(edit.text);
        t = parts.join('.');
        break;
      }
    }
  }
  return t;
}

/** Whether two compact tokens mean the same bytes: equal header and payload text, equal signature bytes. */
export function sameMeaning(a: string, b: string): boolean {
  const [ha, pa, sa, ...ra] = a.split('.');
  const [hb, pb, sb, ...rb] = b.split('.');
  if (ra.length > 0 || rb.length > 0 || ha !== hb || pa !== pb || sa === undefined || sb === undefined) {
    return false;
  }
  return Buffer.from(sa, 'base64url').equals(Buffer.from(sb, 'base64url'));
}

/** Header members a JOSE header mutation touches (plus prototype keys and random names). */
export const HEADER_KEYS = ['alg', 'kid', 'typ', 'crit', 'b64', 'jku', 'x5u', 'jwk', 'x5c', 'zip', 'cty'];
/** Claims a payload mutation touches: registered, bound, mapped and unbound ones. */
export const PAYLOAD_KEYS = [
  'iss',
  'sub',
  'aud',
  'exp',
  'iat',
  'nbf',
  'jti',
  'repository_id',
  'ref',
  'repository',
  'environment',
];

/** Header and claim-set texts: a valid RS256 header with `kid` and `claims`, each with 0-3 edits. */
export function tokenTexts(kid: string, claims: Record<string, unknown>) {
  const header = toEntries({ alg: 'RS256', typ: 'JWT', kid });
  const payload = toEntries(claims);
  return {
    header,
    payload,
    headerText: fc
      .array(entryEdit(HEADER_KEYS), { minLength: 0, maxLength: 3 })
      .map((edits) => applyEdits(header, edits)),
    payloadText: fc
      .array(entryEdit(PAYLOAD_KEYS), { minLength: 0, maxLength: 3 })
      .map((edits) => applyEdits(payload, edits)),
  };
}
