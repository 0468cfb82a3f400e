/**
 * Rules (issue 14): a login checked against 20 rules (10 allow, 10 deny) against a one-rule login
 * (the flat bindings), in the same run, alternating rounds; and policy evaluation alone for both.
 * `node --expose-gc --import tsx bench/rules.ts [--quick] [--json]`.
 *
 * The 20-rule identity is written so every rule is evaluated on the login measured: no deny rule
 * matches (each fails on its last binding where it can), and the allow rule that matches is the last.
 */
import { parseArgs } from 'node:util';
import { createOidcAuth } from '../src/index.js';
import { parseIdentityConfig } from '../src/trust/config.js';
import { compileIdentityPolicy } from '../src/policy/match.js';
import type { RuleInput } from '../src/types.js';
import {
  benchIdentity,
  IDENTITY_ID,
  idpClaims,
  makeIdpKey,
  BENCH_RATE_LIMITS,
  SIGNING_KEYS,
  signIdpToken,
} from './lib/fixtures.js';
import { consumeSink, measureCase, microMarkdown, type MicroResult } from './lib/micro-harness.js';

const { values } = parseArgs({
  options: { quick: { type: 'boolean', default: false }, json: { type: 'boolean', default: false } },
});
const options = values.quick
  ? { batches: 5, batchMs: 20, warmupMs: 100 }
  : { batches: 15, batchMs: 60, warmupMs: 400 };
const rounds = values.quick ? 2 : 5;

/** 10 deny rules that do not match the bench token, 10 allow rules of which only the last matches. */
export function twentyRules(): RuleInput[] {
  const rules: RuleInput[] = [];
  for (let i = 0; i < 10; i++) {
    rules.push(
      i % 2 === 0
        ? {
            effect: 'deny',
            name: `deny-${i}`,
            claims: {
              repository_owner: 'acme-corp',
              repository: { oneOf: [`acme-corp/legacy-${i}`, `acme-corp/old-${i}`] },
            },
          }
        : {
            effect: 'deny',
            name: `deny-${i}`,
            subject: `repo:acme-corp/sandbox-${i}*:ref:refs/heads/*`,
            claims: { event_name: 'push' },
          },
    );
  }
  for (let i = 0; i < 9; i++) {
    rules.push({
      effect: 'allow',
      name: `allow-${i}`,
      claims: { repository_owner_id: { in: [81234567] }, ref: `refs/heads/release-${i}*` },
    });
  }
  rules.push({
    effect: 'allow',
    name: 'allow-main',
    subject: 'repo:acme-corp/*:ref:refs/heads/main',
    claims: { repository_id: { in: [612345678] }, ref_protected: 'true' },
  });
  return rules;
}

const key = makeIdpKey('RS256');
const jwt = await signIdpToken(key, idpClaims());
const payload = idpClaims() as Record<string, unknown>;
const oneRule = benchIdentity(key);
const twenty = benchIdentity(key, {
  identityId: 'gh-rules',
  boundSubject: undefined,
  boundClaims: undefined,
  rules: twentyRules(),
});
const oneConfig = parseIdentityConfig(oneRule);
const twentyConfig = parseIdentityConfig(twenty);
if (!compileIdentityPolicy(oneConfig).check(payload).ok) throw new Error('one-rule identity must allow');
const verdict = compileIdentityPolicy(twentyConfig).check(payload);
if (!verdict.ok || verdict.rule !== 'allow-main')
  throw new Error(`20-rule identity must allow by allow-main: ${JSON.stringify(verdict)}`);

const auth = createOidcAuth({
  identities: [oneRule, twenty],
  signingKeys: SIGNING_KEYS,
  rateLimits: BENCH_RATE_LIMITS,
});
await auth.login({ identityId: IDENTITY_ID, jwt, clientIp: '127.0.0.1' });
await auth.login({ identityId: 'gh-rules', jwt, clientIp: '127.0.0.1' });

const results: MicroResult[] = [];
results.push(
  await measureCase(
    {
      group: 'policy',
      name: 'check: one rule (flat bindings)',
      op: () => compileIdentityPolicy(oneConfig).check(payload),
    },
    options,
  ),
);
results.push(
  await measureCase(
    {
      group: 'policy',
      name: 'check: 20 rules (10 allow, 10 deny, last allow matches)',
      op: () => compileIdentityPolicy(twentyConfig).check(payload),
    },
    options,
  ),
);
const login = { one: [] as number[], twenty: [] as number[] };
const loginCpu = { one: [] as number[], twenty: [] as number[] };
for (let r = 0; r < rounds; r++) {
  // Alternate which goes first, so drift in the machine's load does not favour one.
  const order: Array<'one' | 'twenty'> = r % 2 === 0 ? ['one', 'twenty'] : ['twenty', 'one'];
  for (const which of order) {
    const identityId = which === 'one' ? IDENTITY_ID : 'gh-rules';
    const result = await measureCase(
      {
        group: 'login',
        name: `auth.login RS256, ${which === 'one' ? 'one rule' : '20 rules'} (round ${r + 1})`,
        op: () => auth.login({ identityId, jwt, clientIp: '127.0.0.1' }),
      },
      options,
    );
    results.push(result);
    login[which].push(1e9 / result.wallNs);
    loginCpu[which].push(result.cpuNs);
  }
}
await auth.close();
void consumeSink();

const median = (list: number[]) => [...list].sort((a, b) => a - b)[list.length >> 1]!;
const summary = {
  policyOneRuleUs: results[0]!.wallNs / 1000,
  policyTwentyRulesUs: results[1]!.wallNs / 1000,
  loginOneRulePerSecond: median(login.one),
  loginTwentyRulesPerSecond: median(login.twenty),
  ratio: median(login.twenty) / median(login.one),
  /** Logins per CPU-second, 20 rules against one rule: less sensitive than wall time to other processes. */
  cpuRatio: median(loginCpu.one) / median(loginCpu.twenty),
  policyCpuOneRuleUs: results[0]!.cpuNs / 1000,
  policyCpuTwentyRulesUs: results[1]!.cpuNs / 1000,
};
if (values.json) {
  process.stdout.write(`${JSON.stringify({ summary, results }, null, 2)}\n`);
} else {
  process.stdout.write(`${microMarkdown(results)}\n`);
  process.stdout.write(
    `policy evaluation, 20 rules: ${summary.policyTwentyRulesUs.toFixed(2)} µs (one rule: ${summary.policyOneRuleUs.toFixed(2)} µs); target < 5 µs\n` +
      `policy evaluation CPU time, 20 rules: ${summary.policyCpuTwentyRulesUs.toFixed(2)} µs (one rule: ${summary.policyCpuOneRuleUs.toFixed(2)} µs)\n` +
      `login/s, median of ${rounds} alternating rounds: one rule ${summary.loginOneRulePerSecond.toFixed(0)}, 20 rules ${summary.loginTwentyRulesPerSecond.toFixed(0)}; ratio ${summary.ratio.toFixed(3)} (target >= 0.9)\n` +
      `logins per CPU-second, 20 rules / one rule: ${summary.cpuRatio.toFixed(3)}\n`,
  );
}
