import type { IdentityConfig } from '../types.js';
import type { IdentityPolicy, PolicyCheck, PolicyFailureCode, PolicyResult } from './match.js';
import {
  MISSING_CLAIM,
  UNBOUND_AUDIENCE,
  audienceMatchesAny,
  beginGlobBudget,
  carriesAudience,
  compilePath,
  compilePattern,
  endGlobBudget,
  explainGlobs,
  globBudgetExhausted,
  matchAny,
  ownValue,
  readClaim,
  subjectMatchesAny,
  withGlobBudget,
  type CompiledClaimPath,
  type CompiledGlob,
} from './match.js';
import { compileComparison, comparisonProblem, type Comparison } from './compare.js';
import type { ClaimMatch, Rule } from './types.js';

// Rule semantics (docs/POLICIES.md). An identity's rules are evaluated on the verified payload:
// - a deny rule matches when every binding it has matches; a matching deny rule refuses the login
//   (`denied_by_rule`), whatever the allow rules say: deny always wins;
// - an allow rule matches when every binding it has matches AND every identity-level (flat) binding
//   (`boundSubject`, `boundAudiences`, `boundClaims`) matches; with no audience bound by the identity
//   nor the rule, the #13 guarantee holds: a token carrying any `aud` does not match it unless
//   `allowAnyAudience`;
// - the login passes when at least one allow rule matches and no deny rule does. Without rules the
//   flat bindings are exactly one allow rule (that case is compiled by match.ts as before).
// Deny rules are evaluated first and every glob of one check shares one budget
// (GLOB_LIMITS.maxGlobCharsPerCheck): a check that ran out of budget never allows, so a token cannot
// exhaust the budget on the deny rules to slip past them.

/** Whether a config needs the rules engine (explicit rules, or audit mode). */
export function hasRules(config: IdentityConfig): boolean {
  return (config.rules?.length ?? 0) > 0 || config.candidateRules !== undefined;
}

/** The name a rule is reported by: its `name`, else `rules[i]` (`candidateRules[i]`). */
export function ruleLabel(rule: Rule, index: number, list: 'rules' | 'candidateRules' = 'rules'): string {
  return rule.name ?? `${list}[${index}]`;
}

/** What `explain` shows of one rule. */
export interface RuleReport {
  rule: string;
  effect: 'allow' | 'deny';
  matched: boolean;
  /** The first binding that failed (rules that did not match). */
  failed?: PolicyCheck;
}

/** What `explain` shows of a rule set: the verdict, the rule that decided, and every rule. */
export interface RuleSetExplanation {
  outcome: 'allow' | 'deny';
  /** The allow or deny rule that decided (absent when no allow rule matched among several). */
  decidedBy?: string;
  reasonCode?: PolicyFailureCode;
  rules: RuleReport[];
}

/** {@link IdentityPolicy.explainRules}: the live rules, and the candidate rules in audit mode. */
export interface RuleExplanation extends RuleSetExplanation {
  candidate?: RuleSetExplanation;
}

/** A login where the candidate rules decide differently from the live ones (audit mode). */
export interface CandidateMismatch {
  live: 'allow' | 'deny';
  /** The live rule that decided, when one did. */
  liveRule?: string;
  liveReason?: PolicyFailureCode;
  candidate: 'allow' | 'deny';
  /** The candidate rule that decided (the allow rule that matched or the deny rule that matched). */
  candidateRule?: string;
  candidateReason?: PolicyFailureCode;
}

type Binding =
  | { readonly kind: 'issuer'; readonly issuers: readonly string[]; readonly fail: PolicyResult }
  | {
      readonly kind: 'audience' | 'subject';
      readonly patterns: readonly string[];
      readonly list: readonly CompiledGlob[];
      readonly fail: PolicyResult;
    }
  | { readonly kind: 'no_audience'; readonly fail: PolicyResult }
  | {
      readonly kind: 'claim';
      readonly path: CompiledClaimPath;
      readonly name: string;
      readonly match: ClaimMatch;
      readonly globs: readonly CompiledGlob[] | undefined;
      readonly compare: Comparison | undefined;
      readonly missing: PolicyResult;
      readonly fail: PolicyResult;
    };

interface CompiledRule {
  readonly label: string;
  readonly effect: 'allow' | 'deny';
  readonly bindings: readonly Binding[];
  /** The verdict when this rule decides: ok (allow) or `denied_by_rule` (deny). */
  readonly decided: PolicyResult;
}

interface CompiledSet {
  readonly denies: readonly CompiledRule[];
  readonly allows: readonly CompiledRule[];
  /** In config order, for explain. */
  readonly all: readonly CompiledRule[];
  readonly noMatch: PolicyResult;
}

/** Compile an identity's rules; `flat` is its compiled flat policy (metadata, and the no-rules case). */
export function compileRulesPolicy(config: IdentityConfig, flat: IdentityPolicy): IdentityPolicy {
  return new RulesPolicy(config, flat);
}

class RulesPolicy implements IdentityPolicy {
  readonly identityId: string;
  readonly #flat: IdentityPolicy;
  readonly #live: CompiledSet;
  readonly #candidate: CompiledSet | undefined;

  constructor(config: IdentityConfig, flat: IdentityPolicy) {
    this.identityId = config.identityId;
    this.#flat = flat;
    const live: readonly Rule[] = config.rules?.length ? config.rules : [FLAT_RULE];
    this.#live = compileSet(config, live, 'rules');
    const candidate = config.candidateRules;
    this.#candidate = candidate === undefined ? undefined : compileSet(config, candidate, 'candidateRules');
  }

  check(payload: Record<string, unknown>): PolicyResult {
    return decide(this.#live, payload);
  }

  explain(payload: Record<string, unknown>): PolicyCheck[] {
    return this.#flat.explain(payload);
  }

  metadata(payload: Record<string, unknown>): Readonly<Record<string, unknown>> {
    return this.#flat.metadata(payload);
  }

  explainRules(payload: Record<string, unknown>): RuleExplanation {
    const out: RuleExplanation = explainSet(this.#live, payload);
    if (this.#candidate) out.candidate = explainSet(this.#candidate, payload);
    return out;
  }

  audit(payload: Record<string, unknown>, live: PolicyResult): CandidateMismatch | undefined {
    const set = this.#candidate;
    if (!set) return undefined;
    const verdict = decide(set, payload);
    if (verdict.ok === live.ok) return undefined;
    const out: CandidateMismatch = {
      live: live.ok ? 'allow' : 'deny',
      candidate: verdict.ok ? 'allow' : 'deny',
    };
    if (live.rule !== undefined) out.liveRule = live.rule;
    if (!live.ok) out.liveReason = live.code;
    if (verdict.rule !== undefined) out.candidateRule = verdict.rule;
    if (!verdict.ok) out.candidateReason = verdict.code;
    return out;
  }
}

/**
 * An identity with `candidateRules` and no `rules`: its flat bindings are the one live allow rule
 * (an allow rule carries the identity-level bindings, so an empty one is exactly them).
 */
const FLAT_RULE: Rule = Object.freeze({
  effect: 'allow',
  issuer: [],
  subject: [],
  audiences: [],
  claims: {},
});

function compileSet(
  config: IdentityConfig,
  rules: readonly Rule[],
  list: 'rules' | 'candidateRules',
): CompiledSet {
  const id = config.identityId;
  const all = rules.map((rule, i) => {
    const label = ruleLabel(rule, i, list);
    const at = `${list}[${i}]`;
    const fail = (code: PolicyFailureCode, claim?: string): PolicyResult =>
      Object.freeze(
        claim === undefined ? { ok: false, code, rule: label } : { ok: false, code, claim, rule: label },
      );
    const bindings: Binding[] = [];
    const allow = rule.effect === 'allow';
    if (rule.issuer.length > 0)
      bindings.push({ kind: 'issuer', issuers: rule.issuer, fail: fail('no_rule_matched') });
    const globs = (kind: 'audience' | 'subject', patterns: readonly string[], field: string): void => {
      if (patterns.length === 0) return;
      bindings.push({
        kind,
        patterns,
        list: patterns.map((p, j) => compilePattern(p, `${field}[${j}]`, id)),
        fail: fail(kind === 'audience' ? 'audience_not_allowed' : 'subject_not_allowed'),
      });
    };
    // An allow rule also carries the identity-level (flat) bindings, in the order match.ts checks them.
    if (allow) globs('audience', config.boundAudiences, 'boundAudiences');
    globs('audience', rule.audiences, `${at}.audiences`);
    if (
      allow &&
      config.boundAudiences.length === 0 &&
      rule.audiences.length === 0 &&
      config.allowAnyAudience !== true
    ) {
      bindings.push({ kind: 'no_audience', fail: fail('audience_not_allowed') });
    }
    if (allow) globs('subject', config.boundSubject, 'boundSubject');
    globs('subject', rule.subject, `${at}.subject`);
    const claims = (record: Readonly<Record<string, ClaimMatch>>, field: string): void => {
      for (const [path, match] of Object.entries(record)) {
        const claimField = `${field}[${JSON.stringify(path)}]`;
        const isGlobs = Array.isArray(match);
        bindings.push({
          kind: 'claim',
          path: compilePath(path, claimField, id),
          name: path,
          match,
          globs: isGlobs
            ? (match as readonly string[]).map((p, j) => compilePattern(p, `${claimField}[${j}]`, id))
            : undefined,
          compare: isGlobs ? undefined : compileComparison(match as Exclude<ClaimMatch, readonly string[]>),
          missing: fail('claim_missing', path),
          fail: fail('claim_not_allowed', path),
        });
      }
    };
    if (allow) claims(config.boundClaims, 'boundClaims');
    claims(rule.claims, `${at}.claims`);
    const decided: PolicyResult = Object.freeze(
      allow ? { ok: true, rule: label } : { ok: false, code: 'denied_by_rule', rule: label },
    );
    return { label, effect: rule.effect, bindings, decided } satisfies CompiledRule;
  });
  return {
    all,
    denies: all.filter((r) => r.effect === 'deny'),
    allows: all.filter((r) => r.effect === 'allow'),
    noMatch: Object.freeze({ ok: false, code: 'no_rule_matched' }),
  };
}

// Claim values read in the current check, by compiled path: rules often bind the same claim (the org
// id in every allow rule), so each is resolved once per check. Reset at the start and end of each
// check (the evaluation is synchronous), and at most MEMO_SIZE paths are kept.
const MEMO_SIZE = 16;
const memoPaths: Array<CompiledClaimPath | undefined> = new Array<CompiledClaimPath | undefined>(MEMO_SIZE);
const memoValues: unknown[] = new Array<unknown>(MEMO_SIZE);
let memoCount = 0;

function resetMemo(): void {
  for (let i = 0; i < memoCount; i++) {
    memoPaths[i] = undefined;
    memoValues[i] = undefined;
  }
  memoCount = 0;
}

function claimValue(payload: Record<string, unknown>, path: CompiledClaimPath): unknown {
  for (let i = 0; i < memoCount; i++) if (memoPaths[i] === path) return memoValues[i];
  const value = readClaim(payload, path);
  if (memoCount < MEMO_SIZE) {
    memoPaths[memoCount] = path;
    memoValues[memoCount++] = value;
  }
  return value;
}

/** The first binding of a rule that fails, or `undefined` when the rule matches. */
function firstFailure(rule: CompiledRule, payload: Record<string, unknown>): PolicyResult | undefined {
  const bindings = rule.bindings;
  for (let i = 0; i < bindings.length; i++) {
    const b = bindings[i] as Binding;
    switch (b.kind) {
      case 'issuer': {
        const iss = ownValue(payload, 'iss');
        if (typeof iss !== 'string' || !b.issuers.includes(iss)) return b.fail;
        break;
      }
      case 'audience':
        if (!audienceMatchesAny(payload, b.list)) return b.fail;
        break;
      case 'no_audience':
        if (carriesAudience(payload)) return b.fail;
        break;
      case 'subject':
        if (!subjectMatchesAny(payload, b.list)) return b.fail;
        break;
      case 'claim': {
        const value = claimValue(payload, b.path);
        if (value === MISSING_CLAIM) return b.missing;
        if (b.globs ? !matchAny(value, b.globs) : !(b.compare as Comparison).test(value)) return b.fail;
        break;
      }
    }
  }
  return undefined;
}

function decide(set: CompiledSet, payload: Record<string, unknown>): PolicyResult {
  beginGlobBudget();
  resetMemo();
  try {
    const denies = set.denies;
    for (let i = 0; i < denies.length; i++) {
      const rule = denies[i] as CompiledRule;
      if (firstFailure(rule, payload) === undefined) return rule.decided;
    }
    let failure: PolicyResult | undefined;
    let verdict: PolicyResult | undefined;
    const allows = set.allows;
    for (let i = 0; i < allows.length; i++) {
      const rule = allows[i] as CompiledRule;
      failure = firstFailure(rule, payload);
      if (failure === undefined) {
        verdict = rule.decided;
        break;
      }
    }
    // Out of glob budget: a deny rule may have failed only for that, so nothing is allowed.
    if (globBudgetExhausted()) return set.noMatch;
    if (verdict) return verdict;
    return allows.length === 1 && failure ? failure : set.noMatch;
  } finally {
    endGlobBudget();
    resetMemo();
  }
}

function explainSet(set: CompiledSet, payload: Record<string, unknown>): RuleSetExplanation {
  const verdict = decide(set, payload);
  const out: RuleSetExplanation = { outcome: verdict.ok ? 'allow' : 'deny', rules: [] };
  if (verdict.rule !== undefined) out.decidedBy = verdict.rule;
  if (!verdict.ok) out.reasonCode = verdict.code;
  withGlobBudget(() => {
    resetMemo();
    for (const rule of set.all) {
      const failure = firstFailure(rule, payload);
      const report: RuleReport = { rule: rule.label, effect: rule.effect, matched: failure === undefined };
      if (failure !== undefined) {
        const binding = rule.bindings.find(
          (b) => b.fail === failure || (b.kind === 'claim' && b.missing === failure),
        );
        if (binding) report.failed = explainBinding(binding, payload);
      }
      out.rules.push(report);
    }
    resetMemo();
  });
  return out;
}

function explainBinding(b: Binding, payload: Record<string, unknown>): PolicyCheck {
  switch (b.kind) {
    case 'issuer':
      return {
        check: 'issuer',
        pass: false,
        expected: b.issuers,
        actual: ownValue(payload, 'iss'),
        reason: 'the token issuer is none of the rule issuers',
      };
    case 'no_audience':
      return {
        check: 'audience',
        pass: false,
        expected: [],
        actual: ownValue(payload, 'aud'),
        reason: UNBOUND_AUDIENCE,
      };
    case 'audience':
    case 'subject':
      return explainGlobs(
        b.kind,
        b.kind,
        b.patterns,
        b.list,
        ownValue(payload, b.kind === 'audience' ? 'aud' : 'sub'),
      );
    case 'claim': {
      const check = `claim:${b.name}`;
      const value = readClaim(payload, b.path);
      const expected = (b.globs ? b.match : [b.match]) as readonly string[];
      if (value === MISSING_CLAIM) {
        return { check, pass: false, expected, actual: undefined, reason: 'the claim is missing' };
      }
      if (b.globs) return explainGlobs('claim', check, b.match as readonly string[], b.globs, value);
      return {
        check,
        pass: false,
        expected,
        actual: value,
        reason: comparisonProblem(b.match as Exclude<ClaimMatch, readonly string[]>, value),
      };
    }
  }
}
