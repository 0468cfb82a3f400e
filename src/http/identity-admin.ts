import { createHash } from 'node:crypto';
import type { OidcAuth } from '../engine/auth.js';
import { describe } from '../engine/auth.js';
import { IDENTITY_ID_PATTERN } from '../trust/config.js';
import {
  BadRequestError,
  ConfigError,
  OidcAuthError,
  ServiceUnavailableError,
  type ErrorBody,
} from '../errors.js';
import { errorAnswer, invalidBody, type HttpAnswer } from './answers.js';
import type { IdentityConfig, IdentityConfigInput, IdentityStore, Rule } from '../types.js';

/**
 * The identity-admin routes, relative to the prefix the host mounts them under (Infisical's is
 * `/api/v1/auth`). `identity` takes POST (attach), GET (retrieve), PATCH (update) and DELETE (revoke);
 * `identities` takes GET (list, an addition of ours: Infisical lists identities elsewhere).
 */
export const ADMIN_ROUTES = {
  identity: '/oidc-auth/identities/:identityId',
  identities: '/oidc-auth/identities',
  /** POST `{ identityId?, claim, value }`: `auth.revokeWhere`, answers `{ revoked: n }` (an addition of ours). */
  revocations: '/oidc-auth/revocations',
} as const;

/** One trusted range as Infisical answers it. */
export interface TrustedIpView {
  type: 'ipv4' | 'ipv6';
  prefix: number;
  ipAddress: string;
}

/**
 * An identity's OIDC config as the admin routes answer it, inside `{ identityOidcAuth: … }`.
 *
 * The fields Infisical has keep Infisical's shapes so its clients read them unchanged: lists are
 * `", "`-joined strings (an array when an item itself holds a comma), `boundClaims` values likewise,
 * trusted IPs are `{ type, prefix, ipAddress }`. Our additional config fields follow. `caCert` is
 * present only in single-identity answers of attach, retrieve and update (never in lists or in the
 * answer to DELETE); `createdAt`/`updatedAt` are not kept by the identity stores and are absent.
 */
export interface IdentityOidcAuthView {
  /** A stable id derived from `identityId` (UUID-shaped), standing in for Infisical's row id. */
  id: string;
  identityId: string;
  /** `""` when the identity uses `jwksUrl` or `publicKeys` instead. */
  oidcDiscoveryUrl: string;
  boundIssuer: string | string[];
  boundAudiences: string | string[];
  boundClaims: Record<string, string | string[]>;
  claimMetadataMapping: Record<string, string>;
  boundSubject: string | string[];
  /** Seconds. */
  accessTokenTTL: number;
  /** Seconds. */
  accessTokenMaxTTL: number;
  accessTokenNumUsesLimit: number;
  accessTokenTrustedIps: TrustedIpView[];
  /** PEM bundle; `""` when none. Single-identity answers only. */
  caCert?: string;
  jwksUrl?: string;
  publicKeys?: ReadonlyArray<unknown>;
  allowedAlgorithms: string[];
  /** Seconds. */
  clockSkewSeconds: number;
  /** Seconds. */
  maxTokenLifetimeSeconds: number;
  discoveryIssuer?: string;
  allowPrivateNetwork: boolean;
  /** With no `boundAudiences`, accept any `aud` (see the config field). */
  allowAnyAudience: boolean;
  allowInsecureLoopback: boolean;
  metadata: Record<string, unknown>;
  /** Present when the identity lists `keySources` (docs/TRUST.md). */
  keySources?: IdentityConfig['keySources'];
  /** Present when the identity names a trust entry. */
  trust?: string;
  /** Allow/deny rules, normalised (lists as arrays); only when the identity has rules. */
  rules?: Rule[];
  /** Audit-mode rules, normalised; only when set. */
  candidateRules?: Rule[];
  /** Every login needs a DPoP proof (docs/DPOP.md); only when set. */
  requireDpop?: boolean;
}

/** A change made through the admin API, for the host's audit log. */
export interface IdentityChange {
  action: 'attach' | 'update' | 'delete';
  identityId: string;
  /** Epoch ms. */
  time: number;
  /** For `delete` and `update`: live tokens revoked. */
  revokedTokens?: number;
}

/** Options of {@link createIdentityAdmin}. */
export interface IdentityAdminOptions {
  /** Called after every successful change (attach, update, delete). Exceptions in it are logged. */
  onChange?: (change: IdentityChange) => void;
  /** Epoch-ms clock for {@link IdentityChange.time}. Default `Date.now`. */
  clock?: () => number;
}

/** A framework-neutral admin request: bindings pass the method, the `:identityId` and the parsed body. */
export interface AdminRequest {
  method: string;
  /** The `:identityId` path parameter; absent on the list route. */
  identityId?: string | undefined;
  /** The parsed JSON body (POST, PATCH). */
  body?: unknown;
  /** `'revocations'` for {@link ADMIN_ROUTES.revocations}; absent for the identity routes. */
  route?: 'revocations';
}

/** The admin operations; each answers like the HTTP route would. */
export interface IdentityAdmin {
  /** `POST …/oidc-auth/identities/:identityId`: create; 400 if the identity already has a config. */
  attach(identityId: string, body: unknown): Promise<HttpAnswer>;
  /** `GET …/oidc-auth/identities/:identityId`. */
  retrieve(identityId: string): Promise<HttpAnswer>;
  /**
   * `PATCH …/oidc-auth/identities/:identityId`: top-level merge (`null` resets a field to its default).
   * Then revokes every token of the identity: each was granted under the old config.
   */
  update(identityId: string, body: unknown): Promise<HttpAnswer>;
  /** `DELETE …/oidc-auth/identities/:identityId`: remove the config, then revoke the identity's tokens. */
  revoke(identityId: string): Promise<HttpAnswer>;
  /** `GET …/oidc-auth/identities`: `{ identityOidcAuths: [...] }`, never with `caCert`. */
  list(): Promise<HttpAnswer>;
  /**
   * `POST …/oidc-auth/revocations` with `{ identityId?, claim, value }`: `auth.revokeWhere`, answering
   * `{ revoked: <live tokens revoked> }`; 400 for a malformed body or a claim the engine does not
   * record (`claim_not_revocable`), 503 `revocation_limit_reached` past the store's limit.
   */
  revokeWhere(body: unknown): Promise<HttpAnswer>;
  /** Dispatch a request to the operation its method and path name (404 for anything else). */
  handle(request: AdminRequest): Promise<HttpAnswer>;
}

type AdminStore = Required<Pick<IdentityStore, 'get' | 'put' | 'delete' | 'list'>>;

const NO_STORE = { 'cache-control': 'no-store', pragma: 'no-cache' };
/** Fields of our answers that are not config: tolerated in a body (a GET-edit-PATCH round trip), ignored. */
const READ_ONLY_FIELDS = ['id', 'createdAt', 'updatedAt'] as const;

/**
 * The identity-admin API over the engine's identity store, framework-neutral: a binding maps its
 * routes to {@link IdentityAdmin.handle} and copies the answer out, nothing else.
 *
 * Bodies and answers follow Infisical's OIDC-auth config endpoints. Configs are validated exactly as
 * at login ({@link parseIdentityConfig}): a bad one answers 400 `invalid_config` with the `field` at
 * fault.
 *
 * Deleting or updating a config revokes every token of the identity (`auth.revokeIdentity`), after
 * the store has written the change: once the answer is sent, no token granted under the old config
 * works, on any instance, including tokens of logins that were still in flight (see
 * `TokenStore.generation`); later logins see the new config or none. An update that narrows
 * nothing ends the tokens too: clients log in again. If the revocation fails the answer is 503
 * `store_unavailable` although the config has changed: retry the request, which repeats both steps.
 *
 * An attach or update registers the config's issuers and key source with `auth.keys`, so this
 * instance verifies the identity's tokens against its keys before reading the store from its
 * first login on (see `verifyLogin`); another instance registers it once a login there loads it.
 *
 * @throws {ConfigError} when the engine's identity store cannot `put`, `delete` and `list`.
 */
export function createIdentityAdmin(
  auth: Pick<OidcAuth, 'identities' | 'revokeIdentity' | 'logger' | 'keys'> &
    Partial<Pick<OidcAuth, 'trust' | 'revokeWhere'>>,
  options: IdentityAdminOptions = {},
): IdentityAdmin {
  const store = auth.identities;
  if (
    typeof store.put !== 'function' ||
    typeof store.delete !== 'function' ||
    typeof store.list !== 'function'
  ) {
    throw new ConfigError(
      'identities',
      'the identity store must implement put, delete and list for the admin API',
    );
  }
  const identities = store as IdentityStore & AdminStore;
  const clock = options.clock ?? Date.now;

  function changed(change: Omit<IdentityChange, 'time'>): void {
    auth.logger?.info({ event: `identity.${change.action}`, ...change }, 'identity config changed');
    if (!options.onChange) return;
    try {
      options.onChange({ time: clock(), ...change });
    } catch (error) {
      auth.logger?.error({ event: 'on_change.error', err: describe(error) }, 'onChange hook threw');
    }
  }

  async function load(identityId: string): Promise<IdentityConfig | undefined> {
    try {
      return await identities.get(identityId);
    } catch (error) {
      throw storeError(error, 'identity.get');
    }
  }

  async function save(input: IdentityConfigInput): Promise<IdentityConfig> {
    // A trust reference must name an entry, or every login of the identity is refused. Read from
    // the trust store, not the engine's snapshot: an entry deleted on another instance is unknown here.
    if (typeof input.trust === 'string' && auth.trust) {
      let entry;
      try {
        entry = await auth.trust.get(input.trust);
      } catch (error) {
        throw storeError(error, 'trust.get');
      }
      if (!entry) {
        throw new ConfigError(
          'trust',
          `names no trust entry (${JSON.stringify(input.trust)})`,
          input.identityId,
        );
      }
    }
    try {
      return await identities.put(input);
    } catch (error) {
      throw storeError(error, 'identity.put');
    }
  }

  function storeError(error: unknown, operation: string): OidcAuthError {
    if (error instanceof OidcAuthError) return error;
    auth.logger?.error({ event: 'store.error', operation, err: describe(error) }, 'identity store failed');
    return new ServiceUnavailableError('store_unavailable', 'The identity store is unavailable', {
      cause: error,
    });
  }

  async function attach(identityId: string, body: unknown): Promise<HttpAnswer> {
    try {
      checkId(identityId);
      const input = configBody(identityId, body);
      if (await exists(identityId)) {
        throw new BadRequestError(
          'invalid_request',
          'Failed to add OIDC Auth to already configured identity',
        );
      }
      const config = await save(input);
      // Its issuers' logins verify against its keys from now on, before any login loads it.
      auth.keys.registerIssuers(config);
      changed({ action: 'attach', identityId });
      return ok({ identityOidcAuth: identityOidcAuthView(config, { caCert: true }) });
    } catch (error) {
      return failure(error);
    }
  }

  async function exists(identityId: string): Promise<boolean> {
    try {
      return (await load(identityId)) !== undefined;
    } catch (error) {
      // A stored config that no longer validates still occupies the id.
      if (error instanceof ConfigError) return true;
      throw error;
    }
  }

  async function retrieve(identityId: string): Promise<HttpAnswer> {
    try {
      checkId(identityId);
      const config = await load(identityId);
      if (!config) throw notFound();
      return ok({ identityOidcAuth: identityOidcAuthView(config, { caCert: true }) });
    } catch (error) {
      return failure(error);
    }
  }

  async function update(identityId: string, body: unknown): Promise<HttpAnswer> {
    try {
      checkId(identityId);
      const patch = configBody(identityId, body);
      const current = await load(identityId);
      if (!current) throw notFound();
      const config = await save({ ...current, ...patch, identityId } as IdentityConfigInput);
      auth.keys.registerIssuers(config);
      // After the write: a login that reads the raised generation also reads the new config.
      const revokedTokens = await auth.revokeIdentity(identityId);
      changed({ action: 'update', identityId, revokedTokens });
      return ok({ identityOidcAuth: identityOidcAuthView(config, { caCert: true }) });
    } catch (error) {
      return failure(error);
    }
  }

  async function revoke(identityId: string): Promise<HttpAnswer> {
    try {
      checkId(identityId);
      let view: Partial<IdentityOidcAuthView> | undefined;
      try {
        const current = await load(identityId);
        if (current) view = identityOidcAuthView(current, { caCert: false });
      } catch (error) {
        if (!(error instanceof ConfigError)) throw error;
        view = { id: viewId(identityId), identityId };
      }
      let deleted = false;
      if (view) {
        try {
          deleted = await identities.delete(identityId);
        } catch (error) {
          throw storeError(error, 'identity.delete');
        }
      }
      // After the delete (a login that reads the raised generation finds no config), and even when
      // the config is already gone, so a retried DELETE finishes an interrupted one.
      const revokedTokens = await auth.revokeIdentity(identityId);
      if (!view || !deleted) throw notFound();
      changed({ action: 'delete', identityId, revokedTokens });
      return ok({ identityOidcAuth: view });
    } catch (error) {
      return failure(error);
    }
  }

  async function list(): Promise<HttpAnswer> {
    try {
      let configs: IdentityConfig[];
      try {
        configs = await identities.list();
      } catch (error) {
        throw storeError(error, 'identity.list');
      }
      return ok({ identityOidcAuths: configs.map((c) => identityOidcAuthView(c, { caCert: false })) });
    } catch (error) {
      return failure(error);
    }
  }

  async function revokeWhere(body: unknown): Promise<HttpAnswer> {
    try {
      if (typeof body !== 'object' || body === null || Array.isArray(body)) {
        throw invalidBody('Request body must be a JSON object');
      }
      if (typeof auth.revokeWhere !== 'function') {
        throw new ConfigError('revokeWhere', 'the engine given to the admin API cannot revoke by claim');
      }
      // The engine validates the filter (claim one of revocableClaims, value size) and emits the event.
      const revoked = await auth.revokeWhere(body as Parameters<OidcAuth['revokeWhere']>[0]);
      const { identityId, claim } = body as { identityId?: string; claim: string };
      // The claim's name, never its value (values are token data).
      auth.logger?.info(
        { event: 'tokens.revoked_where', identityId, claim, revokedTokens: revoked },
        'tokens revoked by claim',
      );
      return ok({ revoked });
    } catch (error) {
      return failure(error);
    }
  }

  function failure(error: unknown): HttpAnswer {
    if (!(error instanceof OidcAuthError)) error = storeError(error, 'admin');
    return adminErrorAnswer(auth, error);
  }

  async function handle(request: AdminRequest): Promise<HttpAnswer> {
    const method = String(request.method).toUpperCase();
    const id = request.identityId;
    if (request.route === 'revocations') {
      if (method === 'POST') return revokeWhere(request.body);
    } else if (id === undefined) {
      if (method === 'GET') return list();
    } else if (method === 'POST') return attach(id, request.body);
    else if (method === 'GET') return retrieve(id);
    else if (method === 'PATCH') return update(id, request.body);
    else if (method === 'DELETE') return revoke(id);
    return adminErrorAnswer(auth, new OidcAuthError(404, 'invalid_request', 'Route not found'));
  }

  return { attach, retrieve, update, revoke, list, revokeWhere, handle };
}

function ok(body: unknown): HttpAnswer {
  return { status: 200, headers: NO_STORE, body };
}

function notFound(): OidcAuthError {
  return new OidcAuthError(404, 'identity_not_found', 'No OIDC Auth configuration for this identity');
}

function checkId(identityId: string): void {
  if (typeof identityId !== 'string' || !IDENTITY_ID_PATTERN.test(identityId)) {
    throw new BadRequestError('invalid_request', 'identityId is malformed');
  }
}

/** The body of POST/PATCH as config input for `identityId`: a JSON object; read-only view fields dropped. */
function configBody(identityId: string, body: unknown): IdentityConfigInput {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw invalidBody('Request body must be a JSON object');
  }
  const input: Record<string, unknown> = { ...(body as Record<string, unknown>) };
  for (const field of READ_ONLY_FIELDS) delete input[field];
  if (input.identityId !== undefined && input.identityId !== identityId) {
    throw new ConfigError('identityId', 'does not match the identity in the path', identityId);
  }
  // Infisical's periodic tokens; 0 (its default) means none, which is all this library does.
  const period = input.accessTokenPeriod;
  if (period !== undefined && period !== null && period !== 0 && period !== '0') {
    throw new ConfigError(
      'accessTokenPeriod',
      'periodic access tokens are not supported; omit it or send 0',
      identityId,
    );
  }
  delete input.accessTokenPeriod;
  input.identityId = identityId;
  return input as unknown as IdentityConfigInput;
}

/** An error answer; a {@link ConfigError} also names the `field` at fault. */
export function adminErrorAnswer(
  auth: Pick<OidcAuth, 'logger'>,
  error: unknown,
): HttpAnswer & { body: ErrorBody & { field?: string } } {
  const answer = errorAnswer(auth, error) as HttpAnswer & { body: ErrorBody & { field?: string } };
  if (error instanceof ConfigError) answer.body = { ...answer.body, field: error.field };
  return answer;
}

/** Infisical's list form: `", "`-joined, or the array itself when an item holds a comma. */
function joinList(list: readonly string[]): string | string[] {
  return list.some((item) => item.includes(',')) ? [...list] : list.join(', ');
}

function viewId(identityId: string): string {
  const hex = createHash('sha256').update(`oidc-machine-auth:identity:${identityId}`).digest('hex');
  const variant = ((parseInt(hex[16] ?? '0', 16) & 0x3) | 0x8).toString(16);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-8${hex.slice(13, 16)}-${variant}${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}

function trustedIpView(cidr: string): TrustedIpView {
  const slash = cidr.lastIndexOf('/');
  const ipAddress = slash < 0 ? cidr : cidr.slice(0, slash);
  const type = ipAddress.includes(':') ? 'ipv6' : 'ipv4';
  const prefix = slash < 0 ? (type === 'ipv6' ? 128 : 32) : Number(cidr.slice(slash + 1));
  return { type, prefix, ipAddress };
}

/**
 * An identity config as the admin routes answer it (see {@link IdentityOidcAuthView}).
 *
 * @param options.caCert include `caCert` (single-identity answers). Default false.
 */
export function identityOidcAuthView(
  config: IdentityConfig,
  options: { caCert?: boolean } = {},
): IdentityOidcAuthView {
  const boundClaims: Record<string, string | string[]> = {};
  for (const [path, patterns] of Object.entries(config.boundClaims)) boundClaims[path] = joinList(patterns);
  const view: IdentityOidcAuthView = {
    id: viewId(config.identityId),
    identityId: config.identityId,
    oidcDiscoveryUrl: config.oidcDiscoveryUrl ?? '',
    boundIssuer: joinList(config.boundIssuer),
    boundAudiences: joinList(config.boundAudiences),
    boundClaims,
    claimMetadataMapping: { ...config.claimMetadataMapping },
    boundSubject: joinList(config.boundSubject),
    accessTokenTTL: config.accessTokenTTL,
    accessTokenMaxTTL: config.accessTokenMaxTTL,
    accessTokenNumUsesLimit: config.accessTokenNumUsesLimit,
    accessTokenTrustedIps: config.accessTokenTrustedIps.map(trustedIpView),
    allowedAlgorithms: [...config.allowedAlgorithms],
    clockSkewSeconds: config.clockSkewSeconds,
    maxTokenLifetimeSeconds: config.maxTokenLifetimeSeconds,
    allowPrivateNetwork: config.allowPrivateNetwork,
    allowAnyAudience: config.allowAnyAudience,
    allowInsecureLoopback: config.allowInsecureLoopback,
    metadata: { ...config.metadata },
  };
  if (options.caCert) view.caCert = config.caCert ?? '';
  if (config.jwksUrl !== undefined) view.jwksUrl = config.jwksUrl;
  if (config.publicKeys !== undefined) view.publicKeys = [...config.publicKeys];
  if (config.discoveryIssuer !== undefined) view.discoveryIssuer = config.discoveryIssuer;
  if (config.keySources !== undefined) view.keySources = config.keySources;
  if (config.trust !== undefined) view.trust = config.trust;
  if (config.rules?.length) view.rules = structuredClone(config.rules) as Rule[];
  if (config.candidateRules) view.candidateRules = structuredClone(config.candidateRules) as Rule[];
  if (config.requireDpop) view.requireDpop = true;
  return view;
}

// Trust entries (docs/TRUST.md): GET/PUT/DELETE {prefix}/oidc-auth/trust/:trustId, GET {prefix}/oidc-auth/trust.
export {
  TRUST_ADMIN_ROUTES,
  createTrustAdmin,
  trustEntryView,
  type TrustAdmin,
  type TrustAdminRequest,
} from '../trust/admin.js';
