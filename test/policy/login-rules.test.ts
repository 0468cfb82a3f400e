import { describe, expect, it } from 'vitest';
import { createMetrics } from '../../src/index.js';
import type { RuleInput } from '../../src/types.js';
import { githubIdentity, makeEngine } from '../helpers/engine.js';
import { githubClaims, makeKey, sign } from '../helpers/jwt.js';

const RULES: RuleInput[] = [
  {
    effect: 'deny',
    name: 'no-forks',
    claims: { event_name: { oneOf: ['pull_request', 'pull_request_target'] } },
  },
  {
    effect: 'allow',
    name: 'protected',
    claims: { repository_owner_id: { in: [81234567] }, ref_protected: 'true' },
  },
];

describe('login with rules', () => {
  it('allows through an allow rule; a deny rule refuses with denied_by_rule and the rule in the event', async () => {
    const key = makeKey('RS256');
    const { auth, clock, rec } = makeEngine({
      key,
      identity: { boundSubject: undefined, boundClaims: undefined, rules: RULES },
    });
    await expect(
      auth.login({ identityId: 'gh-deployer', jwt: await sign(key, githubClaims(clock.ms)) }),
    ).resolves.toMatchObject({
      identityId: 'gh-deployer',
    });
    const pr = await sign(key, githubClaims(clock.ms, { event_name: 'pull_request' }));
    await expect(auth.login({ identityId: 'gh-deployer', jwt: pr })).rejects.toMatchObject({
      status: 401,
      code: 'denied_by_rule',
    });
    expect(rec.last('login.failure')).toMatchObject({
      reasonCode: 'denied_by_rule',
      detail: { rule: 'no-forks' },
    });
    const unprotected = await sign(key, githubClaims(clock.ms, { ref_protected: 'false' }));
    await expect(auth.login({ identityId: 'gh-deployer', jwt: unprotected })).rejects.toMatchObject({
      code: 'claim_not_allowed',
    });
    expect(rec.last('login.failure')).toMatchObject({
      detail: { claim: 'ref_protected', rule: 'protected' },
    });
    await auth.close();
  });
});

describe('audit mode (candidateRules)', () => {
  it('never changes the answer; emits login.candidate_mismatch naming the deciding candidate rule, and counts it', async () => {
    const key = makeKey('RS256');
    const metrics = createMetrics();
    const { auth, clock, rec } = makeEngine({
      key,
      identity: {
        // boundAudiences stays: identity-level bindings apply to live and candidate rules alike
        boundSubject: undefined,
        boundClaims: undefined,
        rules: [
          {
            effect: 'allow',
            name: 'payments-main',
            subject: 'repo:acme-corp/payments-api:ref:refs/heads/main',
          },
        ],
        candidateRules: [
          { effect: 'deny', name: 'freeze-payments', claims: { repository: 'acme-corp/payments-*' } },
          { effect: 'allow', name: 'any-main', claims: { ref: { equals: 'refs/heads/main' } } },
          { effect: 'allow', name: 'release', subject: 'repo:acme-corp/*:ref:refs/tags/v*' },
        ],
      },
      auth: { onEvent: (e) => (rec.onEvent(e), metrics.onEvent(e)) },
    });
    // live allows, candidate denies: the login succeeds, the event says so
    await expect(
      auth.login({ identityId: 'gh-deployer', jwt: await sign(key, githubClaims(clock.ms)) }),
    ).resolves.toBeDefined();
    expect(rec.last('login.candidate_mismatch')).toMatchObject({
      identityId: 'gh-deployer',
      subject: 'repo:acme-corp/payments-api:ref:refs/heads/main',
      detail: {
        live: 'allow',
        candidate: 'deny',
        candidateRule: 'freeze-payments',
        candidateReason: 'denied_by_rule',
      },
    });
    // live denies (subject not bound), candidate would allow through a rule: still refused
    const tag = await sign(
      key,
      githubClaims(clock.ms, {
        sub: 'repo:acme-corp/web:ref:refs/tags/v2',
        repository: 'acme-corp/web',
        ref: 'refs/tags/v2',
      }),
    );
    await expect(auth.login({ identityId: 'gh-deployer', jwt: tag })).rejects.toMatchObject({
      code: 'subject_not_allowed',
    });
    expect(rec.last('login.candidate_mismatch')).toMatchObject({
      detail: {
        live: 'deny',
        liveRule: 'payments-main',
        liveReason: 'subject_not_allowed',
        candidate: 'allow',
        candidateRule: 'release',
      },
    });
    // both deny: no event
    const before = rec.events.filter((e) => e.type === 'login.candidate_mismatch').length;
    const other = await sign(
      key,
      githubClaims(clock.ms, {
        sub: 'repo:x/y:ref:refs/heads/dev',
        ref: 'refs/heads/dev',
        repository: 'x/y',
      }),
    );
    await expect(auth.login({ identityId: 'gh-deployer', jwt: other })).rejects.toThrow();
    expect(rec.events.filter((e) => e.type === 'login.candidate_mismatch').length).toBe(before);
    expect(metrics.snapshot().candidateMismatches).toEqual({ candidateDenies: 1, candidateAllows: 1 });
    const text = metrics.render();
    expect(text).toContain('oidc_machine_auth_candidate_mismatches_total{live="allow",candidate="deny"} 1');
    expect(text).toContain('oidc_machine_auth_candidate_mismatches_total{live="deny",candidate="allow"} 1');
    await auth.close();
  });

  it('an identity without candidateRules emits no mismatch event', async () => {
    const key = makeKey('RS256');
    const { auth, clock, rec } = makeEngine({ key, identities: [githubIdentity(key)] });
    await auth.login({ identityId: 'gh-deployer', jwt: await sign(key, githubClaims(clock.ms)) });
    expect(rec.last('login.candidate_mismatch')).toBeUndefined();
    await auth.close();
  });
});
