import { decodeJwt, type JWTPayload } from 'jose';
import type { ReasonCode } from '../errors.js';
import { discoveryDocumentUrl, withoutTrailingSlashes } from '../trust/config.js';
import type { IpAllowList } from './trusted-ips.js';
import type { KeyManager } from '../trust/keys.js';
import { compileIdentityPolicy, matchesGlob, type PolicyCheck } from './match.js';
import { explainRuleChecks } from './explain-rules.js';
import type { ReplayCache } from '../tokens/replay.js';
import { idpTokenSpentAt } from '../tokens/single-use.js';
import type { Clock, IdentityConfig, IdentityStore } from '../types.js';
import { LoginFailure, readHeader, unstorableClaim, verifyIdpToken } from '../trust/verify-idp-token.js';

/** One login check as `explain` reports it. */
export interface ExplainCheck {
  /**
   * What was checked: `token`, `identity`, `discovery` (only when it failed: the discovery document
   * names another issuer), `signature`, `issuer`, `times`, `audience`, `subject`, `claim:<path>`,
   * `claim_values` (only when it failed: a value no store keeps as sent), `trusted_ip`, `single_use`
   * (identities with `singleUseTokens`: whether this IdP token was already exchanged); for an identity
   * with `rules`, one `rule:<name>` per rule instead of `audience`, `subject` and `claim:<path>`.
   */
  check: string;
  pass: boolean;
  expected?: unknown;
  actual?: unknown;
  /** Why it failed, in words. */
  reason?: string;
  /** A suggestion that would make it pass (e.g. a glob that would match). */
  hint?: string;
  /** `rule:<name>` checks (identities with `rules`): the rule's effect, whether it matched and decided. */
  rule?: { effect: 'allow' | 'deny'; matched: boolean; decided: boolean };
  /** `rule:<name>` checks of a rule that did not match: its first failing binding. */
  failed?: PolicyCheck;
  /**
   * One entry per value looked at, for checks over several values: each token audience (`audience`)
   * or each element of an array claim (`claim:<path>`), with the first bound pattern it matched.
   */
  items?: ExplainItem[];
}

/** One value of a multi-valued check and whether a bound pattern matched it. */
export interface ExplainItem {
  value: unknown;
  pass: boolean;
  /** The first bound pattern that matched. */
  matched?: string;
}

/** The `actual` of the `times` check: epoch seconds, as in the token. */
export interface ExplainTimes {
  /** The clock used, epoch seconds. */
  now: number;
  /** Tolerance on `exp`/`nbf`/`iat`, seconds. */
  skew: number;
  iat: unknown;
  nbf: unknown;
  exp: unknown;
  /** `exp - iat` in seconds, when both are numbers. */
  lifetime?: number;
  /** The identity's `maxTokenLifetimeSeconds`. */
  maxLifetime: number;
}

/** Every login check in order, for an operator debugging a pipeline. */
export interface ExplainReport {
  /** True only if a login with this token would succeed. */
  ok: boolean;
  identityId: string;
  /** The reason code a login would fail with (the detailed one, as events carry it). */
  reasonCode?: ReasonCode;
  header?: { alg: string; kid: string | undefined };
  /** Decoded claims (unverified when the signature failed). */
  claims?: JWTPayload;
  checks: ExplainCheck[];
  /** Identities with `rules`: the rule that allowed or denied (absent when no allow rule matched among several). */
  decidedBy?: string;
  /** Audit mode: what the candidate rules would decide on these claims (never the answer). */
  candidate?: { outcome: 'allow' | 'deny'; decidedBy?: string; reasonCode?: ReasonCode };
  /** What a login would grant. */
  grant?: { expiresIn: number; accessTokenMaxTTL: number; usesLimit: number; trustedIps: readonly string[] };
}

interface ExplainDeps {
  identities: IdentityStore;
  keys: KeyManager;
  clock: Clock;
  ipAllowList(list: readonly string[]): IpAllowList;
  /** Where single-use IdP tokens are remembered; read only (`seenAt`), never written. */
  replayCache?: ReplayCache;
}

const FAILURE_WORDS: Partial<Record<ReasonCode, string>> = {
  token_too_large: 'the token is larger than 16 KiB',
  token_malformed: 'the token is not a compact JWS with a readable header and payload',
  identity_not_found: 'no identity with this id (or its stored config is invalid)',
  algorithm_not_allowed: 'the token algorithm is not in allowedAlgorithms (or not advertised by the IdP)',
  key_not_found: 'no key of the IdP matches the token kid and algorithm',
  signature_invalid: 'the signature does not verify with the IdP keys',
  idp_unavailable: 'the IdP discovery document or JWKS could not be fetched',
  issuer_mismatch: 'the iss claim is not one of boundIssuer',
  token_expired: 'exp is in the past (beyond clock skew)',
  token_not_yet_valid: 'nbf is in the future (beyond clock skew)',
  token_issued_in_future: 'iat is in the future (beyond clock skew)',
  token_lifetime_too_long: 'exp - iat exceeds maxTokenLifetimeSeconds',
  claim_missing: 'a required claim is missing',
  claim_value_unsupported:
    'a claim value holds U+0000 or a lone surrogate, which the token stores cannot keep as sent',
  store_unavailable: 'the identity store is unavailable',
  token_already_used: 'this IdP token was already exchanged (the identity has singleUseTokens)',
};

/**
 * Run the login checks without minting anything. Stops at the first failure before the signature
 * verified (nothing in an unverified token can be trusted); once it verified, every later check is
 * reported even after one failed, so an operator sees all that needs fixing at once.
 */
export async function explainLogin(
  input: { identityId: string; jwt: string; clientIp?: string | undefined },
  deps: ExplainDeps,
): Promise<ExplainReport> {
  const report: ExplainReport = { ok: false, identityId: input.identityId, checks: [] };
  const fail = (check: string, code: ReasonCode, extra: Partial<ExplainCheck> = {}): ExplainReport => {
    report.checks.push({ check, pass: false, reason: FAILURE_WORDS[code] ?? code, ...extra });
    report.reasonCode = code;
    return report;
  };

  let header;
  try {
    header = readHeader(input.jwt);
    report.header = header;
    report.claims = decodeJwt(input.jwt);
    report.checks.push({ check: 'token', pass: true, actual: { alg: header.alg, kid: header.kid } });
  } catch (error) {
    return fail('token', error instanceof LoginFailure ? error.code : 'token_malformed');
  }

  let config: IdentityConfig | undefined;
  try {
    config = await deps.identities.get(input.identityId);
  } catch {
    return fail('identity', 'identity_not_found');
  }
  if (!config) return fail('identity', 'identity_not_found');
  report.checks.push({ check: 'identity', pass: true });

  const now = deps.clock();
  let payload: JWTPayload;
  try {
    payload = (await verifyIdpToken(input.jwt, header, config, deps.keys, now)).payload;
  } catch (error) {
    const failure = error instanceof LoginFailure ? error : new LoginFailure('token_malformed', false);
    if (failure.code === 'issuer_mismatch' && failure.detail.source === 'discovery') {
      return fail('discovery', 'issuer_mismatch', discoveryMismatch(config, failure));
    }
    const check = failure.verified ? checkName(failure.code) : 'signature';
    const extra: Partial<ExplainCheck> = {};
    if (failure.code === 'algorithm_not_allowed') {
      extra.expected = config.allowedAlgorithms;
      extra.actual = header.alg;
    } else if (failure.code === 'issuer_mismatch') {
      extra.expected = config.boundIssuer;
      extra.actual = report.claims?.iss;
    } else if (check === 'times') {
      extra.actual = pickTimes(report.claims, now, config);
    } else if (failure.code === 'claim_missing') {
      extra.expected = failure.detail.claim;
    }
    if (!failure.verified) return fail(check, failure.code, extra);
    // The signature verified: the claims are the IdP's, so every later check is still worth showing.
    report.checks.push({ check: 'signature', pass: true, actual: { alg: header.alg, kid: header.kid } });
    if (failure.code === 'issuer_mismatch') {
      const hint = issuerHint(report.claims?.iss, config.boundIssuer);
      if (hint) extra.hint = hint;
    }
    // checkClaims (trust/verify-idp-token.ts) checks iss before the times, so a time failure means the
    // issuer matched.
    if (check === 'times') {
      report.checks.push({
        check: 'issuer',
        pass: true,
        expected: config.boundIssuer,
        actual: report.claims?.iss,
      });
    }
    fail(check, failure.code, extra);
    if (check === 'issuer') report.checks.push(timesCheck(report.claims, now, config));
    const claims = report.claims;
    if (claims) {
      policyChecks(report, config, claims);
      ipCheck(report, config, deps, input.clientIp);
    }
    return report;
  }
  report.claims = payload;
  report.checks.push({ check: 'signature', pass: true, actual: { alg: header.alg, kid: header.kid } });
  report.checks.push({ check: 'issuer', pass: true, expected: config.boundIssuer, actual: payload.iss });
  report.checks.push({ check: 'times', pass: true, actual: pickTimes(payload, now, config) });

  const policyFailure = policyChecks(report, config, payload);
  // Login refuses a value no store keeps as sent (#13.6) after the bindings, before the address.
  const unstorable = unstorableClaim(payload, compileIdentityPolicy(config).metadata(payload), config);
  if (unstorable) {
    report.checks.push({
      check: 'claim_values',
      pass: false,
      expected: 'well-formed Unicode without U+0000 in iss, sub and mapped claims',
      actual: unstorable,
      reason: FAILURE_WORDS.claim_value_unsupported,
    });
  }
  const ipFailure = ipCheck(report, config, deps, input.clientIp);
  const spent = await singleUseCheck(report, config, deps, input.jwt, payload, now);
  const firstFailure = policyFailure ?? (unstorable ? 'claim_value_unsupported' : (ipFailure ?? spent));
  if (firstFailure) {
    report.reasonCode = firstFailure;
    return report;
  }
  report.ok = true;
  report.grant = {
    expiresIn: Math.min(config.accessTokenTTL, config.accessTokenMaxTTL),
    accessTokenMaxTTL: config.accessTokenMaxTTL,
    usesLimit: config.accessTokenNumUsesLimit,
    trustedIps: config.accessTokenTrustedIps,
  };
  return report;
}

/** Audience, subject and bound-claim checks; returns the reason of the first failure. */
function policyChecks(
  report: ExplainReport,
  config: IdentityConfig,
  payload: JWTPayload,
): ReasonCode | undefined {
  const rules = explainRuleChecks(report, compileIdentityPolicy(config), payload);
  if (rules) {
    if (rules.failure && !report.reasonCode) report.reasonCode = rules.failure;
    return rules.failure;
  }
  let first: ReasonCode | undefined;
  for (const c of compileIdentityPolicy(config).explain(payload)) {
    const check: ExplainCheck = { ...c };
    const patterns = c.expected;
    if (patterns.length > 0 && (c.check === 'audience' || Array.isArray(c.actual))) {
      const values = Array.isArray(c.actual) ? c.actual.slice(0, 64) : [c.actual];
      if (c.actual !== undefined) check.items = values.map((value) => item(value, patterns));
    }
    report.checks.push(check);
    if (!c.pass && !first) {
      first =
        c.check === 'audience'
          ? 'audience_not_allowed'
          : c.check === 'subject'
            ? 'subject_not_allowed'
            : c.actual === undefined
              ? 'claim_missing'
              : 'claim_not_allowed';
    }
  }
  if (first && !report.reasonCode) report.reasonCode = first;
  return first;
}

function item(value: unknown, patterns: readonly string[]): ExplainItem {
  const matched = patterns.find((pattern) => matchesGlob(value, pattern));
  return matched === undefined ? { value, pass: false } : { value, pass: true, matched };
}

function ipCheck(
  report: ExplainReport,
  config: IdentityConfig,
  deps: ExplainDeps,
  clientIp: string | undefined,
): ReasonCode | undefined {
  const ipOk = deps.ipAllowList(config.accessTokenTrustedIps).allows(clientIp);
  report.checks.push({
    check: 'trusted_ip',
    pass: ipOk,
    expected: config.accessTokenTrustedIps,
    actual: clientIp ?? null,
    ...(ipOk ? {} : { reason: 'the client address is outside accessTokenTrustedIps' }),
  });
  if (ipOk) return undefined;
  report.reasonCode ??= 'ip_not_allowed';
  return 'ip_not_allowed';
}

/**
 * Identities with `singleUseTokens`: whether a login already spent this IdP token ("already
 * exchanged at <ISO time>"), read from the replay cache without remembering it. A cache that cannot
 * answer fails the check (`store_unavailable`), as the login would.
 */
async function singleUseCheck(
  report: ExplainReport,
  config: IdentityConfig,
  deps: ExplainDeps,
  jwt: string,
  payload: JWTPayload,
  now: number,
): Promise<ReasonCode | undefined> {
  if (!config.singleUseTokens || !deps.replayCache) return undefined;
  let seenAt: number | undefined;
  try {
    seenAt = await idpTokenSpentAt(deps.replayCache, jwt, payload, now);
  } catch {
    report.checks.push({ check: 'single_use', pass: false, reason: 'the replay cache is unavailable' });
    return 'store_unavailable';
  }
  if (seenAt === undefined) {
    report.checks.push({ check: 'single_use', pass: true, actual: 'not exchanged yet' });
    return undefined;
  }
  const at =
    Number.isFinite(seenAt) && Math.abs(seenAt) <= 8.64e15 ? new Date(seenAt).toISOString() : String(seenAt);
  report.checks.push({
    check: 'single_use',
    pass: false,
    actual: at,
    reason: `already exchanged at ${at}`,
  });
  return 'token_already_used';
}

/**
 * The discovery document named another issuer than the one expected (`discoveryIssuer`, else the
 * `oidcDiscoveryUrl`), so no key was fetched and nothing about the token could be checked. Shows both
 * issuers, the document's URL, and what to change.
 */
function discoveryMismatch(config: IdentityConfig, failure: LoginFailure): Partial<ExplainCheck> {
  const expected = config.discoveryIssuer ?? config.oidcDiscoveryUrl;
  // LoginFailure → KeyError → the document's error, which kept the issuer it named (not logged).
  const documentError = (failure.cause as { cause?: unknown } | undefined)?.cause;
  const found = (documentError as { found?: unknown } | undefined)?.found;
  const url = config.oidcDiscoveryUrl === undefined ? undefined : discoveryDocumentUrl(config);
  const named = typeof found === 'string' ? JSON.stringify(found) : 'no issuer';
  const extra: Partial<ExplainCheck> = {
    expected,
    actual: typeof found === 'string' ? found : null,
    reason:
      `the discovery document${url ? ` at ${url}` : ''} names ${named}, not the expected issuer ` +
      `${JSON.stringify(expected)} (${config.discoveryIssuer === undefined ? 'oidcDiscoveryUrl, as discoveryIssuer is unset' : 'discoveryIssuer'}), so no key was fetched`,
  };
  if (typeof found === 'string') {
    extra.hint =
      config.discoveryIssuer === undefined
        ? `if this IdP publishes its discovery document away from its issuer (some do), set discoveryIssuer to ${JSON.stringify(found)}; otherwise oidcDiscoveryUrl points at the wrong IdP or tenant`
        : `discoveryIssuer must be exactly the document's issuer: set it to ${JSON.stringify(found)} if that is the IdP you trust, or fix oidcDiscoveryUrl`;
  }
  return extra;
}

/** Near misses people make with issuers: a trailing slash, or Azure's v1 issuer against a v2 config. */
function issuerHint(actual: unknown, expected: readonly string[]): string | undefined {
  if (typeof actual !== 'string') return undefined;
  const bare = withoutTrailingSlashes;
  const near = expected.find((e) => bare(e) === bare(actual));
  if (near !== undefined) {
    return `the issuers differ only by a trailing "/": boundIssuer must be exactly ${JSON.stringify(actual)}`;
  }
  const v1 = /^https:\/\/sts\.windows\.net\/([0-9a-f-]{36})\/$/i.exec(actual);
  const v2 = /^https:\/\/login\.microsoftonline\.com\/([0-9a-f-]{36})\/v2\.0$/i.exec(actual);
  const tenant = (v1 ?? v2)?.[1];
  if (tenant && expected.some((e) => e.toLowerCase().includes(tenant.toLowerCase()))) {
    return (
      `this is an Entra ${v1 ? 'v1' : 'v2'} token of the same tenant (its version follows the resource app's ` +
      `accessTokenAcceptedVersion); add ${JSON.stringify(actual)} to boundIssuer to accept it`
    );
  }
  return undefined;
}

/** The time checks, evaluated here when jose stopped before them (an issuer mismatch). */
function timesCheck(claims: JWTPayload | undefined, now: number, config: IdentityConfig): ExplainCheck {
  const times = pickTimes(claims, now, config);
  const t = times.now;
  const skew = times.skew;
  let code: ReasonCode | undefined;
  if (typeof times.exp !== 'number' || typeof times.iat !== 'number') code = 'claim_missing';
  else if (times.exp <= t - skew) code = 'token_expired';
  else if (typeof times.nbf === 'number' && times.nbf > t + skew) code = 'token_not_yet_valid';
  else if (times.iat > t + skew) code = 'token_issued_in_future';
  else if (times.exp - times.iat > times.maxLifetime) code = 'token_lifetime_too_long';
  if (!code) return { check: 'times', pass: true, actual: times };
  return { check: 'times', pass: false, actual: times, reason: FAILURE_WORDS[code] ?? code };
}

function checkName(code: ReasonCode): string {
  if (code === 'issuer_mismatch') return 'issuer';
  if (code === 'claim_missing' || code === 'token_malformed') return 'claims';
  return 'times';
}

function pickTimes(claims: JWTPayload | undefined, now: number, config: IdentityConfig): ExplainTimes {
  const times: ExplainTimes = {
    now: Math.floor(now / 1000),
    skew: config.clockSkewSeconds,
    iat: claims?.iat,
    nbf: claims?.nbf,
    exp: claims?.exp,
    maxLifetime: config.maxTokenLifetimeSeconds,
  };
  if (typeof times.iat === 'number' && typeof times.exp === 'number') times.lifetime = times.exp - times.iat;
  return times;
}
