import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parseIdentityConfig } from '../../src/trust/config.js';
import { compileIdentityPolicy } from '../../src/policy/match.js';
import { acceptsIssuer } from '../../src/trust/sources.js';
import type { IdentityConfig } from '../../src/types.js';

// Every worked case of docs/POLICIES.md, run from the JSON block exactly as the page shows it.
const DOC = readFileSync(fileURLToPath(new URL('../../docs/POLICIES.md', import.meta.url)), 'utf8');
const EXAMPLE = /<!-- policy-example: ([\w-]+) -->\s*```json\n([\s\S]*?)\n```/g;
const examples = new Map<string, IdentityConfig>();
for (const [, name, json] of DOC.matchAll(EXAMPLE))
  examples.set(name!, parseIdentityConfig(JSON.parse(json!)));

function decide(name: string, claims: Record<string, unknown>) {
  const config = examples.get(name);
  if (!config) throw new Error(`docs/POLICIES.md has no example ${name}`);
  // The engine checks the issuer (with this matcher) before the rules.
  if (!acceptsIssuer(config, claims.iss)) return 'deny:issuer_mismatch';
  const verdict = compileIdentityPolicy(config).check(claims);
  return verdict.ok
    ? `allow:${verdict.rule}`
    : `deny:${verdict.code}${verdict.rule ? `:${verdict.rule}` : ''}`;
}

const GH = 'https://token.actions.githubusercontent.com';
const gh = (over: Record<string, unknown> = {}) => ({
  iss: GH,
  aud: 'https://github.com/acme-corp',
  sub: 'repo:acme-corp/payments-api:ref:refs/heads/main',
  ref: 'refs/heads/main',
  ref_type: 'branch',
  ref_protected: 'true',
  repository: 'acme-corp/payments-api',
  repository_owner: 'acme-corp',
  repository_owner_id: '81234567',
  event_name: 'push',
  ...over,
});

describe('docs/POLICIES.md worked cases', () => {
  it('README\'s "Policies for a whole organisation" shows the github-org case exactly as docs/POLICIES.md runs it', () => {
    const readme = readFileSync(fileURLToPath(new URL('../../README.md', import.meta.url)), 'utf8');
    const shown = [...readme.matchAll(EXAMPLE)].map(([, name, json]) => [name, JSON.parse(json!)]);
    expect(shown).toHaveLength(1);
    expect(shown[0]![0]).toBe('github-org');
    expect(parseIdentityConfig(shown[0]![1])).toEqual(examples.get('github-org'));
  });

  it('the page shows the four examples, each a valid config', () => {
    expect([...examples.keys()]).toEqual(['github-org', 'main-or-tag', 'gitlab-subgroups', 'kubernetes']);
  });

  it('github-org: every repo of the org except a list, protected branches only, no pull requests', () => {
    expect(decide('github-org', gh())).toBe('allow:org-protected-branches');
    expect(
      decide(
        'github-org',
        gh({ repository: 'acme-corp/web', sub: 'repo:acme-corp/web:ref:refs/heads/release' }),
      ),
    ).toBe('allow:org-protected-branches');
    expect(decide('github-org', gh({ repository: 'acme-corp/sandbox' }))).toBe(
      'deny:denied_by_rule:excluded-repos',
    );
    expect(decide('github-org', gh({ repository: 'acme-corp/legacy-billing' }))).toBe(
      'deny:denied_by_rule:excluded-repos',
    );
    expect(decide('github-org', gh({ repository: 'acme-corp/legacy-billing-v2' }))).toBe(
      'allow:org-protected-branches',
    );
    for (const event_name of ['pull_request', 'pull_request_target']) {
      expect(decide('github-org', gh({ event_name, ref: 'refs/pull/57/merge', head_ref: 'feature/x' }))).toBe(
        'deny:denied_by_rule:no-pull-requests',
      );
    }
    expect(decide('github-org', gh({ ref: 'refs/heads/dev', ref_protected: 'false' }))).toBe(
      'deny:claim_not_allowed:org-protected-branches',
    );
    expect(decide('github-org', gh({ ref: 'refs/tags/v1', ref_type: 'tag' }))).toBe(
      'deny:claim_not_allowed:org-protected-branches',
    );
    expect(decide('github-org', gh({ repository_owner: 'acme-corp', repository_owner_id: '99999' }))).toBe(
      'deny:claim_not_allowed:org-protected-branches',
    );
    expect(decide('github-org', gh({ repository_owner_id: 81234567 }))).toBe('allow:org-protected-branches');
    expect(decide('github-org', gh({ aud: 'https://github.com/evil' }))).toBe(
      'deny:audience_not_allowed:org-protected-branches',
    );
  });

  it('main-or-tag: main or a v* tag', () => {
    const sub = (ref: string) => gh({ sub: `repo:acme-corp/payments-api:ref:${ref}` });
    expect(decide('main-or-tag', sub('refs/heads/main'))).toBe('allow:main');
    expect(decide('main-or-tag', sub('refs/tags/v1.4.0'))).toBe('allow:release-tags');
    expect(decide('main-or-tag', sub('refs/tags/v1/x'))).toBe('deny:no_rule_matched');
    expect(decide('main-or-tag', sub('refs/heads/v1'))).toBe('deny:no_rule_matched');
    expect(decide('main-or-tag', sub('refs/tags/release-1'))).toBe('deny:no_rule_matched');
    expect(decide('main-or-tag', gh({ sub: 'repo:acme-corp/other:ref:refs/heads/main' }))).toBe(
      'deny:no_rule_matched',
    );
  });

  it('gitlab-subgroups: a group and its subgroups, except one subgroup', () => {
    const gl = (project_path: string, over: Record<string, unknown> = {}) => ({
      iss: 'https://gitlab.com',
      aud: 'https://secrets.example.com',
      sub: `project_path:${project_path}:ref_type:branch:ref:main`,
      project_path,
      ref_protected: 'true',
      ...over,
    });
    expect(decide('gitlab-subgroups', gl('acme/platform/payments-api'))).toBe('allow:acme-protected');
    expect(decide('gitlab-subgroups', gl('acme/api'))).toBe('allow:acme-protected');
    expect(decide('gitlab-subgroups', gl('acme/a/b/c/d'))).toBe('allow:acme-protected');
    expect(decide('gitlab-subgroups', gl('acme/experimental/x'))).toBe('deny:denied_by_rule:experimental');
    expect(decide('gitlab-subgroups', gl('acme/experimental/deep/x'))).toBe(
      'deny:denied_by_rule:experimental',
    );
    expect(decide('gitlab-subgroups', gl('acme/experimental-2/x'))).toBe('allow:acme-protected');
    expect(decide('gitlab-subgroups', gl('acmecorp/x'))).toBe('deny:claim_not_allowed:acme-protected');
    expect(decide('gitlab-subgroups', gl('acme/api', { ref_protected: 'false' }))).toBe(
      'deny:claim_not_allowed:acme-protected',
    );
  });

  it('kubernetes: every namespace but kube-system, across three clusters (and no fourth)', () => {
    const CLUSTERS = [
      'https://oidc.eks.eu-west-1.amazonaws.com/id/5C3E1A2B9D8F7E6D5C4B3A2918F7E6D5',
      'https://oidc.eks.us-east-1.amazonaws.com/id/0A1B2C3D4E5F60718293A4B5C6D7E8F9',
      'https://oidc.eks.ap-southeast-2.amazonaws.com/id/F9E8D7C6B5A4938271605F4E3D2C1B0A',
    ];
    for (const iss of CLUSTERS) {
      const token = (namespace: string) => ({
        iss,
        aud: ['https://secrets.example.com'],
        sub: `system:serviceaccount:${namespace}:app`,
        'kubernetes.io': { namespace, serviceaccount: { name: 'app' } },
      });
      expect(decide('kubernetes', token('payments')), iss).toBe('allow:service-accounts');
      expect(decide('kubernetes', token('kube-system')), iss).toBe('deny:denied_by_rule:kube-system');
    }
    expect(
      decide('kubernetes', {
        iss: 'https://oidc.eks.eu-west-2.amazonaws.com/id/0000000000000000000000000000000A',
        aud: ['https://secrets.example.com'],
        sub: 'system:serviceaccount:payments:app',
        'kubernetes.io': { namespace: 'payments' },
      }),
    ).toBe('deny:issuer_mismatch');
    const k8s = (namespace: string, sa = 'app') => ({
      iss: CLUSTERS[0],
      aud: ['https://secrets.example.com'],
      sub: `system:serviceaccount:${namespace}:${sa}`,
      'kubernetes.io': { namespace, serviceaccount: { name: sa } },
    });
    expect(decide('kubernetes', k8s('payments', 'payments-api'))).toBe('allow:service-accounts');
    expect(decide('kubernetes', k8s('default'))).toBe('allow:service-accounts');
    expect(decide('kubernetes', k8s('kube-system', 'coredns'))).toBe('deny:denied_by_rule:kube-system');
    expect(
      decide('kubernetes', { ...k8s('payments'), aud: ['https://kubernetes.default.svc.cluster.local'] }),
    ).toBe('deny:audience_not_allowed:service-accounts');
    expect(decide('kubernetes', { ...k8s('payments'), sub: 'system:node:worker-1' })).toBe(
      'deny:subject_not_allowed:service-accounts',
    );
  });
});
