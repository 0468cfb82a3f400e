import type { CanActivate, Type } from '@nestjs/common';
import type { Authorize, OAuthEndpoints, OidcAuth, OidcAuthOptions } from '../../src/index.js';

/** Injection token of the engine ({@link OidcAuth}): `@Inject(OIDC_MACHINE_AUTH) auth: OidcAuth`. */
export const OIDC_MACHINE_AUTH = Symbol.for('oidc-machine-auth:engine');
/** Injection token of the resolved {@link OidcMachineAuthOptions}. */
export const OIDC_MACHINE_AUTH_OPTIONS = Symbol.for('oidc-machine-auth:options');
/** Injection token of the auth routes' full paths (prefix included), for the body error filter. */
export const OIDC_MACHINE_AUTH_PATHS = Symbol.for('oidc-machine-auth:paths');

/** What `forRoot` takes, or `forRootAsync`'s factory returns. */
export interface OidcMachineAuthOptions {
  /**
   * The engine, or the options to create one with. An engine the module creates is closed when the
   * application shuts down (`app.close()`, or `enableShutdownHooks()` on a signal); one you pass stays yours.
   */
  auth: OidcAuth | OidcAuthOptions;
  /**
   * Client address. Default `request.ip`, so the platform's proxy trust decides (Express's
   * `trust proxy`, Fastify's `trustProxy`). The request is the platform's own.
   */
  getClientIp?: (request: never) => string | undefined;
  /** Largest body the auth routes take, in bytes, by `Content-Length`. Default 64 KiB. The platform's body parser limit applies first. */
  bodyLimit?: number;
  /** Overrides which OAuth endpoints the RFC 8414 metadata lists. Default: the token endpoint, and introspection and revocation once this engine's introspection router is built. */
  oauthEndpoints?: OAuthEndpoints;
}

/** A Nest guard: a class (resolved in the auth module, so its dependencies must be global or the module's) or an instance. */
export type OidcRouteGuard = Type<CanActivate> | CanActivate;

/** `introspection` of the module: `POST {prefix}/oauth/introspect` (RFC 7662) and `{prefix}/oauth/revoke` (RFC 7009). */
export interface OidcIntrospectionOptions {
  /**
   * Required. Guards run before both routes, which must refuse unless the caller may introspect and
   * revoke tokens (a resource server, an operator), e.g. `OidcAuthGuard` with `authorize`.
   */
  guard: OidcRouteGuard | readonly OidcRouteGuard[];
  /** Extra authorization {@link OidcAuthGuard} applies on both routes, as `@OidcAuthorize` would: false answers 403. */
  authorize?: Authorize<unknown>;
}

/** Options fixed when the module is defined: they decide which routes and providers exist. */
export interface OidcMachineAuthModuleExtras {
  /**
   * Where the routes go (`POST {prefix}/oidc-auth/login`, `{prefix}/token/renew`, `{prefix}/token/revoke`,
   * `{prefix}/oauth/token`, `GET {prefix}/.well-known/jwks.json` and `{prefix}/.well-known/oauth-authorization-server`,
   * and with an engine `issuer` the RFC 8414 §3.1 root-path metadata), under any global prefix (the root
   * path excepted). Default `/api/v1/auth`; `false` mounts no routes.
   */
  prefix?: string | false;
  /** Run {@link OidcAuthGuard} on every route (as `APP_GUARD`); open ones carry `@OidcPublic()`. Default false. */
  globalGuard?: boolean;
  /**
   * Also mount `{prefix}/oauth/introspect` and `{prefix}/oauth/revoke` behind `guard`. Absent: not mounted.
   * Given without a guard: the module refuses to be defined (`ConfigError`, field `guard`).
   */
  introspection?: OidcIntrospectionOptions;
}

/** Whether `auth` is an engine rather than its options. */
export function isEngine(auth: OidcAuth | OidcAuthOptions): auth is OidcAuth {
  return typeof (auth as OidcAuth).authenticate === 'function';
}
