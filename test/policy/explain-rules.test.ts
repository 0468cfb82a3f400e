import { describe, expect, it } from 'vitest';
import { formatExplain } from '../../src/cli/explain-text.js';
import { parseIdentityConfig } from '../../src/trust/config.js';
import type { RuleInput } from '../../src/types.js';
import { githubIdentity, makeEngine } from '../helpers/engine.js';
import { githubClaims, makeKey, sign } from '../helpers/jwt.js';

const RULES: RuleInput[] = [
  { effect: 'deny', name: 'no-legacy', claims: { repository: 'acme-corp/legacy-*' } },
  { effect: 'allow', name: 'main', claims: { ref: { equals: 'refs/heads/main' }, ref_protected: 'true' } },
  { effect: 'allow', name: 'tags', claims: { ref: 'refs/tags/v*' } },
];

async function explainWith(
  claims: Record<string, unknown>,
  extra: Partial<Parameters<typeof githubIdentity>[1]> = {},
) {
  const key = makeKey('RS256');
  const identity = githubIdentity(key, {
    boundSubject: undefined,
    boundClaims: undefined,
    rules: RULES,
    ...extra,
  });
  const { auth, clock } = makeEngine({ key, identities: [identity] });
  const report = await auth.explain({
    identityId: 'gh-deployer',
    jwt: await sign(key, githubClaims(clock.ms, claims)),
  });
  await auth.close();
  const text = formatExplain(report, parseIdentityConfig(identity), {
    source: 'test',
    fetches: [],
    clientIp: undefined,
  });
  return { report, text };
}

describe('explain with rules', () => {
  it('names the allow rule that allowed, and for each rule that failed its first failing binding', async () => {
    const { report, text } = await explainWith({});
    expect(report.ok).toBe(true);
    expect(report.decidedBy).toBe('main');
    const rules = report.checks.filter((c) => c.check.startsWith('rule:'));
    expect(rules.map((c) => [c.check, c.pass, c.rule?.matched, c.rule?.decided])).toEqual([
      ['rule:no-legacy', true, false, false],
      ['rule:main', true, true, true],
      ['rule:tags', false, false, false],
    ]);
    expect(rules[0]!.failed).toMatchObject({ check: 'claim:repository', actual: 'acme-corp/payments-api' });
    expect(rules[2]!.failed).toMatchObject({
      check: 'claim:ref',
      actual: 'refs/heads/main',
      expected: ['refs/tags/v*'],
    });
    expect(text).toContain('rule main');
    expect(text).toContain('allow rule matches: it allows the login');
    expect(text).toContain('first failing binding: claim ref: no bound pattern matches');
    expect(text).toContain('Decided by rule "main".');
  });

  it('names the deny rule that denied, with reason denied_by_rule', async () => {
    const { report, text } = await explainWith({ repository: 'acme-corp/legacy-app' });
    expect(report).toMatchObject({ ok: false, reasonCode: 'denied_by_rule', decidedBy: 'no-legacy' });
    expect(text).toContain('deny rule matches: it denies the login (deny always wins)');
    expect(text).toContain('Login would FAIL with reason denied_by_rule');
  });

  it('no allow rule matching: no_rule_matched, and each allow rule shows its first failing binding (typed comparisons too)', async () => {
    const { report, text } = await explainWith({ ref: 'refs/heads/dev' });
    expect(report.reasonCode).toBe('no_rule_matched');
    expect(report.decidedBy).toBeUndefined();
    const main = report.checks.find((c) => c.check === 'rule:main');
    expect(main?.failed).toMatchObject({
      check: 'claim:ref',
      expected: [{ equals: 'refs/heads/main' }],
      actual: 'refs/heads/dev',
      reason: 'the value is not exactly this string',
    });
    expect(text).toContain('expected  {"equals":"refs/heads/main"}');
  });

  it('audit mode: reports what the candidate rules would decide', async () => {
    const { report, text } = await explainWith(
      {},
      {
        candidateRules: [
          { effect: 'deny', name: 'freeze', claims: { repository_owner: 'acme-corp' } },
          ...RULES,
        ],
      },
    );
    expect(report.ok).toBe(true);
    expect(report.candidate).toEqual({ outcome: 'deny', decidedBy: 'freeze', reasonCode: 'denied_by_rule' });
    expect(text).toContain(
      'Candidate rules (audit mode, never the answer) would DENY by rule "freeze" (denied_by_rule).',
    );
  });
});
