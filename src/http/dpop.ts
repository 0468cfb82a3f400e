import { BadRequestError, bearerChallenge } from '../errors.js';
import type { DpopRequest } from '../tokens/dpop.js';

/**
 * The {@link DpopRequest} of a request, as every adapter builds it: the `DPoP` header (several
 * headers arrive joined by `, `, which no proof survives: RFC 9449 §4.3 step 1), the method, and
 * `protocol://host` + the path as received, without query or fragment (§4.3 step 9). `protocol` and
 * `host` come from the framework's own view (its trust-proxy settings decide whether
 * `X-Forwarded-Proto` and `X-Forwarded-Host` count), never from raw forwarding headers here.
 */
export function dpopRequest(
  proof: string | readonly string[] | undefined,
  method: string,
  protocol: string,
  host: string | undefined,
  target: string,
): DpopRequest {
  const scheme = protocol.endsWith(':') ? protocol.slice(0, -1) : protocol;
  let end = target.length;
  const q = target.indexOf('?');
  if (q >= 0) end = q;
  const h = target.indexOf('#');
  if (h >= 0 && h < end) end = h;
  const path = end === target.length ? target : target.slice(0, end);
  return {
    proof: typeof proof === 'string' || proof === undefined ? proof : proof.join(', '),
    method,
    // A host that is not one authority (a `Host` of `api.example/secrets#`, or none at all) would move
    // the path the proof is checked against: such a request has no URL, and no proof matches it.
    url:
      (scheme === 'http' || scheme === 'https') && host !== undefined && AUTHORITY.test(host)
        ? `${scheme}://${host}${path.startsWith('/') ? path : `/${path}`}`
        : '',
  };
}

/** RFC 3986 §3.2.2 host (reg-name or bracketed IP literal) and optional port: nothing else. */
const AUTHORITY =
  /^(?:[A-Za-z0-9\-._~!$&'()*+,;=]|%[0-9A-Fa-f]{2})+(?::[0-9]{1,5})?$|^\[[0-9A-Fa-f:.]+\](?::[0-9]{1,5})?$/;

const DPOP_SCHEME = /^DPoP +([A-Za-z0-9\-._~+/]+=*) *$/i;

/**
 * The access token of an `Authorization: DPoP <token>` header (RFC 9449 §7.1), `undefined` when the
 * header uses another scheme; 400 `invalid_request` for malformed DPoP credentials.
 */
export function extractDpopToken(header: string, realm: string): string | undefined {
  const match = DPOP_SCHEME.exec(header);
  if (match) return match[1]!;
  if (!/^dpop(\s|$)/i.test(header)) return undefined;
  throw new BadRequestError('invalid_request', 'Malformed DPoP credentials', {
    headers: { 'www-authenticate': bearerChallenge(realm, 'invalid_request') },
  });
}

/** The parts of an Express or Fastify request (or a bare Node one) {@link platformDpopRequest} reads. */
export interface PlatformDpopSource {
  method?: string | undefined;
  /** Express `req.protocol`, Fastify `request.protocol`: the framework's trust-proxy view. */
  protocol?: string | undefined;
  /**
   * Fastify `request.host`: the framework's trust-proxy view, port included. Not read on an Express
   * request (see `app`): Express 4's `req.host` drops the port.
   */
  host?: string | undefined;
  /** Express: the path as received, before any mount stripped a prefix. */
  originalUrl?: string | undefined;
  url?: string | undefined;
  headers: {
    dpop?: string | string[] | undefined;
    host?: string | undefined;
    'x-forwarded-host'?: string | string[] | undefined;
  };
  socket?: object | undefined;
  /** Express (4 and 5) `req.app`: its `trust proxy fn` setting decides whether `X-Forwarded-Host` counts. */
  app?: { get?: ((setting: string) => unknown) | undefined } | undefined;
}

/**
 * {@link dpopRequest} of a request that may be Express's or Fastify's (NestJS, Passport): their own
 * `protocol` and authority (see {@link frameworkHost}) when present, else (a bare Node request) the
 * socket's TLS state and `Host`.
 */
export function platformDpopRequest(req: PlatformDpopSource): DpopRequest {
  const encrypted = (req.socket as { encrypted?: boolean } | undefined)?.encrypted === true;
  return dpopRequest(
    req.headers.dpop,
    req.method ?? 'GET',
    req.protocol ?? (encrypted ? 'https' : 'http'),
    frameworkHost(req),
    req.originalUrl ?? req.url ?? '/',
  );
}

/**
 * The request's authority (host and port) as its framework's proxy trust decides it. An Express
 * request (4 or 5: `req.app` holds the compiled `trust proxy fn`) is read as Express 5's `req.host`
 * reads it: the first `X-Forwarded-Host` value when `trust proxy` trusts the peer that sent the
 * request, else `Host`, port kept. On Express 4 `req.host` is the deprecated `req.hostname`, without
 * the port, so a proof naming `https://api.example:8443/…` could never match; Express 4's own
 * `hostname` makes the same trust decision, with the same setting. Any other request: its `host`
 * (Fastify's, port included), else the `Host` header. Express 4 itself is not installed for the
 * tests: they put Express 4's `req.host` getter on an Express 5 app (docs/DPOP.md).
 */
function frameworkHost(req: PlatformDpopSource): string | undefined {
  const trust = typeof req.app?.get === 'function' ? req.app.get('trust proxy fn') : undefined;
  if (typeof trust !== 'function') return req.host ?? req.headers.host;
  const forwarded = req.headers['x-forwarded-host'];
  let value = Array.isArray(forwarded) ? forwarded.join(', ') : forwarded;
  const peer = (req.socket as { remoteAddress?: string } | undefined)?.remoteAddress;
  if (!value || !(trust as (address: string | undefined, hop: number) => boolean)(peer, 0)) {
    value = req.headers.host;
  } else if (value.includes(',')) {
    // Normally one value; a proxy chain may have appended more (Express keeps the first).
    value = value.slice(0, value.indexOf(',')).trimEnd();
  }
  return value || undefined;
}
