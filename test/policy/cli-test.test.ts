import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { EXIT, runCli } from '../../src/cli/main.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const FIXTURES = 'test/fixtures/policy/github-org';

async function cli(args: string[]) {
  let out = '';
  let err = '';
  const code = await runCli(args, {
    stdout: { write: (t: string) => (out += t) },
    stderr: { write: (t: string) => (err += t) },
    readFile: async (p) => (await import('node:fs/promises')).readFile(`${root}/${p}`, 'utf8'),
    readDir: async (p) => (await import('node:fs/promises')).readdir(`${root}/${p}`),
  });
  return { code, out, err };
}

describe('oidc-machine-auth test POLICY CASES', () => {
  it('a passing fixture set: exit 0, one line per case naming the outcome, reason and rule', async () => {
    const run = await cli(['test', `${FIXTURES}/policy.json`, `${FIXTURES}/cases`]);
    expect(run.code).toBe(EXIT.ok);
    const lines = run.out.split('\n').filter((l) => l.startsWith('  '));
    expect(lines).toHaveLength(7);
    expect(lines.every((l) => l.startsWith('  ✔ '))).toBe(true);
    expect(run.out).toContain(
      '✔ 02-excluded-repo.json (a repo on the exclusion list): deny (denied_by_rule) by rule "excluded-repos"',
    );
    expect(run.out).toContain('✔ 06-jwt-payload.json');
    expect(run.out).toContain('signatures and times are not checked');
    expect(run.out).toContain('7 cases, all as expected.');
  });

  it('a failing fixture set: exit 1, every surprise named (outcome, rule, unknown identity), the expected case still passes', async () => {
    const run = await cli(['test', `${FIXTURES}/policy.json`, `${FIXTURES}/cases-wrong`]);
    expect(run.code).toBe(EXIT.failed);
    expect(run.out).toContain(
      '✘ 01-expects-allow-for-excluded.json: expected allow, got deny (denied_by_rule) by rule "excluded-repos"',
    );
    expect(run.out).toContain(
      '✘ 02-right-outcome-wrong-rule.json: expected rule "excluded-repos", got deny (denied_by_rule) by rule "no-pull-requests"',
    );
    expect(run.out).toContain('✔ 03-as-expected.json: allow by rule "protected-branches"');
    expect(run.out).toContain('✘ 04-unknown-identity.json: "identity" "nobody" is not in the policy file');
    expect(run.out).toContain('3 of 4 cases did not go as expected.');
  });

  it('--json gives one result per case', async () => {
    const run = await cli(['test', `${FIXTURES}/policy.json`, `${FIXTURES}/cases-wrong`, '--json']);
    const body = JSON.parse(run.out) as { ok: boolean; cases: Array<{ file: string; ok: boolean }> };
    expect(body.ok).toBe(false);
    expect(body.cases.map((c) => c.ok)).toEqual([false, false, true, false]);
  });

  it('an invalid policy file fails (exit 1) naming the identity, rule index and field', async () => {
    let out = '';
    const run = await runCli(['test', 'p.json', 'cases'], {
      stdout: { write: (t: string) => void (out += t) },
      stderr: { write: () => undefined },
      readFile: async (p) =>
        p === 'p.json'
          ? JSON.stringify([
              {
                identityId: 'x',
                publicKeys: undefined,
                jwksUrl: 'https://idp.example/jwks',
                boundIssuer: 'https://idp.example',
                rules: [{ effect: 'allow', claims: { ref: '!main' } }],
              },
            ])
          : '{}',
      readDir: async () => ['a.json'],
    });
    expect(run).toBe(EXIT.failed);
    expect(out).toContain('identity "x": rules[0].claims.ref[0]: starts with "!"');
  });

  it('usage errors: a missing folder argument, a folder without cases (exit 2)', async () => {
    expect((await cli(['test', `${FIXTURES}/policy.json`])).code).toBe(EXIT.usage);
    expect((await cli(['test', `${FIXTURES}/policy.json`, 'test/fixtures/policy'])).code).toBe(EXIT.usage);
  });

  it('runs as a process (the CI gate): exit code 1 on the failing set', () => {
    const run = spawnSync(
      process.execPath,
      ['--import', 'tsx', 'src/cli/main.ts', 'test', `${FIXTURES}/policy.json`, `${FIXTURES}/cases-wrong`],
      {
        cwd: root,
        encoding: 'utf8',
      },
    );
    expect(run.status).toBe(1);
    expect(run.stdout).toContain('3 of 4 cases did not go as expected.');
  });
});

describe('oidc-machine-auth test with trust entries and issuer patterns (issue 14)', () => {
  const TRUST_FIXTURES = 'test/fixtures/policy/trust-fleet';

  /** A run over an in-memory policy file `p.json` and one case `a.json`. */
  async function runWith(policy: unknown, testCase: unknown) {
    let out = '';
    const code = await runCli(['test', 'p.json', 'cases'], {
      stdout: { write: (t: string) => void (out += t) },
      stderr: { write: () => undefined },
      readFile: async (p) => JSON.stringify(p === 'p.json' ? policy : testCase),
      readDir: async () => ['a.json'],
    });
    return { code, out };
  }

  it('resolves identities through the file’s trust entries: their issuers, issuer patterns (matched as the engine matches) and audiences', async () => {
    const run = await cli(['test', `${TRUST_FIXTURES}/policy.json`, `${TRUST_FIXTURES}/cases`]);
    expect(run.code).toBe(EXIT.ok);
    expect(run.out).toContain('✔ 01-eks-us-east-1.json (a cluster the pattern admits): allow');
    expect(run.out).toContain('✔ 02-eks-eu-west-1.json (another region and cluster): allow');
    expect(run.out).toContain(
      '✔ 03-eks-lookalike-host.json (a host past the pinned domain): deny (issuer_mismatch)',
    );
    expect(run.out).toContain(
      '✔ 04-eks-extra-segment.json (a path segment more than the pattern): deny (issuer_mismatch)',
    );
    expect(run.out).toContain(
      "✔ 07-github-entry-audience.json (the entry's audiences bind the identity): deny (audience_not_allowed)",
    );
    expect(run.out).toContain(
      "✔ 08-github-identity-eks-issuer.json (a token naming another entry's issuer): deny (issuer_mismatch)",
    );
    expect(run.out).toContain('9 cases, all as expected.');
  });

  it('a case expecting a pattern issuer outside the pattern to pass is a surprise (exit 1)', async () => {
    const { readFile } = await import('node:fs/promises');
    const policy = JSON.parse(await readFile(`${root}/${TRUST_FIXTURES}/policy.json`, 'utf8')) as unknown;
    const run = await runWith(policy, {
      identity: 'payments',
      claims: {
        iss: 'https://oidc.eks.us-east-1.amazonaws.com:8443/id/X',
        aud: 'sts.amazonaws.com',
        sub: 'system:serviceaccount:payments:api',
      },
      expect: 'allow',
    });
    expect(run.code).toBe(EXIT.failed);
    expect(run.out).toContain('✘ a.json: expected allow, got deny (issuer_mismatch)');
  });

  it('an identity naming a trust entry the file lacks, or an invalid entry, fails the run naming it (exit 1)', async () => {
    const identity = { identityId: 'x', trust: 'gitlab', boundSubject: 'project_path:acme/*' };
    const missing = await runWith({ identities: [identity] }, {});
    expect(missing.code).toBe(EXIT.failed);
    expect(missing.out).toContain('names no trust entry ("gitlab")');
    const invalid = await runWith(
      {
        trust: [
          { trustId: 'gitlab', issuer: 'https://gitlab.example.com', jwksUrl: 'http://gitlab.example.com/k' },
        ],
        identities: [identity],
      },
      {},
    );
    expect(invalid.code).toBe(EXIT.failed);
    expect(invalid.out).toContain('trust["gitlab"].jwksUrl');
    const notArray = await runWith({ trust: {}, identities: [identity] }, {});
    expect(notArray.code).toBe(EXIT.usage);
  });
});
