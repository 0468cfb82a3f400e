import { describe, expect, it } from 'vitest';
import { parseIdentityConfig } from '../../src/trust/config.js';
import { GLOB_LIMITS, compileIdentityPolicy, matchesGlob, validateGlob } from '../../src/policy/match.js';

const base = {
  identityId: 'budget',
  publicKeys: undefined,
  jwksUrl: 'https://idp.example.com/jwks',
  boundIssuer: 'https://idp.example.com',
};

describe('GLOB-05: glob matching per login is bounded', () => {
  it('many wildcard patterns against a long array claim stop at the budget and deny', () => {
    const patterns = Array.from({ length: 64 }, (_, i) => `*-*/**/x${i}`);
    const policy = compileIdentityPolicy(
      parseIdentityConfig({ ...base, boundClaims: { branches: patterns } }),
    );
    const hostile = Array.from({ length: 200 }, () => '-'.repeat(1000));
    const started = process.hrtime.bigint();
    expect(policy.check({ branches: hostile })).toEqual({
      ok: false,
      code: 'claim_not_allowed',
      claim: 'branches',
    });
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    // Without the budget this is 12,800 matches of 1,000 characters (seconds of CPU).
    expect(ms).toBeLessThan(2000);
  });

  it('the budget is per check: a legitimate token right after a hostile one still matches', () => {
    const policy = compileIdentityPolicy(
      parseIdentityConfig({ ...base, boundClaims: { ref: ['refs/heads/release-*', 'refs/tags/v*'] } }),
    );
    expect(
      policy.check({ ref: Array.from({ length: 256 }, () => 'refs/heads/' + 'a'.repeat(1000)) }).ok,
    ).toBe(false);
    expect(policy.check({ ref: 'refs/tags/v1.2.3' })).toEqual({ ok: true });
  });

  it('a match that fits the budget is unaffected, even on the last characters of it', () => {
    const policy = compileIdentityPolicy(parseIdentityConfig({ ...base, boundClaims: { tags: ['keep-*'] } }));
    const count = Math.floor(GLOB_LIMITS.maxGlobCharsPerCheck / 1000) - 1;
    const tags = [...Array.from({ length: count }, () => 'x'.repeat(1000)), 'keep-me'];
    expect(tags.length).toBeLessThanOrEqual(GLOB_LIMITS.maxArrayElements);
    expect(policy.check({ tags })).toEqual({ ok: true });
  });

  it('GLOB-01: "***" is refused; a leading "./" is literal (no matcher strips it)', () => {
    expect(() => validateGlob('***a/\\*a/a', 'p')).toThrow(/\*\*\*/);
    expect(() => validateGlob('./x*', 'p')).not.toThrow();
    expect(matchesGlob('./xa', './x*')).toBe(true);
    expect(matchesGlob('xa', './x*')).toBe(false);
    expect(() => validateGlob('x/**/y*', 'p')).not.toThrow();
  });
});
