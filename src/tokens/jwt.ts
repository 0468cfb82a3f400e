import { compactVerify, type CompactJWSHeaderParameters, type FlattenedJWSInput, type JWK } from 'jose';
import { LRUCache } from 'lru-cache';
import type { KeyObject } from 'node:crypto';
import type { AccessTokenAlgorithm, AccessTokenKey } from './signing-keys.js';

/** The JWT `typ` of an RFC 9068 access token (§2.1). */
export const AT_JWT_TYPE = 'at+jwt';

/** The claim our mapped and static identity metadata travels in: one object, so it can never overwrite a registered claim. */
export const METADATA_CLAIM = 'metadata';

/** What goes into a JWT access token. */
export interface JwtMintInput {
  /** The token store record's id: the `jti`. */
  tokenId: string;
  /** The identity: `sub` and `client_id`. */
  identityId: string;
  /** At least one audience. */
  audience: readonly string[];
  /** Epoch ms (rounded up to the second). */
  expiresAt: number;
  /** Epoch ms (rounded down to the second). */
  issuedAt: number;
  /** Space-joined into `scope`; left out when empty. */
  scopes?: readonly string[] | undefined;
  /** Left out when empty. */
  metadata: Readonly<Record<string, unknown>>;
  /** DPoP key thumbprint: written as `cnf: { jkt }` (RFC 9449 §6.1). */
  jkt?: string | undefined;
}

/** What a JWT access token we signed says (signature, `typ` and `iss` checked; expiry is the caller's check). */
export interface ParsedJwtAccessToken {
  readonly tokenId: string;
  readonly identityId: string;
  /** Epoch ms. */
  readonly expiresAt: number;
  readonly audience: readonly string[];
  readonly scopes: readonly string[] | undefined;
  readonly kid: string;
  /** `cnf.jkt` (RFC 9449 §6.1): the DPoP key the token is bound to; absent for a bearer token. */
  readonly jkt?: string;
}

/** Options of {@link JwtAccessTokens}. */
export interface JwtAccessTokensOptions {
  /** Our issuer URL: the `iss` we mint and the only one we accept. */
  issuer: string;
  /** Validated keys; the first signs. */
  keys: readonly AccessTokenKey[];
  /** Verified token strings remembered (bounded). Default 10 000; 0 turns it off. */
  verifiedCacheSize?: number;
}

const TOKEN_ID = /^[A-Za-z0-9_-]{22}$/;
/** Longer strings are refused before any parse: our tokens are far smaller (metadata is bounded). */
export const MAX_JWT_LENGTH = 16 * 1024;
const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;
const encoder = new TextEncoder();

/** Whether a bearer string has the shape of a compact JWS (three base64url parts), not of an opaque token. */
export function looksLikeJwt(token: string): boolean {
  return token.length <= MAX_JWT_LENGTH && JWT_SHAPE.test(token);
}

/**
 * Mints and verifies RFC 9068 JWT access tokens signed with our asymmetric keys.
 *
 * Verification accepts only what we mint: a compact JWS whose `alg` is the algorithm of the key its
 * `kid` names among ours (so `none`, HS256 keyed with a public key, or any other algorithm is
 * refused before a signature is checked), `typ` `at+jwt` (or `application/at+jwt`, §4), `iss` ours,
 * and the claims we write. Strings that verified are remembered in a bounded LRU (by the whole
 * string, signature included), so a token is verified once per process while it is in use.
 */
export class JwtAccessTokens {
  readonly issuer: string;
  readonly #keys: ReadonlyMap<string, AccessTokenKey>;
  readonly #signing: AccessTokenKey;
  readonly #header: string;
  readonly #algorithms: AccessTokenAlgorithm[];
  readonly #verified: LRUCache<string, ParsedJwtAccessToken> | undefined;

  constructor(options: JwtAccessTokensOptions) {
    this.issuer = options.issuer;
    this.#keys = new Map(options.keys.map((key) => [key.kid, key]));
    this.#signing = options.keys[0]!;
    this.#header = b64json({ alg: this.#signing.alg, typ: AT_JWT_TYPE, kid: this.#signing.kid });
    this.#algorithms = [...new Set(options.keys.map((key) => key.alg))];
    const size = options.verifiedCacheSize ?? 10_000;
    this.#verified =
      size > 0
        ? new LRUCache({
            max: size,
            maxSize: size * 2048,
            sizeCalculation: (_v, token) => token.length + 128,
          })
        : undefined;
  }

  /** The algorithms of our keys: the only ones verification accepts. */
  get algorithms(): readonly AccessTokenAlgorithm[] {
    return this.#algorithms;
  }

  /** The JWKS we publish: every key, the signing one first. */
  jwks(): { keys: JWK[] } {
    return { keys: [...this.#keys.values()].map((key) => ({ ...key.jwk })) };
  }

  /** A signed token (RFC 9068 §2.2 claims). */
  async mint(input: JwtMintInput): Promise<string> {
    const payload: Record<string, unknown> = {
      iss: this.issuer,
      sub: input.identityId,
      aud: input.audience.length === 1 ? input.audience[0] : [...input.audience],
      exp: Math.ceil(input.expiresAt / 1000),
      iat: Math.floor(input.issuedAt / 1000),
      jti: input.tokenId,
      client_id: input.identityId,
    };
    if (input.scopes && input.scopes.length > 0) payload.scope = input.scopes.join(' ');
    if (Object.keys(input.metadata).length > 0) payload[METADATA_CLAIM] = input.metadata;
    if (input.jkt !== undefined) payload.cnf = { jkt: input.jkt };
    const signingInput = `${this.#header}.${b64json(payload)}`;
    const signature = await this.#signing.sign!(encoder.encode(signingInput));
    return `${signingInput}.${Buffer.from(signature).toString('base64url')}`;
  }

  /**
   * Verify a token string we minted. `undefined` for anything else: another shape, an unknown
   * `kid`, an algorithm not the key's, a bad signature, another `typ` or `iss`, claims we never
   * write. Expiry is not checked here (the guard checks it; revocation accepts an expired token).
   */
  async verify(token: string): Promise<ParsedJwtAccessToken | undefined> {
    if (typeof token !== 'string' || !looksLikeJwt(token)) return undefined;
    const known = this.#verified?.get(token);
    if (known) return known;
    let result;
    try {
      result = await compactVerify(token, this.#keyFor, { algorithms: this.#algorithms });
    } catch {
      return undefined;
    }
    const parsed = this.#claims(result.protectedHeader, result.payload);
    if (parsed) this.#verified?.set(token, parsed);
    return parsed;
  }

  /** jose's key lookup: the key the `kid` names, only with that key's own algorithm. */
  readonly #keyFor = (header: CompactJWSHeaderParameters, _token: FlattenedJWSInput): KeyObject => {
    const key = typeof header.kid === 'string' ? this.#keys.get(header.kid) : undefined;
    if (!key || header.alg !== key.alg) throw new Error('no such key');
    return key.publicKey;
  };

  #claims(header: CompactJWSHeaderParameters, bytes: Uint8Array): ParsedJwtAccessToken | undefined {
    const typ = typeof header.typ === 'string' ? header.typ.toLowerCase() : '';
    if (typ !== AT_JWT_TYPE && typ !== `application/${AT_JWT_TYPE}`) return undefined;
    let claims: Record<string, unknown>;
    try {
      claims = JSON.parse(Buffer.from(bytes).toString('utf8')) as Record<string, unknown>;
    } catch {
      return undefined;
    }
    if (typeof claims !== 'object' || claims === null || claims.iss !== this.issuer) return undefined;
    const { sub, jti, exp, aud, scope } = claims;
    if (typeof sub !== 'string' || typeof jti !== 'string' || !TOKEN_ID.test(jti)) return undefined;
    if (typeof exp !== 'number' || !Number.isSafeInteger(exp) || claims.client_id !== sub) return undefined;
    const audience = typeof aud === 'string' ? [aud] : aud;
    if (!Array.isArray(audience) || audience.length === 0 || !audience.every((a) => typeof a === 'string')) {
      return undefined;
    }
    if (scope !== undefined && typeof scope !== 'string') return undefined;
    const jkt = confirmationThumbprint(claims.cnf);
    if (jkt === null) return undefined;
    return Object.freeze({
      ...(jkt === undefined ? {} : { jkt }),
      tokenId: jti,
      identityId: sub,
      expiresAt: exp * 1000,
      audience: Object.freeze(audience as string[]),
      scopes: scope === undefined ? undefined : Object.freeze(scope.split(' ').filter(Boolean)),
      kid: header.kid!,
    });
  }
}

/** `cnf.jkt` of a token we minted: absent (`undefined`), a thumbprint, or `null` for a `cnf` we never write. */
function confirmationThumbprint(cnf: unknown): string | undefined | null {
  if (cnf === undefined) return undefined;
  if (typeof cnf !== 'object' || cnf === null) return null;
  const jkt = (cnf as Record<string, unknown>).jkt;
  return typeof jkt === 'string' && /^[A-Za-z0-9_-]{43}$/.test(jkt) ? jkt : null;
}

function b64json(value: unknown): string {
  return Buffer.from(JSON.stringify(value), 'utf8').toString('base64url');
}
