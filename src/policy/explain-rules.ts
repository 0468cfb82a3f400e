import type { ReasonCode } from '../errors.js';
import type { ExplainCheck, ExplainReport } from './explain.js';
import type { IdentityPolicy } from './match.js';

/**
 * `explain` for an identity with rules: one `rule:<name>` check per rule in config order (deny and
 * allow), each saying whether it matched and, when it did not, its first failing binding; the rule
 * that decided; and, in audit mode, what the candidate rules would decide. Returns `undefined` for
 * an identity without rules (its flat bindings are explained one by one, as before).
 */
export function explainRuleChecks(
  report: ExplainReport,
  policy: IdentityPolicy,
  payload: Record<string, unknown>,
): { failure: ReasonCode | undefined } | undefined {
  if (!policy.explainRules) return undefined;
  const explanation = policy.explainRules(payload);
  for (const rule of explanation.rules) {
    const decided = explanation.decidedBy === rule.rule;
    const check: ExplainCheck = {
      check: `rule:${rule.rule}`,
      // A rule "passes" when it does not stand in the way: an allow rule that matched, a deny rule that did not.
      pass: rule.effect === 'allow' ? rule.matched : !rule.matched,
      rule: { effect: rule.effect, matched: rule.matched, decided },
    };
    if (rule.failed) check.failed = rule.failed;
    if (rule.effect === 'deny' && rule.matched) check.reason = 'this deny rule matches: deny always wins';
    report.checks.push(check);
  }
  if (explanation.decidedBy !== undefined) report.decidedBy = explanation.decidedBy;
  const candidate = explanation.candidate;
  if (candidate) {
    report.candidate = { outcome: candidate.outcome };
    if (candidate.decidedBy !== undefined) report.candidate.decidedBy = candidate.decidedBy;
    if (candidate.reasonCode !== undefined) report.candidate.reasonCode = candidate.reasonCode;
  }
  return { failure: explanation.outcome === 'allow' ? undefined : explanation.reasonCode };
}
