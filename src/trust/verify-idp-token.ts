import type { JWTPayload } from 'jose';
import type { ReasonCode } from '../errors.js';
import { verifyJwsSignature } from './jws.js';
import { KeyError, type KeyManager, type VerificationKey } from './keys.js';
import type { IdentityConfig } from '../types.js';
import { acceptsIssuer, sourceViewFor, sourceViews } from './sources.js';
import { NOOP_SPAN, STORE_STEP, step, type TraceSpan } from '../observe/trace.js';

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
  // Several key sources: the one naming the token's (unverified) issuer, else the first.
  const payload = readPayload(jwt);
  const view =
    (typeof payload.iss === 'string' ? sourceViewFor(config, payload.iss) : undefined) ??
    sourceViews(config)[0] ??
    config;
  const candidates = await keysFor(view, header, keys);
  if (!(await signatureVerifies(jwt, header, candidates))) throw new LoginFailure('signature_invalid', false);
  checkClaims(payload, config, now);
  return { payload, header };
}

/** A verified IdP token and the identity it verified for. */
export interface VerifiedLogin extends VerifiedIdpToken {
  config: IdentityConfig;
}

/** What {@link verifyLogin} needs besides the token: one per engine. */
export interface LoginContext {
  keys: KeyManager;
  /** The validated config of an identity, or `undefined`: a store read. */
  load(identityId: string): Promise<IdentityConfig | undefined>;
  /**
   * Whether the engine knows, without a store read, that no identity binds `issuer` (only a memory
   * store answers: it lists every issuer it holds; with another store, false). Asked only of an
   * issuer with no registered source: then it is refused with no read.
   */
  noIdentityBinds(issuer: string): boolean;
  /**
   * Called when the token named a registered issuer and no registered source of it verified the
   * token, so no identity was loaded: the caller may refresh that issuer's key sources off the
   * answer's path. Given the issuer only: nothing done may depend on the identity id.
   */
  refused(issuer: string): void;
}

/**
 * Verify an IdP JWT for a login without reading the identity store until the signature has
 * verified, so that the work done, and so the time taken and the answer, depend on the token and
 * never on whether the identity exists (no identity oracle):
 *
 * - The token's unverified `iss` picks the key sources: those registered for it
 *   ({@link KeyManager.keySourcesFor}). Sources with keys in hand are tried first, then the others
 *   (fetching, with the key manager's cache, cooldown and probes), each in registration order,
 *   until one verifies. None does: refused (`idp_unavailable`, a 503, when a source's IdP could not
 *   be reached), and the identity is never loaded.
 * - One did: the identity is loaded. Unknown, or not bound to the issuer, or refusing the
 *   algorithm: refused. Its own source must verify the token: the one that did, or, when another
 *   source verified first, its own tried now (registered first, if it was not: a config just
 *   written). A token never verifies against another identity's source of the same issuer.
 * - An issuer with no registered source (cold: a store whose configs this process has not loaded
 *   yet) loads the identity first, registers its sources, and verifies against its own keys, as
 *   does an issuer whose sources are {@link IssuerKeySources.full | full} when none verified. With
 *   `noIdentityBinds`, an unregistered issuer is refused with no store read.
 *
 * Refusals before the identity's own source verified are `verified: false`. Their reason is the
 * token's (`signature_invalid`, `key_not_found`, `issuer_mismatch`…) until the identity is read;
 * `identity_not_found` once it was and there is none.
 */
export async function verifyLogin(
  jwt: string,
  header: UnverifiedHeader,
  identityId: string,
  login: LoginContext,
  now: number,
  span: TraceSpan = NOOP_SPAN,
): Promise<VerifiedLogin> {
  const { keys } = login;
  const load = () => step(span, 'store', STORE_STEP['identity.get'], () => login.load(identityId));
  const payload = readPayload(jwt);
  const issuer = payload.iss;
  // No identity binds a token without an issuer: refused before any lookup, known id or not.
  if (typeof issuer !== 'string') throw new LoginFailure('claim_missing', false, { claim: 'iss' });
  const registered = keys.keySourcesFor(issuer);
  let tried: SourceTrial | undefined;
  if (registered?.retryAfterSeconds !== undefined) {
    // A new issuer matching an issuer pattern while the rate of new ones is spent: nothing fetched.
    throw new LoginFailure('idp_unavailable', false, { retryAfterSeconds: registered.retryAfterSeconds });
  }
  if (registered) {
    tried = await trySources(jwt, header, registered.sources, keys, span);
    if (tried.verifiedBy) {
      const config = await load();
      if (!config) throw new LoginFailure('identity_not_found', false);
      return await verifiedFor(jwt, header, payload, issuer, config, tried, keys, now, span);
    }
    if (!registered.full) {
      login.refused(issuer);
      throw tried.failure;
    }
    // A full issuer may have identities whose source is not registered: load, as for a cold one.
  } else if (login.noIdentityBinds(issuer)) {
    throw new LoginFailure('issuer_mismatch', false);
  }
  const config = await load();
  if (!config) throw tried?.failure ?? new LoginFailure('identity_not_found', false);
  keys.registerIssuers(config);
  return await verifiedFor(jwt, header, payload, issuer, config, tried, keys, now, span);
}

/**
 * The login of `config` with a token of `issuer`, once the registered sources were tried (`tried`)
 * or, cold, none was: `config` must bind the issuer, allow the algorithm, and its own source must
 * verify the token (tried now unless it already has). Then the claims.
 */
async function verifiedFor(
  jwt: string,
  header: UnverifiedHeader,
  payload: JWTPayload,
  issuer: string,
  config: IdentityConfig,
  tried: SourceTrial | undefined,
  keys: KeyManager,
  now: number,
  span: TraceSpan,
): Promise<VerifiedLogin> {
  // The key source of `config` naming the token's issuer: the only one it may verify against.
  const view = sourceViewFor(config, issuer);
  if (!view) throw new LoginFailure('issuer_mismatch', false);
  if (!(config.allowedAlgorithms as readonly string[]).includes(header.alg)) {
    throw new LoginFailure('algorithm_not_allowed', false);
  }
  let own = keys.registeredSource(issuer, config);
  if (!own) {
    keys.registerIssuers(config);
    own = keys.registeredSource(issuer, config);
  }
  if (own === undefined || own !== tried?.verifiedBy) {
    // Its own source refused the token already (another one verified it, or none did), or is
    // tried now: not registered before (a config just written, or past the bound), or not reached.
    const refused = own && tried?.failed.get(own);
    if (refused) throw tried?.verifiedBy ? new LoginFailure('signature_invalid', false) : refused;
    if (!(await signatureVerifies(jwt, header, await keysFor(view, header, keys, span), span))) {
      throw new LoginFailure('signature_invalid', false);
    }
  }
  checkClaims(payload, config, now);
  return { payload, header, config };
}

/**
 * What trying an issuer's registered sources found: the first source whose keys verified the
 * signature, or why the token is refused (`idp_unavailable` when an IdP could not be reached);
 * and, per source tried that did not verify it, why (`signature_invalid` when it offered keys).
 */
type SourceTrial = { failed: Map<IdentityConfig, LoginFailure> } & (
  { verifiedBy: IdentityConfig; failure?: undefined } | { verifiedBy?: undefined; failure: LoginFailure }
);

/**
 * Try `sources` in order until one's keys verify the token: first those with keys in hand (no
 * fetch, no wait), then the others through {@link KeyManager.getKeys}. Only the token and the
 * sources decide what is done: no identity is involved.
 */
async function trySources(
  jwt: string,
  header: UnverifiedHeader,
  sources: readonly IdentityConfig[],
  keys: KeyManager,
  span: TraceSpan,
): Promise<SourceTrial> {
  const failed = new Map<IdentityConfig, LoginFailure>();
  const later: IdentityConfig[] = [];
  let badSignature: LoginFailure | undefined;
  for (const source of sources) {
    const inHand = keys.keysInHand(source, header);
    if (!inHand) {
      later.push(source);
      continue;
    }
    if (await signatureVerifies(jwt, header, inHand, span)) return { verifiedBy: source, failed };
    failed.set(source, (badSignature ??= new LoginFailure('signature_invalid', false)));
  }
  let first: LoginFailure | undefined;
  let unavailable: LoginFailure | undefined;
  for (const source of later) {
    let candidates: readonly VerificationKey[];
    try {
      candidates = await keysFor(source, header, keys, span);
    } catch (error) {
      if (!(error instanceof LoginFailure)) throw error;
      failed.set(source, error);
      first ??= error;
      if (error.code === 'idp_unavailable') unavailable ??= error;
      continue;
    }
    if (await signatureVerifies(jwt, header, candidates, span)) return { verifiedBy: source, failed };
    failed.set(source, (badSignature ??= new LoginFailure('signature_invalid', false)));
  }
  // An unreachable IdP may hold the key: 503. Else a signature that keys did not verify, else why
  // no source offered keys (the first: unknown kid, algorithm, a discovery issuer mismatch).
  const failure = unavailable ?? badSignature ?? first ?? new LoginFailure('key_not_found', false);
  return { failed, failure };
}

/** The keys `config`'s source offers for `header`, or the login failure saying why there are none. */
async function keysFor(
  config: IdentityConfig,
  header: UnverifiedHeader,
  keys: KeyManager,
  span: TraceSpan = NOOP_SPAN,
): Promise<readonly VerificationKey[]> {
  let candidates;
  try {
    candidates = await step(span, 'keys', keySourceStep(config), () => keys.getKeys(config, header));
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
  span: TraceSpan = NOOP_SPAN,
): Promise<boolean> {
  if (span !== NOOP_SPAN) {
    const check = span.child('signature');
    const verified = await signatureVerifies(jwt, header, candidates);
    if (!verified) check.fail('signature_invalid');
    check.end();
    return verified;
  }
  const dot = jwt.lastIndexOf('.');
  const signingInput = jwt.slice(0, dot);
  const signature = Buffer.from(jwt.slice(dot + 1), 'base64url');
  let verified = false;
  for (let i = 0; i < candidates.length && !verified; i++) {
    verified = await verifyJwsSignature(header.alg, candidates[i]!.key, signingInput, signature);
  }
  return verified;
}

const KEY_SOURCE_STEP = {
  static: { keySource: 'static' },
  jwks: { keySource: 'jwks' },
  discovery: { keySource: 'discovery' },
} as const;

/** A `keys` step's fields: where `config`'s keys come from. */
function keySourceStep(config: IdentityConfig) {
  if (config.publicKeys && config.publicKeys.length > 0) return KEY_SOURCE_STEP.static;
  return config.jwksUrl ? KEY_SOURCE_STEP.jwks : KEY_SOURCE_STEP.discovery;
}

/**
 * The payload of a compact JWS: strict UTF-8 JSON object. Unverified until the signature is; read
 * before it only for `iss`, which picks the key sources (see {@link verifyLogin}).
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
  if (!acceptsIssuer(config, payload.iss)) throw new LoginFailure('issuer_mismatch', true);
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
