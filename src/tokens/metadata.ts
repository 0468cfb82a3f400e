import type { OidcAuth } from '../engine/auth.js';
import { ConfigError, OidcAuthError } from '../errors.js';
import type { HttpAnswer } from '../http/answers.js';
import { errorAnswer } from '../http/answers.js';
import { OAUTH_ROUTES } from '../http/oauth.js';
import { issuerPath } from './options.js';
import { TOKEN_EXCHANGE_GRANT } from '../oauth/urns.js';

/** The key and metadata routes, relative to the prefix the auth router is mounted under (= the issuer). */
export const WELL_KNOWN_ROUTES = {
  jwks: '/.well-known/jwks.json',
  metadata: '/.well-known/oauth-authorization-server',
} as const;

/**
 * Which OAuth endpoints the host mounted, so the metadata lists only those (RFC 8414 §2: a client
 * trusts what it reads there). Introspection and revocation are mounted only with a host guard.
 */
export interface OAuthEndpoints {
  token?: boolean;
  introspection?: boolean;
  revocation?: boolean;
}

/**
 * `Cache-Control` of the JWKS and the metadata: five minutes, so a verifier's cache never holds a key
 * set older than that; rotation publishes a new key at least that long before it signs
 * (docs/TOKENS.md), and a retired key stays published until its last token expired.
 */
export const KEYS_CACHE_CONTROL = 'public, max-age=300';

/**
 * What the adapters' metadata lists by default: the token endpoint, which every adapter's auth
 * router mounts. Introspection and revocation are mounted apart, behind a host guard, and listed
 * once mounted ({@link recordOAuthEndpoints}).
 */
export const DEFAULT_OAUTH_ENDPOINTS: Readonly<OAuthEndpoints> = Object.freeze({ token: true });

/** The endpoints each engine's adapters mounted beyond the token endpoint (by engine, so it never keeps one alive). */
const mounted = new WeakMap<object, Readonly<OAuthEndpoints>>();

/**
 * Record that `auth`'s introspection and revocation routes are mounted: every adapter's
 * introspection router (`oidcIntrospectionRouter`, `oidcIntrospectionRoutes`,
 * `oidcIntrospectionPlugin`, the NestJS module's `introspection` option) calls this when it is
 * built, so the engine's RFC 8414 metadata lists them at `{issuer}/oauth/introspect` and
 * `{issuer}/oauth/revoke` without the host repeating it. The routes must be mounted under the
 * issuer's path, as the auth router is.
 */
export function recordOAuthEndpoints(auth: object, endpoints: OAuthEndpoints): void {
  mounted.set(auth, Object.freeze({ ...mounted.get(auth), ...endpoints }));
}

/**
 * The endpoints `auth`'s metadata lists: `override` as given (an adapter's `oauthEndpoints` option),
 * else the token endpoint and whatever {@link recordOAuthEndpoints} recorded, read when the metadata
 * is served, so the order in which the routers are mounted does not matter.
 */
export function mountedOAuthEndpoints(auth: object, override?: OAuthEndpoints): OAuthEndpoints {
  return override ?? { ...DEFAULT_OAUTH_ENDPOINTS, ...mounted.get(auth) };
}

/** The root path of {@link rootMetadataPath}, or a {@link ConfigError} for an engine without an issuer. */
export function requireRootMetadataPath(auth: Pick<OidcAuth, 'issuer'>): string {
  const path = rootMetadataPath(auth);
  if (path === undefined) {
    throw new ConfigError(
      'issuer',
      'is required to serve the RFC 8414 metadata: give createOidcAuth an issuer',
    );
  }
  return path;
}

const JSON_CACHED = { 'cache-control': KEYS_CACHE_CONTROL };

function noIssuer(): OidcAuthError {
  return new OidcAuthError(404, 'invalid_config', 'No issuer is configured');
}

/** `GET {issuer}/.well-known/jwks.json`: the public keys of our JWT access tokens (RFC 7517 §5). */
export function jwksAnswer(auth: OidcAuth): HttpAnswer {
  if (auth.issuer === undefined) return errorAnswer(auth, noIssuer());
  return { status: 200, headers: JSON_CACHED, body: auth.jwks() };
}

/** The RFC 8414 §2 metadata of our issuer, listing only what this deployment serves. */
export function authorizationServerMetadata(
  issuer: string,
  endpoints: OAuthEndpoints = {},
): Record<string, unknown> {
  const metadata: Record<string, unknown> = {
    issuer,
    jwks_uri: issuer + WELL_KNOWN_ROUTES.jwks,
    // REQUIRED by §2; there is no authorization endpoint, so no response type is supported.
    response_types_supported: [],
  };
  if (endpoints.token) {
    metadata.token_endpoint = issuer + OAUTH_ROUTES.token;
    metadata.grant_types_supported = [TOKEN_EXCHANGE_GRANT];
    // The exchange authenticates the subject token, not a client: no client credentials are taken.
    metadata.token_endpoint_auth_methods_supported = ['none'];
  }
  if (endpoints.introspection) metadata.introspection_endpoint = issuer + OAUTH_ROUTES.introspect;
  if (endpoints.revocation) metadata.revocation_endpoint = issuer + OAUTH_ROUTES.revoke;
  return metadata;
}

/**
 * `GET /.well-known/oauth-authorization-server<issuer path>` (RFC 8414 §3.1, served at the host
 * root) and `GET {issuer}/.well-known/oauth-authorization-server` (for clients that append).
 * `endpoints` overrides what is listed; by default the mounted ones ({@link mountedOAuthEndpoints}).
 */
export function metadataAnswer(auth: OidcAuth, endpoints?: OAuthEndpoints): HttpAnswer {
  if (auth.issuer === undefined) return errorAnswer(auth, noIssuer());
  const body = {
    ...authorizationServerMetadata(auth.issuer, mountedOAuthEndpoints(auth, endpoints)),
    // RFC 9449 §5.1: the proof algorithms the login routes and the guard take.
    dpop_signing_alg_values_supported: [...auth.dpop.algorithms],
  };
  return { status: 200, headers: JSON_CACHED, body };
}

/**
 * The root path RFC 8414 §3.1 puts the metadata at: the well-known suffix inserted between the
 * issuer's host and path (`https://app.example/api/v1/auth` →
 * `/.well-known/oauth-authorization-server/api/v1/auth`). `undefined` without an issuer.
 */
export function rootMetadataPath(auth: Pick<OidcAuth, 'issuer'>): string | undefined {
  return auth.issuer === undefined ? undefined : WELL_KNOWN_ROUTES.metadata + issuerPath(auth.issuer);
}
