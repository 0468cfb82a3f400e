import { describe, expect, it } from 'vitest';
import { parseIdentityConfig } from '../../src/trust/config.js';
import { ConfigError } from '../../src/errors.js';
import { GLOB_LIMITS, compileIdentityPolicy } from '../../src/policy/match.js';
import { RULE_LIMITS } from '../../src/policy/limits.js';
import type { RuleInput } from '../../src/types.js';

const ISS = 'https://token.actions.githubusercontent.com';
const parse = (rules: unknown, extra: Record<string, unknown> = {}) =>
  parseIdentityConfig({ identityId: 'adv', oidcDiscoveryUrl: ISS, boundIssuer: ISS, rules, ...extra });
function refused(rules: unknown, extra: Record<string, unknown> = {}): ConfigError {
  try {
    parse(rules, extra);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return error as ConfigError;
  }
  throw new Error('expected a ConfigError');
}
/** A glob at the ambiguity caps: two `*` in one segment plus a `**` segment. */
const HEAVY = 'acme/**/x*y*z';

describe('adversarial rules: caps at config time', () => {
  it('a rule list at maxRules is accepted; one more is refused', () => {
    const rule = (i: number): RuleInput => ({ effect: 'allow', name: `r${i}`, subject: `repo:acme/r${i}:*` });
    expect(parse(Array.from({ length: RULE_LIMITS.maxRules }, (_, i) => rule(i))).rules).toHaveLength(64);
    expect(refused(Array.from({ length: RULE_LIMITS.maxRules + 1 }, (_, i) => rule(i))).field).toBe('rules');
  });

  it('oneOf and in at their caps are accepted; one more is refused', () => {
    const values = Array.from({ length: RULE_LIMITS.maxOneOf }, (_, i) => `v${i}`);
    expect(() => parse([{ effect: 'allow', claims: { c: { oneOf: values } } }])).not.toThrow();
    expect(refused([{ effect: 'allow', claims: { c: { oneOf: [...values, 'x'] } } }]).field).toBe(
      'rules[0].claims.c.oneOf',
    );
    const ids = Array.from({ length: RULE_LIMITS.maxIn + 1 }, (_, i) => i);
    expect(refused([{ effect: 'allow', claims: { c: { in: ids } } }]).field).toBe('rules[0].claims.c.in');
  });

  it('the per-identity totals bound rules × claims × values: bindings, globs and comparison values', () => {
    // 16 rules × 32 claims = 512 bindings: accepted; one more binding is refused
    const claims = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, j) => [`c${j}`, 'v']));
    const many = Array.from({ length: 16 }, (): RuleInput => ({ effect: 'allow', claims: claims(32) }));
    expect(() => parse(many)).not.toThrow();
    expect(refused([...many, { effect: 'deny', subject: 'x' }]).message).toContain('512 bindings');
    // 32 rules × 64 globs = 2048 globs: accepted; one more is refused
    const globs = (n: number, i: number) => Array.from({ length: n }, (_, j) => `repo:acme/${i}-${j}-*`);
    const wide = Array.from({ length: 32 }, (_, i): RuleInput => ({
      effect: 'allow',
      subject: globs(64, i),
    }));
    expect(() => parse(wide)).not.toThrow();
    expect(refused([...wide, { effect: 'deny', subject: 'x' }]).message).toContain('2048 globs');
    // 8 × 1024 comparison values: accepted; one more is refused (in candidateRules: the totals are shared)
    const oneOf = (i: number) => Array.from({ length: 1024 }, (_, j) => `${i}-${j}`);
    const big = Array.from({ length: 8 }, (_, i): RuleInput => ({
      effect: 'allow',
      claims: { c: { oneOf: oneOf(i) } },
    }));
    expect(() => parse(big)).not.toThrow();
    expect(
      refused(big, { candidateRules: [{ effect: 'allow', claims: { c: { equals: 'x' } } }] }).message,
    ).toContain('8192 equals/oneOf/in values');
  });

  it('globs in rules keep the glob language and its caps (negation, regex syntax, too many wildcards)', () => {
    for (const pattern of [
      '!acme/*',
      'acme/(a|b)',
      'a*b*c*d',
      '*/*',
      'a/**/**/b',
      'x'.repeat(GLOB_LIMITS.maxPatternLength + 1),
    ]) {
      expect(refused([{ effect: 'allow', subject: pattern }]).field).toBe('rules[0].subject[0]');
    }
    expect(() => parse([{ effect: 'allow', subject: HEAVY }])).not.toThrow();
  });

  it('hostile claim paths and rule shapes are refused, never evaluated', () => {
    expect(refused([{ effect: 'allow', claims: { __proto__: 'x' } }]).field).toBe('rules[0]'); // JSON-less __proto__ sets the prototype: no claims at all
    expect(refused(JSON.parse('[{"effect":"allow","claims":{"__proto__":"x"}}]')).field).toBe(
      'rules[0].claims.__proto__',
    );
    expect(refused([{ effect: 'allow', claims: { 'a.constructor.b': 'x' } }]).field).toBe(
      'rules[0].claims["a.constructor.b"]',
    );
    expect(refused([{ effect: 'allow', claims: { c: { equals: { toString: 'x' } } } }]).field).toBe(
      'rules[0].claims.c.equals',
    );
    expect(refused([[{ effect: 'allow', subject: 'x' }]]).field).toBe('rules[0]');
    expect(refused([{ effect: 'allow', subject: 'x', claims: [] }]).field).toBe('rules[0].claims');
    expect(refused([{ effect: 'allow', subject: 'x', name: 'a\nb' }]).field).toBe('rules[0].name');
  });
});

describe('adversarial rules: evaluation stays bounded and fails closed', () => {
  it('a config at the caps against a token of long array claims: the shared glob budget ends the work, and the answer is deny', () => {
    const rules: RuleInput[] = [
      ...Array.from({ length: 31 }, (_, i): RuleInput => ({
        effect: 'deny',
        name: `deny-${i}`,
        claims: { groups: Array.from({ length: 64 }, (_, j) => `${HEAVY}${i}-${j}`) },
      })),
      { effect: 'allow', name: 'team', claims: { team: { equals: 'core' } } },
    ];
    const policy = compileIdentityPolicy(parse(rules));
    const value = `acme/${'a/'.repeat(200)}${'x'.repeat(500)}`.slice(0, GLOB_LIMITS.maxValueLength);
    const groups = Array.from({ length: GLOB_LIMITS.maxArrayElements }, () => value);
    expect(policy.check({ iss: ISS, team: 'core', groups: ['x'] })).toEqual({ ok: true, rule: 'team' });
    // Without the budget this is 31 × 64 × 256 regex runs over 1 KiB values; with it, the check stops
    // and, as the deny rules could not all be decided, refuses.
    expect(policy.check({ iss: ISS, team: 'core', groups })).toEqual({ ok: false, code: 'no_rule_matched' });
  });

  it('a huge oneOf is a set lookup: the last value and a near miss are decided exactly', () => {
    const values = Array.from({ length: RULE_LIMITS.maxOneOf }, (_, i) => `acme/repo-${i}`);
    const policy = compileIdentityPolicy(
      parse([{ effect: 'allow', claims: { repository: { oneOf: values } } }]),
    );
    expect(policy.check({ iss: ISS, repository: 'acme/repo-1023' }).ok).toBe(true);
    expect(policy.check({ iss: ISS, repository: 'acme/repo-1024' }).ok).toBe(false);
    expect(policy.check({ iss: ISS, repository: ['x', 'acme/repo-0'] }).ok).toBe(true);
  });
});
