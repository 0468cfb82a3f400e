import { DpopClientError } from './errors.js';
import { dpopFetch, type FetchLike } from './fetch.js';
import { DpopNonces } from './nonces.js';
import { generateDpopKey, type DpopKey } from './proof.js';

/** RFC 8693 §2.1 values the token exchange sends. */
const TOKEN_EXCHANGE_GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';
const JWT_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:jwt';

/** Options of {@link createDpopClient}. */
export interface DpopClientOptions {
  /**
   * The URL the server mounts its auth routes under, e.g. `https://secrets.example.com/api/v1/auth`:
   * the login is `{authUrl}/oidc-auth/login`, the token exchange `{authUrl}/oauth/token`.
   */
  authUrl: string;
  /** The DPoP key; default a fresh ES256 key made on first use and kept for the client's life. */
  key?: DpopKey;
  fetch?: FetchLike;
  /** Milliseconds since the epoch, for the proofs' `iat`; default `Date.now`. */
  clock?: () => number;
  /** Where the servers' latest `DPoP-Nonce`s are kept (RFC 9449 §8.2); default a new one for this client. */
  nonces?: DpopNonces;
}

/** The access token a login or exchange gave. */
export interface DpopGrant {
  accessToken: string;
  /** Always `DPoP`: the client refuses anything else (`token_not_bound`). */
  tokenType: 'DPoP';
  /** Seconds the token lives. */
  expiresIn: number;
}

/** The RFC 8693 request of {@link DpopClient.exchange}; the subject token is the IdP JWT. */
export interface DpopExchangeRequest {
  subjectToken: string;
  /** The identity to log in as (`client_id`); leave out to let the server select it by the token. */
  clientId?: string;
  scope?: string;
  audience?: string | readonly string[];
  resource?: string | readonly string[];
  /** `requested_expires_in`, seconds. */
  requestedExpiresIn?: number;
}

/** A machine client whose tokens are bound to its DPoP key. */
export interface DpopClient {
  /** The DPoP key (made on first use when not given). */
  key(): Promise<DpopKey>;
  /** The Infisical-compatible login (`POST {authUrl}/oidc-auth/login`, JSON `{identityId, jwt}`) with a DPoP proof. */
  login(request: { identityId: string; jwt: string }): Promise<DpopGrant>;
  /** RFC 8693 token exchange (`POST {authUrl}/oauth/token`, form body) with a DPoP proof (RFC 9449 §5). */
  exchange(request: DpopExchangeRequest): Promise<DpopGrant>;
  /**
   * A request with the client's token as `Authorization: DPoP <token>` and a fresh proof, retried once
   * with the server's nonce when it asks for one (RFC 9449 §7.1, §9). `url` must be absolute.
   */
  fetch(url: string | URL, init?: RequestInit): Promise<Response>;
  /** Forget the token (it stays valid at the server until it expires or is revoked). */
  clear(): void;
}

/** Longest answer body parsed from the login or token endpoint, in characters. */
const MAX_ANSWER = 64 * 1024;

async function readJson(response: Response): Promise<Record<string, unknown> | undefined> {
  const text = await response.text();
  if (text.length > MAX_ANSWER) return undefined;
  try {
    const body: unknown = JSON.parse(text);
    return typeof body === 'object' && body !== null && !Array.isArray(body)
      ? (body as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

/** The refusal of a login or exchange: status and the server's reason, never its message text. */
function refusal(response: Response, body: Record<string, unknown> | undefined): DpopClientError {
  const reason = body?.reasonCode ?? body?.error;
  const reasonCode = typeof reason === 'string' && /^[a-z0-9_]{1,64}$/.test(reason) ? reason : undefined;
  return new DpopClientError(
    'login_refused',
    `The server refused the login: HTTP ${response.status}${reasonCode ? ` (${reasonCode})` : ''}`,
    { status: response.status, ...(reasonCode ? { reasonCode } : {}) },
  );
}

function grantOf(token: unknown, type: unknown, expiresIn: unknown): DpopGrant {
  if (typeof token !== 'string' || token === '' || typeof expiresIn !== 'number') {
    throw new DpopClientError('invalid_response', 'The server answered a grant without a token or expiry');
  }
  if (typeof type !== 'string' || type.toLowerCase() !== 'dpop') {
    throw new DpopClientError(
      'token_not_bound',
      'The server issued a token that is not DPoP-bound (token type is not DPoP); it was not used',
    );
  }
  return { accessToken: token, tokenType: 'DPoP', expiresIn };
}

const list = (value: string | readonly string[] | undefined): readonly string[] =>
  value === undefined ? [] : typeof value === 'string' ? [value] : value;

/**
 * A client that logs in with a DPoP proof, so the token it gets is bound to a key only it holds, and
 * calls guarded routes with `Authorization: DPoP` and a fresh proof per request (RFC 9449). Web APIs
 * only (fetch, Web Crypto through jose).
 *
 * The token is held in memory only; nothing is logged.
 */
export function createDpopClient(options: DpopClientOptions): DpopClient {
  let base: URL;
  try {
    base = new URL(options.authUrl.endsWith('/') ? options.authUrl : `${options.authUrl}/`);
  } catch {
    throw new DpopClientError('invalid_argument', 'authUrl must be an absolute URL');
  }
  if (base.protocol !== 'https:' && base.protocol !== 'http:') {
    throw new DpopClientError('invalid_argument', 'authUrl must be an http or https URL');
  }
  const nonces = options.nonces ?? new DpopNonces();
  let keyPromise: Promise<DpopKey> | undefined = options.key ? Promise.resolve(options.key) : undefined;
  let grant: DpopGrant | undefined;
  const key = () => (keyPromise ??= generateDpopKey());
  const common = () => ({
    nonces,
    ...(options.fetch ? { fetch: options.fetch } : {}),
    ...(options.clock ? { clock: options.clock } : {}),
  });

  async function tokenRequest(
    path: string,
    contentType: string,
    body: string,
  ): Promise<Record<string, unknown>> {
    const response = await dpopFetch(
      new URL(path, base),
      { method: 'POST', headers: { 'content-type': contentType, accept: 'application/json' }, body },
      { key: await key(), ...common() },
    );
    const answer = await readJson(response);
    if (!response.ok) throw refusal(response, answer);
    if (!answer)
      throw new DpopClientError('invalid_response', 'The server answered a body that is not a JSON object');
    return answer;
  }

  return {
    key,
    async login({ identityId, jwt }) {
      const answer = await tokenRequest(
        'oidc-auth/login',
        'application/json',
        JSON.stringify({ identityId, jwt }),
      );
      grant = grantOf(answer.accessToken, answer.tokenType, answer.expiresIn);
      return grant;
    },
    async exchange(request) {
      const form = new URLSearchParams({
        grant_type: TOKEN_EXCHANGE_GRANT,
        subject_token: request.subjectToken,
        subject_token_type: JWT_TOKEN_TYPE,
      });
      if (request.clientId !== undefined) form.set('client_id', request.clientId);
      if (request.scope !== undefined) form.set('scope', request.scope);
      for (const audience of list(request.audience)) form.append('audience', audience);
      for (const resource of list(request.resource)) form.append('resource', resource);
      if (request.requestedExpiresIn !== undefined)
        form.set('requested_expires_in', String(request.requestedExpiresIn));
      const answer = await tokenRequest('oauth/token', 'application/x-www-form-urlencoded', form.toString());
      grant = grantOf(answer.access_token, answer.token_type, answer.expires_in);
      return grant;
    },
    async fetch(url, init = {}) {
      if (!grant)
        throw new DpopClientError('not_logged_in', 'Log in (login or exchange) before calling fetch');
      return dpopFetch(url, init, { key: await key(), accessToken: grant.accessToken, ...common() });
    },
    clear() {
      grant = undefined;
    },
  };
}
