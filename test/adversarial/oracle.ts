import { GLOB_LIMITS } from '../../src/policy.js';
import { MAX_JWT_LENGTH } from '../../src/verify.js';
import { tryJson } from './support.js';

/** The bindings of `githubIdentity()` in test/helpers/engine.ts, restated independently. */
export interface Bindings {
  issuer: string;
  subject: string;
  audience: string;
  repositoryId: string;
  kid: string;
  skewSeconds: number;
  maxLifetimeSeconds: number;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

const own = (o: Record<string, unknown>, k: string) => (Object.hasOwn(o, k) ? o[k] : undefined);
const decode = (segment: string) => Buffer.from(segment, 'base64url').toString('utf8');

function scalarEquals(value: unknown, pattern: string): boolean {
  if (typeof value === 'string') return value === pattern;
  if (typeof value === 'number') return Number.isFinite(value) && String(value) === pattern;
  if (typeof value === 'boolean') return String(value) === pattern;
  return false;
}

/**
 * What a login with this genuinely signed (RS256, right key) token must do, decided from the
 * decoded bytes alone: `reject` when any binding or time rule fails or the header carries a JWS
 * extension (`crit`, `b64`: the library understands none and refuses them), `accept` otherwise.
 */
export function expectedVerdict(jwt: string, nowMs: number, b: Bindings): 'accept' | 'reject' | 'either' {
  if (jwt.length > MAX_JWT_LENGTH) return 'reject';
  const parts = jwt.split('.');
  if (parts.length !== 3 || (parts[0] ?? '').length > 2048) return 'reject';
  const header = tryJson(decode(parts[0]!));
  const payload = tryJson(decode(parts[1]!));
  if (!isObject(header) || !isObject(payload)) return 'reject';

  if (own(header, 'alg') !== 'RS256') return 'reject';
  if (Object.hasOwn(header, 'crit') || Object.hasOwn(header, 'b64')) return 'reject';
  const kid = own(header, 'kid');
  if (kid !== undefined && kid !== b.kid) return 'reject';

  const now = Math.floor(nowMs / 1000);
  const { exp, iat, nbf } = { exp: own(payload, 'exp'), iat: own(payload, 'iat'), nbf: own(payload, 'nbf') };
  if (typeof exp !== 'number' || typeof iat !== 'number') return 'reject';
  if (nbf !== undefined && (typeof nbf !== 'number' || nbf > now + b.skewSeconds)) return 'reject';
  if (exp <= now - b.skewSeconds || iat > now + b.skewSeconds) return 'reject';
  if (exp - iat > b.maxLifetimeSeconds) return 'reject';
  if (own(payload, 'iss') !== b.issuer) return 'reject';

  const aud = own(payload, 'aud');
  const audOk =
    aud === b.audience ||
    (Array.isArray(aud) &&
      aud.length > 0 &&
      aud.length <= GLOB_LIMITS.maxArrayElements &&
      aud.every((a) => typeof a === 'string') &&
      aud.includes(b.audience));
  if (!audOk) return 'reject';
  if (own(payload, 'sub') !== b.subject) return 'reject';

  const repo = own(payload, 'repository_id');
  const repoOk = Array.isArray(repo)
    ? repo.length <= GLOB_LIMITS.maxArrayElements && repo.some((v) => scalarEquals(v, b.repositoryId))
    : scalarEquals(repo, b.repositoryId);
  if (!repoOk) return 'reject';

  return 'accept';
}
