import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseIdentityConfig } from '../../src/trust/config.js';
import { ConfigError } from '../../src/errors.js';
import {
  GLOB_LIMITS,
  compileIdentityPolicy,
  matchesGlob,
  resolveClaim,
  validateClaimPath,
  validateGlob,
  type IdentityPolicy,
} from '../../src/policy/match.js';
import type { IdentityConfigInput } from '../../src/types.js';
import { githubIdentity, makeEngine } from '../helpers/engine.js';
import { githubClaims, sign } from '../helpers/jwt.js';

const GITHUB_ISSUER = 'https://token.actions.githubusercontent.com';

function policyFor(bindings: Partial<IdentityConfigInput>): IdentityPolicy {
  return compileIdentityPolicy(
    parseIdentityConfig({
      identityId: 'test-identity',
      oidcDiscoveryUrl: GITHUB_ISSUER,
      boundIssuer: GITHUB_ISSUER,
      ...bindings,
    }),
  );
}

function globError(pattern: string): ConfigError {
  try {
    validateGlob(pattern, 'boundSubject[0]', 'test-identity');
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return error as ConfigError;
  }
  throw new Error(`expected ${JSON.stringify(pattern)} to be refused`);
}

function timed<T>(fn: () => T): { result: T; ms: number } {
  const start = performance.now();
  const result = fn();
  return { result, ms: performance.now() - start };
}

/** GitHub Actions push token (TOKEN-SHAPES B1). */
const github = {
  sub: 'repo:acme-corp/payments-api:ref:refs/heads/main',
  aud: 'https://github.com/acme-corp',
  ref: 'refs/heads/main',
  ref_type: 'branch',
  ref_protected: 'true',
  repository: 'acme-corp/payments-api',
  repository_id: '612345678',
  repository_owner: 'acme-corp',
  repository_owner_id: '81234567',
  event_name: 'push',
  head_ref: '',
  job_workflow_ref: 'acme-corp/payments-api/.github/workflows/deploy.yml@refs/heads/main',
  runner_environment: 'github-hosted',
  iss: GITHUB_ISSUER,
};

/** Kubernetes projected service-account token (TOKEN-SHAPES B4). */
const kubernetes = {
  aud: ['https://secrets.example.com'],
  iss: 'https://oidc.eks.eu-west-1.amazonaws.com/id/5C3E1A2B9D8F7E6D5C4B3A2918F7E6D5',
  'kubernetes.io': {
    namespace: 'payments',
    node: { name: 'ip-10-0-12-34.eu-west-1.compute.internal', uid: '517eb86e-b863-451b-bf70-86cb61439a3a' },
    pod: { name: 'payments-api-7d9f8b6c5-x2k4m', uid: '0d8b260e-ef0e-45fb-be8e-ff44f97722e8' },
    serviceaccount: { name: 'payments-api', uid: 'e6a8680e-d103-4cce-80ea-03acbbeacf7d' },
  },
  sub: 'system:serviceaccount:payments:payments-api',
};

/** CircleCI v2 token (TOKEN-SHAPES B7). */
const circleci = {
  sub: 'org/0f1e2d3c-4b5a-4697-8786-a5b4c3d2e1f0/project/9a8b7c6d-5e4f-4a3b-9c1d-0e9f8a7b6c5d/user/1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d/vcs-origin/github.com/acme-corp/payments-api/vcs-ref/refs/heads/main',
  aud: '0f1e2d3c-4b5a-4697-8786-a5b4c3d2e1f0',
  'oidc.circleci.com/project-id': '9a8b7c6d-5e4f-4a3b-9c1d-0e9f8a7b6c5d',
  'oidc.circleci.com/vcs-origin': 'github.com/acme-corp/payments-api',
  'oidc.circleci.com/vcs-ref': 'refs/heads/main',
  'oidc.circleci.com/context-ids': ['a74579f1-2e7d-451e-b009-5c082ad2729e'],
  'oidc.circleci.com/ssh-rerun': false,
};

/** GitLab CI token (TOKEN-SHAPES B3). */
const gitlab = {
  namespace_id: '72',
  project_id: '20',
  project_path: 'acme/platform/payments-api',
  user_identities: [
    { provider: 'github', extern_uid: '2435223452345' },
    { provider: 'saml', extern_uid: 'octodev@example.com' },
  ],
  ref: 'main',
  ref_type: 'branch',
  ref_protected: 'true',
  runner_id: 1,
  job_project_id: '20',
  sub: 'project_path:acme/platform/payments-api:ref_type:branch:ref:main',
  aud: 'https://secrets.example.com',
};

describe('validateGlob', () => {
  it.each([
    'repo:acme-corp/*:ref:refs/heads/*',
    'repo:acme-corp/**',
    'sc://acme-corp/Payments/*',
    'refs/heads/release-*-*',
    'a[0-9]?b',
    'x\\*y',
    '{9f8e7d6c}:*',
  ])('accepts %j', (pattern) => {
    expect(() => validateGlob(pattern, 'boundSubject[0]')).not.toThrow();
  });

  it.each(['!repo:org/evil', '!(x)', '!**'])('GLOB-03: refuses the negation %j', (pattern) => {
    expect(globError(pattern).message).toContain('negation');
  });

  it.each(['@(a|b)', '+(a)', '*(a)', '?(a)', 'repo:(a|b)', 'a|b', 'x)'])(
    'GLOB-03: refuses extglob and regex group syntax %j',
    (pattern) => {
      expect(globError(pattern).message).toMatch(/regex groups|extglob/);
    },
  );

  it.each([
    ['', 'empty'],
    [' repo:org/*', 'whitespace'],
    ['repo:org/* ', 'whitespace'],
    ['repo:org/x\nrepo:org/y', 'control'],
  ])('GLOB-07: refuses %j', (pattern, problem) => {
    const error = globError(pattern);
    expect(error.field).toBe('boundSubject[0]');
    expect(error.identityId).toBe('test-identity');
    expect(error.message).toContain(problem);
  });

  it.each(['*', '**', '*/*', '?*', '*/?', '[a-z]*', '**/[0-9]?', 'x/**/**'])(
    'refuses the wildcard-only pattern %j (it binds nothing)',
    (pattern) => {
      expect(globError(pattern).message).toMatch(/binds nothing|"\*\*" once/);
    },
  );

  it.each([
    ['\\d+', 'only ASCII punctuation'],
    ['trailing\\', 'lone'],
    ['[!a]*', 'negated set'],
    ['a[/]b', 'never holds "/"'],
    ['*a*[[:alpha:]]*b', 'POSIX classes'],
    ['[z-a]x*', 'must go up'],
  ])('refuses the confusing or invalid syntax %j', (pattern, problem) => {
    expect(globError(pattern).message).toContain(problem);
  });

  it('GLOB-06: refuses oversized patterns such as "{" x 50,000 without echoing them', () => {
    const error = globError('{'.repeat(50_000));
    expect(error.message).toContain(`longer than ${GLOB_LIMITS.maxPatternLength}`);
    expect(error.message.length).toBeLessThan(200);
    expect(() => validateGlob('a'.repeat(GLOB_LIMITS.maxPatternLength), 'f')).not.toThrow();
    expect(() => validateGlob('a'.repeat(GLOB_LIMITS.maxPatternLength + 1), 'f')).toThrow(ConfigError);
  });

  it('GLOB-06: braces never expand: {a,b} x 20 and {1..1000000} are literal and fast', () => {
    const twenty = '{a,b}'.repeat(20);
    validateGlob(twenty, 'f');
    validateGlob('v{1..1000000}*', 'f');
    const { result, ms } = timed(() => [
      matchesGlob('a'.repeat(20), twenty),
      matchesGlob(twenty, twenty),
      matchesGlob('v5', 'v{1..1000000}*'),
      matchesGlob('v{1..1000000}-x', 'v{1..1000000}*'),
    ]);
    expect(result).toEqual([false, true, false, true]);
    expect(ms).toBeLessThan(1000);
  });

  it('GLOB-06: a brace quantifier never reaches the regex ("a{3}" is literal)', () => {
    expect(matchesGlob('aaa', 'a{3}*')).toBe(false);
    expect(matchesGlob('a{3}-x', 'a{3}*')).toBe(true);
    expect(matchesGlob('a+', '[a]+')).toBe(true);
    expect(matchesGlob('aaaa', '[a]+')).toBe(false);
  });

  it.each([
    '*a*a*a*b',
    '*a*a*b',
    'refs/heads/*-*-*-prod',
    '*a*a*a*a*a*a*a*a*a*a*b',
    '*a*/*a*b',
    '**/a/**/a/**/b',
    '*a*/**/a/**/b',
    'a/*/b/*/c/*/d/*/e/*/f/*/g/*/h/*/i/*',
  ])('GLOB-05: refuses %j at config time (beyond the wildcard caps)', (pattern) => {
    expect(() => validateGlob(pattern, 'f')).toThrow(ConfigError);
  });

  const worstAccepted: Array<[string, string[]]> = [
    ['*a*b', ['a'.repeat(1024)]],
    ['*-*-prod', ['-'.repeat(1024)]],
    ['refs/heads/*-*-prod', [`refs/heads/${'-'.repeat(1013)}`]],
    ['*a*/**/b', [`${'a'.repeat(500)}/${'a/'.repeat(261)}`.slice(0, 1024)]],
    ['**/*a*b', ['a'.repeat(511) + '/' + 'a'.repeat(512), `${'a/'.repeat(400)}${'a'.repeat(224)}`]],
    ['**/a/**/b', ['a/'.repeat(512).slice(0, 1023), `${'a/'.repeat(511)}c`]],
    ['**/a*/**/b', ['a/'.repeat(512).slice(0, 1023)]],
    ['*/*/*/*/*/*/*/*b', [Array(8).fill('a'.repeat(127)).join('/')]],
    ['**/*a*/*/*/*/b', [Array(8).fill('a'.repeat(127)).join('/'), 'a/'.repeat(512).slice(0, 1023)]],
    ['?*a*?/**/x', [`${'a'.repeat(700)}/${'a/'.repeat(150)}`.slice(0, 1024)]],
  ];

  it.each(worstAccepted)(
    'GLOB-05: the accepted worst case %j against 1 KiB values completes fast',
    (pattern, values) => {
      validateGlob(pattern, 'f');
      for (const value of values) {
        expect(value.length).toBeLessThanOrEqual(GLOB_LIMITS.maxValueLength);
        const { result, ms } = timed(() => matchesGlob(value, pattern));
        expect(result).toBe(false);
        expect(ms).toBeLessThan(500);
      }
    },
  );

  it('GLOB-05: *a*a*a*b against 2,000 characters is refused and, as a value, never runs the regex', () => {
    expect(() => validateGlob('*a*a*a*b', 'f')).toThrow(ConfigError);
    const { result, ms } = timed(() => matchesGlob('a'.repeat(2000), '*a*b'));
    expect(result).toBe(false);
    expect(ms).toBeLessThan(100);
  });

  it('GLOB-05: a value over 1 KiB never matches a glob', () => {
    expect(matchesGlob(`x${'a'.repeat(GLOB_LIMITS.maxValueLength - 1)}`, 'x*')).toBe(true);
    expect(matchesGlob(`x${'a'.repeat(GLOB_LIMITS.maxValueLength)}`, 'x*')).toBe(false);
  });

  it('GLOB-05: random patterns accepted by the caps stay fast on adversarial 1 KiB values', () => {
    const token = fc.constantFrom('*', '*', 'a', 'a', 'b', '?', '-', '/', '/', '**/');
    fc.assert(
      fc.property(
        fc.array(token, { minLength: 1, maxLength: 24 }),
        fc.integer({ min: 1, max: 64 }),
        (tokens, step) => {
          const pattern = tokens.join('');
          try {
            validateGlob(pattern, 'f');
          } catch {
            return true;
          }
          const segment = 'a'.repeat(step);
          const values = [
            'a'.repeat(1024),
            `${Array(Math.ceil(1024 / (step + 1)))
              .fill(segment)
              .join('/')}`.slice(0, 1023) + 'z',
            pattern.replace(/\*+/g, 'a'.repeat(Math.floor(900 / tokens.length))).slice(0, 1023) + '/',
          ];
          for (const value of values) {
            const { ms } = timed(() => matchesGlob(value, pattern));
            if (ms > 250) return false;
          }
          return true;
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('#13.7 a pattern admits only what it spells', () => {
  it.each([
    ['release[.-_]*', 'must go up'],
    ['[ -~]*/**', 'must go up'],
    ['[^]]*', 'negated set'],
    ['v[^0-9]', 'negated set'],
    ['v[!0-9]', 'negated set'],
    ['v[]', 'empty'],
    ['v[a-z', 'without its "]"'],
    ['v[a\\]x]', 'no escapes'],
    ['v[é]', 'printable ASCII'],
    ['v[a-c-e]', 'neither a range nor first or last'],
    ['v[0-z]', 'must go up'],
    ['v\\/x', 'cannot be escaped'],
    ['v\\é', 'ASCII punctuation'],
    ['acme/**:ref', '"**" inside a segment'],
    ['refs/heads/release-**', '"**" inside a segment'],
    ['[a-z]*', 'binds nothing'],
    ['[0-9]?/**', 'binds nothing'],
  ])('#13.7 a pattern admits only what it spells: %j is refused at config time (%s)', (pattern, problem) => {
    expect(globError(pattern).message).toContain(problem);
  });

  it.each([
    ['v[0-9]', 'v7', 'v[0-9]'],
    ['release\\*', 'release*', 'release\\*'],
    ['a\\?b', 'a?b', 'axb'],
    ['x\\[1\\]', 'x[1]', 'x\\[1\\]'],
    ['repo:acme/*', 'repo:acme/app', 'repo:acme/app/'],
    ['repo:acme/*', 'repo:acme/app', 'repo:acme/'],
    ['a/*/b', 'a/x/b', 'a//b'],
    ['a/*/b', 'a/x/b', 'a/../b'],
    ['a/**/b', 'a/b', 'a//b'],
    ['a/**', 'a/x/y', 'a/x/'],
    ['**/b', 'x/y/b', '/b'],
    ['a/[._-]x', 'a/.x', 'a//x'],
    ['v?', 'v😀', 'v'],
    ['https://x/*', 'https://x/y', 'https:/x/y'],
  ])(
    '#13.7 a pattern admits only what it spells: %j matches %j but not %j',
    (pattern, spelled, notSpelled) => {
      validateGlob(pattern, 'f');
      expect(matchesGlob(spelled, pattern)).toBe(true);
      expect(matchesGlob(notSpelled, pattern)).toBe(false);
    },
  );

  it('#13.7 a pattern admits only what it spells: a bound subject refuses the raw text of its own pattern at login', () => {
    const policy = policyFor({ boundSubject: ['repo:acme/app:ref:refs/tags/v[0-9]*'] });
    expect(policy.check({ sub: 'repo:acme/app:ref:refs/tags/v1.2' })).toEqual({ ok: true });
    expect(policy.check({ sub: 'repo:acme/app:ref:refs/tags/v[0-9]*' })).toEqual({
      ok: false,
      code: 'subject_not_allowed',
    });
  });
});

describe('glob semantics', () => {
  it('GLOB-01: values are data: "*", "{a,b}" and Bitbucket {uuid} braces in a value have no wildcard power', () => {
    expect(matchesGlob('*', 'production')).toBe(false);
    expect(matchesGlob('prod*', 'prod-east')).toBe(false);
    expect(matchesGlob('prod*', 'prod*')).toBe(true);
    expect(matchesGlob('{a,b}', 'a')).toBe(false);
    expect(matchesGlob('{a,b}', '{a,b}')).toBe(true);
    expect(matchesGlob('?', 'x')).toBe(false);
    const bitbucket =
      '{9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a}:{3c4d5e6f-7a8b-4c9d-8e0f-1a2b3c4d5e6f}:{0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d}';
    expect(matchesGlob(bitbucket, bitbucket)).toBe(true);
    expect(matchesGlob(bitbucket, '{9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a}:*')).toBe(true);
    expect(matchesGlob(bitbucket, '{0000}:*')).toBe(false);
  });

  it('GLOB-04: dot is on, so * and ** match .github segments', () => {
    const ref = github.job_workflow_ref;
    expect(matchesGlob(ref, 'acme-corp/payments-api/*/workflows/deploy.yml@refs/heads/main')).toBe(true);
    expect(matchesGlob(ref, 'acme-corp/payments-api/**')).toBe(true);
    expect(matchesGlob(ref, 'acme-corp/*/.github/workflows/deploy.yml@refs/heads/main')).toBe(true);
    expect(matchesGlob('a/../b', 'a/*/b')).toBe(false);
  });

  it('GLOB-08: * does not cross "/" (unlike Vault and AWS StringLike); ** does as a whole segment', () => {
    expect(matchesGlob('repo:acme/app:ref:refs/heads/main', 'repo:acme/*')).toBe(false);
    expect(matchesGlob('repo:acme/app:ref:refs/heads/main', 'repo:acme/**')).toBe(true);
    expect(matchesGlob('repo:acme/app:pull_request', 'repo:acme/*')).toBe(true);
    expect(matchesGlob('repo:acme/app/x:ref:main', 'repo:acme/**:ref:main')).toBe(false);
  });

  it('GitHub: repo:acme-corp/*:ref:refs/heads/* matches main but not feature/x or pull requests', () => {
    const pattern = 'repo:acme-corp/*:ref:refs/heads/*';
    expect(matchesGlob('repo:acme-corp/payments-api:ref:refs/heads/main', pattern)).toBe(true);
    expect(matchesGlob('repo:acme-corp/payments-api:ref:refs/heads/feature/x', pattern)).toBe(false);
    expect(matchesGlob('repo:acme-corp/payments-api:pull_request', pattern)).toBe(false);
    expect(matchesGlob('repo:acme-evil/payments-api:ref:refs/heads/main', pattern)).toBe(false);
    expect(matchesGlob('repo:acme-corp@81234567/payments-api@612345678:ref:refs/heads/main', pattern)).toBe(
      false,
    );
  });

  it('Azure DevOps: sc://org/project/* matches a service connection, sc://org/* does not', () => {
    const sub = 'sc://acme-corp/Payments/payments-prod-arm';
    expect(matchesGlob(sub, 'sc://acme-corp/Payments/*')).toBe(true);
    expect(matchesGlob(sub, 'sc://acme-corp/*')).toBe(false);
    expect(matchesGlob(sub, 'sc://acme-corp/Payments/payments-prod-arm')).toBe(true);
  });

  it('GitLab: project_path:group/* does not reach subgroups', () => {
    const sub = gitlab.sub;
    expect(matchesGlob(sub, 'project_path:acme/*:ref_type:branch:ref:main')).toBe(false);
    expect(matchesGlob(sub, 'project_path:acme/platform/*:ref_type:branch:ref:main')).toBe(true);
    expect(matchesGlob(sub, 'project_path:acme/platform/payments-api:ref_type:branch:ref:*')).toBe(true);
  });

  it('Kubernetes and Terraform subjects (colons and spaces are ordinary characters)', () => {
    expect(matchesGlob(kubernetes.sub, 'system:serviceaccount:payments:*')).toBe(true);
    expect(matchesGlob(kubernetes.sub, 'system:serviceaccount:default:*')).toBe(false);
    const terraform =
      'organization:acme-corp:project:Default Project:workspace:payments-prod:run_phase:apply';
    expect(
      matchesGlob(
        terraform,
        'organization:acme-corp:project:Default Project:workspace:payments-prod:run_phase:*',
      ),
    ).toBe(true);
  });

  it('CLM-07: with CircleCI v2, a pinned vcs-ref rejects an injected branch while ** accepts it', () => {
    const org = 'org/0f1e2d3c-4b5a-4697-8786-a5b4c3d2e1f0/project/9a8b7c6d-5e4f-4a3b-9c1d-0e9f8a7b6c5d';
    const injected = `${org}/user/1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d/vcs-origin/github.com/evil/fork/vcs-ref/refs/heads/x/vcs-origin/github.com/acme-corp/payments-api/vcs-ref/refs/heads/main`;
    const strict = `${org}/user/*/vcs-origin/github.com/acme-corp/payments-api/vcs-ref/refs/heads/main`;
    expect(matchesGlob(circleci.sub, strict)).toBe(true);
    expect(matchesGlob(injected, strict)).toBe(false);
    expect(
      matchesGlob(injected, `${org}/**/vcs-origin/github.com/acme-corp/payments-api/vcs-ref/refs/heads/main`),
    ).toBe(true);
  });

  it('CLM-08: prefix globs over-match (documented): acme* matches acme-evil, main* matches main-evil', () => {
    expect(matchesGlob('acme-evil', 'acme*')).toBe(true);
    expect(matchesGlob('repo:acme/app:ref:main-evil', 'repo:acme/app:ref:main*')).toBe(true);
  });

  it('CLM-06: control characters in values match normally (exact stays exact)', () => {
    expect(matchesGlob('refs/heads/main\n', 'refs/heads/main')).toBe(false);
    expect(matchesGlob('refs/heads/ma\u001bin', 'refs/heads/ma*in')).toBe(true);
    expect(matchesGlob('a\u0000b', 'a?b')).toBe(true);
  });

  it('never throws on non-string values or invalid patterns', () => {
    for (const value of [null, undefined, {}, [[]], Symbol('x'), 10n, () => 1, Number.NaN, Infinity]) {
      expect(matchesGlob(value, 'x*')).toBe(false);
    }
    expect(matchesGlob('x', '')).toBe(false);
    expect(matchesGlob('x', '!x')).toBe(false);
    expect(matchesGlob('anything-at-all', '!repo:org/evil')).toBe(false);
  });
});

describe('resolveClaim', () => {
  it('CLM-03: dot paths reach nested objects and keys that contain dots', () => {
    expect(resolveClaim(kubernetes, 'kubernetes.io.namespace')).toEqual({ found: true, value: 'payments' });
    expect(resolveClaim(kubernetes, 'kubernetes.io.serviceaccount.uid')).toEqual({
      found: true,
      value: 'e6a8680e-d103-4cce-80ea-03acbbeacf7d',
    });
    expect(resolveClaim(circleci, 'oidc.circleci.com/project-id')).toEqual({
      found: true,
      value: '9a8b7c6d-5e4f-4a3b-9c1d-0e9f8a7b6c5d',
    });
    const google = {
      google: { compute_engine: { project_id: 'acme-prod-123456', project_number: 123456789012 } },
    };
    expect(resolveClaim(google, 'google.compute_engine.project_id')).toEqual({
      found: true,
      value: 'acme-prod-123456',
    });
    expect(resolveClaim(google, 'google.compute_engine.project_number')).toEqual({
      found: true,
      value: 123456789012,
    });
  });

  it('CLM-03: the longest own key wins, shorter splits are tried after', () => {
    expect(resolveClaim({ 'a.b': 1, a: { b: 2 } }, 'a.b')).toEqual({ found: true, value: 1 });
    expect(resolveClaim({ 'a.b': { d: 1 }, a: { 'b.c': 2 } }, 'a.b.c')).toEqual({ found: true, value: 2 });
  });

  it('CLM-03: JSON Pointer with ~0 and ~1 escapes', () => {
    expect(resolveClaim(kubernetes, '/kubernetes.io/namespace')).toEqual({ found: true, value: 'payments' });
    expect(resolveClaim(circleci, '/oidc.circleci.com~1vcs-ref')).toEqual({
      found: true,
      value: 'refs/heads/main',
    });
    expect(resolveClaim({ 'a~b': { '': 5 } }, '/a~0b/')).toEqual({ found: true, value: 5 });
    expect(resolveClaim(kubernetes, '/kubernetes.io.namespace')).toEqual({ found: false });
  });

  it('reads array elements by index, never array properties such as length', () => {
    expect(resolveClaim(gitlab, 'user_identities.1.provider')).toEqual({ found: true, value: 'saml' });
    expect(resolveClaim(gitlab, '/user_identities/0/extern_uid')).toEqual({
      found: true,
      value: '2435223452345',
    });
    expect(resolveClaim(gitlab, 'user_identities.length')).toEqual({ found: false });
    expect(resolveClaim(gitlab, 'user_identities.2.provider')).toEqual({ found: false });
    expect(resolveClaim(gitlab, 'user_identities.01.provider')).toEqual({ found: false });
  });

  it('CLM-03: own properties only; __proto__, constructor and prototype never resolve', () => {
    const payload = JSON.parse('{"__proto__": {"admin": true}, "a": {"constructor": {"x": 1}}}') as Record<
      string,
      unknown
    >;
    expect(resolveClaim(payload, '__proto__.admin')).toEqual({ found: false });
    expect(resolveClaim(payload, '/__proto__/admin')).toEqual({ found: false });
    expect(resolveClaim(payload, 'a.constructor.x')).toEqual({ found: false });
    expect(resolveClaim({}, 'toString')).toEqual({ found: false });
    expect(resolveClaim({}, 'constructor.name')).toEqual({ found: false });
    expect(resolveClaim(Object.create({ inherited: 'x' }) as Record<string, unknown>, 'inherited')).toEqual({
      found: false,
    });
  });

  it('CLM-02: false, 0, "" and null are values, not missing', () => {
    const payload = { f: false, z: 0, e: '', n: null };
    for (const key of Object.keys(payload)) {
      expect(resolveClaim(payload, key)).toEqual({
        found: true,
        value: payload[key as keyof typeof payload],
      });
    }
    expect(resolveClaim(payload, 'f.x')).toEqual({ found: false });
    expect(resolveClaim(payload, 'missing')).toEqual({ found: false });
  });

  it('stays bounded on pathological dotted keys', () => {
    const path = Array(32).fill('a').join('.');
    let payload: Record<string, unknown> = {};
    for (let i = 1; i < 32; i++) payload[Array(i).fill('a').join('.')] = { ...payload };
    payload = { ...payload, a: payload };
    const { ms } = timed(() => resolveClaim(payload, path));
    expect(ms).toBeLessThan(100);
  });

  it('never resolves an invalid path', () => {
    expect(resolveClaim({ '': 1 }, '')).toEqual({ found: false });
    expect(resolveClaim({ a: 1 }, ' a')).toEqual({ found: false });
  });
});

describe('validateClaimPath', () => {
  it.each([
    'sub',
    'kubernetes.io.namespace',
    'oidc.circleci.com/project-id',
    '/a~1b/c~0d',
    '/',
    'cognito:groups',
  ])('accepts %j', (path) => {
    expect(() => validateClaimPath(path, 'boundClaims["x"]')).not.toThrow();
  });

  it.each([
    '',
    ' sub',
    'a..b',
    '.a',
    'a.',
    '__proto__',
    'a.constructor',
    'prototype.x',
    '/a/__proto__',
    '/a~2b',
    '/a~',
  ])('refuses %j', (path) => {
    expect(() => validateClaimPath(path, 'boundClaims["x"]', 'id')).toThrow(ConfigError);
  });

  it('caps length and segment count', () => {
    expect(() => validateClaimPath('a'.repeat(257), 'f')).toThrow(/longer than 256/);
    expect(() => validateClaimPath(Array(33).fill('a').join('.'), 'f')).toThrow(/segments/);
  });
});

describe('compileIdentityPolicy: check', () => {
  it('caches compiled policies per config object', () => {
    const config = parseIdentityConfig({
      identityId: 'x',
      jwksUrl: 'https://idp.example.com/jwks',
      boundIssuer: 'https://idp.example.com',
      boundSubject: 'a',
    });
    expect(compileIdentityPolicy(config)).toBe(compileIdentityPolicy(config));
  });

  it('returns shared result objects (no allocation per call)', () => {
    const policy = policyFor({
      boundAudiences: github.aud,
      boundSubject: 'repo:acme-corp/*:ref:refs/heads/*',
    });
    expect(policy.check(github)).toEqual({ ok: true });
    expect(policy.check(github)).toBe(policy.check({ ...github }));
    expect(policy.check({ sub: 'x' })).toBe(policy.check({ sub: 'y' }));
  });

  it('AUD-01: a string aud and an aud array containing the binding both pass', () => {
    const policy = policyFor({ boundAudiences: ['x'] });
    expect(policy.check({ aud: 'x' })).toEqual({ ok: true });
    expect(policy.check({ aud: ['y', 'x'] })).toEqual({ ok: true });
    expect(policy.check({ aud: ['y'] })).toEqual({ ok: false, code: 'audience_not_allowed' });
  });

  it.each([[undefined], [[]], ['']])('AUD-03: aud %j is refused while audiences are bound', (aud) => {
    const policy = policyFor({ boundAudiences: ['https://secrets.example.com'] });
    const payload: Record<string, unknown> = { sub: 'x' };
    if (aud !== undefined) payload.aud = aud;
    expect(policy.check(payload)).toEqual({ ok: false, code: 'audience_not_allowed' });
  });

  it.each([[42], [{ aud: 'x' }], [[1]], [['https://secrets.example.com', 1]], [null], [true]])(
    'AUD-04: aud %j (number, object, non-string elements) is refused',
    (aud) => {
      const policy = policyFor({ boundAudiences: ['https://secrets.example.com'] });
      expect(policy.check({ aud })).toEqual({ ok: false, code: 'audience_not_allowed' });
    },
  );

  it('AUD-05: an exact audience does not match a longer host', () => {
    const policy = policyFor({ boundAudiences: ['https://api.example.com'] });
    expect(policy.check({ aud: 'https://api.example.com.evil.tld' })).toEqual({
      ok: false,
      code: 'audience_not_allowed',
    });
    expect(policy.check({ aud: 'https://api.example.com/' })).toEqual({
      ok: false,
      code: 'audience_not_allowed',
    });
    expect(policy.check({ aud: 'https://api.example.com' })).toEqual({ ok: true });
  });

  it('AUD-06: a token minted for another relying party is refused', () => {
    const policy = policyFor({ boundAudiences: ['https://secrets.example.com'] });
    for (const aud of ['sts.amazonaws.com', 'api://AzureADTokenExchange', 'https://github.com/acme-corp']) {
      expect(policy.check({ ...github, aud })).toEqual({ ok: false, code: 'audience_not_allowed' });
    }
  });

  it.each([[undefined], [['repo:acme-corp/payments-api:ref:refs/heads/main']], [{}], [42], [null]])(
    'SUB-01/SUB-02: sub %j (missing, array, object, number) is refused while a subject is bound',
    (sub) => {
      const policy = policyFor({ boundSubject: 'repo:acme-corp/payments-api:ref:refs/heads/main' });
      const payload: Record<string, unknown> = {};
      if (sub !== undefined) payload.sub = sub;
      expect(policy.check(payload)).toEqual({ ok: false, code: 'subject_not_allowed' });
    },
  );

  it('checks audience, then subject, then claims in config order', () => {
    const policy = policyFor({
      boundAudiences: 'https://secrets.example.com',
      boundSubject: 'repo:acme-corp/*:ref:refs/heads/main',
      boundClaims: { repository_id: '612345678', event_name: 'push' },
    });
    expect(policy.check({ sub: 'nope', repository_id: '1' })).toEqual({
      ok: false,
      code: 'audience_not_allowed',
    });
    const aud = 'https://secrets.example.com';
    expect(policy.check({ aud, sub: 'nope', repository_id: '1' })).toEqual({
      ok: false,
      code: 'subject_not_allowed',
    });
    const good = { ...github, aud };
    expect(policy.check({ ...good, repository_id: '1', event_name: 'x' })).toEqual({
      ok: false,
      code: 'claim_not_allowed',
      claim: 'repository_id',
    });
    expect(policy.check({ ...good, event_name: 'pull_request' })).toEqual({
      ok: false,
      code: 'claim_not_allowed',
      claim: 'event_name',
    });
    expect(policy.check(good)).toEqual({ ok: true });
  });

  it('CLM-01: a missing bound claim is claim_missing, with the claim path', () => {
    const policy = policyFor({
      boundAudiences: kubernetes.aud,
      boundClaims: { 'kubernetes.io.serviceaccount.uid': 'e6a8680e-d103-4cce-80ea-03acbbeacf7d' },
    });
    expect(policy.check(kubernetes)).toEqual({ ok: true });
    expect(policy.check({ aud: kubernetes.aud, sub: kubernetes.sub })).toEqual({
      ok: false,
      code: 'claim_missing',
      claim: 'kubernetes.io.serviceaccount.uid',
    });
  });

  it('CLM-02: numbers and booleans match their canonical string exactly', () => {
    const runner = policyFor({ boundAudiences: gitlab.aud, boundClaims: { runner_id: '1' } });
    expect(runner.check(gitlab)).toEqual({ ok: true });
    expect(runner.check({ aud: gitlab.aud, runner_id: '1' })).toEqual({ ok: true });
    expect(runner.check({ aud: gitlab.aud, runner_id: 2 })).toMatchObject({ code: 'claim_not_allowed' });
    for (const pattern of ['01', '1abc', '1*', '1.0']) {
      expect(
        policyFor({ boundAudiences: gitlab.aud, boundClaims: { runner_id: pattern } }).check(gitlab),
      ).toMatchObject({
        code: 'claim_not_allowed',
      });
    }
    const rerun = policyFor({
      boundAudiences: circleci.aud,
      boundClaims: { 'oidc.circleci.com/ssh-rerun': 'false' },
    });
    expect(rerun.check(circleci)).toEqual({ ok: true });
    expect(rerun.check({ ...circleci, 'oidc.circleci.com/ssh-rerun': true })).toMatchObject({
      code: 'claim_not_allowed',
    });
    expect(rerun.check({ ...circleci, 'oidc.circleci.com/ssh-rerun': 'false' })).toEqual({ ok: true });
    const verified = policyFor({ boundClaims: { email_verified: 'true' } });
    expect(verified.check({ email_verified: true })).toEqual({ ok: true });
    expect(policyFor({ boundClaims: { count: '0' } }).check({ count: 0 })).toEqual({ ok: true });
  });

  it('CLM-02: false, 0 and "" are present (claim_not_allowed), objects and null never match', () => {
    const policy = policyFor({ boundClaims: { head_ref: 'main' } });
    for (const value of [false, 0, '', null, {}, { main: 'main' }, [['main']], [{ x: 'main' }]]) {
      expect(policy.check({ head_ref: value })).toEqual({
        ok: false,
        code: 'claim_not_allowed',
        claim: 'head_ref',
      });
    }
    expect(policy.check({ head_ref: ['feature', 'main'] })).toEqual({ ok: true });
  });

  it('CLM-02: arrays match when any scalar element matches', () => {
    const policy = policyFor({
      boundAudiences: circleci.aud,
      boundClaims: { 'oidc.circleci.com/context-ids': 'a74579f1-*' },
    });
    expect(policy.check(circleci)).toEqual({ ok: true });
    expect(policy.check({ aud: circleci.aud, 'oidc.circleci.com/context-ids': [] })).toMatchObject({
      code: 'claim_not_allowed',
    });
    expect(policyFor({ boundClaims: { groups: ['7'] } }).check({ groups: [3, 7] })).toEqual({ ok: true });
    const long = Array.from({ length: GLOB_LIMITS.maxArrayElements + 1 }, () => 'a74579f1-x');
    expect(policy.check({ aud: circleci.aud, 'oidc.circleci.com/context-ids': long })).toMatchObject({
      code: 'claim_not_allowed',
    });
  });

  it('CLM-03: Kubernetes bindings on dotted and nested claims', () => {
    const policy = policyFor({
      boundAudiences: 'https://secrets.example.com',
      boundSubject: 'system:serviceaccount:payments:payments-api',
      boundClaims: {
        'kubernetes.io.namespace': 'payments',
        'kubernetes.io.serviceaccount.uid': 'e6a8680e-d103-4cce-80ea-03acbbeacf7d',
      },
    });
    expect(policy.check(kubernetes)).toEqual({ ok: true });
    const other = {
      ...kubernetes,
      'kubernetes.io': { ...kubernetes['kubernetes.io'], namespace: 'default' },
    };
    expect(policy.check(other)).toMatchObject({
      code: 'claim_not_allowed',
      claim: 'kubernetes.io.namespace',
    });
    const whole = policyFor({ boundAudiences: kubernetes.aud, boundClaims: { 'kubernetes.io': 'payments' } });
    expect(whole.check(kubernetes)).toMatchObject({
      code: 'claim_not_allowed',
    });
  });

  it('CLM-04: AND across claims, OR within a claim', () => {
    const policy = policyFor({
      boundAudiences: github.aud,
      boundClaims: { ref: ['refs/heads/main', 'refs/tags/v*'], ref_protected: 'true' },
    });
    expect(policy.check(github)).toEqual({ ok: true });
    expect(policy.check({ ...github, ref: 'refs/tags/v1.2.3' })).toEqual({ ok: true });
    expect(policy.check({ ...github, ref: 'refs/heads/dev' })).toMatchObject({
      code: 'claim_not_allowed',
      claim: 'ref',
    });
    expect(policy.check({ ...github, ref_protected: 'false' })).toMatchObject({ claim: 'ref_protected' });
    expect(policy.check({ ...github, ref: 'refs/heads/main, refs/heads/dev' })).toMatchObject({
      claim: 'ref',
    });
  });

  it('CLM-09: ID claims bind against name reuse', () => {
    const policy = policyFor({
      boundAudiences: github.aud,
      boundClaims: { repository_id: '612345678', repository_owner_id: '81234567' },
    });
    expect(policy.check(github)).toEqual({ ok: true });
    expect(policy.check({ ...github, repository_id: '999999999' })).toMatchObject({ claim: 'repository_id' });
  });

  it('CLM-10: bindings for trusted refs reject pull-request and fork tokens', () => {
    const githubPolicy = policyFor({
      boundAudiences: github.aud,
      boundSubject: 'repo:acme-corp/payments-api:ref:refs/heads/main',
      boundClaims: { event_name: ['push', 'workflow_dispatch'] },
    });
    expect(githubPolicy.check(github)).toEqual({ ok: true });
    expect(
      githubPolicy.check({
        ...github,
        sub: 'repo:acme-corp/payments-api:pull_request',
        event_name: 'pull_request',
      }),
    ).toMatchObject({ code: 'subject_not_allowed' });
    expect(githubPolicy.check({ ...github, event_name: 'pull_request_target' })).toMatchObject({
      claim: 'event_name',
    });
    const gitlabPolicy = policyFor({
      boundAudiences: gitlab.aud,
      boundClaims: { job_project_id: '20', ref_protected: 'true' },
    });
    expect(gitlabPolicy.check(gitlab)).toEqual({ ok: true });
    expect(gitlabPolicy.check({ ...gitlab, project_id: '99', job_project_id: '99' })).toMatchObject({
      claim: 'job_project_id',
    });
    expect(gitlabPolicy.check({ ...gitlab, ref_protected: 'false' })).toMatchObject({
      claim: 'ref_protected',
    });
    expect(matchesGlob('repo:acme-corp/payments-api:pull_request', 'repo:acme-corp/payments-api:*')).toBe(
      true,
    );
  });

  it('never throws on hostile payloads', () => {
    const policy = policyFor({ boundAudiences: 'a', boundSubject: 'b', boundClaims: { c: 'd' } });
    for (const payload of [null, undefined, 'x', 42, [], { aud: Symbol('a') }, { aud: 'a', sub: 10n }]) {
      expect(policy.check(payload as unknown as Record<string, unknown>)).toMatchObject({ ok: false });
    }
    const claimsOnly = policyFor({ boundClaims: { c: 'd' } });
    for (const c of [Symbol('d'), 10n, () => 'd', new Date()]) {
      expect(claimsOnly.check({ c })).toMatchObject({ ok: false, code: 'claim_not_allowed' });
    }
  });

  it('re-validates patterns of a config that bypassed the parser', () => {
    const valid = parseIdentityConfig({
      identityId: 'x',
      jwksUrl: 'https://idp.example.com/jwks',
      boundIssuer: 'i',
      boundSubject: 'a',
    });
    const forged = { ...valid, boundSubject: ['*a*a*a*b'] };
    expect(() => compileIdentityPolicy(forged)).toThrow(ConfigError);
    expect(() =>
      compileIdentityPolicy({ ...valid, boundClaims: { __proto__x: ['a'], 'a..b': ['x'] } }),
    ).toThrow(ConfigError);
  });
});

describe('#13.9 stricter audiences than Vault', () => {
  const subject = 'repo:acme-corp/payments-api:ref:refs/heads/main';
  const refusedAud = { ok: false, code: 'audience_not_allowed' };

  it.each([
    ['a string aud', 'sts.amazonaws.com'],
    ['an array aud', ['sts.amazonaws.com', 'https://github.com/acme-corp']],
    ['a one-element array aud', ['api://AzureADTokenExchange']],
    ['an empty string aud', ''],
    ['an empty array aud', []],
    ['a null aud', null],
    ['a number aud', 42],
  ])(
    '#13.9 stricter audiences than Vault (AUD-02, CVE-2024-5798): with no boundAudiences, %s is refused',
    (_name, aud) => {
      const policy = policyFor({ boundSubject: subject });
      expect(policy.check({ ...github, aud })).toEqual(refusedAud);
      const [audience] = policy.explain({ ...github, aud });
      expect(audience).toMatchObject({ check: 'audience', pass: false, expected: [], actual: aud });
      expect(audience?.reason).toContain('binds no audience');
      expect(audience?.reason).toContain('allowAnyAudience');
    },
  );

  it('#13.9 stricter audiences than Vault: with no boundAudiences, a token without aud passes the audience check', () => {
    const policy = policyFor({ boundSubject: subject });
    const { aud: _aud, ...noAud } = github;
    expect(policy.check(noAud)).toEqual({ ok: true });
    expect(policy.explain(noAud)[0]).toEqual({
      check: 'audience',
      pass: true,
      expected: [],
      actual: undefined,
    });
  });

  it('#13.9 stricter audiences than Vault: allowAnyAudience opts out (string aud, array aud, no aud all pass)', () => {
    const policy = policyFor({ boundSubject: subject, allowAnyAudience: true });
    const { aud: _aud, ...noAud } = github;
    for (const payload of [{ ...github, aud: 'sts.amazonaws.com' }, { ...github, aud: ['x', 'y'] }, noAud]) {
      expect(policy.check(payload)).toEqual({ ok: true });
      expect(policy.explain(payload)[0]?.pass).toBe(true);
    }
    // Every other binding still holds.
    expect(policy.check({ ...github, sub: 'repo:evil/x:ref:refs/heads/main' })).toEqual({
      ok: false,
      code: 'subject_not_allowed',
    });
  });

  it('#13.9 stricter audiences than Vault: a config that did not come through parseIdentityConfig (no allowAnyAudience field) is strict', () => {
    const parsed = parseIdentityConfig({
      identityId: 'raw',
      jwksUrl: 'https://idp.example.com/jwks',
      boundIssuer: 'https://idp.example.com',
      boundSubject: subject,
    });
    const { allowAnyAudience: _flag, ...raw } = parsed;
    const policy = compileIdentityPolicy(raw as typeof parsed);
    expect(policy.check({ sub: subject, aud: 'anything' })).toEqual(refusedAud);
    expect(policy.check({ sub: subject })).toEqual({ ok: true });
  });

  it('#13.9 stricter audiences than Vault: a bound audience is unchanged (exact match, string or array)', () => {
    const policy = policyFor({ boundAudiences: 'https://github.com/acme-corp' });
    expect(policy.check({ aud: 'https://github.com/acme-corp' })).toEqual({ ok: true });
    expect(policy.check({ aud: ['x', 'https://github.com/acme-corp'] })).toEqual({ ok: true });
    expect(policy.check({ aud: 'sts.amazonaws.com' })).toEqual(refusedAud);
    expect(policy.check({})).toEqual(refusedAud);
  });

  it('#13.9 stricter audiences than Vault: a whole login with a token for another relying party is refused (audience_not_allowed) unless the identity opts out', async () => {
    const strict = makeEngine({ identity: { boundAudiences: [] } });
    const strictKey = strict.key;
    for (const aud of ['sts.amazonaws.com', ['sts.amazonaws.com', 'api://other']]) {
      const jwt = await sign(strictKey, githubClaims(strict.clock.ms, { aud }));
      await expect(strict.auth.login({ identityId: 'gh-deployer', jwt })).rejects.toMatchObject({
        status: 401,
      });
      expect(strict.rec.last('login.failure')?.reasonCode).toBe('audience_not_allowed');
    }
    const { aud: _aud, ...noAud } = githubClaims(strict.clock.ms);
    const grant = await strict.auth.login({ identityId: 'gh-deployer', jwt: await sign(strictKey, noAud) });
    expect(grant.tokenType).toBe('Bearer');

    const open = makeEngine({
      key: strictKey,
      identities: [githubIdentity(strictKey, { boundAudiences: [], allowAnyAudience: true })],
    });
    const jwt = await sign(strictKey, githubClaims(open.clock.ms, { aud: 'sts.amazonaws.com' }));
    expect((await open.auth.login({ identityId: 'gh-deployer', jwt })).tokenType).toBe('Bearer');
  });
});

describe('compileIdentityPolicy: explain', () => {
  it('lists every check, with unbound checks passing and missing claims as actual undefined', () => {
    const policy = policyFor({
      allowAnyAudience: true,
      boundClaims: { environment: 'production', ref: 'refs/heads/main' },
    });
    const checks = policy.explain(github);
    expect(checks.map((c) => c.check)).toEqual(['audience', 'subject', 'claim:environment', 'claim:ref']);
    expect(checks[0]).toEqual({ check: 'audience', pass: true, expected: [], actual: github.aud });
    expect(checks[2]).toMatchObject({ pass: false, actual: undefined, reason: 'the claim is missing' });
    expect(checks[3]).toMatchObject({ pass: true, actual: 'refs/heads/main', expected: ['refs/heads/main'] });
  });

  it('GLOB-08: hints ** when only * not crossing "/" made a GitHub branch pattern fail', () => {
    const policy = policyFor({ boundSubject: 'repo:acme-corp/*:ref:refs/heads/*' });
    const [, subject] = policy.explain({ sub: 'repo:acme-corp/payments-api:ref:refs/heads/feature/x' });
    expect(subject).toMatchObject({ check: 'subject', pass: false });
    expect(subject?.hint).toContain('"repo:acme-corp/*:ref:refs/heads/**" would match');
    expect(subject?.hint).toContain('crosses "/"');
  });

  it('GLOB-08: explains a GitLab subgroup that no ** substitution can fix', () => {
    const policy = policyFor({ boundSubject: 'project_path:acme/*:ref_type:branch:ref:main' });
    const [, subject] = policy.explain(gitlab);
    expect(subject?.pass).toBe(false);
    expect(subject?.hint).toContain('whole segment');
  });

  it('gives no slash hint when the failure is something else', () => {
    const policy = policyFor({ boundSubject: 'repo:acme-corp/*:ref:refs/heads/main' });
    const [, subject] = policy.explain({ sub: 'repo:acme-corp/payments-api:ref:refs/heads/dev' });
    expect(subject?.pass).toBe(false);
    expect(subject?.hint).toBeUndefined();
  });

  it('gives reasons for aud, sub and claim types', () => {
    const policy = policyFor({
      boundAudiences: 'a',
      boundSubject: 'b',
      boundClaims: { runner_id: '01', obj: 'x' },
    });
    const checks = policy.explain({ aud: [1], sub: ['b'], runner_id: 1, obj: { x: 'x' } });
    expect(checks.map((c) => c.pass)).toEqual([false, false, false, false]);
    expect(checks[0]?.reason).toContain('array of strings');
    expect(checks[1]?.reason).toContain('must be a string');
    expect(checks[2]?.reason).toContain('canonical string ("1")');
    expect(checks[3]?.reason).toContain('object');
    expect(policy.explain({})[0]?.reason).toBe('the token has no aud');
  });

  it('agrees with check() on pass/fail', () => {
    const policy = policyFor({
      boundAudiences: 'https://secrets.example.com',
      boundSubject: 'system:serviceaccount:payments:*',
      boundClaims: { 'kubernetes.io.namespace': 'payments' },
    });
    expect(policy.explain(kubernetes).every((c) => c.pass)).toBe(true);
    expect(policy.check(kubernetes).ok).toBe(true);
  });

  it('stays fast when an attacker-shaped value would blow up a merged-segment regex', () => {
    const policy = policyFor({ boundSubject: '*a*/**/a/b*' });
    const value = `${'a'.repeat(400)}/${'a/'.repeat(300)}`.slice(0, 1024);
    const { result, ms } = timed(() => policy.explain({ sub: value }));
    expect(result[1]?.pass).toBe(false);
    expect(ms).toBeLessThan(1000);
  });
});

describe('compileIdentityPolicy: metadata', () => {
  it('merges static metadata with mapped claims, leaving missing and object claims out', () => {
    const policy = policyFor({
      boundSubject: 'system:serviceaccount:payments:payments-api',
      metadata: { roles: ['reader'], team: 'payments' },
      claimMetadataMapping: {
        namespace: 'kubernetes.io.namespace',
        pod: 'kubernetes.io.pod',
        audiences: 'aud',
        missing: 'nope',
      },
    });
    const metadata = policy.metadata(kubernetes);
    expect(metadata).toEqual({
      roles: ['reader'],
      team: 'payments',
      namespace: 'payments',
      audiences: ['https://secrets.example.com'],
    });
    expect(Object.isFrozen(metadata)).toBe(true);
  });

  it('copies strings, numbers, booleans and arrays of them; skips null and mixed arrays', () => {
    const policy = policyFor({
      boundClaims: { x: 'y' },
      claimMetadataMapping: {
        runner: 'runner_id',
        rerun: 'r',
        list: 'l',
        mixed: 'm',
        nothing: 'n',
        empty: 'e',
      },
    });
    expect(
      policy.metadata({ runner_id: 1, r: false, l: ['a', 2, true], m: ['a', { b: 1 }], n: null, e: '' }),
    ).toEqual({
      runner: 1,
      rerun: false,
      list: ['a', 2, true],
      empty: '',
    });
  });

  it('returns the static metadata as is when nothing is mapped', () => {
    const policy = policyFor({ boundSubject: 'a', metadata: { roles: ['admin'] } });
    expect(policy.metadata({ sub: 'a' })).toEqual({ roles: ['admin'] });
    expect(policy.metadata({ sub: 'a' })).toBe(policy.metadata({ sub: 'b' }));
  });
});
