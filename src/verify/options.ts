import { VerifyError } from './errors.js';

/** JWS algorithms the verifier accepts: asymmetric only. */
export type VerifyAlgorithm =
  | 'EdDSA'
  | 'Ed25519'
  | 'ES256'
  | 'ES384'
  | 'ES512'
  | 'RS256'
  | 'RS384'
  | 'RS512'
  | 'PS256'
  | 'PS384'
  | 'PS512';

const ASYMMETRIC: ReadonlySet<string> = new Set<VerifyAlgorithm>([
  'EdDSA',
  'Ed25519',
  'ES256',
  'ES384',
  'ES512',
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
]);

/** What the minting side signs with: Ed25519 (as `EdDSA` or `Ed25519`), ES256, RS256. */
export const DEFAULT_ALGORITHMS: readonly VerifyAlgorithm[] = ['EdDSA', 'Ed25519', 'ES256', 'RS256'];

/** A `fetch` with the WHATWG signature. */
export type FetchLike = (input: string | URL | Request, init?: RequestInit) => Promise<Response>;

const LOOPBACK_HOSTS: ReadonlySet<string> = new Set(['127.0.0.1', '[::1]', 'localhost']);

/**
 * Parse a URL the verifier will fetch (or the issuer itself): `https:`, or `http:` on a loopback host
 * when `allowInsecureLoopback` is set; no credentials, no fragment.
 */
export function parseServerUrl(value: unknown, field: string, allowInsecureLoopback: boolean): URL {
  if (typeof value !== 'string' || value === '') {
    throw new VerifyError('invalid_config', `${field} must be a non-empty URL string`);
  }
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new VerifyError('invalid_config', `${field} is not a URL`);
  }
  const loopbackHttp = url.protocol === 'http:' && allowInsecureLoopback && LOOPBACK_HOSTS.has(url.hostname);
  if (url.protocol !== 'https:' && !loopbackHttp) {
    throw new VerifyError(
      'invalid_config',
      `${field} must use https (http only on a loopback host with allowInsecureLoopback)`,
    );
  }
  if (url.username || url.password || url.hash) {
    throw new VerifyError('invalid_config', `${field} must not carry credentials or a fragment`);
  }
  return url;
}

/** Check the algorithm allowlist once, at start-up: asymmetric JWS algorithms only, at least one. */
export function parseAlgorithms(value: readonly string[] | undefined): readonly VerifyAlgorithm[] {
  if (value === undefined) return DEFAULT_ALGORITHMS;
  if (!Array.isArray(value) || value.length === 0) {
    throw new VerifyError('invalid_config', 'algorithms must be a non-empty array');
  }
  for (const alg of value) {
    if (typeof alg !== 'string' || !ASYMMETRIC.has(alg)) {
      throw new VerifyError(
        'invalid_config',
        `algorithms: ${String(alg)} is not an asymmetric JWS algorithm (allowed: ${[...ASYMMETRIC].join(', ')})`,
      );
    }
  }
  return [...new Set(value)] as VerifyAlgorithm[];
}

/** A whole number of seconds within [min, max], or the default. */
export function parseSeconds(
  value: unknown,
  field: string,
  fallback: number,
  min: number,
  max: number,
): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new VerifyError('invalid_config', `${field} must be a whole number from ${min} to ${max}`);
  }
  return value;
}
