import {
  createHash,
  createHmac,
  createPublicKey,
  randomBytes,
  timingSafeEqual,
  type JsonWebKey,
  type KeyObject,
} from 'node:crypto';
import * as nodeCrypto from 'node:crypto';
import { calculateJwkThumbprint, type JWK } from 'jose';
import { LRUCache } from 'lru-cache';
import {
  BadRequestError,
  ConfigError,
  OidcAuthError,
  ServiceUnavailableError,
  UnauthorizedError,
  bearerChallenge,
  type ReasonCode,
} from '../errors.js';
import type { ReplayCache } from './replay.js';
import { htuMatches } from './dpop-htu.js';
import {
  sharedSignatureWorker,
  signatureKey,
  verifyOnThreadPool,
  type SignatureKey,
  type SignatureScheme,
  type SignatureWorker,
} from './signature-worker.js';

/**
 * What a DPoP check reads of a request (RFC 9449 §4.3): the `DPoP` header, the method, and the
 * absolute URL as the framework sees it (scheme and host from its trust-proxy settings, the path as
 * received, no query and no fragment).
 */
export interface DpopRequest {
  /** The `DPoP` header value (several headers joined by `, `, which no proof survives); absent: none sent. */
  proof: string | undefined;
  /** The request method, e.g. `GET`. */
  method: string;
  /** `scheme://host[:port]/path`, without query and fragment. */
  url: string;
  /**
   * The `Authorization` scheme the access token came with (set by the guard). Absent on a direct
   * call: `DPoP` when a proof is given, else `Bearer`.
   */
  scheme?: 'Bearer' | 'DPoP';
}

/** Signature algorithms a DPoP proof may use: asymmetric only (RFC 9449 §4.3 step 5). */
export type DpopAlgorithm =
  | 'ES256'
  | 'ES384'
  | 'ES512'
  | 'EdDSA'
  | 'Ed25519'
  | 'RS256'
  | 'RS384'
  | 'RS512'
  | 'PS256'
  | 'PS384'
  | 'PS512';

/** Engine option `dpop` (docs/DPOP.md). */
export interface DpopOptions {
  /** Proof algorithms accepted. Default `ES256`, `EdDSA`, `RS256`, `PS256`. */
  algorithms?: readonly DpopAlgorithm[];
  /** Seconds a proof's `iat` may lie before or after now (RFC 9449 §11.1). Default 60. */
  proofWindowSeconds?: number;
  /** Seconds of clock difference tolerated on top of the window, both sides. Default 5. */
  clockSkewSeconds?: number;
  /**
   * Server nonces (RFC 9449 §8 and §9): `true`, or `{ secret, stepSeconds }`. A nonce is an HMAC of a
   * time step under `secret` (default: random per engine, so a fleet must share one), valid for the
   * current and the previous step (`stepSeconds`, default 300). Default off.
   */
  nonces?: boolean | { secret?: string | Uint8Array; stepSeconds?: number };
  /** Verified proof headers (public keys) remembered, by their text. Default 1000. */
  keyCacheSize?: number;
  /**
   * Where proof signatures are checked, off the event loop either way: `worker` (default), a worker
   * thread of the process's own (started on first use, shared by every engine) that takes the proofs
   * of one event-loop turn as one message; `thread-pool`, one libuv thread-pool job per proof (no
   * extra thread; each job costs the loop more). A worker that cannot start or fails hands its checks
   * to the thread pool.
   */
  proofChecks?: 'worker' | 'thread-pool';
}

/** Where a proof is checked: decides statuses (RFC 9449 §5: 400 at a token endpoint; §7.1: 401 at a resource). */
export type DpopEndpoint = 'token' | 'resource';

/** Every algorithm a proof may use, asymmetric only. */
export const DPOP_ALGORITHMS: readonly DpopAlgorithm[] = Object.freeze([
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
  'Ed25519',
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
]);
/** Default accepted proof algorithms. */
export const DEFAULT_DPOP_ALGORITHMS: readonly DpopAlgorithm[] = Object.freeze([
  'ES256',
  'EdDSA',
  'RS256',
  'PS256',
]);
/** The JWT `typ` of a DPoP proof (RFC 9449 §4.2). */
export const DPOP_JWT_TYPE = 'dpop+jwt';
/** Longest proof read: refused unparsed past it. A proof with an RSA-4096 key is under 2 KiB. */
export const MAX_DPOP_PROOF_LENGTH = 8 * 1024;
/** Longest `jti` accepted. */
export const MAX_DPOP_JTI_LENGTH = 256;
/** Members of a JWK that make it a private (or symmetric) key (RFC 7517, RFC 7518 §6). */
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'] as const;
const PROOF_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;
const NONCE_SHAPE = /^[0-9a-z]{1,11}\.[A-Za-z0-9_-]{22}$/;
/** Per algorithm: the JWK `kty` (and `crv`) it takes, and how node:crypto verifies it (RFC 7518 §3, RFC 8037). */
const ALGORITHM: Readonly<
  Record<string, { kty: string; crv?: string; hash: string | null; signing: SignatureScheme }>
> = {
  ES256: { kty: 'EC', crv: 'P-256', hash: 'sha256', signing: 'ecdsa' },
  ES384: { kty: 'EC', crv: 'P-384', hash: 'sha384', signing: 'ecdsa' },
  ES512: { kty: 'EC', crv: 'P-521', hash: 'sha512', signing: 'ecdsa' },
  EdDSA: { kty: 'OKP', crv: 'Ed25519', hash: null, signing: 'eddsa' },
  Ed25519: { kty: 'OKP', crv: 'Ed25519', hash: null, signing: 'eddsa' },
  RS256: { kty: 'RSA', hash: 'sha256', signing: 'pkcs1' },
  RS384: { kty: 'RSA', hash: 'sha384', signing: 'pkcs1' },
  RS512: { kty: 'RSA', hash: 'sha512', signing: 'pkcs1' },
  PS256: { kty: 'RSA', hash: 'sha256', signing: 'pss' },
  PS384: { kty: 'RSA', hash: 'sha384', signing: 'pss' },
  PS512: { kty: 'RSA', hash: 'sha512', signing: 'pss' },
};
/** RSA keys shorter than this are refused (RFC 7518 §3.3, §3.5). */
const MIN_RSA_BITS = 2048;
const MAX_RSA_BITS = 4096;

/** A verified proof header: how its signatures verify, and its key's thumbprint. */
interface ProofKey {
  jkt: string;
  key: SignatureKey;
}

/** What a valid proof says. */
export interface DpopProof {
  /** RFC 7638 SHA-256 thumbprint of the proof's public key, base64url. */
  jkt: string;
  jti: string;
  /** Epoch ms. */
  issuedAt: number;
  /**
   * With `deferReplay`: remember the `jti` now (refusing a proof seen before). A login calls it only
   * once the IdP token verified and every check passed, so a caller without a genuine IdP token
   * cannot fill the replay cache with proofs of keys of its own.
   */
  remember?: () => Promise<void>;
}

/** `base64url(SHA-256(accessToken))`: a proof's `ath` (RFC 9449 §4.2). */
export function accessTokenHash(accessToken: string): string {
  return oneShotHash
    ? oneShotHash('sha256', accessToken, 'base64url')
    : createHash('sha256').update(accessToken, 'utf8').digest('base64url');
}

/** `crypto.hash` (Node 20.12+, 21.7+): a one-shot digest, without a Hash object; absent on older runtimes. */
const oneShotHash = (
  nodeCrypto as { hash?: (algorithm: string, data: string, encoding: 'base64url') => string }
).hash;

/**
 * Checks DPoP proofs (RFC 9449 §4.3) and mints server nonces. One per engine (`auth.dpop`). Proof
 * keys that verified are remembered by the header's text (bounded LRU), so a client's next proofs
 * cost one signature check, not a JWK import and a thumbprint.
 */
export class DpopVerifier {
  /** Proof algorithms accepted, as `dpop_signing_alg_values_supported` lists them (RFC 9449 §5.1). */
  readonly algorithms: readonly DpopAlgorithm[];
  /** Whether server nonces are required. */
  readonly nonces: boolean;
  /**
   * Whether the engine was given a `dpop` option: its guard then offers the DPoP scheme beside
   * Bearer to a request that sent no token (RFC 9449 §7.1), see {@link missingTokenChallenge}.
   */
  readonly offered: boolean;
  readonly #windowMs: number;
  readonly #realm: string;
  readonly #replay: ReplayCache;
  readonly #keys: LRUCache<string, ProofKey>;
  readonly #nonceSecret: Buffer | undefined;
  readonly #stepMs: number;
  readonly #challengeAlgs: string;
  readonly #missingToken: string;
  readonly #clock: () => number;
  readonly #worker: SignatureWorker | undefined;

  constructor(
    options: DpopOptions | undefined,
    replay: ReplayCache,
    realm: string,
    clock: () => number = Date.now,
  ) {
    this.#clock = clock;
    const o = options ?? {};
    if (typeof o !== 'object' || o === null) throw new ConfigError('dpop', 'must be an object');
    const algorithms = o.algorithms ?? DEFAULT_DPOP_ALGORITHMS;
    if (
      !Array.isArray(algorithms) ||
      algorithms.length === 0 ||
      !algorithms.every((a) => DPOP_ALGORITHMS.includes(a as DpopAlgorithm))
    ) {
      throw new ConfigError(
        'dpop.algorithms',
        `must be a non-empty list of asymmetric algorithms among ${DPOP_ALGORITHMS.join(', ')}`,
      );
    }
    this.algorithms = Object.freeze([...new Set(algorithms as DpopAlgorithm[])]);
    const window = seconds(o.proofWindowSeconds, 'dpop.proofWindowSeconds', 60, 1, 3600);
    const skew = seconds(o.clockSkewSeconds, 'dpop.clockSkewSeconds', 5, 0, 600);
    this.#windowMs = (window + skew) * 1000;
    this.#realm = realm;
    this.#replay = replay;
    const size = seconds(o.keyCacheSize, 'dpop.keyCacheSize', 1000, 0, 1_000_000);
    this.#keys = new LRUCache({ max: Math.max(1, size) });
    const checks = o.proofChecks ?? 'worker';
    if (checks !== 'worker' && checks !== 'thread-pool') {
      throw new ConfigError('dpop.proofChecks', "must be 'worker' or 'thread-pool'");
    }
    this.#worker = checks === 'worker' ? sharedSignatureWorker() : undefined;
    const nonces = o.nonces ?? false;
    if (typeof nonces !== 'boolean' && (typeof nonces !== 'object' || nonces === null)) {
      throw new ConfigError('dpop.nonces', 'must be a boolean or { secret?, stepSeconds? }');
    }
    this.nonces = nonces !== false;
    const secret = typeof nonces === 'object' ? nonces.secret : undefined;
    if (
      secret !== undefined &&
      (typeof secret === 'string' ? Buffer.byteLength(secret) : secret.length) < 32
    ) {
      throw new ConfigError('dpop.nonces.secret', 'must be at least 32 bytes');
    }
    this.#nonceSecret = this.nonces
      ? secret === undefined
        ? randomBytes(32)
        : Buffer.from(secret as string | Uint8Array)
      : undefined;
    const step = typeof nonces === 'object' ? nonces.stepSeconds : undefined;
    this.#stepMs = seconds(step, 'dpop.nonces.stepSeconds', 300, 10, 86_400) * 1000;
    this.#challengeAlgs = this.algorithms.join(' ');
    this.offered = options !== undefined;
    const bearer = bearerChallenge(realm);
    this.#missingToken = this.offered ? `${bearer}, ${this.challenge()}` : bearer;
  }

  /** A fresh server nonce, or `undefined` when nonces are off. Stateless: an HMAC of the time step. */
  nonce(now: number = this.#clock()): string | undefined {
    if (!this.#nonceSecret) return undefined;
    const step = Math.floor(now / this.#stepMs);
    return `${step.toString(36)}.${this.#nonceMac(step)}`;
  }

  /** Headers every successful answer to a DPoP client may carry: a fresh `DPoP-Nonce` (RFC 9449 §8). */
  answerHeaders(now: number = this.#clock()): Record<string, string> {
    const nonce = this.nonce(now);
    return nonce === undefined ? {} : { 'dpop-nonce': nonce };
  }

  /** `WWW-Authenticate: DPoP …` (RFC 9449 §7.1). */
  challenge(error?: 'invalid_token' | 'invalid_dpop_proof' | 'use_dpop_nonce' | 'invalid_request'): string {
    let value = `DPoP realm="${this.#realm}"`;
    if (error) value += `, error="${error}"`;
    return `${value}, algs="${this.#challengeAlgs}"`;
  }

  /**
   * `WWW-Authenticate` of a guarded request that sent no token: `Bearer realm="…"`, and when the
   * engine was given a `dpop` option a `DPoP realm="…", algs="…"` challenge beside it (RFC 9449
   * §7.1: a resource server that takes both schemes offers both; RFC 9110 §11.6.1 allows several
   * challenges in one header). No `error`: the request carried no credentials (RFC 6750 §3.1).
   */
  missingTokenChallenge(): string {
    return this.#missingToken;
  }

  /**
   * Check a proof (RFC 9449 §4.3 steps 1-12) and remember its `jti` (§11.1). `accessToken` when one
   * is presented with it (`ath` must be its hash); `endpoint` decides the status of a refusal: 400
   * at a token endpoint (§5), 401 with a `DPoP` challenge at a resource (§7.1). Resolves the key's
   * thumbprint; the caller compares it with the token's binding.
   */
  async verify(
    request: DpopRequest,
    now: number,
    endpoint: DpopEndpoint,
    accessToken?: string,
    deferReplay = false,
  ): Promise<DpopProof> {
    const proof = request.proof;
    // Step 1 and 2: one header, one well-formed JWS (bounded before any parse).
    if (proof === undefined || proof === '') throw this.#refuse(endpoint, '1', 'A DPoP proof is required');
    if (typeof proof !== 'string' || proof.length > MAX_DPOP_PROOF_LENGTH) {
      throw this.#refuse(endpoint, '2', 'The DPoP proof is too large');
    }
    if (!PROOF_SHAPE.test(proof))
      throw this.#refuse(endpoint, '2', 'Send exactly one well-formed DPoP proof');
    const dot = proof.indexOf('.');
    const headerText = proof.slice(0, dot);
    let key = this.#keys.get(headerText);
    if (!key) key = await this.#readHeader(headerText, endpoint);
    // Step 6: the signature verifies with the header's own key (and its own algorithm only). A proof
    // per request is the guard's main cost: checked off the event loop, on a worker thread that takes
    // one turn's proofs as one message (`proofChecks: 'worker'`, signature-worker.ts) or on libuv's
    // thread pool, so the loop serves other requests meanwhile (bench --set dpop).
    const last = proof.lastIndexOf('.');
    const input = proof.slice(0, last);
    const signature = proof.slice(last + 1);
    const valid = await (this.#worker
      ? this.#worker.verify(key.key, input, signature)
      : verifyOnThreadPool(key.key, input, signature));
    if (!valid) throw this.#refuse(endpoint, '6', 'The DPoP proof signature does not verify with its jwk');
    this.#keys.set(headerText, key);
    let claims: Record<string, unknown>;
    try {
      claims = JSON.parse(Buffer.from(proof.slice(dot + 1, last), 'base64url').toString('utf8')) as Record<
        string,
        unknown
      >;
    } catch {
      throw this.#refuse(endpoint, '2', 'The DPoP proof payload is not JSON');
    }
    if (typeof claims !== 'object' || claims === null || Array.isArray(claims)) {
      throw this.#refuse(endpoint, '2', 'The DPoP proof payload is not a JSON object');
    }
    // Step 3: the required claims (§4.2).
    const { jti, htm, htu, iat, ath, nonce } = claims;
    if (typeof jti !== 'string' || jti.length === 0 || jti.length > MAX_DPOP_JTI_LENGTH) {
      throw this.#refuse(
        endpoint,
        '3',
        `The DPoP proof needs a jti of 1 to ${MAX_DPOP_JTI_LENGTH} characters`,
      );
    }
    if (typeof htm !== 'string' || typeof htu !== 'string' || typeof iat !== 'number') {
      throw this.#refuse(endpoint, '3', 'The DPoP proof needs htm, htu and a numeric iat');
    }
    // Step 8: htm is the request's method.
    if (htm !== request.method)
      throw this.#refuse(endpoint, '8', 'The DPoP proof htm is not this request method');
    // Step 9: htu is the request's URL, query and fragment ignored, normalised (RFC 3986 §6.2.2-6.2.3).
    if (!htuMatches(htu, request.url))
      throw this.#refuse(endpoint, '9', 'The DPoP proof htu is not this request URL');
    // Step 10: the server's nonce, when nonces are on.
    if (this.#nonceSecret && !(typeof nonce === 'string' && this.#nonceValid(nonce, now))) {
      throw this.#useNonce(endpoint, now);
    }
    // Step 11: iat within the window, both sides (§11.1).
    const issuedAt = iat * 1000;
    if (!Number.isFinite(issuedAt) || Math.abs(now - issuedAt) > this.#windowMs) {
      throw this.#refuse(endpoint, '11', 'The DPoP proof iat is outside the accepted window');
    }
    // Step 12: `ath` is the presented token's hash; a proof for a token endpoint carries none.
    if (accessToken !== undefined) {
      if (typeof ath !== 'string' || !equalText(ath, accessTokenHash(accessToken))) {
        throw this.#refuse(endpoint, '12', 'The DPoP proof ath is not the hash of this access token');
      }
    } else if (ath !== undefined) {
      throw this.#refuse(endpoint, '12', 'The DPoP proof carries an ath but no access token is presented');
    }
    const jkt = key.jkt;
    if (deferReplay) {
      return { jkt, jti, issuedAt, remember: () => this.#remember(jkt, jti, issuedAt, now, endpoint) };
    }
    await this.#remember(jkt, jti, issuedAt, now, endpoint);
    return { jkt, jti, issuedAt };
  }

  /** §11.1: a `jti` is accepted once while its proof could be accepted at all. */
  async #remember(
    jkt: string,
    jti: string,
    issuedAt: number,
    now: number,
    endpoint: DpopEndpoint,
  ): Promise<void> {
    let verdict;
    try {
      verdict = await this.#replay.remember(
        `dpop:${jkt}:${jti}`,
        Math.max(issuedAt + this.#windowMs, now + 1000),
        now,
      );
    } catch (error) {
      throw new ServiceUnavailableError('store_unavailable', 'The replay cache is unavailable', {
        cause: error,
      });
    }
    if (!verdict.first) throw this.#refuse(endpoint, '11.1', 'The DPoP proof was used before');
  }

  /** Steps 4, 5 and 7: `typ`, an accepted asymmetric `alg`, a public `jwk` of that algorithm's type. */
  async #readHeader(text: string, endpoint: DpopEndpoint): Promise<ProofKey> {
    let header: Record<string, unknown>;
    try {
      header = JSON.parse(Buffer.from(text, 'base64url').toString('utf8')) as Record<string, unknown>;
    } catch {
      throw this.#refuse(endpoint, '2', 'The DPoP proof header is not JSON');
    }
    if (typeof header !== 'object' || header === null || Array.isArray(header)) {
      throw this.#refuse(endpoint, '2', 'The DPoP proof header is not a JSON object');
    }
    if (header.typ !== DPOP_JWT_TYPE)
      throw this.#refuse(endpoint, '4', 'The DPoP proof typ must be dpop+jwt');
    const alg = header.alg;
    if (typeof alg !== 'string' || !this.algorithms.includes(alg as DpopAlgorithm)) {
      throw this.#refuse(endpoint, '5', 'The DPoP proof alg is not an accepted asymmetric algorithm');
    }
    if (header.crit !== undefined)
      throw this.#refuse(endpoint, '2', 'The DPoP proof header has crit parameters');
    const jwk = header.jwk;
    if (typeof jwk !== 'object' || jwk === null || Array.isArray(jwk)) {
      throw this.#refuse(endpoint, '7', 'The DPoP proof header needs a jwk');
    }
    const members = jwk as Record<string, unknown>;
    if (PRIVATE_MEMBERS.some((name) => Object.hasOwn(members, name))) {
      throw this.#refuse(endpoint, '7', 'The DPoP proof jwk must be a public key');
    }
    const spec = ALGORITHM[alg]!;
    if (members.kty !== spec.kty || (spec.crv !== undefined && members.crv !== spec.crv)) {
      throw this.#refuse(endpoint, '7', 'The DPoP proof jwk is not a key of its alg');
    }
    let publicKey: KeyObject;
    let jkt: string;
    try {
      publicKey = createPublicKey({ key: members as JsonWebKey, format: 'jwk' });
      jkt = await calculateJwkThumbprint(members as JWK, 'sha256');
    } catch {
      throw this.#refuse(endpoint, '7', 'The DPoP proof jwk is not a usable public key');
    }
    if (publicKey.type !== 'public')
      throw this.#refuse(endpoint, '7', 'The DPoP proof jwk must be a public key');
    if (spec.kty === 'RSA' && (publicKey.asymmetricKeyDetails?.modulusLength ?? 0) < MIN_RSA_BITS) {
      throw this.#refuse(endpoint, '7', `The DPoP proof jwk is an RSA key shorter than ${MIN_RSA_BITS} bits`);
    }
    // A 16384-bit modulus or a huge exponent costs ~5 ms per verify, reachable without credentials
    // at login: at most 4096 bits, and the exponent every RSA library uses.
    if (
      spec.kty === 'RSA' &&
      ((publicKey.asymmetricKeyDetails?.modulusLength ?? 0) > MAX_RSA_BITS ||
        publicKey.asymmetricKeyDetails?.publicExponent !== 65537n)
    ) {
      throw this.#refuse(
        endpoint,
        '7',
        `The DPoP proof jwk is an RSA key longer than ${MAX_RSA_BITS} bits or with e other than 65537`,
      );
    }
    return { jkt, key: signatureKey(publicKey, spec.hash, spec.signing) };
  }

  #refuse(endpoint: DpopEndpoint, step: string, message: string): OidcAuthError {
    const detail = { step };
    if (endpoint === 'token') return new BadRequestError('invalid_dpop_proof', message, { detail });
    return new UnauthorizedError('invalid_dpop_proof', message, {
      detail,
      headers: { 'www-authenticate': this.challenge('invalid_dpop_proof') },
    });
  }

  /** `use_dpop_nonce` with a fresh `DPoP-Nonce` (RFC 9449 §8: 400 at a token endpoint, §9: 401 at a resource). */
  #useNonce(endpoint: DpopEndpoint, now: number): OidcAuthError {
    const headers: Record<string, string> = { 'dpop-nonce': this.nonce(now)! };
    const message = 'Use the server-provided DPoP nonce';
    if (endpoint === 'token') return new BadRequestError('use_dpop_nonce', message, { headers });
    headers['www-authenticate'] = this.challenge('use_dpop_nonce');
    return new UnauthorizedError('use_dpop_nonce', message, { headers });
  }

  /** A refusal of a token presented against its binding (wrong scheme, no or another key). */
  tokenRefusal(code: ReasonCode, message: string, bearerChallenge: string): OidcAuthError {
    const dpopError = code === 'invalid_token' ? 'invalid_token' : 'invalid_dpop_proof';
    const challenge = this.challenge(dpopError);
    return new UnauthorizedError(code, message, {
      headers: { 'www-authenticate': bearerChallenge ? `${challenge}, ${bearerChallenge}` : challenge },
    });
  }

  #nonceMac(step: number): string {
    return createHmac('sha256', this.#nonceSecret!)
      .update(`dpop-nonce:${step}`)
      .digest()
      .subarray(0, 16)
      .toString('base64url');
  }

  #nonceValid(nonce: string, now: number): boolean {
    if (nonce.length > 40 || !NONCE_SHAPE.test(nonce)) return false;
    const dot = nonce.indexOf('.');
    const step = parseInt(nonce.slice(0, dot), 36);
    const current = Math.floor(now / this.#stepMs);
    if (step !== current && step !== current - 1) return false;
    return equalText(nonce.slice(dot + 1), this.#nonceMac(step));
  }
}

/** An engine's DPoP checker when `auth.dpop` is read by adapters. */
export type DpopService = Pick<
  DpopVerifier,
  'algorithms' | 'nonces' | 'nonce' | 'answerHeaders' | 'challenge' | 'offered' | 'missingTokenChallenge'
>;

function equalText(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

function seconds(value: unknown, field: string, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
    throw new ConfigError(field, `must be a whole number from ${min} to ${max}`);
  }
  return value;
}

/**
 * The proof of a token use (guard, renew, revoke): with the `DPoP` scheme (or a proof on a direct
 * call) the proof is checked with `ath` and its key's thumbprint resolved; a bearer use resolves
 * `undefined`. Compare the result with the token's binding with {@link checkBinding}.
 */
export async function proveUse(
  verifier: DpopVerifier,
  request: DpopRequest | undefined,
  accessToken: string,
  now: number,
): Promise<string | undefined> {
  const scheme = request?.scheme ?? (request?.proof !== undefined ? 'DPoP' : 'Bearer');
  if (scheme !== 'DPoP' || request === undefined) {
    if (scheme === 'DPoP') throw verifier.tokenRefusal('invalid_dpop_proof', 'A DPoP proof is required', '');
    return undefined;
  }
  return (await verifier.verify(request, now, 'resource', accessToken)).jkt;
}

/**
 * RFC 9449 §7.1 and §7.2: a bound token is used only with the DPoP scheme and a proof by its key; an
 * unbound token only as a bearer token. `bound` is the token's thumbprint, `presented` the proof's
 * (`undefined`: a bearer use).
 */
export function checkBinding(
  verifier: DpopVerifier,
  bound: string | undefined,
  presented: string | undefined,
  bearerChallenge: string,
): void {
  if (bound === presented) return;
  if (bound === undefined) {
    throw verifier.tokenRefusal('invalid_token', 'The access token is not DPoP-bound', bearerChallenge);
  }
  if (presented === undefined) {
    throw verifier.tokenRefusal(
      'invalid_token',
      'A DPoP-bound access token needs the DPoP scheme and a proof',
      bearerChallenge,
    );
  }
  throw verifier.tokenRefusal(
    'dpop_key_mismatch',
    'The DPoP proof key is not the one the token is bound to',
    bearerChallenge,
  );
}
