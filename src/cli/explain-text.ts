import { discoveryDocumentUrl } from '../trust/config.js';
import type { ExplainCheck, ExplainItem, ExplainReport, ExplainTimes } from '../policy/explain.js';
import type { IdentityConfig } from '../types.js';
import { FAIL, PASS, duration, pad, show, showList, when } from './text.js';

/** One discovery/JWKS fetch the explain run made. */
export interface FetchRecord {
  kind: 'discovery' | 'jwks';
  url: string;
  ok: boolean;
  durationMs: number;
  error?: string;
  /** The underlying cause, as the fetch logged it (operator output only). */
  detail?: string;
}

const ALLOW_ALL = ['0.0.0.0/0', '::/0'];

/**
 * The explain report for people: each check on a line with ✔/✘, expected vs got, times with skew,
 * each audience, each bound claim with the failing pattern and the value seen, trusted IP, hints,
 * the IdP fetches made, and the lifetime a login grants.
 */
export function formatExplain(
  report: ExplainReport,
  config: IdentityConfig,
  context: { source: string; fetches: readonly FetchRecord[]; clientIp: string | undefined },
): string {
  const lines: string[] = [];
  lines.push(
    `Login as identity ${show(report.identityId)} (from ${context.source}), every check in order:`,
    '',
  );
  const now = timesOf(report)?.now ?? Math.floor(Date.now() / 1000);
  const width = Math.max(12, ...report.checks.map((c) => labelOf(c).length + 2));
  for (const check of report.checks) {
    lines.push(...formatCheck(check, report, config, { ...context, now, width }));
  }

  if (report.decidedBy !== undefined) lines.push('', `Decided by rule ${show(report.decidedBy)}.`);
  if (report.candidate) {
    const c = report.candidate;
    lines.push(
      `Candidate rules (audit mode, never the answer) would ${c.outcome.toUpperCase()}` +
        `${c.decidedBy === undefined ? '' : ` by rule ${show(c.decidedBy)}`}${c.reasonCode ? ` (${c.reasonCode})` : ''}.`,
    );
  }

  if (context.fetches.length > 0) {
    lines.push('', 'IdP fetches:');
    for (const f of context.fetches) {
      const result = f.ok ? PASS : `${FAIL} ${f.error ?? 'failed'}`;
      lines.push(`  ${result}  ${f.kind} ${f.url} (${Math.round(f.durationMs)} ms)`);
      if (f.detail) lines.push(`      cause: ${show(f.detail)}`);
    }
  }

  lines.push('');
  const ttl = Math.min(config.accessTokenTTL, config.accessTokenMaxTTL);
  const grant =
    `an access token valid ${duration(ttl)} (${ttl} s), renewable up to ${duration(config.accessTokenMaxTTL)} ` +
    `after login, ${config.accessTokenNumUsesLimit > 0 ? `${config.accessTokenNumUsesLimit} uses` : 'unlimited uses'}, ` +
    `usable from ${ipsText(config.accessTokenTrustedIps)}`;
  if (report.ok) {
    lines.push(`${PASS} Login would SUCCEED and grant ${grant}.`);
  } else {
    lines.push(`${FAIL} Login would FAIL with reason ${report.reasonCode ?? 'unknown'}.`);
    lines.push(`  Once every check passes, a login grants ${grant}.`);
  }
  return `${lines.join('\n')}\n`;
}

function formatCheck(
  check: ExplainCheck,
  report: ExplainReport,
  config: IdentityConfig,
  context: { clientIp: string | undefined; fetches: readonly FetchRecord[]; now: number; width: number },
): string[] {
  const { now, width } = context;
  const mark = check.pass ? PASS : FAIL;
  const head = `  ${mark} ${pad(labelOf(check), width)}`;
  const more: string[] = [];
  let summary: string;

  switch (check.check) {
    case 'token': {
      const header = check.actual as { alg?: string; kid?: string } | undefined;
      summary = check.pass
        ? `compact JWS, alg ${show(header?.alg)}, kid ${show(header?.kid)}`
        : (check.reason ?? '');
      break;
    }
    case 'identity':
      summary = check.pass ? 'config found and valid' : (check.reason ?? '');
      break;
    case 'discovery':
      // Only reported when it failed: the document names another issuer, so no key was fetched.
      summary = "the discovery document's issuer does not match";
      more.push(
        `expected  ${show(check.expected)} (${config.discoveryIssuer === undefined ? 'oidcDiscoveryUrl; discoveryIssuer is unset' : 'discoveryIssuer'})`,
        `got       ${check.actual === null ? 'no issuer' : show(check.actual)} (the document's "issuer")`,
      );
      if (config.oidcDiscoveryUrl !== undefined) more.push(`document  ${discoveryDocumentUrl(config)}`);
      break;
    case 'signature': {
      const header = report.header;
      if (check.pass) {
        summary = `verified with the IdP's key (alg ${show(header?.alg)}, kid ${show(header?.kid)})`;
      } else {
        summary = check.reason ?? '';
        if (check.expected !== undefined) more.push(`expected  ${showList([check.expected].flat())}`);
        if (check.actual !== undefined) more.push(`got       ${show(check.actual)}`);
        more.push(...signatureHints(report, config, context.fetches));
      }
      break;
    }
    case 'issuer':
      summary = check.pass ? show(check.actual) : (check.reason ?? '');
      if (!check.pass) {
        more.push(`expected  ${showList([check.expected].flat())}`, `got       ${show(check.actual)}`);
      }
      break;
    case 'times':
      summary = check.pass ? 'within the allowed window' : (check.reason ?? '');
      more.push(...timesLines(check.actual as ExplainTimes | undefined, now));
      break;
    case 'claims':
      summary = check.reason ?? '';
      if (check.expected !== undefined) more.push(`claim     ${show(check.expected)}`);
      break;
    case 'claim_values':
      // Only reported when it failed: `actual` names the claim (never its value), `expected` the rule.
      summary = check.reason ?? '';
      more.push(`claim     ${show(check.actual)}`, `expected  ${String(check.expected)}`);
      break;
    case 'trusted_ip': {
      const list = check.expected as readonly string[];
      const anywhere = sameSet(list, ALLOW_ALL);
      if (anywhere) summary = `any address (${list.join(', ')})`;
      else if (check.pass) summary = `${show(check.actual)} is inside ${list.join(', ')}`;
      else if (context.clientIp === undefined) {
        summary = `logins must come from ${list.join(', ')}`;
        more.push('hint      pass --client-ip ADDRESS to check the address the pipeline logs in from');
      } else summary = `${show(check.actual)} is outside ${list.join(', ')}`;
      break;
    }
    default:
      if (check.rule) {
        summary = ruleSummary(check);
        more.push(...ruleLines(check));
        break;
      }
      summary = bindingSummary(check);
      more.push(...bindingLines(check));
  }
  if (check.hint) more.push(`hint      ${check.hint}`);
  const indent = ' '.repeat(4 + width);
  return [`${head}${summary}`.trimEnd(), ...more.map((line) => indent + line)];
}

function labelOf(check: ExplainCheck): string {
  if (check.check.startsWith('rule:')) return `rule ${check.check.slice(5)}`;
  return check.check.startsWith('claim:') ? `claim ${check.check.slice(6)}` : check.check.replace('_', ' ');
}

/** `rule:<name>` (identities with rules). */
function ruleSummary(check: ExplainCheck): string {
  const rule = check.rule as NonNullable<ExplainCheck['rule']>;
  const state = rule.matched ? 'matches' : 'does not match';
  return `${rule.effect} rule ${state}${rule.decided ? (rule.effect === 'allow' ? ': it allows the login' : ': it denies the login (deny always wins)') : ''}`;
}

/** The first binding that failed in a rule that did not match. */
function ruleLines(check: ExplainCheck): string[] {
  const failed = check.failed;
  if (!failed) return [];
  const label = failed.check.startsWith('claim:') ? `claim ${failed.check.slice(6)}` : failed.check;
  const lines = [`first failing binding: ${label}: ${failed.reason ?? 'no bound pattern matches'}`];
  const expected = [failed.expected].flat() as unknown[];
  if (expected.length > 0)
    lines.push(
      `expected  ${expected.map((e) => (typeof e === 'string' ? show(e) : JSON.stringify(e))).join(', ')}`,
    );
  lines.push(`got       ${show(failed.actual)}`);
  if (failed.hint) lines.push(`hint      ${failed.hint}`);
  return lines;
}

/** audience / subject / claim:<path>. */
function bindingSummary(check: ExplainCheck): string {
  const expected = (check.expected as readonly string[] | undefined) ?? [];
  if (expected.length === 0) {
    return check.pass
      ? `not bound (any value passes); token has ${show(check.actual)}`
      : (check.reason ?? 'no bound pattern matches');
  }
  if (check.items && check.items.length > 0) {
    const noun = check.check === 'audience' ? 'audience' : 'element';
    return check.pass ? `one ${noun} matches a bound pattern` : (check.reason ?? 'no bound pattern matches');
  }
  if (check.pass) {
    const matched = expected.find((p) => p === check.actual) ?? expected[0];
    return `${show(check.actual)} matches ${expected.length > 1 ? `one of ${showList(expected)}` : show(matched)}`;
  }
  return check.reason ?? 'no bound pattern matches';
}

function bindingLines(check: ExplainCheck): string[] {
  const expected = (check.expected as readonly string[] | undefined) ?? [];
  if (expected.length === 0) return [];
  const lines: string[] = [];
  if (check.items && check.items.length > 0) {
    lines.push(`expected  ${showList(expected)}`);
    const noun = check.check === 'audience' ? 'audience' : 'element';
    for (const item of check.items) lines.push(itemLine(item, noun));
    return lines;
  }
  if (check.pass) return lines;
  lines.push(`expected  ${showList(expected)}`, `got       ${show(check.actual)}`);
  return lines;
}

function itemLine(item: ExplainItem, noun: string): string {
  return item.pass
    ? `${PASS} ${noun} ${show(item.value)} matches ${show(item.matched)}`
    : `${FAIL} ${noun} ${show(item.value)} matches no bound pattern`;
}

function timesLines(times: ExplainTimes | undefined, now: number): string[] {
  if (!times) return [];
  const lines = [
    `now       ${when(times.now, now)}; clock skew allowed ±${times.skew} s`,
    `iat       ${when(times.iat, now)}`,
    `nbf       ${times.nbf === undefined ? 'absent (optional)' : when(times.nbf, now)}`,
    `exp       ${when(times.exp, now)}`,
  ];
  if (times.lifetime !== undefined) {
    const over = times.lifetime > times.maxLifetime;
    lines.push(
      `lifetime  ${duration(times.lifetime)} (exp - iat)${over ? ' exceeds' : ', within'} maxTokenLifetimeSeconds ${times.maxLifetime} s`,
    );
  }
  return lines;
}

function signatureHints(
  report: ExplainReport,
  config: IdentityConfig,
  fetches: readonly FetchRecord[],
): string[] {
  const lines: string[] = [];
  const source = config.publicKeys
    ? `${config.publicKeys.length} static publicKeys`
    : config.jwksUrl
      ? `jwksUrl ${config.jwksUrl}`
      : `discovery at ${config.oidcDiscoveryUrl ?? '?'}`;
  lines.push(`keys from ${source}`);
  const iss = report.claims?.iss;
  if (iss !== undefined) {
    const known = config.boundIssuer.includes(String(iss));
    lines.push(
      `token iss ${show(iss)} (unverified)${known ? '' : `, which is not one of boundIssuer ${showList(config.boundIssuer)}: was the token minted by another IdP or tenant?`}`,
    );
  }
  const failed = fetches.filter((f) => !f.ok);
  if (failed.length > 0) lines.push(`${failed.length} IdP fetch(es) failed: see "IdP fetches" below`);
  return lines;
}

function timesOf(report: ExplainReport): ExplainTimes | undefined {
  const times = report.checks.find((c) => c.check === 'times')?.actual as ExplainTimes | undefined;
  return typeof times?.now === 'number' ? times : undefined;
}

function ipsText(list: readonly string[]): string {
  return sameSet(list, ALLOW_ALL) ? 'any address' : list.join(', ');
}

function sameSet(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x) => b.includes(x));
}
