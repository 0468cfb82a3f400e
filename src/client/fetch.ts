import { DpopClientError } from './errors.js';
import { DpopNonces } from './nonces.js';
import { createDpopProof, type DpopKey } from './proof.js';

/** The `fetch` the client calls: the global one by default. */
export type FetchLike = (input: string | URL | Request, init?: RequestInit) => Promise<Response>;

/** How {@link dpopFetch} makes its requests. */
export interface DpopFetchOptions {
  key: DpopKey;
  /**
   * The DPoP-bound access token: sent as `Authorization: DPoP <token>` and hashed into the proof's
   * `ath` (RFC 9449 §7.1). Leave it out for a token request (the login itself, §5).
   */
  accessToken?: string;
  /** Where server nonces are kept between calls; share one per client. Default: a new one per call. */
  nonces?: DpopNonces;
  fetch?: FetchLike;
  /** Milliseconds since the epoch, for the proofs' `iat`; default `Date.now`. */
  clock?: () => number;
}

/** Longest error body parsed to look for `use_dpop_nonce`, in characters. */
const MAX_ERROR_BODY = 16 * 1024;

/**
 * Whether an answer asks for a proof with a fresh nonce: a 401 whose `WWW-Authenticate` has a DPoP
 * challenge with `error="use_dpop_nonce"` (resource server, RFC 9449 §9), or a 400/401 JSON body with
 * `error` (authorization server, §8) or `reasonCode` `use_dpop_nonce`; and a `DPoP-Nonce` header.
 */
async function asksForNonce(response: Response): Promise<boolean> {
  if (response.status !== 400 && response.status !== 401) return false;
  if (!response.headers.has('dpop-nonce')) return false;
  if (/\berror\s*=\s*"?use_dpop_nonce\b/.test(dpopChallenge(response.headers.get('www-authenticate')))) {
    return true;
  }
  if (!/json/i.test(response.headers.get('content-type') ?? '')) return false;
  const text = await response.clone().text();
  if (text.length > MAX_ERROR_BODY) return false;
  try {
    const body = JSON.parse(text) as { error?: unknown; reasonCode?: unknown };
    return body.error === 'use_dpop_nonce' || body.reasonCode === 'use_dpop_nonce';
  } catch {
    return false;
  }
}

const TOKEN = "[\\w!#$%&'*+.^`|~-]+";
/** The start of the next challenge: a scheme token followed by a parameter or by the end of the list. */
const NEXT_CHALLENGE = new RegExp(`,\\s*${TOKEN}(?:\\s+${TOKEN}\\s*=|\\s*(?:,|$))`);

/** The parameters of the `DPoP` challenge of a `WWW-Authenticate` value (RFC 9110 §11.6.1), or ''. */
export function dpopChallenge(header: string | null): string {
  if (header === null) return '';
  const start = /(?:^|,)\s*DPoP(?:\s+|\s*,|\s*$)/i.exec(header);
  if (!start) return '';
  const rest = header.slice(start.index + start[0].length);
  const next = NEXT_CHALLENGE.exec(rest);
  return next ? rest.slice(0, next.index) : rest;
}

/** Whether a request body can be sent twice (a stream cannot). */
function replayable(body: RequestInit['body']): boolean {
  return (
    body === undefined ||
    body === null ||
    !(typeof ReadableStream !== 'undefined' && body instanceof ReadableStream)
  );
}

/**
 * One HTTP request with a fresh DPoP proof in its `DPoP` header (and `Authorization: DPoP <token>`
 * when `accessToken` is given). When the server answers that it wants a nonce (`use_dpop_nonce` with
 * a `DPoP-Nonce` header, RFC 9449 §8 and §9), the request is sent once more with a new proof that
 * carries it; a second refusal is returned as is. Every `DPoP-Nonce` the server sends, on any
 * answer, is kept in `nonces` for the next proofs to that server (§8.2).
 *
 * `input` must be an absolute URL; a `Request` object is not taken (its body could not be resent).
 * A request whose body is a stream is not retried.
 */
export async function dpopFetch(
  input: string | URL,
  init: RequestInit,
  options: DpopFetchOptions,
): Promise<Response> {
  const doFetch = options.fetch ?? fetch;
  const clock = options.clock ?? Date.now;
  const nonces = options.nonces ?? new DpopNonces();
  const url = typeof input === 'string' ? input : input.href;
  const method = (init.method ?? 'GET').toUpperCase();
  if (
    options.accessToken !== undefined &&
    (options.accessToken === '' || /[\s,]/.test(options.accessToken))
  ) {
    throw new DpopClientError('invalid_argument', 'accessToken must be a non-empty token without spaces');
  }

  const send = async (): Promise<Response> => {
    const proof = await createDpopProof({
      key: options.key,
      method,
      url,
      accessToken: options.accessToken,
      nonce: nonces.get(url),
      now: clock(),
    });
    const headers = new Headers(init.headers);
    headers.set('dpop', proof);
    if (options.accessToken !== undefined) headers.set('authorization', `DPoP ${options.accessToken}`);
    const response = await doFetch(url, { ...init, method, headers });
    nonces.update(url, response.headers);
    return response;
  };

  const first = await send();
  if (!replayable(init.body) || !(await asksForNonce(first))) return first;
  await first.body?.cancel();
  return send();
}
