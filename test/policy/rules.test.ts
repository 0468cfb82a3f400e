import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseIdentityConfig } from '../../src/trust/config.js';
import { ConfigError } from '../../src/errors.js';
import { compileIdentityPolicy, type PolicyResult } from '../../src/policy/match.js';
import type { IdentityConfigInput, RuleInput } from '../../src/types.js';

const ISS = 'https://token.actions.githubusercontent.com';
const base = { identityId: 'org-ci', oidcDiscoveryUrl: ISS, boundIssuer: ISS } as const;

function config(extra: Partial<IdentityConfigInput>) {
  return parseIdentityConfig({ ...base, ...extra });
}
function check(extra: Partial<IdentityConfigInput>, payload: Record<string, unknown>): PolicyResult {
  return compileIdentityPolicy(config(extra)).check(payload);
}
function configError(extra: Record<string, unknown>): ConfigError {
  try {
    parseIdentityConfig({ ...base, ...extra });
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return error as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

const ORG = {
  rules: [
    { effect: 'deny', name: 'legacy', claims: { repository: 'acme-corp/legacy-*' } },
    { effect: 'allow', name: 'main', subject: 'repo:acme-corp/*:ref:refs/heads/main' },
    { effect: 'allow', name: 'tags', subject: 'repo:acme-corp/*:ref:refs/tags/v*' },
  ] satisfies RuleInput[],
  boundAudiences: 'https://github.com/acme-corp',
};
const claims = (repo: string, ref: string, extra: Record<string, unknown> = {}) => ({
  iss: ISS,
  aud: 'https://github.com/acme-corp',
  sub: `repo:${repo}:ref:${ref}`,
  repository: repo,
  ref,
  ...extra,
});

describe('rules: allow and deny', () => {
  it('a login passes when one allow rule matches and no deny rule does; the result names the rule', () => {
    expect(check(ORG, claims('acme-corp/api', 'refs/heads/main'))).toEqual({ ok: true, rule: 'main' });
    expect(check(ORG, claims('acme-corp/api', 'refs/tags/v1.2'))).toEqual({ ok: true, rule: 'tags' });
  });

  it('deny always wins, whatever allow rule matches, and names the deny rule', () => {
    expect(check(ORG, claims('acme-corp/legacy-app', 'refs/heads/main'))).toEqual({
      ok: false,
      code: 'denied_by_rule',
      rule: 'legacy',
    });
  });

  it('no allow rule matching among several is no_rule_matched', () => {
    expect(check(ORG, claims('acme-corp/api', 'refs/heads/dev'))).toEqual({
      ok: false,
      code: 'no_rule_matched',
    });
  });

  it('with one allow rule, its first failing binding is the reason, naming the rule', () => {
    const one = {
      rules: [{ effect: 'allow', claims: { repository: 'acme-corp/api', ref: 'refs/heads/main' } }],
    } as const;
    expect(check(one, { iss: ISS, repository: 'acme-corp/api', ref: 'refs/heads/dev' })).toEqual({
      ok: false,
      code: 'claim_not_allowed',
      claim: 'ref',
      rule: 'rules[0]',
    });
    expect(check(one, { iss: ISS, repository: 'acme-corp/api' })).toEqual({
      ok: false,
      code: 'claim_missing',
      claim: 'ref',
      rule: 'rules[0]',
    });
  });

  it('identity-level (flat) bindings apply to every allow rule: the audience is checked for each', () => {
    expect(check(ORG, claims('acme-corp/api', 'refs/heads/main', { aud: 'other' }))).toEqual({
      ok: false,
      code: 'no_rule_matched',
    });
  });

  it('a deny rule whose claim is missing does not match (it binds that claim)', () => {
    const payload = claims('acme-corp/api', 'refs/heads/main');
    delete (payload as Record<string, unknown>).repository;
    expect(check(ORG, payload)).toEqual({ ok: true, rule: 'main' });
  });

  it('a rule issuer narrows to one of boundIssuer', () => {
    const two = 'https://gitlab.example.com';
    const cfg = {
      boundIssuer: [ISS, two],
      rules: [
        { effect: 'allow', issuer: two, subject: 'project_path:acme/*' },
        { effect: 'deny', issuer: ISS, subject: 'project_path:acme/*' },
      ],
    } satisfies Partial<IdentityConfigInput>;
    expect(check(cfg, { iss: two, sub: 'project_path:acme/x' }).ok).toBe(true);
    expect(check(cfg, { iss: ISS, sub: 'project_path:acme/x' })).toMatchObject({
      ok: false,
      code: 'denied_by_rule',
    });
  });

  it('#13 audience guarantee under rules: no audience bound by the identity nor the matching allow rule refuses a token with any aud', () => {
    const cfg = { rules: [{ effect: 'allow', subject: 'repo:acme-corp/*:ref:refs/heads/main' }] } as const;
    const sub = 'repo:acme-corp/api:ref:refs/heads/main';
    expect(check(cfg, { iss: ISS, sub }).ok).toBe(true);
    for (const aud of ['x', [], '', null, ['a']]) {
      expect(check(cfg, { iss: ISS, sub, aud })).toMatchObject({ ok: false, code: 'audience_not_allowed' });
    }
    // an allow rule that binds audiences lifts it for itself; allowAnyAudience lifts it for every rule
    const bound = {
      rules: [{ effect: 'allow', subject: 'repo:acme-corp/*:ref:refs/heads/main', audiences: 'x' }],
    } as const;
    expect(check(bound, { iss: ISS, sub, aud: 'x' }).ok).toBe(true);
    expect(check({ ...cfg, allowAnyAudience: true }, { iss: ISS, sub, aud: 'x' }).ok).toBe(true);
  });

  it('a check that runs out of glob budget never allows, even if it ran out on a deny rule', () => {
    const rules: RuleInput[] = [
      { effect: 'deny', claims: { groups: ['*-admin-x*y', 'never*-*z'] } },
      { effect: 'allow', claims: { team: { equals: 'core' } } },
    ];
    const cfg = { rules };
    const long = 'a'.repeat(1000);
    expect(check(cfg, { iss: ISS, team: 'core', groups: ['x'] }).ok).toBe(true);
    const groups = Array.from({ length: 256 }, () => long); // 256 KiB of glob input > 64 KiB budget
    expect(check(cfg, { iss: ISS, team: 'core', groups })).toMatchObject({
      ok: false,
      code: 'no_rule_matched',
    });
  });
});

describe('rules: config validation names the identity, the rule index and the field', () => {
  it.each([
    [{ rules: [{ effect: 'allow', claims: { repository: '!acme/*' } }] }, 'rules[0].claims.repository[0]'],
    [
      {
        rules: [
          { effect: 'allow', subject: 'x' },
          { effect: 'allow', claims: { 'kubernetes.io/ns': '' } },
        ],
      },
      'rules[1].claims["kubernetes.io/ns"]',
    ],
    [{ rules: [{ effect: 'permit', subject: 'x' }] }, 'rules[0].effect'],
    [{ rules: [{ effect: 'allow', subjects: 'x' }] }, 'rules[0].subjects'],
    [
      {
        rules: [
          { effect: 'allow', subject: 'x' },
          { effect: 'allow', audiences: 'https://api.example.com*' },
        ],
      },
      'rules[1].audiences[0]',
    ],
    [{ rules: [{ effect: 'allow', claims: { id: { in: [1.5] } } }] }, 'rules[0].claims.id.in[0]'],
    [{ rules: [{ effect: 'allow', claims: { id: { in: [2 ** 53] } } }] }, 'rules[0].claims.id.in[0]'],
    [{ rules: [{ effect: 'allow', claims: { id: { oneOf: [] } } }] }, 'rules[0].claims.id.oneOf'],
    [{ rules: [{ effect: 'allow', claims: { id: { equals: 'a', oneOf: ['b'] } } }] }, 'rules[0].claims.id'],
    [{ rules: [{ effect: 'allow', claims: { id: { regex: '.*' } } }] }, 'rules[0].claims.id'],
    [{ rules: [{ effect: 'allow', issuer: 'https://other.example', subject: 'x' }] }, 'rules[0].issuer[0]'],
    [{ rules: [{ effect: 'deny', subject: 'x' }] }, 'rules'],
    [{ rules: [{ effect: 'allow' }] }, 'rules[0]'],
    [{ rules: [{ effect: 'allow', issuer: ISS }] }, 'rules[0]'],
    [
      {
        rules: [
          { effect: 'allow', name: 'a', subject: 'x' },
          { effect: 'allow', name: 'a', subject: 'y' },
        ],
      },
      'rules[1].name',
    ],
    [{ boundSubject: 'x', candidateRules: [] }, 'candidateRules'],
    [{ boundSubject: 'x', candidateRules: [{ effect: 'deny', subject: 'y' }] }, 'candidateRules'],
    [{ rules: 'allow' }, 'rules'],
  ])('%j is refused at %s', (extra, field) => {
    const error = configError(extra);
    expect(error.field).toBe(field);
    expect(error.message.startsWith(`identity "org-ci": ${field}: `)).toBe(true);
  });

  it('an identity with no allow rule that binds anything is refused (as without rules)', () => {
    expect(configError({ rules: [] }).field).toBe('boundSubject, boundAudiences, boundClaims');
    expect(configError({ candidateRules: [{ effect: 'allow', subject: 'x' }] }).field).toBe(
      'boundSubject, boundAudiences, boundClaims',
    );
  });

  it('an allow rule binding only an issuer is accepted when flat bindings apply to it', () => {
    expect(() => config({ boundAudiences: 'a', rules: [{ effect: 'allow', issuer: ISS }] })).not.toThrow();
  });

  it('rules round-trip through JSON to an equal config (stores keep the JSON)', () => {
    const parsed = config({
      ...ORG,
      candidateRules: [
        { effect: 'allow', claims: { repository_id: { in: [1, 2] }, ref: { oneOf: ['refs/heads/main'] } } },
      ],
    });
    const again = parseIdentityConfig(JSON.parse(JSON.stringify(parsed)));
    expect(again).toEqual(parsed);
    expect(again.rules?.[0]).toEqual({
      effect: 'deny',
      name: 'legacy',
      issuer: [],
      subject: [],
      audiences: [],
      claims: { repository: ['acme-corp/legacy-*'] },
    });
    expect(Object.isFrozen(again.rules?.[0]?.claims)).toBe(true);
  });
});

// ---------------------------------------------------------------------------------------------
// Property tests against an independent oracle

const SUBS = ['s1', 's2', 's3'];
const AUDS = ['a1', 'a2'];
const C1 = ['x', 'y', 'z'];

type Bind =
  | { kind: 'sub'; values: string[] }
  | { kind: 'aud'; values: string[] }
  | { kind: 'c1'; op: 'globs' | 'equals' | 'oneOf'; values: string[] }
  | { kind: 'c2'; ids: number[] };
interface R {
  effect: 'allow' | 'deny';
  binds: Bind[];
}

const subset = (list: string[]) => fc.subarray(list, { minLength: 1 });
const bindArb: fc.Arbitrary<Bind> = fc.oneof(
  subset(SUBS).map((values) => ({ kind: 'sub' as const, values })),
  subset(AUDS).map((values) => ({ kind: 'aud' as const, values })),
  fc.tuple(fc.constantFrom('globs', 'equals', 'oneOf'), subset(C1)).map(([op, values]) => ({
    kind: 'c1' as const,
    op,
    values: op === 'equals' ? values.slice(0, 1) : values,
  })),
  fc.subarray([1, 2, 3], { minLength: 1 }).map((ids) => ({ kind: 'c2' as const, ids })),
);
const ruleArb: fc.Arbitrary<R> = fc.record({
  effect: fc.constantFrom('allow', 'deny'),
  // unique kinds per rule
  binds: fc.uniqueArray(bindArb, { minLength: 1, maxLength: 4, selector: (b) => b.kind }),
});
const payloadArb = fc.record(
  {
    sub: fc.constantFrom(...SUBS),
    aud: fc.oneof(fc.constantFrom(...AUDS), fc.constant(['a2', 'a9'])),
    c1: fc.constantFrom(...C1, 7),
    c2: fc.constantFrom(1, 2, 3, '1', '2', '01', '1.0', 2.5, '9007199254740993'),
  },
  { requiredKeys: ['sub'] },
);

function toInput(r: R): RuleInput {
  const out: RuleInput = { effect: r.effect };
  for (const b of r.binds) {
    if (b.kind === 'sub') out.subject = b.values;
    else if (b.kind === 'aud') out.audiences = b.values;
    else if (b.kind === 'c2') out.claims = { ...out.claims, c2: { in: b.ids } };
    else {
      const match =
        b.op === 'globs' ? b.values : b.op === 'equals' ? { equals: b.values[0]! } : { oneOf: b.values };
      out.claims = { ...out.claims, c1: match };
    }
  }
  return out;
}

/** The oracle: plain set membership, written without the library's matchers. */
function oracleBind(b: Bind, p: Record<string, unknown>): boolean {
  if (b.kind === 'sub') return b.values.includes(p.sub as string);
  if (b.kind === 'aud') {
    const auds = Array.isArray(p.aud) ? (p.aud as string[]) : p.aud === undefined ? [] : [p.aud as string];
    return auds.some((a) => b.values.includes(a));
  }
  if (b.kind === 'c1') return typeof p.c1 === 'string' && b.values.includes(p.c1);
  const v = p.c2;
  const n =
    typeof v === 'number' ? v : typeof v === 'string' && /^[1-9][0-9]*$/.test(v) ? parseInt(v, 10) : NaN;
  return Number.isSafeInteger(n) && b.ids.includes(n);
}
function oracle(flat: Bind[], rules: R[], allowAnyAudience: boolean, p: Record<string, unknown>): boolean {
  const all = (binds: Bind[]) => binds.every((b) => oracleBind(b, p));
  const allowMatches = (binds: Bind[]) =>
    all([...flat, ...binds]) &&
    (allowAnyAudience || p.aud === undefined || [...flat, ...binds].some((b) => b.kind === 'aud'));
  if (rules.length === 0) return allowMatches([]);
  if (rules.some((r) => r.effect === 'deny' && all(r.binds))) return false; // deny wins
  return rules.some((r) => r.effect === 'allow' && allowMatches(r.binds)); // OR of allows
}
function flatInput(flat: Bind[]): Partial<IdentityConfigInput> {
  const out: Partial<IdentityConfigInput> = {};
  for (const b of flat) {
    if (b.kind === 'sub') out.boundSubject = b.values;
    else if (b.kind === 'aud') out.boundAudiences = b.values;
    else if (b.kind === 'c1') out.boundClaims = { c1: b.values };
  }
  return out;
}
const flatArb = fc.uniqueArray(
  bindArb.filter((b) => b.kind === 'sub' || b.kind === 'aud' || (b.kind === 'c1' && b.op === 'globs')),
  { maxLength: 2, selector: (b) => b.kind },
);

describe('rules: property tests against an independent oracle', () => {
  it('deny wins, allows are ORed, flat bindings apply to every allow rule', () => {
    fc.assert(
      fc.property(
        flatArb,
        fc.array(ruleArb, { minLength: 1, maxLength: 6 }),
        fc.boolean(),
        payloadArb,
        (flat, rules, any, p) => {
          fc.pre(rules.some((r) => r.effect === 'allow'));
          fc.pre(!(any && flat.some((b) => b.kind === 'aud')));
          const input = { ...flatInput(flat), rules: rules.map(toInput), allowAnyAudience: any };
          const verdict = compileIdentityPolicy(config(input)).check({ iss: ISS, ...p });
          expect(verdict.ok).toBe(oracle(flat, rules, any, p));
          if (
            !verdict.ok &&
            rules.some((r) => r.effect === 'deny' && r.binds.every((b) => oracleBind(b, p)))
          ) {
            expect(verdict.code).toBe('denied_by_rule');
          }
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('flat config = exactly one allow rule: same verdict and same reason code', () => {
    fc.assert(
      fc.property(
        flatArb.filter((f) => f.length > 0),
        fc.boolean(),
        payloadArb,
        (flat, any, p) => {
          fc.pre(!(any && flat.some((b) => b.kind === 'aud')));
          const flatConfig = { ...flatInput(flat), allowAnyAudience: any };
          const asRule = { allowAnyAudience: any, rules: [toInput({ effect: 'allow', binds: flat })] };
          const a = compileIdentityPolicy(config(flatConfig)).check({ iss: ISS, ...p });
          const b = compileIdentityPolicy(config(asRule)).check({ iss: ISS, ...p });
          expect(b.ok).toBe(a.ok);
          expect(b.ok ? undefined : b.code).toBe(a.ok ? undefined : a.code);
          expect(a.ok).toBe(oracle(flat, [], any, p));
        },
      ),
      { numRuns: 1000 },
    );
  });
});
