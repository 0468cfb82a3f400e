/**
 * `oidc-machine-auth/client`: the machine side of DPoP (RFC 9449). Make a key, log in with a proof
 * so the token is bound to it, and call guarded routes with `Authorization: DPoP` and a fresh proof
 * per request, following server nonces. Web APIs only (fetch, Web Crypto through jose): no Node
 * module or global.
 *
 * @packageDocumentation
 */
export {
  accessTokenHash,
  createDpopProof,
  dpopHtu,
  dpopKeyFrom,
  generateDpopKey,
  type DpopAlgorithm,
  type DpopKey,
  type DpopProofInput,
} from './proof.js';
export { dpopFetch, type DpopFetchOptions, type FetchLike } from './fetch.js';
export { DpopNonces, MAX_NONCE_ORIGINS } from './nonces.js';
export {
  createDpopClient,
  type DpopClient,
  type DpopClientOptions,
  type DpopExchangeRequest,
  type DpopGrant,
} from './session.js';
export { DpopClientError, type DpopClientErrorCode } from './errors.js';
