/**
 * DPoP proofs (RFC 9449 §4.2) for the DPoP benchmarks, signed with node:crypto (ES256, IEEE P1363
 * signatures as JWS wants): the server makes its smoke proofs with it, the load client a pool of
 * proofs made before the run, one per request, each with its own `jti`.
 */
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  randomBytes,
  sign,
  type JsonWebKey,
  type KeyObject,
} from 'node:crypto';

/** What the load client needs to send a fresh proof with every request (`BenchRequest.dpop`). */
export interface DpopLoad {
  /** The client's private key (P-256 JWK). */
  privateJwk: JsonWebKey;
  /** The DPoP-bound access token the proofs' `ath` hashes. */
  token: string;
}

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

/** Signs ES256 proofs with one key. */
export class ProofMaker {
  readonly #key: KeyObject;
  readonly #header: string;
  readonly privateJwk: JsonWebKey;

  constructor(privateJwk: JsonWebKey) {
    this.privateJwk = privateJwk;
    this.#key = createPrivateKey({ key: privateJwk, format: 'jwk' });
    const { kty, crv, x, y } = createPublicKey(this.#key).export({ format: 'jwk' });
    this.#header = b64({ typ: 'dpop+jwt', alg: 'ES256', jwk: { kty, crv, x, y } });
  }

  /** A proof for `htm` on `htu`, with `ath` when a token is given; `iat` now. */
  make(htm: string, htu: string, token?: string): string {
    const payload: Record<string, unknown> = {
      jti: randomBytes(12).toString('base64url'),
      htm,
      htu,
      iat: Math.floor(Date.now() / 1000),
    };
    if (token !== undefined) payload.ath = createHash('sha256').update(token).digest('base64url');
    const input = `${this.#header}.${b64(payload)}`;
    const signature = sign('sha256', Buffer.from(input), { key: this.#key, dsaEncoding: 'ieee-p1363' });
    return `${input}.${signature.toString('base64url')}`;
  }
}

/** A new P-256 private key as a JWK. */
export function newProofJwk(): JsonWebKey {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return privateKey.export({ format: 'jwk' });
}

/** Proofs made ahead per load target (warm-up and the measured slices of one server share them). */
const pools = new Map<string, () => string>();

/**
 * The proof source of one load target: `BENCH_DPOP_PROOFS` (default 100,000) proofs made now, each
 * used once, then (should a run outlast them) proofs signed as requests go.
 */
export function proofSource(load: DpopLoad, method: string, url: string): () => string {
  const id = `${method} ${url} ${load.token}`;
  let source = pools.get(id);
  if (source) return source;
  const maker = new ProofMaker(load.privateJwk);
  const count = Number(process.env.BENCH_DPOP_PROOFS ?? 100_000);
  const pool: string[] = [];
  for (let i = 0; i < count; i++) pool.push(maker.make(method, url, load.token));
  let next = 0;
  source = () => (next < pool.length ? pool[next++]! : maker.make(method, url, load.token));
  pools.set(id, source);
  return source;
}
