import fc from 'fast-check';
import { GLOB_LIMITS, validateGlob } from '../../src/policy/match.js';

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
  .constantFrom(
    'a',
    'b',
    '-',
    ':',
    '.',
    'x',
    '@',
    '_',
    'refs',
    'heads',
    'main',
    'repo',
    'acme',
    '{',
    '}',
    '+',
    ',',
    ']',
    'é',
    '😀',
    'a!',
    'a b',
  )
  .map((l): Piece => [l, l]);
const token: fc.Arbitrary<Piece> = fc.oneof(
  { weight: 6, arbitrary: literal },
  {
    weight: 4,
    arbitrary: fc.constantFrom<Piece>(
      ['*', 'a'],
      ['*', 'x-y'],
      ['*', '.b'],
      ['*', ''],
      ['*', '[*]\\'],
      ['*', '😀'],
    ),
  },
  { weight: 1, arbitrary: fc.constantFrom<Piece>(['?', 'q'], ['?', '?'], ['?', '😀'], ['?', '\\']) },
  {
    weight: 1,
    arbitrary: fc.constantFrom<Piece>(
      ['[a-z]', 'k'],
      ['[0-9]', '7'],
      ['[-a]', '-'],
      ['[a-]', '-'],
      ['[._-]', '_'],
      ['[A-Fx]', 'x'],
      ['[a-cX-Z0-2]', 'Y'],
    ),
  },
  {
    weight: 1,
    arbitrary: fc.constantFrom<Piece>(
      ['\\*', '*'],
      ['\\?', '?'],
      ['\\[', '['],
      ['\\]', ']'],
      ['\\\\', '\\'],
      ['\\(', '('],
      ['\\|', '|'],
      ['\\!', '!'],
    ),
  },
);
const segment: fc.Arbitrary<Piece> = fc.oneof(
  { weight: 1, arbitrary: fc.constantFrom<Piece>(['**', 'a'], ['**', 'a/b'], ['**', '.github/x']) },
  { weight: 1, arbitrary: fc.constant<Piece>(['', '']) },
  {
    weight: 6,
    arbitrary: fc
      .array(token, { minLength: 1, maxLength: 7 })
      // No "*" or "?" fills an empty, "." or ".." segment: such an instance is not a match.
      .filter((t) => {
        const instance = t.map(([, v]) => v).join('');
        return !t.some(([p]) => p === '*' || p === '?') || !['', '.', '..'].includes(instance);
      })
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
  'x[a-z]*[a-z]*',
  '*\\**',
  '{a,b}'.repeat(20),
  'x'.repeat(GLOB_LIMITS.maxPatternLength),
];

/** Characters probing values are made of: separators, glob syntax, dots, escapes, non-ASCII. */
const probeChar = fc.constantFrom(
  ...[
    'a',
    'b',
    'x',
    'k',
    '7',
    '_',
    '-',
    '.',
    '/',
    '/',
    '\\',
    '[',
    ']',
    '*',
    '?',
    '!',
    '{',
    '}',
    ' ',
    'é',
    '😀',
  ],
);

/** Insert `text` at a position of `value` chosen by `at` (code-point positions). */
function insertAt(value: string, at: number, text: string): string {
  const chars = [...value];
  const i = chars.length === 0 ? 0 : at % (chars.length + 1);
  return [...chars.slice(0, i), text, ...chars.slice(i)].join('');
}

/**
 * Values that probe where a pattern's language ends (issue 13.7): its instance, the raw pattern text,
 * the instance with a trailing, leading, doubled or inserted `/`, a segment emptied or made `.`/`..`,
 * a character dropped, doubled or swapped for glob syntax, and random strings of separators, glob
 * syntax and non-ASCII.
 */
export function probeValue(pattern: string, instance: string): fc.Arbitrary<string> {
  const segments = instance.split('/');
  return fc.oneof(
    fc.constantFrom(instance, pattern, `${instance}/`, `/${instance}`, instance.replace('/', '//')),
    fc.tuple(fc.nat(), probeChar).map(([at, c]) => insertAt(instance, at, c)),
    fc.tuple(fc.nat(), fc.constantFrom('', '.', '..', 'a/b')).map(([at, s]) => {
      const copy = [...segments];
      copy[at % copy.length] = s;
      return copy.join('/');
    }),
    fc.nat().map((at) => {
      const chars = [...instance];
      chars.splice(at % Math.max(1, chars.length), 1);
      return chars.join('');
    }),
    fc.nat().map((at) => {
      const chars = [...instance];
      const i = at % Math.max(1, chars.length);
      return [...chars.slice(0, i + 1), ...chars.slice(i)].join('');
    }),
    fc.string({ unit: probeChar, maxLength: 16 }),
  );
}

/**
 * Patterns of the documented language (not filtered by the caps or the "binds nothing" rule), each
 * with an instance: what property tests compare against the oracle.
 */
export const subsetPatternWithInstance: fc.Arbitrary<Piece> = fc
  .array(segment, { minLength: 1, maxLength: 5 })
  .map((segments): Piece => [segments.map(([p]) => p).join('/'), segments.map(([, v]) => v).join('/')]);

/** Strings of glob syntax and its neighbours, most of them outside the language. */
export const globSyntaxString: fc.Arbitrary<string> = fc.string({
  unit: fc.constantFrom(
    ...['a', 'b', 'z', 'A', '0', '9', '-', '.', '_', '/', '*', '*', '?', '[', ']', '^', '!', '\\', '(', ')'],
    ...['|', '{', '}', ',', '+', '@', ' ', '~', 'é', '😀', '\u0000'],
  ),
  minLength: 1,
  maxLength: 14,
});
