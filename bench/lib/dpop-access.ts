/**
 * Fixtures of the DPoP benchmarks (issue 16): the JWT access-token engine of `jwt-access.ts` with a
 * proof window long enough for proofs made before a run, a DPoP-bound access token (`cnf.jkt`), and
 * the spec every DPoP candidate answers (same smoke checks, the same proofs under load).
 */
import { MemoryReplayCache, createOidcAuth, type OidcAuth } from '../../src/index.js';
import { ProofMaker, newProofJwk } from './dpop-proofs.js';
import { benchIdentity, IDENTITY_ID, SIGNING_KEYS, signIdpToken, type IdpKey } from './fixtures.js';
import { ACCESS_TOKEN_KEY, OUR_ISSUER } from './jwt-access.js';
import type { ServerSpec, SmokeCase } from './protocol.js';

/**
 * Seconds a proof's `iat` may lie from now: the load client makes its proofs when it first loads a
 * server (so signing them costs the measured client nothing), and a sliced round of the default set
 * keeps a server up for many minutes.
 */
export const BENCH_PROOF_WINDOW_SECONDS = 3600;

/**
 * The engine of `jwtEngine` (Ed25519 JWT access tokens, no uses limit) with that proof window and a
 * memory replay cache holding every `jti` of a round (a million; the default 100,000 fills up).
 */
export function dpopEngine(key: IdpKey): OidcAuth {
  return createOidcAuth({
    identities: [benchIdentity(key, { accessTokenFormat: 'jwt' })],
    signingKeys: SIGNING_KEYS,
    issuer: OUR_ISSUER,
    accessTokens: { signingKeys: [{ privateKey: ACCESS_TOKEN_KEY, kid: 'bench-ed25519' }] },
    dpop: { proofWindowSeconds: BENCH_PROOF_WINDOW_SECONDS },
    replayCache: new MemoryReplayCache({ maxEntries: 1_000_000 }),
  });
}

/** A client key, and a DPoP-bound JWT access token for it (a login with a proof). */
export async function dpopAccessToken(
  auth: OidcAuth,
  key: IdpKey,
): Promise<{ token: string; maker: ProofMaker }> {
  const maker = new ProofMaker(newProofJwk());
  const login = `${OUR_ISSUER}/oidc-auth/login`;
  const grant = await auth.login({
    identityId: IDENTITY_ID,
    jwt: await signIdpToken(key),
    clientIp: '127.0.0.1',
    dpop: { proof: maker.make('POST', login), method: 'POST', url: login },
  });
  if (grant.tokenType !== 'DPoP') throw new Error('the bench login did not bind its token');
  return { token: grant.accessToken, maker };
}

/**
 * `GET /hello` with `Authorization: DPoP <token>` and a fresh proof per request. Smoke: a proof 200;
 * no proof and the token as Bearer refused (401, or the peer's `refusal` status); with `replay`, the
 * smoke proof again 401 (a peer that keeps no `jti`s cannot refuse that).
 */
export function dpopHelloSpec(
  port: number,
  token: string,
  maker: ProofMaker,
  options: { replay: boolean; refusal?: number },
): Omit<ServerSpec, 'port'> {
  const url = `http://127.0.0.1:${port}/hello`;
  const headers = (proof?: string) => ({
    authorization: `DPoP ${token}`,
    ...(proof === undefined ? {} : { dpop: proof }),
  });
  const proof = maker.make('GET', url, token);
  const refusal = options.refusal ?? 401;
  const smoke: SmokeCase[] = [
    {
      name: 'bound token with a proof',
      request: { method: 'GET', path: '/hello', headers: headers(proof) },
      status: 200,
    },
    { name: 'no proof', request: { method: 'GET', path: '/hello', headers: headers() }, status: refusal },
    {
      name: 'bound token as Bearer',
      request: { method: 'GET', path: '/hello', headers: { authorization: `Bearer ${token}` } },
      status: refusal,
    },
  ];
  if (options.replay) {
    smoke.push({
      name: 'replayed proof',
      request: { method: 'GET', path: '/hello', headers: headers(proof) },
      status: 401,
    });
  }
  return {
    request: {
      method: 'GET',
      path: '/hello',
      headers: headers(maker.make('GET', url, token)),
      dpop: { privateJwk: maker.privateJwk, token },
    },
    smoke,
    info: { token: 'jwt-ed25519', proof: 'ES256', replayCache: 'memory' },
  };
}
