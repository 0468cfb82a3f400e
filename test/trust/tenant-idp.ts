import type { JWK, JWTPayload } from 'jose';
import { FetchError, type HttpGet } from '../../src/trust/fetch.js';
import { makeKey, seconds, sign, type TestKey } from '../helpers/jwt.js';

/**
 * A fleet of issuers behind the `httpGet` seam: every issuer `<base>/...` the `owns` test accepts
 * answers discovery (`issuer` = itself, `jwks_uri` = `<issuer>/keys`) and a JWKS with its own key.
 * Counts every fetch, so tests can bound them.
 */
export class TenantIdp {
  readonly fetches: string[] = [];
  readonly #keys = new Map<string, TestKey>();

  /** @param jwksPath where each issuer serves its JWKS, under the issuer (`/keys` as EKS does). */
  constructor(
    private readonly owns: (issuer: string) => boolean,
    private readonly jwksPath = '/keys',
  ) {}

  /** The key of one issuer (made on first use; EC, so a thousand are cheap). */
  keyOf(issuer: string): TestKey {
    let key = this.#keys.get(issuer);
    if (!key) this.#keys.set(issuer, (key = makeKey('ES256', `k-${this.#keys.size}`)));
    return key;
  }

  count(kind: 'discovery' | 'jwks'): number {
    const suffix = kind === 'discovery' ? '/.well-known/openid-configuration' : this.jwksPath;
    return this.fetches.filter((url) => url.endsWith(suffix)).length;
  }

  readonly httpGet: HttpGet = async (url) => {
    this.fetches.push(url);
    const discovery = url.endsWith('/.well-known/openid-configuration');
    const suffix = discovery ? '/.well-known/openid-configuration' : this.jwksPath;
    if (!url.endsWith(suffix)) throw new FetchError('http_status', url);
    const issuer = url.slice(0, -suffix.length);
    // As the real httpGet does for a non-2xx answer.
    if (!this.owns(issuer)) throw new FetchError('http_status', url);
    const body = discovery
      ? { issuer, jwks_uri: `${issuer}${this.jwksPath}` }
      : { keys: [this.keyOf(issuer).publicJwk as JWK] };
    return { status: 200, body: JSON.stringify(body), headers: { 'content-type': 'application/json' } };
  };

  /** A token of `issuer`, signed by its key. */
  token(issuer: string, nowMs: number, claims: JWTPayload = {}): Promise<string> {
    const iat = seconds(nowMs);
    return sign(this.keyOf(issuer), { iss: issuer, iat, exp: iat + 300, ...claims });
  }
}
