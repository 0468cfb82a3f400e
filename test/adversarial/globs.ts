import fc from 'fast-check';
import { GLOB_LIMITS, validateGlob } from '../../src/policy.js';

/** Whether config validation accepts a bound pattern. */
export function accepted(pattern: string): boolean {
  try {
    validateGlob(pattern, 'pattern');
    return true;
  } catch {
    return false;
  }
}

/** A pattern piece and a piece of a value it matches. */
type Piece = readonly [pattern: string, instance: string];

const literal = fc
  .constantFrom('a', 'b', '-', ':', '.', 'x', '@', '_', 'refs', 'heads', 'main', 'repo', 'acme')
  .map((l): Piece => [l, l]);
const token: fc.Arbitrary<Piece> = fc.oneof(
  { weight: 5, arbitrary: literal },
  { weight: 4, arbitrary: fc.constantFrom<Piece>(['*', 'a'], ['*', 'x-y'], ['*', '.b']) },
  { weight: 1, arbitrary: fc.constant<Piece>(['?', 'q']) },
  {
    weight: 1,
    arbitrary: fc.constantFrom<Piece>(['[a-z]', 'k'], ['[^a]', 'b'], ['[-a]', '-'], ['[]a]', ']']),
  },
  { weight: 1, arbitrary: fc.constantFrom<Piece>(['\\*', '*'], ['\\?', '?'], ['\\[', '[']) },
  {
    weight: 1,
    arbitrary: fc.constantFrom<Piece>(['{a,b}', '{a,b}'], ['{1..9}', '{1..9}'], ['+', '+'], ['{', '{']),
  },
);
const segment: fc.Arbitrary<Piece> = fc.oneof(
  { weight: 1, arbitrary: fc.constantFrom<Piece>(['**', 'a'], ['**', 'a/b']) },
  {
    weight: 6,
    arbitrary: fc
      .array(token, { minLength: 1, maxLength: 7 })
      .map((t): Piece => [t.map(([p]) => p).join(''), t.map(([, v]) => v).join('')]),
  },
);

/**
 * A bound pattern as config validation accepts it (up to 8 `/` segments of literals, `*`, `**`,
 * `?`, classes, escapes and literal braces), with a value it must match.
 */
export const acceptedPatternWithMatch: fc.Arbitrary<Piece> = fc
  .array(segment, { minLength: 1, maxLength: 8 })
  .map((segments): Piece => [segments.map(([p]) => p).join('/'), segments.map(([, v]) => v).join('/')])
  .filter(([pattern]) => accepted(pattern));

/** Bound patterns as config validation accepts them. */
export const acceptedPattern: fc.Arbitrary<string> = acceptedPatternWithMatch.map(([pattern]) => pattern);

/** Literal characters of a pattern, plus `/`, `-` and `a`: what values that provoke backtracking are made of. */
export function piecesOf(pattern: string): string[] {
  const literals = pattern.replace(/[*?[\]\\{}]/g, '');
  return [...new Set([...literals, '/', '-', 'a'])];
}

/**
 * Claim values up to the value cap (and a little over) built to make a backtracking matcher work:
 * long runs of one piece of the pattern, runs ending in a different piece, random mixes, and the
 * pattern itself with each wildcard blown up into a long run (a near miss).
 */
export function adversarialValue(pattern: string): fc.Arbitrary<string> {
  const pieces = piecesOf(pattern);
  const piece = fc.constantFrom(...pieces);
  const cap = GLOB_LIMITS.maxValueLength;
  const length = fc.oneof(fc.constantFrom(cap, cap - 1, cap + 1), fc.integer({ min: 1, max: cap }));
  return fc.oneof(
    fc.tuple(piece, length).map(([p, n]) => p.repeat(n).slice(0, n)),
    fc.tuple(piece, piece, length).map(([p, q, n]) => p.repeat(n).slice(0, n - 1) + q),
    fc.tuple(piece, piece, length).map(([p, q, n]) => (p + q).repeat(n).slice(0, n)),
    fc.string({ unit: piece, maxLength: cap }),
    fc.tuple(piece, fc.integer({ min: 1, max: 400 }), fc.boolean()).map(([p, n, miss]) => {
      const blown = pattern
        .replace(/\\(.)/g, '$1')
        .replace(/\*+|\?|\[[^\]]*\]/g, () => p.repeat(n))
        .slice(0, cap);
      return miss ? `${blown.slice(0, -1)}\u0000` : blown;
    }),
  );
}

/** A pattern with values crafted against it. */
export const patternAndValues = acceptedPattern.chain((pattern) =>
  fc.tuple(fc.constant(pattern), fc.array(adversarialValue(pattern), { minLength: 1, maxLength: 8 })),
);

/** Hand-made worst cases at the edge of the caps (each is accepted). */
export const EDGE_PATTERNS = [
  '*a*',
  '*a*/**',
  '**/*-*',
  '**/*a*b',
  '*-*/**/x',
  'refs/heads/*-*',
  'a*/b*/c*/d*/e*/f*/g*/h*',
  'a*/*/*/*/*/*/*/*',
  '**/a/**',
  'x?*?*',
  '[a-z]*[a-z]*',
  '*\\**',
  '{a,b}'.repeat(20),
  'x'.repeat(GLOB_LIMITS.maxPatternLength),
];
