import { describe, expect, it } from 'vitest';
import { parseIdentityConfig } from '../../src/trust/config.js';
import { compileIdentityPolicy } from '../../src/policy/match.js';
import { integerId } from '../../src/policy/compare.js';
import type { ClaimMatchInput } from '../../src/types.js';

const ISS = 'https://token.actions.githubusercontent.com';
function matches(match: ClaimMatchInput, value: unknown): boolean {
  const config = parseIdentityConfig({
    identityId: 'cmp',
    oidcDiscoveryUrl: ISS,
    boundIssuer: ISS,
    rules: [{ effect: 'allow', claims: { v: match } }],
  });
  return compileIdentityPolicy(config).check({ iss: ISS, v: value }).ok;
}

describe('typed comparisons: in (numeric ids)', () => {
  it.each([
    [612345678, true],
    ['612345678', true],
    [612345679, false],
    ['0612345678', false], // not canonical: leading zero
    ['+612345678', false],
    [' 612345678', false],
    ['612345678 ', false],
    ['612345678.0', false],
    ['6.12345678e8', false],
    [612345678.5, false],
    ['612345678.5', false],
    [[1, 612345678], true], // an array claim: any element
    [['x', '612345678'], true],
    [[], false],
    [null, false],
    [{ id: 612345678 }, false],
    [true, false],
  ])('%j in [612345678] is %s', (value, expected) => {
    expect(matches({ in: [612345678] }, value)).toBe(expected);
  });

  it('ids beyond 2^53 - 1 never match (a JSON parser may already have rounded them): no float surprises', () => {
    expect(matches({ in: [9007199254740991] }, 9007199254740991)).toBe(true);
    expect(matches({ in: [9007199254740991] }, '9007199254740991')).toBe(true);
    expect(matches({ in: [9007199254740991] }, '9007199254740992')).toBe(false);
    // 9007199254740993 is read as 9007199254740992 by JSON.parse: refused, never equal to a neighbour
    expect(matches({ in: [9007199254740991] }, JSON.parse('9007199254740993'))).toBe(false);
    expect(matches({ in: [9007199254740991] }, '9007199254740993')).toBe(false);
    expect(integerId(2 ** 53)).toBeUndefined();
    expect(integerId('-0')).toBeUndefined();
    expect(integerId(-0)).toBe(-0);
    expect(integerId('-12')).toBe(-12);
    expect(integerId(0.1 + 0.2)).toBeUndefined();
    expect(integerId('1e3')).toBeUndefined();
    expect(integerId(1e3)).toBe(1000);
  });
});

describe('typed comparisons: equals and oneOf (exact strings, no wildcard)', () => {
  it('equals compares the exact string; "*" and "?" are plain characters', () => {
    expect(matches({ equals: 'refs/heads/main' }, 'refs/heads/main')).toBe(true);
    expect(matches({ equals: 'refs/heads/main' }, 'refs/heads/main2')).toBe(false);
    expect(matches({ equals: 'refs/heads/*' }, 'refs/heads/main')).toBe(false);
    expect(matches({ equals: 'refs/heads/*' }, 'refs/heads/*')).toBe(true);
    expect(matches({ equals: 'Main' }, 'main')).toBe(false);
  });

  it('numbers and booleans compare by their canonical string, as literal globs do', () => {
    expect(matches({ equals: 'true' }, true)).toBe(true);
    expect(matches({ equals: '12' }, 12)).toBe(true);
    expect(matches({ equals: '12' }, 12.0)).toBe(true);
    expect(matches({ equals: '012' }, 12)).toBe(false);
    expect(matches({ oneOf: ['1', '2'] }, 2)).toBe(true);
  });

  it('oneOf is a set lookup; arrays match when any element is in the set', () => {
    expect(matches({ oneOf: ['a', 'b'] }, 'b')).toBe(true);
    expect(matches({ oneOf: ['a', 'b'] }, 'c')).toBe(false);
    expect(matches({ oneOf: ['a', 'b'] }, ['c', 'a'])).toBe(true);
    expect(matches({ oneOf: ['a', 'b'] }, ['c', { a: 1 }])).toBe(false);
    expect(matches({ oneOf: ['__proto__'] }, 'constructor')).toBe(false);
  });

  it('an array claim longer than maxArrayElements never matches', () => {
    const long = Array.from({ length: 257 }, () => 'a');
    expect(matches({ oneOf: ['a'] }, long)).toBe(false);
    expect(matches({ oneOf: ['a'] }, long.slice(0, 256))).toBe(true);
  });
});
