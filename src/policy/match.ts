import { LRUCache } from 'lru-cache';
import { ConfigError } from '../errors.js';
import type { IdentityConfig } from '../types.js';
import { compileRulesPolicy, hasRules, type CandidateMismatch, type RuleExplanation } from './rules.js';

/**
 * Caps that keep every glob match fast (GLOB-05). A pattern compiles to a RegExp in which `*` is
 * `[^/]*` and `**` a repeated whole-segment group, run by V8's backtracking engine: the cost of a
 * failed match grows with the product of the choices each ambiguous wildcard has. Measured with the
 * equivalent micromatch RegExps on 1 KiB values: one segment with two `*` plus a `**` stays under
 * 10 ms; one segment with three `*` (`*a*a*b`) takes ~110 ms, two segments with two `*` each ~45 ms
 * and three such segments in a row 4.4 s.
 */
export const GLOB_LIMITS = Object.freeze({
  /** Longest pattern, in characters. */
  maxPatternLength: 512,
  /** Longest claim value that can match at all, in characters (longer values never match). */
  maxValueLength: 1024,
  /** Wildcard runs (`*`, `**`) in a whole pattern. */
  maxWildcards: 8,
  /** `*` runs in one `/`-separated segment. */
  maxStarsPerSegment: 2,
  /** Segments holding two `*` runs, plus `**` segments: at most this many per pattern. */
  maxAmbiguousWildcards: 2,
  /** Elements of an array claim that are looked at; a longer array never matches. */
  maxArrayElements: 256,
  /**
   * Characters of claim values run through wildcard patterns in one login, all bindings together.
   * Each match is fast, but a token can multiply them (many patterns × a long array claim); past
   * this budget further glob matches fail, so one login's matching stays in the tens of ms.
   */
  maxGlobCharsPerCheck: 64 * 1024,
});

/** What is left of {@link GLOB_LIMITS.maxGlobCharsPerCheck} in the current synchronous check. */
let globBudget = Number.POSITIVE_INFINITY;

const MAX_CLAIM_PATH_LENGTH = 256;
const MAX_CLAIM_PATH_SEGMENTS = 32;
const RESOLVE_BUDGET = 256;
const FORBIDDEN_KEYS: ReadonlySet<string> = new Set(['__proto__', 'constructor', 'prototype']);

/** Why a login's claims do not satisfy the identity's bindings. */
export type PolicyFailureCode =
  | 'audience_not_allowed'
  | 'subject_not_allowed'
  | 'claim_not_allowed'
  | 'claim_missing'
  | 'denied_by_rule'
  | 'no_rule_matched';

/**
 * The verdict of {@link IdentityPolicy.check}. `claim` is the bound claim path that failed; `rule`
 * (identities with `rules`) the rule that decided: the allow rule that matched, or the deny rule that
 * matched, or the only allow rule when it failed. A rule is named by its `name`, else `rules[i]`.
 */
export type PolicyResult =
  | { readonly ok: true; readonly rule?: string }
  | { readonly ok: false; readonly code: PolicyFailureCode; readonly claim?: string; readonly rule?: string };

/** One binding as {@link IdentityPolicy.explain} reports it. */
export interface PolicyCheck {
  /** `audience`, `subject` or `claim:<path>`. */
  check: string;
  pass: boolean;
  /**
   * The bound patterns. Empty when nothing is bound: any value passes, except an unbound audience,
   * which fails when the token carries an `aud` and the identity does not set `allowAnyAudience`.
   */
  expected: readonly string[];
  /** The token's value; `undefined` when the claim is missing. */
  actual: unknown;
  /** Why it failed, in words. */
  reason?: string;
  /** A pattern change that would make it pass, when the failure is only `*` not crossing `/`. */
  hint?: string;
}

/** An identity's bindings compiled once for the login hot path. */
export interface IdentityPolicy {
  readonly identityId: string;
  /** Audience, then subject, then bound claims in config order; the first failure wins. */
  check(payload: Record<string, unknown>): PolicyResult;
  /** Every binding with pass/fail, expected patterns, actual value and hints (operator tooling). */
  explain(payload: Record<string, unknown>): PolicyCheck[];
  /** `config.metadata` plus the claims named by `claimMetadataMapping` (missing claims left out). Frozen. */
  metadata(payload: Record<string, unknown>): Readonly<Record<string, unknown>>;
  /** Identities with `rules`: every rule, whether it matched and its first failing binding. */
  explainRules?(payload: Record<string, unknown>): RuleExplanation;
  /**
   * Identities with `candidateRules` (audit mode): the candidate set's verdict on a payload the live
   * rules gave `live`, when it decides differently (allow vs deny); otherwise `undefined`.
   */
  audit?(payload: Record<string, unknown>, live: PolicyResult): CandidateMismatch | undefined;
}

// ---------------------------------------------------------------------------------------------
// Globs: the pattern language, validated and compiled here

// Bound patterns (`boundSubject`, `boundAudiences` and `boundClaims` values) are globs of a small
// language this module parses and compiles itself, so that a pattern admits only what it spells
// (issue 13.7: micromatch's brackets, escapes, trailing-`/` rule and equality shortcut let patterns
// admit values they did not spell). A pattern and a value are split at `/` into segments, matched
// one for one, except that a `**` segment stands for any number of segments.
//
// - Any character not named below is literal and matches itself (case-sensitive), `{`, `}`, `+`,
//   `!` (not first), `]`, `.`, `@` and spaces included.
// - `\` makes the next character literal when it is ASCII punctuation other than `/` (`\*`, `\?`,
//   `\[`, `\]`, `\\`, `\(`, `\|`…).
// - `*` matches any run of characters other than `/`, possibly empty, within one segment.
// - `?` matches exactly one character (one Unicode code point) other than `/`.
// - `[…]` matches one character of a set of printable ASCII characters, listed or given as ranges
//   inside `0-9`, `a-z` or `A-Z` (`[a-z0-9._-]`); `-` is literal first or last. A set never holds `/`.
// - `**` as a whole segment matches zero or more whole segments: `a/**/b` matches `a/b` and
//   `a/x/y/b`; `a/**` matches `a` and `a/x/y`; `**/b` matches `b` and `x/b`.
// - A segment with `*` or `?` never matches an empty, `.` or `..` segment, and `**` never takes one:
//   `repo:acme/*` does not match `repo:acme/app/` or `repo:acme/`, `a/*/b` not `a//b` or `a/../b`.
//   Only the same characters spelled out match those.
// - A pattern without `*`, `?`, `[…]` or `**` is compared by equality with the literal it spells (so
//   `release\*` matches `release*`, never `release\*`); any other pattern only by the compiled
//   matcher (so `v[0-9]` matches `v7`, never the text `v[0-9]`). Values longer than
//   {@link GLOB_LIMITS.maxValueLength} never match a pattern with a wildcard or a set.
//
// Refused at config time: empty, whitespace-padded and control characters (GLOB-07); a leading `!`
// (a negation elsewhere, GLOB-03); unescaped `(`, `)` and `|` (extglob and regex syntax elsewhere);
// `\` before anything but ASCII punctuation other than `/`, or at the end; `[` without its `]`; an
// empty or negated (`[^…]`, `[!…]`) set, a set holding `/`, `\`, `[` or a character outside
// printable ASCII, a range outside `0-9`/`a-z`/`A-Z` or reversed, a `-` that is neither first, last
// nor a range; `**` that is not a whole segment (`acme/**:ref` would not cross `/`), `***`, `**/**`;
// a pattern with a `*`, `?` or `**` and no literal character at all (`*/*`, `[a-z]*`: it binds
// nothing); anything over {@link GLOB_LIMITS} (GLOB-05, GLOB-06).

/** One element of a pattern segment. */
type GlobToken =
  | { readonly kind: 'char'; readonly char: string }
  | { readonly kind: 'one' }
  | { readonly kind: 'star' }
  | { readonly kind: 'set'; readonly source: string };

/** A `/`-segment: `**` alone, or tokens (none for an empty segment). */
type GlobSegment = { readonly kind: 'globstar' } | { readonly kind: 'tokens'; readonly tokens: GlobToken[] };

/** ASCII punctuation a `\` may make literal (`/` is always a separator). */
const ESCAPABLE = /^[!-.:-@[-`{-~]$/;
const RANGE_CLASSES = ['0123456789', 'abcdefghijklmnopqrstuvwxyz', 'ABCDEFGHIJKLMNOPQRSTUVWXYZ'];

/**
 * Check one bound pattern (`boundSubject`, `boundAudiences`, `boundClaims` values) at config time
 * against the language and caps described above.
 *
 * @param field Config field named in the error, e.g. `boundClaims["ref"][1]`.
 * @throws {ConfigError}
 */
export function validateGlob(pattern: string, field: string, identityId?: string): void {
  const problem = parseGlob(pattern);
  if (typeof problem === 'string') throw new ConfigError(field, problem, identityId);
}

/** Parse a pattern into segments, or say why it is refused. */
function parseGlob(pattern: unknown): GlobSegment[] | string {
  if (typeof pattern !== 'string') return 'must be a string';
  if (pattern === '') return 'must not be empty';
  if (pattern.length > GLOB_LIMITS.maxPatternLength) {
    return `is longer than ${GLOB_LIMITS.maxPatternLength} characters`;
  }
  if (pattern.trim() !== pattern) return 'has leading or trailing whitespace, so it would never match';
  if (hasControl(pattern)) return 'contains control characters';
  if (pattern.startsWith('!')) {
    return 'starts with "!": a negation pattern matches every other value; bind the values you allow';
  }
  const segments: GlobSegment[] = [];
  // Neither an escape nor a set may hold "/", so every "/" separates segments.
  const texts = pattern.split('/');
  for (let i = 0; i < texts.length; i++) {
    const text = texts[i] as string;
    if (text === '**') {
      if (segments.at(-1)?.kind === 'globstar') return 'has "**/**": write "**" once';
      segments.push({ kind: 'globstar' });
      continue;
    }
    const tokens = parseSegment(text, i === texts.length - 1);
    if (typeof tokens === 'string') return tokens;
    segments.push({ kind: 'tokens', tokens });
  }
  return checkShape(segments) ?? segments;
}

function parseSegment(text: string, last: boolean): GlobToken[] | string {
  const tokens: GlobToken[] = [];
  for (let i = 0; i < text.length; i++) {
    const c = text[i] as string;
    if (c === '\\') {
      const next = text[i + 1];
      if (next === undefined) {
        return last
          ? 'ends with a lone "\\"'
          : 'has "\\/": "/" always separates segments and cannot be escaped';
      }
      if (!ESCAPABLE.test(next)) {
        return `has "\\${next}": "\\" makes only ASCII punctuation other than "/" literal (\\*, \\?, \\[, \\\\ …)`;
      }
      tokens.push({ kind: 'char', char: next });
      i++;
    } else if (c === '*') {
      if (text[i + 1] === '*') {
        return text[i + 2] === '*'
          ? 'has "***": write "*" (within a segment) or "**" (a whole segment, across "/")'
          : 'has "**" inside a segment, where it cannot cross "/": "**" crosses "/" only as a whole segment (a/**/b); within a segment write "*"';
      }
      tokens.push({ kind: 'star' });
    } else if (c === '?') {
      tokens.push({ kind: 'one' });
    } else if (c === '[') {
      const close = text.indexOf(']', i + 1);
      if (close === -1) {
        return 'has "[" without its "]" in the same "/" segment (a [...] set never holds "/"); write "\\[" for a literal "["';
      }
      const source = setSource(text.slice(i + 1, close));
      if (source.startsWith('!')) return source.slice(1);
      tokens.push({ kind: 'set', source });
      i = close;
    } else if (c === '(' || c === ')' || c === '|') {
      return `has "${c}": regex groups and extglobs are not supported; escape it as "\\${c}" to match it literally`;
    } else {
      // A surrogate pair stays one literal character (a code point), as "?" counts them.
      const code = text.codePointAt(i) as number;
      const char = String.fromCodePoint(code);
      tokens.push({ kind: 'char', char });
      i += char.length - 1;
    }
  }
  return tokens;
}

/**
 * The RegExp class of a `[…]` body, every member as a `\xHH` escape; or `!` and why it is refused.
 */
function setSource(body: string): string {
  if (body === '') return '!has an empty "[]" set; write "\\[\\]" for the literal text';
  if (body.startsWith('^') || body.startsWith('!')) {
    return '!has a negated set ([^...] or [!...]): it admits every character nobody listed; list the allowed ones';
  }
  const hex = (c: string) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`;
  let out = '';
  for (let i = 0; i < body.length; i++) {
    const c = body[i] as string;
    const code = c.charCodeAt(0);
    if (c === '/') return '!has "/" inside a [...] set: "/" always separates segments';
    if (c === '\\' || c === '[') {
      return `!has "${c}" inside a [...] set (no escapes or POSIX classes there; write ranges like [a-z])`;
    }
    if (code < 0x20 || code > 0x7e) return '!has a character outside printable ASCII inside a [...] set';
    const end = body[i + 2];
    if (body[i + 1] === '-' && end !== undefined) {
      const range = RANGE_CLASSES.find((r) => r.includes(c) && r.includes(end));
      if (!range || range.indexOf(c) > range.indexOf(end)) {
        return `!has the range "${c}-${end}" in a [...] set: a range must go up within 0-9, a-z or A-Z (put a literal "-" first or last)`;
      }
      out += `${hex(c)}-${hex(end)}`;
      i += 2;
      continue;
    }
    if (c === '-' && i > 0 && i < body.length - 1) {
      return '!has a "-" in a [...] set that is neither a range nor first or last';
    }
    out += hex(c);
  }
  return `[${out}]`;
}

/** The "binds nothing" rule and the caps of {@link GLOB_LIMITS}, on a parsed pattern. */
function checkShape(segments: readonly GlobSegment[]): string | undefined {
  let runs = 0;
  let globstars = 0;
  let twoStarSegments = 0;
  let open = false;
  let literal = false;
  for (const segment of segments) {
    if (segment.kind === 'globstar') {
      runs++;
      globstars++;
      open = true;
      continue;
    }
    let stars = 0;
    for (const token of segment.tokens) {
      if (token.kind === 'star') stars++;
      if (token.kind === 'star' || token.kind === 'one') open = true;
      if (token.kind === 'char') literal = true;
    }
    if (stars > GLOB_LIMITS.maxStarsPerSegment) {
      return `has ${stars} "*" in one "/" segment (at most ${GLOB_LIMITS.maxStarsPerSegment}): such globs backtrack for seconds on long values`;
    }
    if (stars === 2) twoStarSegments++;
    runs += stars;
  }
  if (open && !literal) {
    return 'has wildcards and no literal character, so it binds nothing; bind a real value or remove the binding';
  }
  if (runs > GLOB_LIMITS.maxWildcards) {
    return `has ${runs} wildcards (at most ${GLOB_LIMITS.maxWildcards})`;
  }
  if (twoStarSegments > 1) {
    return 'has two "*" in more than one "/" segment: such globs backtrack for long on long values';
  }
  if (globstars + twoStarSegments > GLOB_LIMITS.maxAmbiguousWildcards) {
    return `combines too many "**" segments and segments with two "*" (at most ${GLOB_LIMITS.maxAmbiguousWildcards} in all)`;
  }
  return undefined;
}

/** No `.` or `..` segment ahead (a wildcard never matches one). */
const NOT_DOTS = '(?!\\.\\.?(?:/|$))';
/** One whole segment a `**` may take: not empty, not `.` or `..`. */
const GLOBSTAR_SEGMENT = `${NOT_DOTS}[^/]+`;

/**
 * The RegExp of a parsed pattern (`u` flag: `?` takes one code point), or `undefined` when it has no
 * wildcard or set: then it is the literal it spells, compared by equality.
 */
function globRegex(segments: readonly GlobSegment[]): RegExp | undefined {
  const wild = segments.some((s) => s.kind === 'globstar' || s.tokens.some((t) => t.kind !== 'char'));
  if (!wild) return undefined;
  let source = '';
  segments.forEach((segment, i) => {
    const last = i === segments.length - 1;
    if (segment.kind === 'globstar') {
      // Leading "**/b" and middle "a/**/b" take "x/" units; trailing "a/**" takes "/x" units.
      // Lazy, like "*": fewer steps before a long value of many segments fails.
      if (last && i > 0) source += `(?:/${GLOBSTAR_SEGMENT})*?`;
      else source += `${i > 0 ? '/' : ''}(?:${GLOBSTAR_SEGMENT}/)*?`;
      return;
    }
    if (i > 0 && segments[i - 1]?.kind !== 'globstar') source += '/';
    source += segmentSource(segment.tokens);
  });
  return new RegExp(`^(?:${source})$`, 'u');
}

function segmentSource(tokens: readonly GlobToken[]): string {
  if (tokens.length === 1 && tokens[0]?.kind === 'star') return `${NOT_DOTS}[^/]+?`;
  let out = tokens.some((t) => t.kind === 'star' || t.kind === 'one') ? NOT_DOTS : '';
  for (const token of tokens) {
    if (token.kind === 'char') out += token.char.replace(/[\\^$.*+?()[\]{}|/]/g, '\\$&');
    // Lazy: a failed match of a long run costs about a third of the greedy form's backtracking.
    else if (token.kind === 'star') out += '[^/]*?';
    else if (token.kind === 'one') out += '[^/]';
    else out += token.source;
  }
  return out;
}

/** The literal text a pattern without wildcards or sets spells. */
function literalOf(segments: readonly GlobSegment[]): string {
  return segments
    .map((s) => (s.kind === 'tokens' ? s.tokens.map((t) => (t.kind === 'char' ? t.char : '')).join('') : ''))
    .join('/');
}

/**
 * A compiled bound pattern: `literal` for a pattern without wildcards or sets (equality only),
 * `re` for any other.
 */
interface Matcher {
  readonly pattern: string;
  readonly literal: string | undefined;
  readonly re: RegExp | undefined;
}

/**
 * Compiled patterns by their text. Patterns come from identity configs, never from a request; the
 * cache holds ten times the 10,000 identities a memory identity store keeps parsed, so an
 * organisation's identities, each with a subject pattern of its own, do not evict each other on
 * every login (at 10,000 the logins of 10,000 identities ran at 0.76x those of 10; bench/trust.ts).
 */
const matchers = new LRUCache<string, Matcher>({ max: 100_000 });

function compileGlob(pattern: string, field: string, identityId: string | undefined): Matcher {
  let matcher = matchers.get(pattern);
  if (matcher) return matcher;
  const parsed = parseGlob(pattern);
  if (typeof parsed === 'string') throw new ConfigError(field, parsed, identityId);
  const re = globRegex(parsed);
  matcher = Object.freeze({ pattern, re, literal: re ? undefined : literalOf(parsed) });
  matchers.set(pattern, matcher);
  return matcher;
}

/**
 * A string claim value against one pattern: a literal pattern by equality, any other by its compiled
 * matcher only (the value is data: equality with the pattern's text means nothing).
 */
function matchString(value: string, matcher: Matcher): boolean {
  if (matcher.literal !== undefined) return value === matcher.literal;
  const re = matcher.re;
  if (re === undefined || value === '' || value.length > GLOB_LIMITS.maxValueLength) return false;
  if ((globBudget -= value.length) < 0) return false;
  try {
    return re.test(value);
  } catch {
    return false;
  }
}

/**
 * One claim value against one pattern (CLM-02): strings by the glob; numbers and booleans only when
 * the pattern has no wildcard or set and spells their canonical `String(v)` (numeric ids want
 * equality; `"01"` and `"1*"` never match `1`); everything else never.
 */
function matchScalar(value: unknown, matcher: Matcher): boolean {
  switch (typeof value) {
    case 'string':
      return matchString(value, matcher);
    case 'number':
      return Number.isFinite(value) && String(value) === matcher.literal;
    case 'boolean':
      return String(value) === matcher.literal;
    default:
      return false;
  }
}

/** Any pattern matches the value, or (for an array) any scalar element of it. */
function matchValue(value: unknown, list: readonly Matcher[]): boolean {
  if (Array.isArray(value)) {
    if (value.length > GLOB_LIMITS.maxArrayElements) return false;
    for (let i = 0; i < value.length; i++) {
      const element: unknown = value[i];
      if (element === null || typeof element === 'object') continue;
      for (let j = 0; j < list.length; j++) if (matchScalar(element, list[j] as Matcher)) return true;
    }
    return false;
  }
  for (let j = 0; j < list.length; j++) if (matchScalar(value, list[j] as Matcher)) return true;
  return false;
}

/**
 * Whether a claim value matches a glob, with the library's semantics (CLM-02, GLOB-01): strings by
 * the pattern language described above, numbers and booleans only by a pattern without wildcards
 * or sets that spells their canonical string, arrays when any scalar element matches. Never throws;
 * a pattern outside the language matches nothing.
 */
export function matchesGlob(value: unknown, pattern: string): boolean {
  let matcher: Matcher;
  try {
    matcher = compileGlob(pattern, 'pattern', undefined);
  } catch {
    return false;
  }
  return matchValue(value, [matcher]);
}

// ---------------------------------------------------------------------------------------------
// Claim paths

interface ClaimPath {
  readonly path: string;
  /** JSON Pointer segments, decoded. */
  readonly pointer: readonly string[] | undefined;
  /** Dot path: `keys[i][j]` is the key spanning dot-parts i..j-1 (so keys may contain dots). */
  readonly keys: readonly (readonly string[])[] | undefined;
  readonly parts: number;
}

const claimPaths = new LRUCache<string, ClaimPath>({ max: 10_000 });

/**
 * Check a claim path (a `boundClaims` key or a `claimMetadataMapping` value) at config time: a JSON
 * Pointer (RFC 6901) when it starts with `/`, otherwise a dot path whose keys may themselves contain
 * dots. `__proto__`, `constructor` and `prototype` never resolve, so paths naming them are refused.
 *
 * @throws {ConfigError}
 */
export function validateClaimPath(path: string, field: string, identityId?: string): void {
  const problem = claimPathProblem(path);
  if (problem) throw new ConfigError(field, problem, identityId);
}

function claimPathProblem(path: unknown): string | undefined {
  if (typeof path !== 'string' || path === '') return 'must be a non-empty claim path';
  if (path.length > MAX_CLAIM_PATH_LENGTH) return `is longer than ${MAX_CLAIM_PATH_LENGTH} characters`;
  if (path.trim() !== path) return 'has leading or trailing whitespace';
  if (hasControl(path)) return 'contains control characters';
  const segments = path.startsWith('/') ? path.slice(1).split('/') : path.split('.');
  if (segments.length > MAX_CLAIM_PATH_SEGMENTS) return `has more than ${MAX_CLAIM_PATH_SEGMENTS} segments`;
  if (path.startsWith('/')) {
    for (const raw of segments) {
      if (/~(?![01])/.test(raw))
        return 'has a "~" not followed by 0 or 1 (JSON Pointer escapes are ~0 and ~1)';
      if (FORBIDDEN_KEYS.has(decodePointerSegment(raw))) return 'names __proto__, constructor or prototype';
    }
    return undefined;
  }
  for (const segment of segments) {
    if (segment === '') return 'has an empty segment (leading, trailing or doubled ".")';
    if (FORBIDDEN_KEYS.has(segment)) return 'names __proto__, constructor or prototype';
  }
  return undefined;
}

function hasControl(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x20 || code === 0x7f) return true;
  }
  return false;
}

function decodePointerSegment(segment: string): string {
  return segment.replace(/~1/g, '/').replace(/~0/g, '~');
}

function compileClaimPath(path: string): ClaimPath | undefined {
  let compiled = claimPaths.get(path);
  if (compiled) return compiled;
  if (claimPathProblem(path)) return undefined;
  if (path.startsWith('/')) {
    const pointer = path.slice(1).split('/').map(decodePointerSegment);
    compiled = { path, pointer, keys: undefined, parts: pointer.length };
  } else {
    const parts = path.split('.');
    const keys: string[][] = [];
    for (let i = 0; i < parts.length; i++) {
      const row: string[] = [];
      for (let j = 0; j <= parts.length; j++) row.push(j > i ? parts.slice(i, j).join('.') : '');
      keys.push(row);
    }
    compiled = { path, pointer: undefined, keys, parts: parts.length };
  }
  claimPaths.set(path, compiled);
  return compiled;
}

const ARRAY_INDEX = /^(0|[1-9][0-9]{0,8})$/;

function hasKey(node: object, key: string): boolean {
  if (FORBIDDEN_KEYS.has(key)) return false;
  if (Array.isArray(node)) return ARRAY_INDEX.test(key) && Number(key) < node.length;
  return Object.hasOwn(node, key);
}

function isContainer(value: unknown): value is object {
  return value !== null && typeof value === 'object';
}

// The resolvers report the value through this slot, so the hot path allocates no result objects.
let resolved: unknown;
let budget = 0;

function resolveInto(payload: Record<string, unknown>, path: ClaimPath): boolean {
  resolved = undefined;
  if (!isContainer(payload)) return false;
  if (path.pointer) {
    let node: unknown = payload;
    for (const key of path.pointer) {
      if (!isContainer(node) || !hasKey(node, key)) return false;
      node = (node as Record<string, unknown>)[key];
    }
    if (node === undefined) return false;
    resolved = node;
    return true;
  }
  budget = RESOLVE_BUDGET;
  return walkDots(payload, 0, path);
}

/** Longest own key first, then shorter keys with the rest of the path below them (bounded). */
function walkDots(node: object, start: number, path: ClaimPath): boolean {
  const keys = path.keys as readonly (readonly string[])[];
  const row = keys[start] as readonly string[];
  for (let end = path.parts; end > start; end--) {
    if (--budget < 0) return false;
    const key = row[end] as string;
    if (!hasKey(node, key)) continue;
    const child = (node as Record<string, unknown>)[key];
    if (end === path.parts) {
      if (child === undefined) return false;
      resolved = child;
      return true;
    }
    if (isContainer(child) && walkDots(child, end, path)) return true;
  }
  return false;
}

/**
 * Read a claim from a token payload. A path starting with `/` is a JSON Pointer (RFC 6901, `~0` and
 * `~1` escapes); any other path is a dot path whose keys may contain dots: `kubernetes.io.namespace`
 * reads `payload["kubernetes.io"].namespace`, and CircleCI's `oidc.circleci.com/project-id` reads
 * that literal key (the longest own key is tried first). Own properties only; `__proto__`,
 * `constructor` and `prototype` never resolve (CLM-03). A present `false`, `0`, `""` or `null` is found.
 */
export function resolveClaim(
  payload: Record<string, unknown>,
  path: string,
): { found: true; value: unknown } | { found: false } {
  const compiled = compileClaimPath(path);
  if (!compiled || !resolveInto(payload, compiled)) return { found: false };
  const value = resolved;
  resolved = undefined;
  return { found: true, value };
}

// ---------------------------------------------------------------------------------------------
// Identity policies

interface ClaimBinding {
  readonly path: ClaimPath;
  readonly patterns: readonly string[];
  readonly matchers: readonly Matcher[];
  readonly missing: PolicyResult;
  readonly notAllowed: PolicyResult;
}

interface MetadataMapping {
  readonly name: string;
  readonly path: ClaimPath;
}

const OK: PolicyResult = Object.freeze({ ok: true });
const AUDIENCE_FAILED: PolicyResult = Object.freeze({ ok: false, code: 'audience_not_allowed' });
const SUBJECT_FAILED: PolicyResult = Object.freeze({ ok: false, code: 'subject_not_allowed' });

const policies = new WeakMap<IdentityConfig, IdentityPolicy>();

/**
 * Compile an identity's audience, subject and claim bindings. Cached per config object, so calling
 * this on every login with the same (frozen) config is a WeakMap hit. Patterns are validated again
 * here, so a config that bypassed {@link parseIdentityConfig} cannot smuggle a dangerous glob in.
 *
 * @throws {ConfigError} when a pattern or claim path is invalid.
 */
export function compileIdentityPolicy(config: IdentityConfig): IdentityPolicy {
  let policy = policies.get(config);
  if (!policy) {
    const flat = new CompiledPolicy(config);
    policy = hasRules(config) ? compileRulesPolicy(config, flat) : flat;
    policies.set(config, policy);
  }
  return policy;
}

class CompiledPolicy implements IdentityPolicy {
  readonly identityId: string;
  private readonly audiencePatterns: readonly string[];
  private readonly audiences: readonly Matcher[];
  /** `allowAnyAudience` (only without bound audiences): a token's `aud` is not looked at. */
  private readonly anyAudience: boolean;
  private readonly subjectPatterns: readonly string[];
  private readonly subjects: readonly Matcher[];
  private readonly claims: readonly ClaimBinding[];
  private readonly baseMetadata: Readonly<Record<string, unknown>>;
  private readonly mappings: readonly MetadataMapping[];

  constructor(config: IdentityConfig) {
    const id = config.identityId;
    this.identityId = id;
    this.audiencePatterns = config.boundAudiences;
    this.audiences = config.boundAudiences.map((p, i) => compileGlob(p, `boundAudiences[${i}]`, id));
    // Strict unless explicitly opted out: a config without the field (not from parseIdentityConfig) is too.
    this.anyAudience = config.allowAnyAudience === true;
    this.subjectPatterns = config.boundSubject;
    this.subjects = config.boundSubject.map((p, i) => compileGlob(p, `boundSubject[${i}]`, id));
    this.claims = Object.entries(config.boundClaims).map(([path, patterns]) => {
      const field = `boundClaims[${JSON.stringify(path)}]`;
      const compiled = compileClaimPath(path);
      if (!compiled) throw new ConfigError(field, claimPathProblem(path) ?? 'is not a claim path', id);
      return {
        path: compiled,
        patterns,
        matchers: patterns.map((p, i) => compileGlob(p, `${field}[${i}]`, id)),
        missing: Object.freeze({ ok: false, code: 'claim_missing', claim: path }),
        notAllowed: Object.freeze({ ok: false, code: 'claim_not_allowed', claim: path }),
      } satisfies ClaimBinding;
    });
    this.baseMetadata = Object.freeze({ ...config.metadata });
    this.mappings = Object.entries(config.claimMetadataMapping).map(([name, path]) => {
      const compiled = compileClaimPath(path);
      if (!compiled) {
        throw new ConfigError(`claimMetadataMapping[${JSON.stringify(name)}]`, 'is not a claim path', id);
      }
      return { name, path: compiled };
    });
  }

  check(payload: Record<string, unknown>): PolicyResult {
    globBudget = GLOB_LIMITS.maxGlobCharsPerCheck;
    try {
      return this.#check(payload);
    } finally {
      globBudget = Number.POSITIVE_INFINITY;
    }
  }

  #check(payload: Record<string, unknown>): PolicyResult {
    if (this.audiences.length > 0) {
      if (!audienceMatches(ownValue(payload, 'aud'), this.audiences)) return AUDIENCE_FAILED;
    } else if (!this.anyAudience && carriesAudience(payload)) {
      return AUDIENCE_FAILED;
    }
    if (this.subjects.length > 0) {
      const sub = ownValue(payload, 'sub');
      if (typeof sub !== 'string' || !matchValue(sub, this.subjects)) return SUBJECT_FAILED;
    }
    const claims = this.claims;
    for (let i = 0; i < claims.length; i++) {
      const binding = claims[i] as ClaimBinding;
      if (!resolveInto(payload, binding.path)) return binding.missing;
      const value = resolved;
      resolved = undefined;
      if (!matchValue(value, binding.matchers)) return binding.notAllowed;
    }
    return OK;
  }

  explain(payload: Record<string, unknown>): PolicyCheck[] {
    globBudget = GLOB_LIMITS.maxGlobCharsPerCheck;
    try {
      return this.#explain(payload);
    } finally {
      globBudget = Number.POSITIVE_INFINITY;
    }
  }

  #explain(payload: Record<string, unknown>): PolicyCheck[] {
    const checks: PolicyCheck[] = [];
    const aud = ownValue(payload, 'aud');
    checks.push(
      this.audiences.length === 0
        ? this.anyAudience || !carriesAudience(payload)
          ? { check: 'audience', pass: true, expected: [], actual: aud }
          : { check: 'audience', pass: false, expected: [], actual: aud, reason: UNBOUND_AUDIENCE }
        : explainCheck('audience', this.audiencePatterns, this.audiences, aud, audienceProblem(aud), () =>
            audienceMatches(aud, this.audiences),
          ),
    );
    const sub = ownValue(payload, 'sub');
    checks.push(
      this.subjects.length === 0
        ? { check: 'subject', pass: true, expected: [], actual: sub }
        : explainCheck(
            'subject',
            this.subjectPatterns,
            this.subjects,
            sub,
            subjectProblem(sub),
            () => typeof sub === 'string' && matchValue(sub, this.subjects),
          ),
    );
    for (const binding of this.claims) {
      const name = `claim:${binding.path.path}`;
      if (!resolveInto(payload, binding.path)) {
        checks.push({
          check: name,
          pass: false,
          expected: binding.patterns,
          actual: undefined,
          reason: 'the claim is missing',
        });
        continue;
      }
      const value = resolved;
      resolved = undefined;
      checks.push(
        explainCheck(name, binding.patterns, binding.matchers, value, valueProblem(value), () =>
          matchValue(value, binding.matchers),
        ),
      );
    }
    return checks;
  }

  metadata(payload: Record<string, unknown>): Readonly<Record<string, unknown>> {
    if (this.mappings.length === 0) return this.baseMetadata;
    const out: Record<string, unknown> = { ...this.baseMetadata };
    for (const mapping of this.mappings) {
      if (!resolveInto(payload, mapping.path)) continue;
      const value = resolved;
      resolved = undefined;
      const copy = metadataValue(value);
      if (copy !== undefined) out[mapping.name] = copy;
    }
    return Object.freeze(out);
  }
}

/**
 * Whether the token carries an `aud` claim at all (any value, even `[]`, `""` or `null`). With no
 * bound audience that refuses the login unless `allowAnyAudience` (issue 13.9, AUD-02): Vault refuses
 * a token with `aud` when the role binds none (CVE-2024-5798 was the string-`aud` bypass of that).
 */
function carriesAudience(payload: Record<string, unknown>): boolean {
  return isContainer(payload) && Object.hasOwn(payload, 'aud');
}

const UNBOUND_AUDIENCE =
  'the token carries an aud but the identity binds no audience: set boundAudiences to the audience ' +
  'its tokens carry (or allowAnyAudience: true for an IdP that sends no usable audience)';

function ownValue(payload: Record<string, unknown>, key: string): unknown {
  return isContainer(payload) && Object.hasOwn(payload, key) ? payload[key] : undefined;
}

/**
 * `aud` is a non-empty string or a non-empty array of strings (AUD-03, AUD-04); any audience matching
 * any bound pattern passes (AUD-01).
 */
function audienceMatches(aud: unknown, list: readonly Matcher[]): boolean {
  if (typeof aud === 'string') return aud !== '' && matchValue(aud, list);
  if (!Array.isArray(aud) || aud.length === 0 || aud.length > GLOB_LIMITS.maxArrayElements) return false;
  for (let i = 0; i < aud.length; i++) if (typeof aud[i] !== 'string') return false;
  for (let i = 0; i < aud.length; i++) {
    const one = aud[i] as string;
    if (one !== '' && matchValue(one, list)) return true;
  }
  return false;
}

function metadataValue(value: unknown): unknown {
  const type = typeof value;
  if (type === 'string' || type === 'boolean' || (type === 'number' && Number.isFinite(value))) return value;
  if (!Array.isArray(value) || value.length > GLOB_LIMITS.maxArrayElements) return undefined;
  for (const element of value) {
    const t = typeof element;
    if (t !== 'string' && t !== 'boolean' && !(t === 'number' && Number.isFinite(element))) return undefined;
  }
  return Object.freeze([...value]);
}

// ---------------------------------------------------------------------------------------------
// explain: reasons and hints (operator tooling, not the hot path)

function explainCheck(
  check: string,
  expected: readonly string[],
  list: readonly Matcher[],
  actual: unknown,
  problem: string | undefined,
  passes: () => boolean,
): PolicyCheck {
  if (passes()) return { check, pass: true, expected, actual };
  const result: PolicyCheck = {
    check,
    pass: false,
    expected,
    actual,
    reason: problem ?? 'no bound pattern matches',
  };
  const hint = hintFor(actual, list);
  if (hint) result.hint = hint;
  return result;
}

function audienceProblem(aud: unknown): string | undefined {
  if (aud === undefined) return 'the token has no aud';
  if (aud === '' || (Array.isArray(aud) && aud.length === 0)) return 'the token aud is empty';
  if (typeof aud !== 'string' && !(Array.isArray(aud) && aud.every((a) => typeof a === 'string'))) {
    return 'aud must be a string or an array of strings';
  }
  return valueProblem(aud);
}

function subjectProblem(sub: unknown): string | undefined {
  if (sub === undefined) return 'the token has no sub';
  if (typeof sub !== 'string') return 'sub must be a string';
  return valueProblem(sub);
}

function valueProblem(value: unknown): string | undefined {
  if (value === null || (typeof value === 'object' && !Array.isArray(value))) {
    return 'the value is an object or null: only strings, numbers, booleans and arrays of them match';
  }
  if (typeof value === 'string' && value.length > GLOB_LIMITS.maxValueLength) {
    return `the value is longer than ${GLOB_LIMITS.maxValueLength} characters, which never matches`;
  }
  if (Array.isArray(value) && value.length > GLOB_LIMITS.maxArrayElements) {
    return `the array has more than ${GLOB_LIMITS.maxArrayElements} elements, which never matches`;
  }
  if (typeof value === 'number' || typeof value === 'boolean') {
    return `${typeof value}s match only a pattern equal to their canonical string ("${String(value)}")`;
  }
  return undefined;
}

function hintFor(actual: unknown, list: readonly Matcher[]): string | undefined {
  const values = Array.isArray(actual) ? actual.slice(0, GLOB_LIMITS.maxArrayElements) : [actual];
  for (const value of values) {
    if (typeof value !== 'string' || value.length > GLOB_LIMITS.maxValueLength) continue;
    for (const matcher of list) {
      const hint = slashHint(value, matcher);
      if (hint) return hint;
    }
  }
  return undefined;
}

/**
 * When a glob failed only because `*` stops at `/`, suggest the pattern that would match. The
 * "would it match if `*` crossed `/`" test uses a linear-time matcher, never a RegExp merged from
 * the patterns (that would undo the backtracking caps).
 */
function slashHint(value: string, matcher: Matcher): string | undefined {
  const pattern = matcher.pattern;
  if (!matcher.re || !value.includes('/') || /[\\[]/.test(pattern)) return undefined;
  if (!crossingMatch(value, pattern)) return undefined;
  const stars = loneStarSegments(pattern);
  const candidates: string[] = stars.map((at) => `${pattern.slice(0, at)}**${pattern.slice(at + 1)}`);
  if (stars.length > 1)
    candidates.push(stars.reduceRight((p, at) => `${p.slice(0, at)}**${p.slice(at + 1)}`, pattern));
  for (const candidate of candidates) {
    // matchesGlob is false for a candidate outside the language (it never throws).
    if (matchesGlob(value, candidate)) {
      return (
        `"*" does not match "/"; "${candidate}" would match, ` +
        'but "**" crosses "/" and so also matches every deeper value (any branch, any subgroup)'
      );
    }
  }
  return (
    '"*" does not match "/", and "**" crosses "/" only as a whole segment (a/**/b); ' +
    'the value has a "/" where the pattern has "*": list the exact value or bind a claim without "/"'
  );
}

/** Indexes of `*` that form a whole `/` segment on their own (where `**` becomes a globstar). */
function loneStarSegments(pattern: string): number[] {
  const out: number[] = [];
  for (let i = 0; i < pattern.length; i++) {
    if (pattern[i] !== '*') continue;
    const before = i === 0 || pattern[i - 1] === '/';
    const after = i === pattern.length - 1 || pattern[i + 1] === '/';
    if (before && after) out.push(i);
  }
  return out;
}

/** `*` matches anything including `/`, `?` one character: two-pointer wildcard match, O(n·m). */
function crossingMatch(value: string, pattern: string): boolean {
  let v = 0;
  let p = 0;
  let starP = -1;
  let starV = 0;
  while (v < value.length) {
    const c = pattern[p];
    if (c === '*') {
      while (pattern[p] === '*') p++;
      starP = p;
      starV = v;
    } else if (c !== undefined && (c === '?' || c === value[v])) {
      p++;
      v++;
    } else if (starP !== -1) {
      p = starP;
      v = ++starV;
    } else {
      return false;
    }
  }
  while (pattern[p] === '*') p++;
  return p === pattern.length;
}

// ---------------------------------------------------------------------------------------------
// Internals for src/policy/ (rules, typed comparisons): one glob language, one claim resolver and one
// per-check glob budget for flat bindings and rules alike. Not part of the public API.

/** A claim path compiled for {@link readClaim}. @internal */
export type CompiledClaimPath = ClaimPath;
/** A bound pattern compiled for {@link matchAny}. @internal */
export type CompiledGlob = Matcher;

/** What {@link readClaim} returns for a missing claim. @internal */
export const MISSING_CLAIM: unique symbol = Symbol('missing claim');

/** @internal */
export function compilePattern(pattern: string, field: string, identityId: string | undefined): CompiledGlob {
  return compileGlob(pattern, field, identityId);
}

/** @internal A compiled path, or `undefined` with the problem thrown by the caller. */
export function compilePath(path: string, field: string, identityId: string): CompiledClaimPath {
  const compiled = compileClaimPath(path);
  if (!compiled) throw new ConfigError(field, claimPathProblem(path) ?? 'is not a claim path', identityId);
  return compiled;
}

/** The claim's value, or {@link MISSING_CLAIM}; allocates nothing. @internal */
export function readClaim(payload: Record<string, unknown>, path: CompiledClaimPath): unknown {
  if (!resolveInto(payload, path)) return MISSING_CLAIM;
  const value = resolved;
  resolved = undefined;
  return value;
}

/** A claim value against globs (arrays: any scalar element), as bound claims match. @internal */
export function matchAny(value: unknown, list: readonly CompiledGlob[]): boolean {
  return matchValue(value, list);
}

/** The token's `aud` against globs, as `boundAudiences` match (AUD-01..04). @internal */
export function audienceMatchesAny(payload: Record<string, unknown>, list: readonly CompiledGlob[]): boolean {
  return audienceMatches(ownValue(payload, 'aud'), list);
}

/** The token's `sub` against globs, as `boundSubject` match. @internal */
export function subjectMatchesAny(payload: Record<string, unknown>, list: readonly CompiledGlob[]): boolean {
  const sub = ownValue(payload, 'sub');
  return typeof sub === 'string' && matchValue(sub, list);
}

/** @internal */
export { carriesAudience, ownValue, UNBOUND_AUDIENCE };

/** Run `fn` with a fresh glob budget (one login check, all bindings of all rules together). @internal */
export function withGlobBudget<T>(fn: () => T): T {
  globBudget = GLOB_LIMITS.maxGlobCharsPerCheck;
  try {
    return fn();
  } finally {
    globBudget = Number.POSITIVE_INFINITY;
  }
}

/** One glob binding explained, as {@link IdentityPolicy.explain} reports it. @internal */
export function explainGlobs(
  kind: 'audience' | 'subject' | 'claim',
  check: string,
  patterns: readonly string[],
  list: readonly CompiledGlob[],
  actual: unknown,
): PolicyCheck {
  if (kind === 'audience') {
    return explainCheck(check, patterns, list, actual, audienceProblem(actual), () =>
      audienceMatches(actual, list),
    );
  }
  if (kind === 'subject') {
    return explainCheck(
      check,
      patterns,
      list,
      actual,
      subjectProblem(actual),
      () => typeof actual === 'string' && matchValue(actual, list),
    );
  }
  return explainCheck(check, patterns, list, actual, valueProblem(actual), () => matchValue(actual, list));
}

/** Whether the current {@link withGlobBudget} check ran past its glob budget. @internal */
export function globBudgetExhausted(): boolean {
  return globBudget < 0;
}

/** Start one check's glob budget (pair with {@link endGlobBudget} in a `finally`). @internal */
export function beginGlobBudget(): void {
  globBudget = GLOB_LIMITS.maxGlobCharsPerCheck;
}

/** @internal */
export function endGlobBudget(): void {
  globBudget = Number.POSITIVE_INFINITY;
}
