import type { OidcAuth } from '../engine/auth.js';
import { BadRequestError, ConfigError, OidcAuthError, ServiceUnavailableError } from '../errors.js';
import { errorAnswer, invalidBody, type HttpAnswer } from '../http/answers.js';
import type { TrustEntry, TrustEntryInput } from './entries.js';
import { TrustInUseError } from './store.js';

/**
 * The trust-entry admin routes, relative to the prefix the host mounts them under (beside
 * `ADMIN_ROUTES`): `entry` takes GET, PUT (create or replace) and DELETE; `entries` takes GET.
 */
export const TRUST_ADMIN_ROUTES = {
  entry: '/oidc-auth/trust/:trustId',
  entries: '/oidc-auth/trust',
} as const;

/** A request to the trust routes: bindings pass the method, the `:trustId` and the parsed body. */
export interface TrustAdminRequest {
  method: string;
  /** The `:trustId` path parameter; absent on the list route. */
  trustId?: string | undefined;
  /** The parsed JSON body (PUT). */
  body?: unknown;
}

/** The trust-entry operations; each answers like the HTTP route would. */
export interface TrustAdmin {
  /** `GET …/oidc-auth/trust/:trustId`: `{ trustEntry }`, 404 `trust_not_found`. */
  retrieve(trustId: string): Promise<HttpAnswer>;
  /**
   * `PUT …/oidc-auth/trust/:trustId`: create or replace, validated like `auth.trust.put` (400
   * `invalid_config` naming the `field`, `trust["id"].jwksUrl`). `{ trustEntry }`.
   */
  put(trustId: string, body: unknown): Promise<HttpAnswer>;
  /** `DELETE …/oidc-auth/trust/:trustId`: 409 `trust_in_use` with `identityIds` while identities name it. */
  remove(trustId: string): Promise<HttpAnswer>;
  /** `GET …/oidc-auth/trust`: `{ trustEntries: [...] }`. */
  list(): Promise<HttpAnswer>;
  /** Dispatch to the operation the method and path name (404 for anything else). */
  handle(request: TrustAdminRequest): Promise<HttpAnswer>;
}

const NO_STORE = { 'cache-control': 'no-store', pragma: 'no-cache' };
const TRUST_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

/**
 * The trust-entry admin API over `auth.trust`, framework-neutral (see `createIdentityAdmin`): the
 * entries live in the engine's trust store, so with a shared store (`PostgresTrustStore`) a change
 * reaches every instance within its `trustMaxAgeSeconds`. Tokens already granted are not revoked.
 */
export function createTrustAdmin(auth: Pick<OidcAuth, 'trust' | 'logger'>): TrustAdmin {
  const trust = auth.trust;

  function answer(status: number, body: unknown): HttpAnswer {
    return { status, headers: NO_STORE, body };
  }

  function failure(error: unknown): HttpAnswer {
    if (!(error instanceof OidcAuthError)) {
      auth.logger?.error(
        { event: 'store.error', operation: 'trust', err: { name: (error as Error)?.name ?? typeof error } },
        'trust store failed',
      );
      error = new ServiceUnavailableError('store_unavailable', 'The trust store is unavailable', {
        cause: error,
      });
    }
    const result = errorAnswer(auth, error);
    const body = result.body as Record<string, unknown>;
    if (error instanceof ConfigError) result.body = { ...body, field: error.field };
    if (error instanceof TrustInUseError) result.body = { ...body, identityIds: [...error.identityIds] };
    return result;
  }

  async function run(step: () => Promise<HttpAnswer>): Promise<HttpAnswer> {
    try {
      return await step();
    } catch (error) {
      return failure(error);
    }
  }

  const retrieve = (trustId: string) =>
    run(async () => {
      checkId(trustId);
      const entry = await trust.get(trustId);
      if (!entry) throw notFound();
      return answer(200, { trustEntry: view(entry) });
    });

  const put = (trustId: string, body: unknown) =>
    run(async () => {
      checkId(trustId);
      if (typeof body !== 'object' || body === null || Array.isArray(body)) {
        throw invalidBody('Request body must be a JSON object');
      }
      const input = { ...(body as Record<string, unknown>) };
      if (input.trustId !== undefined && input.trustId !== trustId) {
        throw new ConfigError(
          `trust[${JSON.stringify(trustId)}].trustId`,
          'does not match the trust id in the path',
        );
      }
      input.trustId = trustId;
      const entry = await trust.put(input as unknown as TrustEntryInput);
      auth.logger?.info({ event: 'trust.put', trustId }, 'trust entry changed');
      return answer(200, { trustEntry: view(entry) });
    });

  const remove = (trustId: string) =>
    run(async () => {
      checkId(trustId);
      const entry = await trust.get(trustId);
      if (!entry) throw notFound();
      if (!(await trust.delete(trustId))) throw notFound();
      auth.logger?.info({ event: 'trust.delete', trustId }, 'trust entry deleted');
      return answer(200, { trustEntry: view(entry) });
    });

  const list = () => run(async () => answer(200, { trustEntries: (await trust.list()).map(view) }));

  async function handle(request: TrustAdminRequest): Promise<HttpAnswer> {
    const method = String(request.method).toUpperCase();
    const id = request.trustId;
    if (id === undefined) {
      if (method === 'GET') return list();
    } else if (method === 'GET') return retrieve(id);
    else if (method === 'PUT') return put(id, request.body);
    else if (method === 'DELETE') return remove(id);
    return failure(new OidcAuthError(404, 'invalid_request', 'Route not found'));
  }

  return { retrieve, put, remove, list, handle };
}

/** A trust entry as the routes answer it: the validated entry (what a PUT takes back unchanged). */
export function trustEntryView(entry: TrustEntry): TrustEntry {
  return structuredClone(entry) as TrustEntry;
}
const view = trustEntryView;

function checkId(trustId: string): void {
  if (typeof trustId !== 'string' || !TRUST_ID.test(trustId)) {
    throw new BadRequestError('invalid_request', 'trustId is malformed');
  }
}

function notFound(): OidcAuthError {
  return new OidcAuthError(404, 'trust_not_found', 'No trust entry with this id');
}
