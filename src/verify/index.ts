/**
 * `oidc-machine-auth/verify`: accept the RFC 9068 JWT access tokens of an oidc-machine-auth token
 * service in another service, given only its issuer URL. Web APIs only (fetch, WebCrypto through
 * jose), so the same module runs on Node, Bun and Deno.
 *
 * @packageDocumentation
 */
export { createVerifier, MAX_TOKEN_LENGTH } from './verifier.js';
export type { Verifier, VerifierOptions, VerifyCallOptions } from './verifier.js';
export type { AccessTokenClaims } from './claims.js';
export type { AuthorizationServerMetadata } from './discovery.js';
export { metadataUrls } from './discovery.js';
export { VerifyError, type VerifyErrorCode } from './errors.js';
export type { IntrospectionOptions } from './introspection.js';
export { DEFAULT_ALGORITHMS, type FetchLike, type VerifyAlgorithm } from './options.js';
