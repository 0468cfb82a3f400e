import { GLOB_LIMITS } from '../../src/policy/match.js';
import { MAX_JWT_LENGTH } from '../../src/trust/verify-idp-token.js';
import { tryJson } from './support.js';

/** The bindings of `githubIdentity()` in test/helpers/engine.ts, restated independently. */
export interface Bindings {
  issuer: string;
  subject: string;
  audience: string;
  repositoryId: string;
  kid: string;
  skewSeconds: number;
  maxLifetimeSeconds: number;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

const own = (o: Record<string, unknown>, k: string) => (Object.hasOwn(o, k) ? o[k] : undefined);
const decode = (segment: string) => Buffer.from(segment, 'base64url').toString('utf8');

function scalarEquals(value: unknown, pattern: string): boolean {
  if (typeof value === 'string') return value === pattern;
  if (typeof value === 'number') return Number.isFinite(value) && String(value) === pattern;
  if (typeof value === 'boolean') return String(value) === pattern;
  return false;
}

/**
 * What a login with this genuinely signed (RS256, right key) token must do, decided from the
 * decoded bytes alone: `reject` when any binding or time rule fails or the header carries a JWS
 * extension (`crit`, `b64`: the library understands none and refuses them), `accept` otherwise.
 */
export function expectedVerdict(jwt: string, nowMs: number, b: Bindings): 'accept' | 'reject' | 'either' {
  if (jwt.length > MAX_JWT_LENGTH) return 'reject';
  const parts = jwt.split('.');
  if (parts.length !== 3 || (parts[0] ?? '').length > 2048) return 'reject';
  const header = tryJson(decode(parts[0]!));
  const payload = tryJson(decode(parts[1]!));
  if (!isObject(header) || !isObject(payload)) return 'reject';

  if (own(header, 'alg') !== 'RS256') return 'reject';
  if (Object.hasOwn(header, 'crit') || Object.hasOwn(header, 'b64')) return 'reject';
  const kid = own(header, 'kid');
  if (kid !== undefined && kid !== b.kid) return 'reject';

  const now = Math.floor(nowMs / 1000);
  const { exp, iat, nbf } = { exp: own(payload, 'exp'), iat: own(payload, 'iat'), nbf: own(payload, 'nbf') };
  if (typeof exp !== 'number' || typeof iat !== 'number') return 'reject';
  if (nbf !== undefined && (typeof nbf !== 'number' || nbf > now + b.skewSeconds)) return 'reject';
  if (exp <= now - b.skewSeconds || iat > now + b.skewSeconds) return 'reject';
  if (exp - iat > b.maxLifetimeSeconds) return 'reject';
  if (own(payload, 'iss') !== b.issuer) return 'reject';

  const aud = own(payload, 'aud');
  const audOk =
    aud === b.audience ||
    (Array.isArray(aud) &&
      aud.length > 0 &&
      aud.length <= GLOB_LIMITS.maxArrayElements &&
      aud.every((a) => typeof a === 'string') &&
      aud.includes(b.audience));
  if (!audOk) return 'reject';
  if (own(payload, 'sub') !== b.subject) return 'reject';

  const repo = own(payload, 'repository_id');
  const repoOk = Array.isArray(repo)
    ? repo.length <= GLOB_LIMITS.maxArrayElements && repo.some((v) => scalarEquals(v, b.repositoryId))
    : scalarEquals(repo, b.repositoryId);
  if (!repoOk) return 'reject';
  // #13.6: the claims githubIdentity() maps into metadata (ref, repository) must be storable.
  if (MAPPED_CLAIMS.some((name) => unstorableMapped(own(payload, name)))) return 'reject';

  return 'accept';
}

/** Claims `githubIdentity()` copies into the access token's metadata. */
export const MAPPED_CLAIMS = ['ref', 'repository'] as const;

/**
 * Whether a mapped claim value holds a string no token store keeps as sent (#13.6): U+0000, or a
 * UTF-16 code unit of a surrogate pair without its partner. Only values that are copied count: a
 * string, or an array of at most 64 strings, booleans and finite numbers.
 */
export function unstorableMapped(value: unknown): boolean {
  const bad = (s: string) => {
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i);
      if (c === 0) return true;
      if (c >= 0xd800 && c <= 0xdbff) {
        const next = s.charCodeAt(i + 1);
        if (!(next >= 0xdc00 && next <= 0xdfff)) return true;
        i++;
      } else if (c >= 0xdc00 && c <= 0xdfff) return true;
    }
    return false;
  };
  if (typeof value === 'string') return bad(value);
  if (!Array.isArray(value) || value.length > GLOB_LIMITS.maxArrayElements) return false;
  const scalar = (v: unknown) =>
    typeof v === 'string' || typeof v === 'boolean' || (typeof v === 'number' && Number.isFinite(v));
  return value.every(scalar) && value.some((v) => typeof v === 'string' && bad(v));
}

// ---------------------------------------------------------------------------------------------
// Globs: a reference matcher written from the documented pattern language (issue 13.7), by a
// different method than src/policy/match.ts (which compiles a RegExp): a parser over code points and a
// backtracking matcher over `/`-segments. It never calls the library or micromatch.

/** One element of a pattern segment. */
type GlobToken =
  | { kind: 'char'; char: string }
  | { kind: 'one' }
  | { kind: 'star' }
  | { kind: 'set'; chars: ReadonlySet<string> };

/** A `/`-segment of a pattern: `**` alone, or a sequence of tokens (empty for an empty segment). */
type GlobSegment = { kind: 'globstar' } | { kind: 'tokens'; tokens: GlobToken[] };

const PUNCTUATION = new Set([...'!"#$%&\'()*+,-.:;<=>?@[\\]^_`{|}~']);
const RANGE_CLASSES = ['0123456789', 'abcdefghijklmnopqrstuvwxyz', 'ABCDEFGHIJKLMNOPQRSTUVWXYZ'];

/** The characters of a `[...]` body, or undefined when the body is outside the documented language. */
function setOf(body: string[]): Set<string> | undefined {
  if (body.length === 0 || body[0] === '^' || body[0] === '!') return undefined;
  const chars = new Set<string>();
  for (let i = 0; i < body.length; i++) {
    const c = body[i]!;
    const code = c.codePointAt(0)!;
    if (code < 0x20 || code > 0x7e || c === '/' || c === '\\' || c === '[' || c === ']') return undefined;
    if (c === '-' && i > 0 && i < body.length - 1) return undefined; // a "-" not first or last
    if (body[i + 1] === '-' && i + 2 < body.length) {
      const end = body[i + 2]!;
      const range = RANGE_CLASSES.find((r) => r.includes(c) && r.includes(end));
      if (!range || range.indexOf(c) > range.indexOf(end)) return undefined;
      for (const x of range.slice(range.indexOf(c), range.indexOf(end) + 1)) chars.add(x);
      i += 2;
      continue;
    }
    chars.add(c);
  }
  return chars;
}

/**
 * Parse a pattern of the documented language into segments; undefined when it is not in it (refused
 * syntax). The caps on length and wildcards and the "binds nothing" rule are not checked here.
 */
export function parseGlobOracle(pattern: string): GlobSegment[] | undefined {
  if (pattern === '' || pattern.trim() !== pattern || pattern.startsWith('!')) return undefined;
  if ([...pattern].some((c) => c.codePointAt(0)! < 0x20 || c === '\u007f')) return undefined;
  const segments: GlobSegment[] = [];
  // No escape and no class may hold "/", so every "/" separates segments.
  for (const text of pattern.split('/')) {
    if (text === '**') {
      if (segments.at(-1)?.kind === 'globstar') return undefined;
      segments.push({ kind: 'globstar' });
      continue;
    }
    const chars = [...text];
    const tokens: GlobToken[] = [];
    for (let i = 0; i < chars.length; i++) {
      const c = chars[i]!;
      if (c === '\\') {
        const next = chars[i + 1];
        if (next === undefined || !PUNCTUATION.has(next)) return undefined;
        tokens.push({ kind: 'char', char: next });
        i++;
      } else if (c === '*') {
        // "**" is a segment of its own or nothing: never two unescaped "*" in a row inside one.
        if (tokens.at(-1)?.kind === 'star' && chars[i - 1] === '*') return undefined;
        tokens.push({ kind: 'star' });
      } else if (c === '?') {
        tokens.push({ kind: 'one' });
      } else if (c === '[') {
        const close = chars.indexOf(']', i + 1);
        if (close === -1) return undefined;
        const set = setOf(chars.slice(i + 1, close));
        if (!set) return undefined;
        tokens.push({ kind: 'set', chars: set });
        i = close;
      } else if (c === '(' || c === ')' || c === '|') {
        return undefined;
      } else {
        tokens.push({ kind: 'char', char: c });
      }
    }
    segments.push({ kind: 'tokens', tokens });
  }
  return segments;
}

/** A pattern with a `*`, `?` or `**` and no literal character at all: it binds nothing. */
export function bindsNothingOracle(segments: readonly GlobSegment[]): boolean {
  const tokens = segments.flatMap((s) => (s.kind === 'tokens' ? s.tokens : []));
  const open =
    segments.some((s) => s.kind === 'globstar') || tokens.some((t) => t.kind !== 'char' && t.kind !== 'set');
  return open && !tokens.some((t) => t.kind === 'char');
}

/** Whether a pattern has any wildcard or class (then the value length cap applies). */
function isWild(segments: readonly GlobSegment[]): boolean {
  return segments.some((s) => s.kind === 'globstar' || s.tokens.some((t) => t.kind !== 'char'));
}

function segmentMatches(tokens: readonly GlobToken[], value: readonly string[]): boolean {
  const wild = tokens.some((t) => t.kind === 'star' || t.kind === 'one');
  const text = value.join('');
  if (wild && (text === '.' || text === '..')) return false;
  if (tokens.length === 1 && tokens[0]!.kind === 'star' && value.length === 0) return false;
  const go = (t: number, v: number): boolean => {
    if (t === tokens.length) return v === value.length;
    const token = tokens[t]!;
    if (token.kind === 'star') {
      for (let end = v; end <= value.length; end++) if (go(t + 1, end)) return true;
      return false;
    }
    if (v === value.length) return false;
    const c = value[v]!;
    if (
      token.kind === 'one' ||
      (token.kind === 'char' && token.char === c) ||
      (token.kind === 'set' && token.chars.has(c))
    ) {
      return go(t + 1, v + 1);
    }
    return false;
  };
  return go(0, 0);
}

function segmentsMatch(pattern: readonly GlobSegment[], value: readonly string[]): boolean {
  const go = (p: number, v: number): boolean => {
    if (p === pattern.length) return v === value.length;
    const segment = pattern[p]!;
    if (segment.kind === 'globstar') {
      // Zero or more whole segments, none of them empty, "." or "..".
      for (let end = v; end <= value.length; end++) {
        if (end > v) {
          const last = value[end - 1]!;
          if (last === '' || last === '.' || last === '..') return false;
        }
        if (go(p + 1, end)) return true;
      }
      return false;
    }
    return v < value.length && segmentMatches(segment.tokens, [...value[v]!]) && go(p + 1, v + 1);
  };
  return go(0, 0);
}

/**
 * Whether a claim value matches a pattern, by the documented rules alone: strings segment by segment
 * (values over `maxValueLength` UTF-16 units never match a pattern with a wildcard or class); numbers
 * and booleans only a pattern without any, whose literal text equals their canonical string. A
 * pattern outside the language matches nothing.
 */
export function globOracle(value: unknown, pattern: string): boolean {
  const segments = parseGlobOracle(pattern);
  if (!segments) return false;
  const wild = isWild(segments);
  if (typeof value === 'number' || typeof value === 'boolean') {
    if (wild || (typeof value === 'number' && !Number.isFinite(value))) return false;
    return (
      segments
        .map((s) => (s.kind === 'tokens' ? s.tokens.map((t) => (t as { char: string }).char).join('') : ''))
        .join('/') === String(value)
    );
  }
  if (typeof value !== 'string') return false;
  if (wild && value.length > GLOB_LIMITS.maxValueLength) return false;
  return segmentsMatch(segments, value.split('/'));
}

/**
 * Whether config validation must accept a pattern, by the documented rules: in the language, binds
 * something, and within the caps of `GLOB_LIMITS` (length; `*` runs and `**` segments in all; `*`
 * per segment; segments with two `*`; those plus `**` segments).
 */
export function acceptsGlobOracle(pattern: string): boolean {
  if (pattern.length > GLOB_LIMITS.maxPatternLength) return false;
  const segments = parseGlobOracle(pattern);
  if (!segments || bindsNothingOracle(segments)) return false;
  let runs = 0;
  let globstars = 0;
  let twoStars = 0;
  for (const segment of segments) {
    if (segment.kind === 'globstar') {
      runs++;
      globstars++;
      continue;
    }
    const stars = segment.tokens.filter((t) => t.kind === 'star').length;
    if (stars > GLOB_LIMITS.maxStarsPerSegment) return false;
    if (stars === 2) twoStars++;
    runs += stars;
  }
  return (
    runs <= GLOB_LIMITS.maxWildcards &&
    twoStars <= 1 &&
    globstars + twoStars <= GLOB_LIMITS.maxAmbiguousWildcards
  );
}
