import { decodeJwt } from 'jose';
import { parseIdentityConfig } from '../trust/config.js';
import { ConfigError } from '../errors.js';
import { compileIdentityPolicy } from '../policy/match.js';
import { TrustRegistry, type TrustEntryInput } from '../trust/entries.js';
import { acceptsIssuer } from '../trust/sources.js';
import type { IdentityConfig } from '../types.js';
import { FAIL, PASS, show } from './text.js';

/** Bounds of a `test` run: a policy test is a CI gate, not a load generator. */
export const POLICY_TEST_LIMITS = Object.freeze({ maxCases: 10_000, maxCaseBytes: 1024 * 1024 });

/** One test case file, as written (JSON). */
export interface PolicyTestCase {
  /** Shown instead of the file name. */
  name?: string;
  /** The identity (of the policy file) the login names. */
  identity: string;
  /** The token payload, or … */
  claims?: Record<string, unknown>;
  /** … a compact JWT whose payload is used. Its signature is NOT checked. */
  jwt?: string;
  expect: 'allow' | 'deny';
  /** Denials: the expected reason code (`denied_by_rule`, `no_rule_matched`, `subject_not_allowed`…). */
  reason?: string;
  /** The rule expected to decide: the allow rule that allows, or the deny rule that denies. */
  rule?: string;
}

/** What one case did. */
export interface PolicyTestResult {
  file: string;
  name: string;
  ok: boolean;
  /** What the policy decided (absent when the case could not be run). */
  outcome?: 'allow' | 'deny';
  reason?: string;
  rule?: string;
  /** Audit mode: the candidate rules' outcome, when it differs. */
  candidate?: 'allow' | 'deny';
  /** Why the case is a surprise (or could not be run). */
  problem?: string;
}

const CASE_FIELDS: ReadonlySet<string> = new Set([
  'name',
  'identity',
  'claims',
  'jwt',
  'expect',
  'reason',
  'rule',
]);

/**
 * Run a policy file's identities against case files, on claims only: no signature, time or network
 * check is made, only the issuer and the identity's bindings and rules. An identity naming a trust
 * entry of the file is resolved as the engine resolves it (the entry's key sources, issuers,
 * issuer patterns and audiences), and the token's issuer is matched as the engine matches it: one
 * of a source's exact issuers, or a concrete issuer an issuer pattern admits.
 *
 * @param entries The raw identity configs of the policy file.
 * @param cases `[file name, file text]`, in the order to run.
 * @param trust The raw trust entries of the policy file (`"trust": [...]`), if any.
 * @returns `{ error }` naming the identity (or trust entry) and field when the policy file is invalid.
 */
export function runPolicyTests(
  entries: readonly unknown[],
  cases: ReadonlyArray<readonly [string, string]>,
  trust: readonly unknown[] = [],
): { error: string } | { results: PolicyTestResult[] } {
  const identities = new Map<string, IdentityConfig>();
  let registry: TrustRegistry;
  try {
    registry = new TrustRegistry(trust as readonly TrustEntryInput[]);
  } catch (error) {
    if (error instanceof ConfigError) return { error: `the policy file is invalid: ${error.message}` };
    throw error;
  }
  for (const entry of entries) {
    try {
      const config = registry.resolve(parseIdentityConfig(entry));
      identities.set(config.identityId, config);
    } catch (error) {
      if (error instanceof ConfigError) return { error: `the policy file is invalid: ${error.message}` };
      throw error;
    }
  }
  return { results: cases.map(([file, text]) => runCase(identities, file, text)) };
}

function runCase(
  identities: ReadonlyMap<string, IdentityConfig>,
  file: string,
  text: string,
): PolicyTestResult {
  const result: PolicyTestResult = { file, name: file, ok: false };
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (error) {
    return { ...result, problem: `not valid JSON: ${(error as Error).message}` };
  }
  const spec = data as Partial<PolicyTestCase> | null;
  if (spec === null || typeof spec !== 'object' || Array.isArray(spec))
    return { ...result, problem: 'must be a JSON object' };
  const unknown = Object.keys(spec).find((key) => !CASE_FIELDS.has(key));
  if (unknown !== undefined) return { ...result, problem: `has an unknown field ${show(unknown)}` };
  if (typeof spec.name === 'string' && spec.name !== '') result.name = spec.name;
  if (spec.expect !== 'allow' && spec.expect !== 'deny')
    return { ...result, problem: '"expect" must be "allow" or "deny"' };
  if (spec.expect === 'allow' && spec.reason !== undefined)
    return { ...result, problem: '"reason" is for denials only' };
  const config = typeof spec.identity === 'string' ? identities.get(spec.identity) : undefined;
  if (!config) return { ...result, problem: `"identity" ${show(spec.identity)} is not in the policy file` };
  let payload: Record<string, unknown>;
  if ((spec.claims === undefined) === (spec.jwt === undefined)) {
    return { ...result, problem: 'give exactly one of "claims" and "jwt"' };
  }
  if (spec.jwt !== undefined) {
    try {
      payload = decodeJwt(String(spec.jwt));
    } catch {
      return { ...result, problem: '"jwt" is not a compact JWT with a JSON payload' };
    }
  } else if (spec.claims !== null && typeof spec.claims === 'object' && !Array.isArray(spec.claims)) {
    payload = spec.claims;
  } else {
    return { ...result, problem: '"claims" must be an object' };
  }

  const iss = Object.hasOwn(payload, 'iss') ? payload.iss : undefined;
  if (!acceptsIssuer(config, iss)) {
    result.outcome = 'deny';
    result.reason = 'issuer_mismatch';
  } else {
    const policy = compileIdentityPolicy(config);
    const verdict = policy.check(payload);
    result.outcome = verdict.ok ? 'allow' : 'deny';
    if (!verdict.ok) result.reason = verdict.code;
    if (verdict.rule !== undefined) result.rule = verdict.rule;
    const mismatch = policy.audit?.(payload, verdict);
    if (mismatch) result.candidate = mismatch.candidate;
  }
  const surprises: string[] = [];
  if (result.outcome !== spec.expect) surprises.push(`expected ${spec.expect}`);
  if (spec.reason !== undefined && result.reason !== spec.reason)
    surprises.push(`expected reason ${spec.reason}`);
  if (spec.rule !== undefined && result.rule !== spec.rule)
    surprises.push(`expected rule ${show(spec.rule)}`);
  result.ok = surprises.length === 0;
  if (!result.ok) result.problem = surprises.join(', ');
  return result;
}

/** One line per case, then a summary. */
export function formatPolicyTests(
  results: readonly PolicyTestResult[],
  source: { policy: string; cases: string },
): string {
  const lines: string[] = [
    `Policy ${source.policy} against the cases in ${source.cases} (claims only: signatures and times are not checked):`,
    '',
  ];
  for (const r of results) {
    const got =
      r.outcome === undefined
        ? ''
        : `${r.outcome}${r.reason ? ` (${r.reason})` : ''}${r.rule ? ` by rule ${show(r.rule)}` : ''}` +
          `${r.candidate ? `; candidate rules would ${r.candidate}` : ''}`;
    const label = r.name === r.file ? r.file : `${r.file} (${r.name})`;
    lines.push(
      r.ok ? `  ${PASS} ${label}: ${got}` : `  ${FAIL} ${label}: ${r.problem}${got ? `, got ${got}` : ''}`,
    );
  }
  const failed = results.filter((r) => !r.ok).length;
  lines.push(
    '',
    failed === 0
      ? `${PASS} ${results.length} cases, all as expected.`
      : `${FAIL} ${failed} of ${results.length} cases did not go as expected.`,
  );
  return `${lines.join('\n')}\n`;
}
