import type { JWTPayload } from 'jose';
import type { ReasonCode } from './errors.js';
import { verifyJwsSignature } from './jws.js';
import { KeyError, type KeyManager, type VerificationKey } from './keys.js';
import type { IdentityConfig } from './types.js';

/** Largest IdP token accepted, in characters. Real CI tokens are 1-3 KB. */
export const MAX_JWT_LENGTH = 16 * 1024;
const MAX_HEADER_SEGMENT = 2048;
const MAX_KID_LENGTH = 256;
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

/** The parts of an unverified JOSE header we look at. Nothing else from it is ever used. */
export interface UnverifiedHeader {
  alg: string;
  kid: string | undefined;
}

/**
 * Why an IdP token was refused. `verified` tells whether the signature had verified against the
 * identity's own keys when the check failed: only then may the caller be told the reason.
 */
export class LoginFailure extends Error {
  override name = 'LoginFailure';
  constructor(
    readonly code: ReasonCode,
    readonly verified: boolean,
    readonly detail: Record<string, unknown> = {},
    options?: { cause?: unknown },
  ) {
    super(code, options);
  }
}

/**
 * Structural checks that need no key and no identity: size, compact-JWS shape (strict base64url,
 * no padding, no whitespace, exactly three segments) and a readable header with a string `alg`.
 * Garbage is refused here, before any store lookup or outbound request.
 */
export function readHeader(jwt: string): UnverifiedHeader {
  if (jwt.length > MAX_JWT_LENGTH) throw new LoginFailure('token_too_large', false);
  if (!COMPACT_JWS.test(jwt)) throw new LoginFailure('token_malformed', false);
  const segment = jwt.slice(0, jwt.indexOf('.'));
  if (segment.length > MAX_HEADER_SEGMENT) throw new LoginFailure('token_malformed', false);
  let header: unknown;
  try {
    header = JSON.parse(Buffer.from(segment, 'base64url').toString('utf8'));
  } catch {
    throw new LoginFailure('token_malformed', false);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) {
    throw new LoginFailure('token_malformed', false);
  }
  const { alg, kid } = header as { alg?: unknown; kid?: unknown };
  if (typeof alg !== 'string') throw new LoginFailure('token_malformed', false);
  // No JWS extension is understood here: any `crit` (RFC 7515 §4.1.11) or `b64` (RFC 7797) is refused.
  if (Object.hasOwn(header, 'crit') || Object.hasOwn(header, 'b64')) {
    throw new LoginFailure('token_malformed', false);
  }
  if (kid !== undefined && (typeof kid !== 'string' || kid.length === 0 || kid.length > MAX_KID_LENGTH)) {
    throw new LoginFailure('token_malformed', false);
  }
  return { alg, kid };
}

/** A verified IdP token. */
export interface VerifiedIdpToken {
  payload: JWTPayload;
  header: UnverifiedHeader;
}

/**
 * Verify an IdP JWT for one identity: algorithm from the identity's allowlist only, keys from its
 * configured source only (never from `jwk`/`jku`/`x5u`/`x5c` headers), issuer exact, `exp`, `iat`
 * and `iss` required, clock skew, `iat` not in the future, lifetime capped. `explain` uses this: it
 * checks the signature against the identity's keys whatever the token's issuer, to say all it can.
 */
export async function verifyIdpToken(
  jwt: string,
  header: UnverifiedHeader,
  config: IdentityConfig,
  keys: KeyManager,
  now: number,
): Promise<VerifiedIdpToken> {
  if (!(config.allowedAlgorithms as readonly string[]).includes(header.alg)) {
    throw new LoginFailure('algorithm_not_allowed', false);
  }
  const candidates = await keysFor(config, header, keys);
  if (!(await signatureVerifies(jwt, header, candidates))) throw new LoginFailure('signature_invalid', false);
  const payload = readPayload(jwt);
  checkClaims(payload, config, now);
  return { payload, header };
}

/** A verified IdP token and the identity it verified for. */
export interface VerifiedLogin extends VerifiedIdpToken {
  config: IdentityConfig;
}

/**
 * Verify an IdP JWT for a login, so that until the signature has verified against the identity's
 * own keys the work done, and so the time taken and the answer, depend on the token and never on
 * whether `config` exists (no identity oracle):
 *
 * - The token's unverified `iss` picks the key source. An identity that binds that issuer and
 *   allows the algorithm verifies against its own source, as {@link verifyIdpToken} does.
 * - Otherwise (no such identity, or one that binds another issuer or refuses the algorithm) the
 *   source registered for the issuer by any identity seen ({@link KeyManager.keySourceFor}) is
 *   looked up, fetched and verified against exactly as for an identity of that issuer, then the
 *   login is refused whatever the outcome (`idp_unavailable` stays a 503: it depends on the token's
 *   issuer only). An issuer no identity binds is refused with no lookup at all, known id or not.
 *
 * Refusals before verification are `verified: false`; an unknown identity's say `identity_not_found`.
 */
export async function verifyLogin(
  jwt: string,
  header: UnverifiedHeader,
  config: IdentityConfig | undefined,
  keys: KeyManager,
  now: number,
): Promise<VerifiedLogin> {
  const payload = readPayload(jwt);
  const issuer = typeof payload.iss === 'string' ? payload.iss : undefined;
  if (config) keys.registerIssuers(config);
  const own =
    config !== undefined &&
    issuer !== undefined &&
    (config.boundIssuer as readonly string[]).includes(issuer) &&
    (config.allowedAlgorithms as readonly string[]).includes(header.alg);
  const refusal: ReasonCode = own
    ? 'signature_invalid'
    : config === undefined
      ? 'identity_not_found'
      : issuer === undefined
        ? 'claim_missing'
        : (config.boundIssuer as readonly string[]).includes(issuer)
          ? 'algorithm_not_allowed'
          : 'issuer_mismatch';
  const source = own ? config : issuer === undefined ? undefined : keys.keySourceFor(issuer);
  if (!source) throw new LoginFailure(refusal, false, issuer === undefined ? { claim: 'iss' } : {});
  let candidates: readonly VerificationKey[];
  try {
    candidates = await keysFor(source, header, keys);
  } catch (error) {
    // The identity's own source says why; another's reason would only describe the decoy.
    if (own || !(error instanceof LoginFailure)) throw error;
    if (error.code !== 'idp_unavailable') throw new LoginFailure(refusal, false, {}, { cause: error });
    throw new LoginFailure(
      'idp_unavailable',
      false,
      { ...error.detail, refusedFor: refusal },
      { cause: error },
    );
  }
  const verified = await signatureVerifies(jwt, header, candidates);
  if (!own) throw new LoginFailure(refusal, false);
  if (!verified) throw new LoginFailure('signature_invalid', false);
  checkClaims(payload, config, now);
  return { payload, header, config };
}

/** The keys `config`'s source offers for `header`, or the login failure saying why there are none. */
async function keysFor(
  config: IdentityConfig,
  header: UnverifiedHeader,
  keys: KeyManager,
): Promise<readonly VerificationKey[]> {
  let candidates;
  try {
    candidates = await keys.getKeys(config, header);
  } catch (error) {
    if (error instanceof KeyError) {
      // issuer_mismatch here means the discovery document names another issuer (ISS-05): an IdP or
      // config problem, reported uniformly to the caller and with its source in the event.
      const detail =
        error.code === 'issuer_mismatch'
          ? { source: 'discovery' }
          : { retryAfterSeconds: error.retryAfterSeconds };
      throw new LoginFailure(error.code, false, detail, { cause: error });
    }
    throw new LoginFailure('key_not_found', false, {}, { cause: error });
  }
  if (candidates.length === 0) throw new LoginFailure('key_not_found', false);
  return candidates;
}

/** Whether any candidate key verifies the token's signature (each tried in turn until one does). */
async function signatureVerifies(
  jwt: string,
  header: UnverifiedHeader,
  candidates: readonly VerificationKey[],
): Promise<boolean> {
  const dot = jwt.lastIndexOf('.');
  const signingInput = jwt.slice(0, dot);
  const signature = Buffer.from(jwt.slice(dot + 1), 'base64url');
  let verified = false;
  for (let i = 0; i < candidates.length && !verified; i++) {
    verified = await verifyJwsSignature(header.alg, candidates[i]!.key, signingInput, signature);
  }
  return verified;
}

/**
 * The payload of a compact JWS: strict UTF-8 JSON object. Unverified until the signature is; read
 * before it only for `iss`, which picks the key source (see {@link verifyLogin}).
 */
function readPayload(jwt: string): JWTPayload {
  let payload: unknown;
  try {
    const start = jwt.indexOf('.') + 1;
    const bytes = Buffer.from(jwt.slice(start, jwt.indexOf('.', start)), 'base64url');
    payload = JSON.parse(UTF8.decode(bytes));
  } catch {
    throw new LoginFailure('token_malformed', false);
  }
  if (typeof payload !== 'object' || payload === null || Array.isArray(payload)) {
    throw new LoginFailure('token_malformed', false);
  }
  return payload as JWTPayload;
}

const UTF8 = new TextDecoder('utf-8', { fatal: true });
const REQUIRED_CLAIMS = ['iss', 'iat', 'exp'] as const;

/**
 * The registered claims of a verified payload (RFC 7519 §4.1), in jose's order: presence of `iss`,
 * `iat`, `exp`; `iss` exactly one of the bound issuers; NumericDates are numbers; `nbf` not after
 * now + skew; `exp` after now - skew; then ours: `iat` not after now + skew, `exp - iat` capped.
 */
function checkClaims(payload: JWTPayload, config: IdentityConfig, now: number): void {
  for (const claim of REQUIRED_CLAIMS) {
    if (!Object.hasOwn(payload, claim)) throw new LoginFailure('claim_missing', true, { claim });
  }
  if (!(config.boundIssuer as readonly unknown[]).includes(payload.iss)) {
    throw new LoginFailure('issuer_mismatch', true);
  }
  const skew = config.clockSkewSeconds;
  const nowSeconds = Math.floor(now / 1000);
  const { iat, nbf, exp } = payload;
  if (typeof iat !== 'number') throw new LoginFailure('token_malformed', true, { claim: 'iat' });
  if (nbf !== undefined && typeof nbf !== 'number') {
    throw new LoginFailure('token_malformed', true, { claim: 'nbf' });
  }
  if (nbf !== undefined && nbf > nowSeconds + skew) throw new LoginFailure('token_not_yet_valid', true);
  if (typeof exp !== 'number') throw new LoginFailure('token_malformed', true, { claim: 'exp' });
  if (exp <= nowSeconds - skew) throw new LoginFailure('token_expired', true);
  if (iat > now / 1000 + skew) throw new LoginFailure('token_issued_in_future', true);
  if (exp - iat > config.maxTokenLifetimeSeconds) throw new LoginFailure('token_lifetime_too_long', true);
}

/** U+0000 (PostgreSQL `text` refuses it) or a lone surrogate (UTF-8 cannot encode it). Linear. */
const UNSTORABLE = /\0|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/**
 * The first claim of a verified token whose value a token store cannot keep as sent, or `undefined`.
 * `iss`, `sub` and every string that `claimMetadataMapping` copies into the access token must be
 * well-formed Unicode (a lone surrogate becomes U+FFFD in Redis and PostgreSQL) without U+0000
 * (PostgreSQL `text` refuses it: the login would be a 503). Lengths need no check: the whole token
 * is at most 16 KiB, far within what every store holds. Returns the claim's name or path, never
 * its value.
 */
export function unstorableClaim(
  payload: JWTPayload,
  metadata: Readonly<Record<string, unknown>>,
  config: IdentityConfig,
): string | undefined {
  if (typeof payload.iss === 'string' && UNSTORABLE.test(payload.iss)) return 'iss';
  if (typeof payload.sub === 'string' && UNSTORABLE.test(payload.sub)) return 'sub';
  for (const [name, path] of Object.entries(config.claimMetadataMapping)) {
    const value = metadata[name];
    const bad =
      typeof value === 'string'
        ? UNSTORABLE.test(value)
        : Array.isArray(value) && value.some((v) => typeof v === 'string' && UNSTORABLE.test(v));
    if (bad) return path;
  }
  return undefined;
}
