import { LRUCache } from 'lru-cache';
import micromatch from 'micromatch';
import { ConfigError } from './errors.js';
import type { IdentityConfig } from './types.js';

/**
 * micromatch options for every bound pattern. `dot` lets `*`/`**` match `.github` segments (GLOB-04);
 * braces, extglobs and negation never have syntax power; `windows: false` keeps `/` the only
 * separator on every platform.
 */
const GLOB_OPTIONS = Object.freeze({
  dot: true,
  nobrace: true,
  noextglob: true,
  nonegate: true,
  windows: false,
});

/**
 * Caps that keep every glob match fast (GLOB-05). micromatch compiles `*` to a lazy `[^/]*?` and
 * `**` to a lazy any-segments group, run by V8's backtracking engine: the cost of a failed match
 * grows with the product of the choices each ambiguous wildcard has. Measured on 1 KiB values:
 * one segment with two `*` plus a `**` stays under 10 ms; one segment with three `*` (`*a*a*b`)
 * takes ~110 ms, two segments with two `*` each ~45 ms and three such segments in a row 4.4 s.
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
  'audience_not_allowed' | 'subject_not_allowed' | 'claim_not_allowed' | 'claim_missing';

/** The verdict of {@link IdentityPolicy.check}. `claim` is the bound claim path that failed. */
export type PolicyResult =
  { readonly ok: true } | { readonly ok: false; readonly code: PolicyFailureCode; readonly claim?: string };

/** One binding as {@link IdentityPolicy.explain} reports it. */
export interface PolicyCheck {
  /** `audience`, `subject` or `claim:<path>`. */
  check: string;
  pass: boolean;
  /** The bound patterns (empty when nothing is bound: any value passes). */
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
}

// ---------------------------------------------------------------------------------------------
// Glob validation and compilation

interface GlobShape {
  /** `*`, `?` or `[` outside escapes: the pattern needs the regex. */
  wildcard: boolean;
  /** Contains a backslash escape: equality with the raw pattern is not the literal it denotes. */
  escaped: boolean;
}

/**
 * Check one bound pattern (`boundSubject`, `boundAudiences`, `boundClaims` values) at config time.
 *
 * Refused: empty or whitespace-padded patterns and control characters (GLOB-07); a leading `!`
 * negation, which would match everything else (GLOB-03); regex groups and extglobs (`(`, `)`, `|`,
 * `@(…)`, `!(…)`); `[!…]` (not a negated class in micromatch 4: write `[^…]`); `/` or nested `[` (POSIX
 * classes) inside brackets;
 * backslash before a letter or digit (a regex class like `\d`, not an escape); patterns made only of
 * wildcards (they bind nothing); patterns over {@link GLOB_LIMITS} (GLOB-05, GLOB-06). Braces and
 * `+` are literal characters.
 *
 * @param field Config field named in the error, e.g. `boundClaims["ref"][1]`.
 * @throws {ConfigError}
 */
export function validateGlob(pattern: string, field: string, identityId?: string): void {
  const problem = globProblem(pattern);
  if (problem) throw new ConfigError(field, problem, identityId);
}

function globProblem(pattern: unknown): string | undefined {
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
  if (pattern.startsWith('./')) return 'starts with "./", which micromatch strips before matching';
  const shape = scanGlob(pattern);
  if (typeof shape === 'string') return shape;
  if (shape.wildcard && /^[*?/]+$/.test(pattern)) {
    return 'is only wildcards, so it binds nothing; bind a real value or remove the binding';
  }
  if (shape.wildcard || shape.escaped) {
    const re = globRegex(pattern);
    if (!re) return 'is not a valid glob';
  }
  return undefined;
}

/** Scan a pattern: syntax that is refused, and the wildcard complexity caps. */
function scanGlob(pattern: string): GlobShape | string {
  let wildcard = false;
  let escaped = false;
  let runs = 0;
  let globstars = 0;
  let twoStarSegments = 0;
  let segmentRuns = 0;
  let segmentOnlyStars = true;
  let segmentLength = 0;

  const endSegment = (): string | undefined => {
    if (segmentOnlyStars && segmentLength >= 2) {
      globstars++;
    } else if (segmentRuns === 2) {
      twoStarSegments++;
    } else if (segmentRuns > GLOB_LIMITS.maxStarsPerSegment) {
      return `has ${segmentRuns} "*" in one "/" segment (at most ${GLOB_LIMITS.maxStarsPerSegment}): such globs backtrack for seconds on long values`;
    }
    segmentRuns = 0;
    segmentOnlyStars = true;
    segmentLength = 0;
    return undefined;
  };

  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i] as string;
    if (c === '/') {
      const problem = endSegment();
      if (problem) return problem;
      continue;
    }
    segmentLength++;
    if (c !== '*') segmentOnlyStars = false;
    if (c === '\\') {
      const next = pattern[i + 1];
      if (next === undefined) return 'ends with a lone "\\"';
      if (/[A-Za-z0-9]/.test(next)) {
        return `has "\\${next}", which micromatch reads as a regex class; escape only punctuation`;
      }
      escaped = true;
      i++;
      continue;
    }
    if (c === '(' || c === ')' || c === '|') {
      return `has "${c}": regex groups and extglobs are not supported; escape it as "\\${c}" to match it literally`;
    }
    if (c === '*') {
      wildcard = true;
      if (pattern[i - 1] === '*' && pattern[i - 2] === '*') {
        return 'has "***": write "*" (within a segment) or "**" (across segments)';
      }
      if (pattern[i - 1] !== '*') {
        runs++;
        segmentRuns++;
      }
      continue;
    }
    if (c === '?') {
      wildcard = true;
      continue;
    }
    if (c === '[') {
      const close = bracketEnd(pattern, i);
      if (close === -1) continue; // an unclosed "[" is literal
      const body = pattern.slice(i + 1, close);
      if (body.includes('/')) return 'has "/" inside a [...] class';
      if (body.includes('['))
        return 'has "[" inside a [...] class (POSIX classes are not supported; use ranges like [a-z])';
      if (body.startsWith('!')) return 'has "[!...]", which micromatch 4 does not negate; write "[^...]"';
      wildcard = true;
      segmentLength += close - i;
      i = close;
      continue;
    }
  }
  const problem = endSegment();
  if (problem) return problem;
  if (runs > GLOB_LIMITS.maxWildcards) {
    return `has ${runs} wildcards (at most ${GLOB_LIMITS.maxWildcards})`;
  }
  if (twoStarSegments > 1) {
    return 'has two "*" in more than one "/" segment: such globs backtrack for long on long values';
  }
  if (globstars + twoStarSegments > GLOB_LIMITS.maxAmbiguousWildcards) {
    return `combines too many "**" segments and segments with two "*" (at most ${GLOB_LIMITS.maxAmbiguousWildcards} in all)`;
  }
  return { wildcard, escaped };
}

function bracketEnd(pattern: string, open: number): number {
  // A "]" right after "[" or "[^" is a member, as in picomatch.
  let i = open + 1;
  if (pattern[i] === '^' || pattern[i] === '!') i++;
  if (pattern[i] === ']') i++;
  for (; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === '\\') i++;
    else if (c === ']') return i;
  }
  return -1;
}

/** `{`, `}` and `+` go to the regex unescaped under `nobrace` (`a{1000}` would be a quantifier). */
function escapeLiterals(pattern: string): string {
  let out = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i] as string;
    if (c === '\\') {
      out += c + (pattern[i + 1] ?? '');
      i++;
    } else if (c === '{' || c === '}' || c === '+') {
      out += `\\${c}`;
    } else {
      out += c;
    }
  }
  return out;
}

function globRegex(pattern: string): RegExp | undefined {
  try {
    const re = micromatch.makeRe(escapeLiterals(pattern), GLOB_OPTIONS);
    return re.source === '$^' ? undefined : re;
  } catch {
    return undefined;
  }
}

/** A compiled bound pattern. `re` is absent for a pattern without wildcards or escapes (equality only). */
interface Matcher {
  readonly pattern: string;
  readonly re: RegExp | undefined;
}

const matchers = new LRUCache<string, Matcher>({ max: 10_000 });

function compileGlob(pattern: string, field: string, identityId: string | undefined): Matcher {
  let matcher = matchers.get(pattern);
  if (matcher) return matcher;
  const problem = globProblem(pattern);
  if (problem) throw new ConfigError(field, problem, identityId);
  const shape = scanGlob(pattern) as GlobShape;
  matcher = Object.freeze({
    pattern,
    re: shape.wildcard || shape.escaped ? globRegex(pattern) : undefined,
  });
  matchers.set(pattern, matcher);
  return matcher;
}

/** A string claim value against one pattern: equality first (the value is data, never a pattern). */
function matchString(value: string, matcher: Matcher): boolean {
  if (value === matcher.pattern) return true;
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
 * One claim value against one pattern (CLM-02): strings by equality or glob; numbers and booleans
 * only when their canonical `String(v)` equals the pattern (numeric ids want equality; `"01"` and
 * `"1*"` never match `1`); everything else never.
 */
function matchScalar(value: unknown, matcher: Matcher): boolean {
  switch (typeof value) {
    case 'string':
      return matchString(value, matcher);
    case 'number':
      return Number.isFinite(value) && String(value) === matcher.pattern;
    case 'boolean':
      return String(value) === matcher.pattern;
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
 * equality or micromatch glob, numbers and booleans by exact canonical string, arrays when any
 * scalar element matches. Never throws; an invalid pattern matches nothing.
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
    policy = new CompiledPolicy(config);
    policies.set(config, policy);
  }
  return policy;
}

class CompiledPolicy implements IdentityPolicy {
  readonly identityId: string;
  private readonly audiencePatterns: readonly string[];
  private readonly audiences: readonly Matcher[];
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
    if (this.audiences.length > 0 && !audienceMatches(ownValue(payload, 'aud'), this.audiences)) {
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
        ? { check: 'audience', pass: true, expected: [], actual: aud }
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
 * When a glob failed only because micromatch's `*` stops at `/`, suggest the pattern that would
 * match. The "would it match if `*` crossed `/`" test uses a linear-time matcher, never a merged
 * micromatch regex (that would undo the backtracking caps).
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
    if (globProblem(candidate) === undefined && matchesGlob(value, candidate)) {
      return (
        `"*" does not match "/" in micromatch; "${candidate}" would match, ` +
        'but "**" crosses "/" and so also matches every deeper value (any branch, any subgroup)'
      );
    }
  }
  return (
    '"*" does not match "/" in micromatch, and "**" crosses "/" only as a whole segment (a/**/b); ' +
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
