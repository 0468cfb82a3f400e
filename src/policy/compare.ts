import { ConfigError } from '../errors.js';
import { GLOB_LIMITS } from './match.js';
import type { ClaimMatch } from './types.js';
import { RULE_LIMITS } from './limits.js';

// Typed comparisons of a rule's claim bindings, for where globs are the wrong tool: `equals` and
// `oneOf` compare exact strings (nothing in them is a wildcard), `in` compares integer ids
// numerically. No regex and no user code: a comparison is a string equality, a Set lookup or an
// integer equality, so its cost does not depend on what the values spell.

/** A typed comparison compiled for the login path. */
export interface Comparison {
  /** Whether a claim value matches (an array: any scalar element, at most `maxArrayElements`). */
  test(value: unknown): boolean;
  /** The binding as configured, for `explain`. */
  readonly expected: ClaimMatch;
}

/** The canonical decimal form of a safe integer: no sign on 0, no leading zeros, no `+`, `.`, `e`. */
const INTEGER_TEXT = /^(0|-?[1-9][0-9]{0,15})$/;

/**
 * A claim value as an integer id, or `undefined`: a number that is a safe integer, or a string in
 * canonical decimal form whose value is a safe integer. `"0123"`, `"1e3"`, `"12.0"`, `" 12"`, `12.5`
 * and anything past 2^53 - 1 (which a JSON parser may already have rounded) are not integer ids.
 */
export function integerId(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isSafeInteger(value) ? value : undefined;
  if (typeof value !== 'string' || !INTEGER_TEXT.test(value)) return undefined;
  const n = Number(value);
  return Number.isSafeInteger(n) ? n : undefined;
}

/** A scalar claim value as the string `equals`/`oneOf` compare: strings, finite numbers, booleans. */
function exactText(value: unknown): string | undefined {
  switch (typeof value) {
    case 'string':
      return value;
    case 'number':
      return Number.isFinite(value) ? String(value) : undefined;
    case 'boolean':
      return String(value);
    default:
      return undefined;
  }
}

/** Whether a rule's claim binding is a typed comparison (an object) rather than globs. */
export function isTypedInput(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Validate and normalise a typed comparison at config time.
 *
 * @param field e.g. `rules[2].claims["repository_id"]`.
 * @throws {ConfigError}
 */
export function parseComparison(input: Record<string, unknown>, field: string, id: string): ClaimMatch {
  const keys = Object.keys(input);
  if (keys.length !== 1 || !['equals', 'oneOf', 'in'].includes(keys[0] as string)) {
    throw new ConfigError(field, 'must be globs, or exactly one of { equals }, { oneOf } or { in }', id);
  }
  const key = keys[0] as 'equals' | 'oneOf' | 'in';
  const value = input[key];
  if (key === 'equals') return Object.freeze({ equals: exactString(value, `${field}.equals`, id) });
  if (!Array.isArray(value) || value.length === 0) {
    throw new ConfigError(`${field}.${key}`, 'must be a non-empty array', id);
  }
  const max = key === 'oneOf' ? RULE_LIMITS.maxOneOf : RULE_LIMITS.maxIn;
  if (value.length > max) throw new ConfigError(`${field}.${key}`, `has more than ${max} values`, id);
  if (key === 'oneOf') {
    const list = [...new Set(value.map((v: unknown, i) => exactString(v, `${field}.oneOf[${i}]`, id)))];
    return Object.freeze({ oneOf: Object.freeze(list) });
  }
  const ids = value.map((v: unknown, i) => {
    if (typeof v !== 'number' || !Number.isSafeInteger(v)) {
      throw new ConfigError(
        `${field}.in[${i}]`,
        'must be an integer (a JSON number between -(2^53 - 1) and 2^53 - 1); numeric ids compare exactly',
        id,
      );
    }
    return v === 0 ? 0 : v;
  });
  return Object.freeze({ in: Object.freeze([...new Set(ids)]) });
}

function exactString(value: unknown, field: string, id: string): string {
  if (typeof value !== 'string' || value === '')
    throw new ConfigError(field, 'must be a non-empty string', id);
  if (value.length > GLOB_LIMITS.maxValueLength) {
    throw new ConfigError(field, `is longer than ${GLOB_LIMITS.maxValueLength} characters`, id);
  }
  if (value.trim() !== value) {
    throw new ConfigError(field, 'has leading or trailing whitespace, so it would never match', id);
  }
  return value;
}

/** Compile a normalised typed comparison (no closure is allocated per test: this is the login path). */
export function compileComparison(match: Exclude<ClaimMatch, readonly string[]>): Comparison {
  if ('equals' in match) return new EqualsComparison(match);
  if ('oneOf' in match) return new OneOfComparison(match);
  return new InComparison(match);
}

abstract class ScalarComparison implements Comparison {
  constructor(readonly expected: ClaimMatch) {}
  abstract scalar(value: unknown): boolean;
  test(value: unknown): boolean {
    if (!Array.isArray(value)) return this.scalar(value);
    if (value.length > GLOB_LIMITS.maxArrayElements) return false;
    for (let i = 0; i < value.length; i++) if (this.scalar(value[i])) return true;
    return false;
  }
}

class EqualsComparison extends ScalarComparison {
  readonly #want: string;
  constructor(match: { readonly equals: string }) {
    super(match);
    this.#want = match.equals;
  }
  scalar(value: unknown): boolean {
    return typeof value === 'string' ? value === this.#want : exactText(value) === this.#want;
  }
}

class OneOfComparison extends ScalarComparison {
  readonly #set: ReadonlySet<string>;
  constructor(match: { readonly oneOf: readonly string[] }) {
    super(match);
    this.#set = new Set(match.oneOf);
  }
  scalar(value: unknown): boolean {
    const text = typeof value === 'string' ? value : exactText(value);
    return text !== undefined && this.#set.has(text);
  }
}

class InComparison extends ScalarComparison {
  readonly #ids: ReadonlySet<number>;
  constructor(match: { readonly in: readonly number[] }) {
    super(match);
    this.#ids = new Set(match.in);
  }
  scalar(value: unknown): boolean {
    const n = integerId(value);
    return n !== undefined && this.#ids.has(n);
  }
}

/** Why a typed comparison failed, in words (explain). */
export function comparisonProblem(match: Exclude<ClaimMatch, readonly string[]>, value: unknown): string {
  if (value === null || (typeof value === 'object' && !Array.isArray(value))) {
    return 'the value is an object or null: only strings, numbers, booleans and arrays of them match';
  }
  if (Array.isArray(value) && value.length > GLOB_LIMITS.maxArrayElements) {
    return `the array has more than ${GLOB_LIMITS.maxArrayElements} elements, which never matches`;
  }
  if ('in' in match) {
    return 'no integer id in the list equals the value (a number, or a canonical decimal string, up to 2^53 - 1)';
  }
  return 'equals' in match ? 'the value is not exactly this string' : 'the value is none of these strings';
}
