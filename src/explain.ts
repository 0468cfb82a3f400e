import { decodeJwt, type JWTPayload } from 'jose';
import type { ReasonCode } from './errors.js';
import type { IpAllowList } from './ip.js';
import type { KeyManager } from './keys.js';
import { compileIdentityPolicy } from './policy.js';
import type { Clock, IdentityConfig, IdentityStore } from './types.js';
import { LoginFailure, readHeader, verifyIdpToken } from './verify.js';

/** One login check as `explain` reports it. */
export interface ExplainCheck {
  /** What was checked: `token`, `identity`, `signature`, `issuer`, `times`, `audience`, `subject`, `claim:<path>`, `trusted_ip`. */
  check: string;
  pass: boolean;
  expected?: unknown;
  actual?: unknown;
  /** Why it failed, in words. */
  reason?: string;
  /** A suggestion that would make it pass (e.g. a glob that would match). */
  hint?: string;
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
  /** What a login would grant. */
  grant?: { expiresIn: number; accessTokenMaxTTL: number; usesLimit: number; trustedIps: readonly string[] };
}

interface ExplainDeps {
  identities: IdentityStore;
  keys: KeyManager;
  clock: Clock;
  ipAllowList(list: readonly string[]): IpAllowList;
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
  store_unavailable: 'the identity store is unavailable',
};

/** Run the login checks without minting anything. */
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
    const check = failure.verified ? checkName(failure.code) : 'signature';
    const extra: Partial<ExplainCheck> = {};
    if (failure.code === 'algorithm_not_allowed') {
      extra.expected = config.allowedAlgorithms;
      extra.actual = header.alg;
    } else if (failure.code === 'issuer_mismatch') {
      extra.expected = config.boundIssuer;
      extra.actual = report.claims?.iss;
    } else if (check === 'times') {
      extra.actual = pickTimes(report.claims, now, config.clockSkewSeconds);
    } else if (failure.code === 'claim_missing') {
      extra.expected = failure.detail.claim;
    }
    if (failure.verified) report.checks.push({ check: 'signature', pass: true, actual: { kid: header.kid } });
    return fail(check, failure.code, extra);
  }
  report.claims = payload;
  report.checks.push({ check: 'signature', pass: true, actual: { alg: header.alg, kid: header.kid } });
  report.checks.push({ check: 'issuer', pass: true, expected: config.boundIssuer, actual: payload.iss });
  report.checks.push({
    check: 'times',
    pass: true,
    actual: pickTimes(payload, now, config.clockSkewSeconds),
  });

  const policyChecks = compileIdentityPolicy(config).explain(payload);
  let firstFailure: ReasonCode | undefined;
  for (const c of policyChecks) {
    report.checks.push({ ...c });
    if (!c.pass && !firstFailure) {
      firstFailure =
        c.check === 'audience'
          ? 'audience_not_allowed'
          : c.check === 'subject'
            ? 'subject_not_allowed'
            : c.actual === undefined
              ? 'claim_missing'
              : 'claim_not_allowed';
    }
  }
  const ipOk = deps.ipAllowList(config.accessTokenTrustedIps).allows(input.clientIp);
  report.checks.push({
    check: 'trusted_ip',
    pass: ipOk,
    expected: config.accessTokenTrustedIps,
    actual: input.clientIp ?? null,
    ...(ipOk ? {} : { reason: 'the client address is outside accessTokenTrustedIps' }),
  });
  if (!ipOk && !firstFailure) firstFailure = 'ip_not_allowed';
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

function checkName(code: ReasonCode): string {
  if (code === 'issuer_mismatch') return 'issuer';
  if (code === 'claim_missing' || code === 'token_malformed') return 'claims';
  return 'times';
}

function pickTimes(claims: JWTPayload | undefined, now: number, skew: number) {
  return { now: Math.floor(now / 1000), skew, iat: claims?.iat, nbf: claims?.nbf, exp: claims?.exp };
}
