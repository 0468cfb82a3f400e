import type { Logger } from '../types.js';

/** What stands in for a redacted value. */
export const REDACTED = '[REDACTED]';

/** Keys whose values are always redacted (compared lower-case, `-` and `_` ignored). */
const SECRET_KEYS: ReadonlySet<string> = new Set([
  'authorization',
  'proxyauthorization',
  'jwt',
  'accesstoken',
  'idtoken',
  'refreshtoken',
  'token',
  'bearer',
  'cookie',
  'setcookie',
  'password',
  'secret',
  'clientsecret',
  'privatekey',
  'signingkeys',
]);

/**
 * Token-shaped substrings, as one regular expression would say it:
 *
 * ```
 * omat_[A-Za-z0-9._~+/=-]+
 * | eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]*){0,3}
 * | \b(Bearer|bearer|BEARER|Basic|basic|BASIC)\s+(?!realm\b|error\b)[A-Za-z0-9._~+/=-]+
 * ```
 *
 * our own access tokens (`omat_…`), JWS/JWE compact tokens starting with a base64url JSON header
 * (`eyJ…`), and the credentials after `Bearer`/`Basic`. A backtracking regexp retries `eyJ…` from
 * every `eyJ` of a long base64url run without a dot (quadratic: a 64 KiB run took seconds), so
 * {@link redactString} scans instead, each character a bounded number of times: linear time, same
 * matches (a property test holds it to the regexp above).
 */
const OWN = 1; // [A-Za-z0-9._~+/=-]: own tokens and credentials after a scheme
const B64URL = 2; // [A-Za-z0-9_-]
const WORD = 4; // [A-Za-z0-9_]: the regexp `\b`
const CHAR_CLASS = new Uint8Array(128);
for (let c = 0; c < 128; c++) {
  const ch = String.fromCharCode(c);
  const alnum = /[A-Za-z0-9]/.test(ch);
  CHAR_CLASS[c] =
    (alnum || '._~+/=-'.includes(ch) ? OWN : 0) |
    (alnum || ch === '_' || ch === '-' ? B64URL : 0) |
    (alnum || ch === '_' ? WORD : 0);
}
const SCHEMES = ['Bearer', 'bearer', 'BEARER', 'Basic', 'basic', 'BASIC'] as const;

/** The class bits of `text[i]` (0 outside the string or past ASCII). */
function classAt(text: string, i: number): number {
  const c = text.charCodeAt(i); // NaN outside the string
  return c < 128 ? CHAR_CLASS[c]! : 0;
}

/** The regexp `\s` (ECMAScript WhiteSpace and LineTerminator). */
function isSpace(c: number): boolean {
  return (
    (c >= 9 && c <= 13) ||
    c === 32 ||
    c === 0xa0 ||
    c === 0x1680 ||
    (c >= 0x2000 && c <= 0x200a) ||
    c === 0x2028 ||
    c === 0x2029 ||
    c === 0x202f ||
    c === 0x205f ||
    c === 0x3000 ||
    c === 0xfeff
  );
}

/** Replace every token-shaped substring of a string with `[REDACTED]`. Linear time in its length. */
export function redactString(text: string): string {
  const n = text.length;
  let out = '';
  let copied = 0;
  // The last base64url run found, [runFrom, runEnd): every `eyJ` inside one run ends where it ends,
  // so no run is scanned twice (the positions asked about only grow).
  let runFrom = 0;
  let runEnd = -1;
  const base64urlEnd = (from: number): number => {
    if (from >= runFrom && from <= runEnd) return runEnd;
    let j = from;
    while (classAt(text, j) & B64URL) j++;
    runFrom = from;
    runEnd = j;
    return j;
  };
  let i = 0;
  while (i < n) {
    const c = text.charCodeAt(i);
    let end = -1;
    let replacement = REDACTED;
    if (c === 111 /* o */ && text.startsWith('omat_', i)) {
      let j = i + 5;
      while (classAt(text, j) & OWN) j++;
      if (j > i + 5) end = j;
    } else if (c === 101 /* e */ && text.startsWith('eyJ', i)) {
      let j = base64urlEnd(i + 3);
      if (text.charCodeAt(j) === 46 /* . */) {
        j = base64urlEnd(j + 1);
        for (let k = 0; k < 3 && text.charCodeAt(j) === 46; k++) j = base64urlEnd(j + 1);
        end = j;
      }
    } else if ((c === 66 || c === 98) /* B or b */ && !(classAt(text, i - 1) & WORD)) {
      const scheme = SCHEMES.find((s) => text.startsWith(s, i));
      if (scheme) {
        let j = i + scheme.length;
        while (j < n && isSpace(text.charCodeAt(j))) j++;
        // Fewer spaces never help: the credential class holds no space. So no backtracking.
        const param =
          (text.startsWith('realm', j) && !(classAt(text, j + 5) & WORD)) ||
          (text.startsWith('error', j) && !(classAt(text, j + 5) & WORD));
        if (j > i + scheme.length && !param) {
          let k = j;
          while (classAt(text, k) & OWN) k++;
          if (k > j) {
            end = k;
            replacement = `${scheme} ${REDACTED}`;
          }
        }
      }
    }
    if (end < 0) {
      i++;
      continue;
    }
    out += text.slice(copied, i) + replacement;
    copied = i = end;
  }
  return copied === 0 ? text : out + text.slice(copied);
}

const MAX_DEPTH = 10;
const MAX_ENTRIES = 1000;
/** Values visited by one {@link redact} call: shared sub-objects are reached once per path. */
const MAX_NODES = 100_000;
/** Strings at least this long are redacted once per {@link redact} call, however often they recur. */
const MEMO_LENGTH = 256;

/**
 * A deep copy of a value to be logged, with token-shaped strings and secret-named keys
 * (`authorization`, `jwt`, `accessToken`, `token`, `cookie`, `password`…) replaced by `[REDACTED]`,
 * anywhere in the object. Errors become `{ type, message, stack, code }` with the same redaction;
 * cycles become `[Circular]`; nesting past 10 levels, or anything past the first 100,000 values
 * visited, becomes `[Truncated]`; containers keep their first 1,000 entries. The work is linear in
 * the size of the value: an object that shares one sub-object along many paths (a DAG whose unfolded
 * tree is exponential) stops at the value budget, and a long string that recurs is scanned once.
 */
export function redact(value: unknown): unknown {
  const seen = new WeakSet<object>();
  const memo = new Map<string, string>();
  let budget = MAX_NODES;
  const walk = (node: unknown, depth: number): unknown => {
    if (--budget < 0) return '[Truncated]';
    if (typeof node === 'string') {
      if (node.length < MEMO_LENGTH) return redactString(node);
      let clean = memo.get(node);
      if (clean === undefined) memo.set(node, (clean = redactString(node)));
      return clean;
    }
    if (node === null || typeof node !== 'object') return node;
    if (seen.has(node)) return '[Circular]';
    if (depth >= MAX_DEPTH) return '[Truncated]';
    const original = node;
    seen.add(original);
    try {
      if (node instanceof Error) {
        const out: Record<string, unknown> = { type: node.name, message: redactString(node.message) };
        if (typeof node.stack === 'string') out.stack = redactString(node.stack);
        const code = (node as { code?: unknown }).code;
        if (typeof code === 'string' || typeof code === 'number') out.code = code;
        return out;
      }
      if (node instanceof Date) return node;
      if (ArrayBuffer.isView(node) || node instanceof ArrayBuffer) return `[${node.byteLength} bytes]`;
      if (node instanceof Map) node = Object.fromEntries(first(node.entries(), MAX_ENTRIES));
      if (Array.isArray(node) || node instanceof Set) {
        const size = Array.isArray(node) ? node.length : node.size;
        const items = Array.isArray(node) ? node.slice(0, MAX_ENTRIES) : first(node.values(), MAX_ENTRIES);
        const out = items.map((item: unknown) => walk(item, depth + 1));
        if (size > MAX_ENTRIES) out.push(`[${size - MAX_ENTRIES} more]`);
        return out;
      }
      const out: Record<string, unknown> = {};
      let n = 0;
      for (const key of Object.keys(node as object)) {
        if (++n > MAX_ENTRIES) break;
        const item = (node as Record<string, unknown>)[key];
        out[key] = isSecretKey(key) && item !== undefined && item !== null ? REDACTED : walk(item, depth + 1);
      }
      return out;
    } finally {
      seen.delete(original);
    }
  };
  return walk(value, 0);
}

/** The first `count` items of an iterator. */
function first<T>(items: Iterator<T>, count: number): T[] {
  const out: T[] = [];
  for (let next = items.next(); !next.done && out.length < count; next = items.next()) out.push(next.value);
  return out;
}

function isSecretKey(key: string): boolean {
  return SECRET_KEYS.has(key.toLowerCase().replace(/[-_]/g, ''));
}

/** A pino-style logger: the four levels this library uses, each `(obj, msg?)`. */
export type PinoLike = Logger & { child?: (bindings: Record<string, unknown>) => unknown };

/**
 * Wrap any pino-style logger so every object and message it receives is passed through
 * {@link redact} first. Works for the engine's own logs and for a host's.
 */
export function redactingLogger(logger: Logger): Logger {
  const level =
    (name: keyof Logger) =>
    (obj: object, msg?: string): void => {
      const clean = redact(obj) as object;
      if (msg === undefined) logger[name](clean);
      else logger[name](clean, redactString(msg));
    };
  return { debug: level('debug'), info: level('info'), warn: level('warn'), error: level('error') };
}

/**
 * Adapt a pino logger for `createOidcAuth({ logger })`: a `child({ lib: 'oidc-machine-auth' })` when
 * the logger has `child`, wrapped by {@link redactingLogger}.
 */
export function pinoLogger(
  pino: PinoLike,
  bindings: Record<string, unknown> = { lib: 'oidc-machine-auth' },
): Logger {
  const child = typeof pino.child === 'function' ? (pino.child(bindings) as Logger) : pino;
  return redactingLogger(child);
}
