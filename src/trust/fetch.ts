import { promises as dns } from 'node:dns';
import http from 'node:http';
import https from 'node:https';
import { isIP, type LookupFunction } from 'node:net';
import ipaddr from 'ipaddr.js';
import { LRUCache } from 'lru-cache';

/** Options of one outbound GET. */
export interface HttpGetOptions {
  /** Total wall-clock budget in ms, covering DNS, connect, TLS, headers and body. */
  timeoutMs: number;
  /** Largest body accepted, in bytes (as received; only `identity` encoding is accepted). */
  maxBytes: number;
  /** PEM bundle trusted for this request only, instead of the system CAs. */
  caCert?: string | undefined;
  /** Allow private (RFC 1918, CGNAT, ULA) addresses. Loopback is not opened by this flag. */
  allowPrivateNetwork: boolean;
  /** Allow loopback addresses (http and https), and plain `http:` when every address is loopback. */
  allowInsecureLoopback: boolean;
}

/** A 200 answer. */
export interface HttpGetResult {
  status: number;
  /** The body decoded as UTF-8. */
  body: string;
  headers: Record<string, string | string[] | undefined>;
}

/** Outbound GET used for discovery documents and JWKS; injectable for tests and custom transports. */
export type HttpGet = (url: string, options: HttpGetOptions) => Promise<HttpGetResult>;

/** Why an outbound GET failed. Callers branch on `code`. */
export type FetchErrorCode =
  'invalid_url' | 'blocked_address' | 'timeout' | 'too_large' | 'http_status' | 'network' | 'tls';

/**
 * An outbound GET that failed. The message holds only the code and the URL without query string or
 * credentials; upstream error text is kept in `cause` (for server logs, never for clients).
 */
export class FetchError extends Error {
  override name = 'FetchError';
  /** Stable failure code. */
  readonly code: FetchErrorCode;
  /** The URL without userinfo, query or fragment. */
  readonly url: string;
  /** The HTTP status, for `http_status` failures that got one. */
  readonly status: number | undefined;

  constructor(code: FetchErrorCode, url: string, options: { cause?: unknown; status?: number } = {}) {
    const safeUrl = redactUrl(url);
    super(
      `GET ${safeUrl} failed: ${code}${options.status === undefined ? '' : ` ${options.status}`}`,
      options.cause === undefined ? undefined : { cause: options.cause },
    );
    this.code = code;
    this.url = safeUrl;
    this.status = options.status;
  }
}

/** One resolved address, as `dns.promises.lookup(host, { all: true })` returns them. */
export interface ResolvedAddress {
  address: string;
  family: number;
}

/** Resolves a host name to every A and AAAA address. */
export type Resolver = (hostname: string) => Promise<readonly ResolvedAddress[]>;

/** Seams of {@link createHttpGet}. */
export interface HttpGetFactoryOptions {
  /** Host name resolver. Default: `dns.promises.lookup(host, { all: true, verbatim: true })`. */
  resolve?: Resolver;
}

/** Where an address may be reached from: decides the SSRF guard. */
type AddressClass = 'public' | 'private' | 'loopback' | 'forbidden';

const IPV4_CLASS: Record<string, AddressClass> = {
  unicast: 'public',
  private: 'private',
  carrierGradeNat: 'private',
  loopback: 'loopback',
};
const IPV6_CLASS: Record<string, AddressClass> = {
  unicast: 'public',
  uniqueLocal: 'private',
  loopback: 'loopback',
};

/**
 * Classify an IP address for the SSRF guard. Link-local (cloud metadata), unspecified, multicast,
 * broadcast, reserved, documentation, IPv4-compatible, 6to4, Teredo and other special ranges are
 * `forbidden` under every flag; IPv4-mapped IPv6 is judged as its IPv4 address; a NAT64 address
 * (`64:ff9b::/96`) as its embedded IPv4, and only when that one is public.
 */
function classifyAddress(address: string): AddressClass {
  let parsed: ipaddr.IPv4 | ipaddr.IPv6;
  try {
    parsed = ipaddr.parse(address);
  } catch {
    return 'forbidden';
  }
  if (parsed.kind() === 'ipv6') {
    const v6 = parsed as ipaddr.IPv6;
    const range = v6.range();
    if (range === 'ipv4Mapped') return IPV4_CLASS[v6.toIPv4Address().range()] ?? 'forbidden';
    const p = v6.parts;
    if (range === 'rfc6052') {
      const isWellKnownPrefix = p[0] === 0x64 && p[1] === 0xff9b && p.slice(2, 6).every((x) => x === 0);
      if (!isWellKnownPrefix) return 'forbidden';
      const embedded = ipaddr.fromByteArray(v6.toByteArray().slice(12)) as ipaddr.IPv4;
      return embedded.range() === 'unicast' ? 'public' : 'forbidden';
    }
    // ::/96 (IPv4-compatible, deprecated) is `unicast` to ipaddr.js but may tunnel to IPv4.
    if (range === 'unicast' && p.slice(0, 6).every((x) => x === 0)) return 'forbidden';
    return IPV6_CLASS[range] ?? 'forbidden';
  }
  return IPV4_CLASS[(parsed as ipaddr.IPv4).range()] ?? 'forbidden';
}

function isAllowed(
  cls: AddressClass,
  options: Pick<HttpGetOptions, 'allowPrivateNetwork' | 'allowInsecureLoopback'>,
) {
  if (cls === 'public') return true;
  if (cls === 'private') return options.allowPrivateNetwork;
  if (cls === 'loopback') return options.allowInsecureLoopback;
  return false;
}

/** A URL that passed {@link validateFetchUrl}. */
export interface FetchTarget {
  url: URL;
  /** Host name or IP literal, without IPv6 brackets. */
  host: string;
  /** True when `host` is an IP literal (already checked). */
  literal: boolean;
}

function isLoopbackName(host: string): boolean {
  const name = host.toLowerCase().replace(/\.$/, '');
  return name === 'localhost' || name.endsWith('.localhost');
}

/**
 * The checks that need no DNS, usable at config time: WHATWG parse, no userinfo, `https:` only
 * (`http:` only with `allowInsecureLoopback` and a loopback IP literal or `localhost` name), and the
 * SSRF guard on IP literals in any spelling (WHATWG turns `2130706433`, `0x7f.1`, `017700000001`
 * and `127.1` into `127.0.0.1`). Host names are checked again, per resolved address, at fetch time.
 *
 * @throws {FetchError} `invalid_url` or `blocked_address`.
 */
export function validateFetchUrl(
  input: string,
  options: Pick<HttpGetOptions, 'allowPrivateNetwork' | 'allowInsecureLoopback'>,
): FetchTarget {
  let url: URL;
  try {
    url = new URL(input);
  } catch (cause) {
    throw new FetchError('invalid_url', '', { cause });
  }
  if (url.username !== '' || url.password !== '') throw new FetchError('invalid_url', input);
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  if (host === '') throw new FetchError('invalid_url', input);
  const literal = isIP(host) !== 0;
  if (url.protocol === 'http:') {
    const loopback = literal ? classifyAddress(host) === 'loopback' : isLoopbackName(host);
    if (!options.allowInsecureLoopback || !loopback) throw new FetchError('invalid_url', input);
  } else if (url.protocol !== 'https:') {
    throw new FetchError('invalid_url', input);
  }
  if (literal && !isAllowed(classifyAddress(host), options)) throw new FetchError('blocked_address', input);
  return { url, host, literal };
}

const defaultResolve: Resolver = (hostname) => dns.lookup(hostname, { all: true, verbatim: true });

async function resolveChecked(
  target: FetchTarget,
  options: HttpGetOptions,
  resolve: Resolver,
  href: string,
): Promise<ResolvedAddress[]> {
  if (target.literal) return [{ address: target.host, family: isIP(target.host) }];
  let addresses: readonly ResolvedAddress[];
  try {
    addresses = await resolve(target.host);
  } catch (cause) {
    throw new FetchError('network', href, { cause });
  }
  if (addresses.length === 0) throw new FetchError('network', href);
  const checked: ResolvedAddress[] = [];
  for (const { address, family } of addresses) {
    const cls = classifyAddress(address);
    if (!isAllowed(cls, options)) throw new FetchError('blocked_address', href);
    if (target.url.protocol === 'http:' && cls !== 'loopback') throw new FetchError('blocked_address', href);
    checked.push({ address, family: family === 6 || isIP(address) === 6 ? 6 : 4 });
  }
  return checked;
}

/** A `lookup` that answers only with the addresses that passed the guard: no second DNS query. */
function pinnedLookup(addresses: ResolvedAddress[]): LookupFunction {
  return (_hostname, lookupOptions, callback) => {
    const family = lookupOptions.family === 4 || lookupOptions.family === 6 ? lookupOptions.family : 0;
    const usable = family === 0 ? addresses : addresses.filter((a) => a.family === family);
    const first = usable[0];
    if (!first) {
      const error: NodeJS.ErrnoException = new Error('no pinned address of the requested family');
      error.code = 'ENOTFOUND';
      callback(error, '');
    } else if (lookupOptions.all) {
      callback(null, usable);
    } else {
      callback(null, first.address, first.family);
    }
  };
}

const caAgents = new LRUCache<string, https.Agent>({ max: 256 });
// rejectUnauthorized is explicit so NODE_TLS_REJECT_UNAUTHORIZED=0 cannot switch verification off here.
const plainHttpsAgent = new https.Agent({ keepAlive: false, rejectUnauthorized: true });
const plainHttpAgent = new http.Agent({ keepAlive: false });

/** One agent per CA bundle, so the CA applies to that identity's requests only. */
function agentFor(protocol: string, caCert: string | undefined): http.Agent {
  if (protocol === 'http:') return plainHttpAgent;
  if (caCert === undefined) return plainHttpsAgent;
  let agent = caAgents.get(caCert);
  if (!agent) {
    agent = new https.Agent({ ca: caCert, rejectUnauthorized: true, keepAlive: false });
    caAgents.set(caCert, agent);
  }
  return agent;
}

const TLS_CODE = /^(ERR_TLS_|ERR_SSL_|ERR_OSSL_)|CERT|SELF_SIGNED|UNABLE_TO_|_SIGNATURE|HOSTNAME/;

function classifyNetworkError(error: unknown, href: string): FetchError {
  if (error instanceof FetchError) return error;
  const code = (error as { code?: unknown } | null)?.code;
  const isTls = typeof code === 'string' && TLS_CODE.test(code);
  return new FetchError(isTls ? 'tls' : 'network', href, { cause: error });
}

function request(
  target: FetchTarget,
  addresses: ResolvedAddress[],
  options: HttpGetOptions,
  href: string,
  signal: AbortSignal,
): Promise<HttpGetResult> {
  return new Promise((resolve, reject) => {
    const { url } = target;
    const transport = url.protocol === 'https:' ? https : http;
    let settled = false;
    const req = transport.request({
      method: 'GET',
      host: target.host,
      port: url.port === '' ? undefined : Number(url.port),
      path: `${url.pathname}${url.search}`,
      agent: agentFor(url.protocol, options.caCert),
      lookup: pinnedLookup(addresses),
      headers: {
        accept: 'application/json',
        'accept-encoding': 'identity',
        'user-agent': 'oidc-machine-auth',
      },
      maxHeaderSize: 16 * 1024,
    });
    const onAbort = () => fail(new FetchError('timeout', href));
    const fail = (error: unknown) => {
      if (settled) return;
      settled = true;
      signal.removeEventListener('abort', onAbort);
      req.destroy();
      reject(classifyNetworkError(error, href));
    };
    signal.addEventListener('abort', onAbort, { once: true });
    req.on('error', fail);
    req.on('response', (res) => {
      const status = res.statusCode ?? 0;
      if (status !== 200) return fail(new FetchError('http_status', href, { status }));
      const encoding = res.headers['content-encoding'];
      if (encoding !== undefined && encoding.trim().toLowerCase() !== 'identity') {
        return fail(new FetchError('http_status', href, { status }));
      }
      if (Number(res.headers['content-length']) > options.maxBytes) {
        return fail(new FetchError('too_large', href));
      }
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > options.maxBytes) return fail(new FetchError('too_large', href));
        chunks.push(chunk);
      });
      res.on('error', fail);
      res.on('end', () => {
        if (settled) return;
        settled = true;
        signal.removeEventListener('abort', onAbort);
        resolve({ status, body: Buffer.concat(chunks, size).toString('utf8'), headers: res.headers });
      });
      res.on('close', () => fail(new FetchError('network', href)));
    });
    if (signal.aborted) onAbort();
    else req.end();
  });
}

/** Settle with `promise`, or with a `timeout` FetchError once `signal` aborts. */
function beforeDeadline<T>(promise: Promise<T>, signal: AbortSignal, href: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(new FetchError('timeout', href));
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

/**
 * Build an {@link HttpGet} with its own resolver (tests inject one to simulate DNS answers).
 *
 * Rules: see {@link validateFetchUrl}; then every A and AAAA address of a host name must pass the SSRF
 * guard (private ranges only with `allowPrivateNetwork`, loopback only with `allowInsecureLoopback`,
 * link-local/metadata and other special ranges never), and the connection goes to those checked
 * addresses (pinned `lookup`; SNI and `Host` stay the host name), so DNS rebinding has no window.
 * No redirects (3xx is `http_status`), only 200, `accept-encoding: identity` and no other
 * `content-encoding` (`http_status`), one timer for the whole exchange (DNS, connect, TLS, headers,
 * body), body capped at `maxBytes`.
 */
export function createHttpGet(factoryOptions: HttpGetFactoryOptions = {}): HttpGet {
  const resolve = factoryOptions.resolve ?? defaultResolve;
  return async function httpGet(url, options) {
    const target = validateFetchUrl(url, options);
    const href = target.url.href;
    const deadline = new AbortController();
    const timer = setTimeout(() => deadline.abort(), options.timeoutMs);
    try {
      const addresses = await beforeDeadline(
        resolveChecked(target, options, resolve, href),
        deadline.signal,
        href,
      );
      return await request(target, addresses, options, href, deadline.signal);
    } finally {
      clearTimeout(timer);
    }
  };
}

/**
 * Default outbound GET for discovery and JWKS: node:http(s), system DNS, the rules of
 * {@link createHttpGet}.
 */
export const httpGet: HttpGet = createHttpGet();

/** The URL without userinfo, query or fragment, for logs. */
export function redactUrl(input: string): string {
  try {
    const url = new URL(input);
    return `${url.protocol}//${url.host}${url.pathname}`;
  } catch {
    return '(invalid url)';
  }
}
