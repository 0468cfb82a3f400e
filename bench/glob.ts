/**
 * Glob worst case (GLOB-05): random patterns that config validation accepts, matched against
 * adversarial claim values up to the value cap, plus hand-made patterns at the edge of the caps,
 * plus whole logins against an identity with as many such patterns as a config may hold.
 *
 * `npx tsx bench/glob.ts [--patterns 400] [--values 12] [--seed 42]`
 *
 * Prints max, p99 and median of one match in ms, and the worst pattern/value shapes found.
 */
import { generateKeyPairSync } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import fc from 'fast-check';
import type { JWK } from 'jose';
import { GLOB_LIMITS, compileIdentityPolicy, matchesGlob } from '../src/policy/match.js';
import { parseIdentityConfig } from '../src/trust/config.js';
import { EDGE_PATTERNS, accepted, acceptedPattern, adversarialValue } from '../test/adversarial/globs.js';
import { fmt } from './lib/stats.js';

const { values: args } = parseArgs({
  options: {
    patterns: { type: 'string', default: '400' },
    values: { type: 'string', default: '12' },
    seed: { type: 'string', default: '42' },
  },
});
const patternCount = Number(args.patterns);
const valuesPerPattern = Number(args.values);
const seed = Number(args.seed);

interface Sample {
  ms: number;
  pattern: string;
  value: string;
}

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

/** One match in ms: the least of `runs` runs, so a GC pause or a preempted core is not counted. */
function time(pattern: string, value: string, runs = 1): Sample {
  let ms = Infinity;
  for (let i = 0; i < runs; i++) {
    const started = performance.now();
    matchesGlob(value, pattern);
    ms = Math.min(ms, performance.now() - started);
  }
  return { ms, pattern, value };
}

const shape = (text: string, max = 60) => {
  const shown = JSON.stringify(text.length > max ? `${text.slice(0, max)}…` : text);
  return `${shown} (${text.length} chars)`;
};

function report(title: string, samples: Sample[]): void {
  const sorted = samples.map((s) => s.ms).sort((a, b) => a - b);
  const worst = samples.reduce((a, b) => (b.ms > a.ms ? b : a));
  console.log(`\n## ${title}`);
  console.log(`matches: ${fmt(samples.length)}`);
  console.log(
    `per match ms: max ${fmt(worst.ms, 3)}, p99 ${fmt(percentile(sorted, 99), 3)}, ` +
      `p50 ${fmt(percentile(sorted, 50), 4)}`,
  );
  console.log(`worst: pattern ${shape(worst.pattern)} vs value ${shape(worst.value)}`);
}

// Warm the JIT and the matcher cache so the first samples do not measure compilation.
for (let i = 0; i < 2_000; i++) matchesGlob(`a${i % 7}`, 'a*');

// Cold: the first run of each value (includes compiling a fresh pattern, V8 running a new regexp in
// its interpreter before compiling it to native code, and any scheduler noise). Warm: the least of
// three more runs.
const patterns = fc.sample(acceptedPattern, { numRuns: patternCount, seed });
const cold: Sample[] = [];
const random: Sample[] = [];
patterns.forEach((pattern, i) => {
  for (const value of fc.sample(adversarialValue(pattern), { numRuns: valuesPerPattern, seed: seed + i })) {
    cold.push(time(pattern, value));
    random.push(time(pattern, value, 3));
  }
});
report(
  `random accepted patterns (${patterns.length}) × adversarial values (${valuesPerPattern} each), cold`,
  cold,
);
report(
  `random accepted patterns (${patterns.length}) × adversarial values (${valuesPerPattern} each), warm`,
  random,
);

const edge: Sample[] = [];
for (const pattern of EDGE_PATTERNS) {
  if (!accepted(pattern)) throw new Error(`edge pattern refused: ${pattern}`);
  for (const value of fc.sample(adversarialValue(pattern), { numRuns: 60, seed })) {
    time(pattern, value);
    edge.push(time(pattern, value, 3));
  }
}
report(`edge-of-the-caps patterns (${EDGE_PATTERNS.length}) × 60 values, warm`, edge);

// A whole login's matching: a binding holding as many patterns as a config takes (64), each a
// variant of a costly accepted shape, against a token whose bound claim is an array of a costly
// value repeated as often as the 16 KiB token cap allows (about 11 KB of claim text).
function variantsOf(pattern: string): string[] {
  const out: string[] = [];
  for (let i = 0; out.length < 64 && i < 10_000; i++) {
    const candidate = `${pattern}${i.toString(36)}`;
    if (accepted(candidate) && !out.includes(candidate)) out.push(candidate);
  }
  return out;
}

function loginCost(title: string, pattern: string, value: string): void {
  const variants = variantsOf(pattern);
  const copies = Math.max(1, Math.floor(11_000 / (value.length + 3)));
  const policy = compileIdentityPolicy(
    parseIdentityConfig({
      identityId: 'bench',
      publicKeys: [generateKeyPairSync('ed25519').publicKey.export({ format: 'jwk' }) as JWK],
      boundIssuer: 'https://issuer.example',
      boundSubject: variants,
      boundClaims: { ref: variants },
    }),
  );
  const measure = (payload: Record<string, unknown>) => {
    const out: number[] = [];
    for (let i = 0; i < 5; i++) {
      const started = performance.now();
      policy.check(payload);
      out.push(performance.now() - started);
    }
    return out.sort((a, b) => a - b);
  };
  const one = measure({ sub: value });
  const many = measure({ sub: variants[0], ref: Array.from({ length: copies }, () => value) });
  console.log(`\n## one login, ${title}: ${variants.length} variants of ${shape(pattern)} per binding`);
  console.log(`value ${shape(value, 20)}`);
  console.log(`subject = the value: p50 ${fmt(percentile(one, 50), 1)} ms, max ${fmt(one.at(-1)!, 1)} ms`);
  console.log(
    `array claim = ${copies} × the value: p50 ${fmt(percentile(many, 50), 1)} ms, max ${fmt(many.at(-1)!, 1)} ms`,
  );
}

const worst = [...random, ...edge].reduce((a, b) => (b.ms > a.ms ? b : a));
loginCost('costliest pair found', worst.pattern, worst.value);
loginCost('edge shape', '*-*/**/x', '-'.repeat(GLOB_LIMITS.maxValueLength));
console.log(
  `\ncaps: pattern ≤ ${GLOB_LIMITS.maxPatternLength} chars, value ≤ ${GLOB_LIMITS.maxValueLength} chars, ` +
    `≤ ${GLOB_LIMITS.maxWildcards} wildcards, ≤ ${GLOB_LIMITS.maxStarsPerSegment} "*" per segment, ` +
    `≤ ${GLOB_LIMITS.maxAmbiguousWildcards} ambiguous segments; Node ${process.version}, seed ${seed}`,
);
