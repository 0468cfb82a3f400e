import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { EXIT, runCli } from '../../src/cli.js';

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
      ['--import', 'tsx', 'src/cli.ts', 'test', `${FIXTURES}/policy.json`, `${FIXTURES}/cases-wrong`],
      {
        cwd: root,
        encoding: 'utf8',
      },
    );
    expect(run.status).toBe(1);
    expect(run.stdout).toContain('3 of 4 cases did not go as expected.');
  });
});
