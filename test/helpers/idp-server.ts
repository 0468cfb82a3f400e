import { generateKeyPairSync, randomUUID, type KeyObject } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { gzipSync } from 'node:zlib';
import { SignJWT, type JWK, type JWTPayload } from 'jose';
import type { IdentityConfigInput } from '../../src/types.js';

/**
 * A tiny loopback OIDC identity provider for tests: serves a discovery document and a JWKS over
 * http or https on 127.0.0.1, counts hits per path, signs tokens with its current keys, and can be
 * told to misbehave per path (slow, down, hanging, trickling, garbage, huge, gzip, redirect).
 *
 * ```ts
 * const idp = await startTestIdp();                      // http://127.0.0.1:<port>
 * const jwt = await idp.sign({ sub: 'repo:acme/app:ref:refs/heads/main', aud: 'my-app' });
 * idp.setBehavior('jwks', { kind: 'status', status: 503 });
 * expect(idp.hits('discovery')).toBe(1);
 * await idp.close();
 * ```
 *
 * Code under test must opt in to loopback: `allowInsecureLoopback: true` (http or https), plus
 * `caCert` for https (see `certs.ts`).
 */

/** JWS algorithms the test IdP can sign with. */
export type TestAlgorithm =
  'RS256' | 'RS384' | 'RS512' | 'PS256' | 'PS384' | 'PS512' | 'ES256' | 'ES384' | 'ES512' | 'EdDSA';

/** A signing key pair of the test IdP. */
export interface SigningKey {
  kid: string;
  alg: TestAlgorithm;
  privateKey: KeyObject;
  /** The public JWK served in the JWKS (`kid`, `alg`, `use: 'sig'` included). */
  publicJwk: JWK;
}

/**
 * Generate a signing key. RSA keys are 2048 bits unless `rsaBits` says otherwise (1024 for weak-key
 * cases).
 */
export function createSigningKey(
  alg: TestAlgorithm = 'RS256',
  kid: string = `kid-${randomUUID()}`,
  rsaBits = 2048,
): SigningKey {
  const pair =
    alg.startsWith('RS') || alg.startsWith('PS')
      ? generateKeyPairSync('rsa', { modulusLength: rsaBits })
      : alg === 'EdDSA'
        ? generateKeyPairSync('ed25519')
        : generateKeyPairSync('ec', { namedCurve: EC_CURVES[alg] ?? 'prime256v1' });
  const publicJwk: JWK = { ...pair.publicKey.export({ format: 'jwk' }), kid, alg, use: 'sig' };
  return { kid, alg, privateKey: pair.privateKey, publicJwk };
}

const EC_CURVES: Record<string, string> = { ES256: 'prime256v1', ES384: 'secp384r1', ES512: 'secp521r1' };

let sharedDefaultKey: SigningKey | undefined;
/** The RS256 key `key-1` every IdP starts with unless told otherwise; generated once per process (RSA is slow). */
function defaultKey(): SigningKey {
  return (sharedDefaultKey ??= createSigningKey('RS256', 'key-1'));
}

/** How the IdP answers a path. `ok` (the default) serves the real document. */
export type Behavior =
  | { kind: 'ok' }
  /** Answer this status, with an optional body. */
  | { kind: 'status'; status: number; body?: string }
  /** Answer 200 with this body (garbage, arrays, anything). */
  | { kind: 'body'; body: string; contentType?: string }
  /** Answer the real document after `ms`. */
  | { kind: 'delay'; ms: number }
  /** Accept the request and never answer. */
  | { kind: 'hang' }
  /** Drop the connection as soon as the request arrives. */
  | { kind: 'down' }
  /**
   * Send the real answer one byte every `intervalMs` (default 100). With `headers: true` the status
   * line and headers trickle too; otherwise headers go at once and the body trickles.
   */
  | { kind: 'trickle'; intervalMs?: number; headers?: boolean }
  /**
   * Send `bytes` bytes of JSON-looking filler. `contentLength`: a number announces that length
   * (a lie when it differs), `null` sends no length (chunked). Default: the true length.
   */
  | { kind: 'huge'; bytes: number; contentLength?: number | null }
  /** Send the real document gzip-encoded (`content-encoding: gzip`). */
  | { kind: 'gzip' }
  /** Redirect to `location`. */
  | { kind: 'redirect'; location: string; status?: 301 | 302 | 303 | 307 | 308 };

/** A path of the IdP: the discovery document, the JWKS, or any other path. */
export type IdpPath = 'discovery' | 'jwks' | (string & {});

/** Options of {@link startTestIdp}. */
export interface TestIdpOptions {
  /** Serve https with this certificate and key (see `createTestCertificates`). Default: http. */
  tls?: { cert: string; key: string };
  /** Initial signing keys. Default: one RS256 key with kid `key-1` (shared by every test IdP of the process). */
  keys?: SigningKey[];
  /** Path of the issuer under the origin, e.g. `/org/123` (path-based issuers). Default ''. */
  issuerPath?: string;
  /** Bind address. Default `127.0.0.1`. */
  host?: string;
}

/** A running test IdP. */
export interface TestIdp {
  /** The issuer, i.e. the discovery base URL: `http(s)://127.0.0.1:<port><issuerPath>`, no trailing `/`. */
  readonly issuer: string;
  /** `<issuer>/.well-known/openid-configuration`. */
  readonly discoveryUrl: string;
  /** The JWKS URL the discovery document points at. */
  readonly jwksUrl: string;
  readonly port: number;
  /** Current signing keys; the first one signs by default. */
  readonly keys: readonly SigningKey[];
  /** Replace the signing keys (rotation). */
  setKeys(keys: SigningKey[]): void;
  /** Generate a key, append it to the JWKS and return it. */
  addKey(alg?: TestAlgorithm, kid?: string): SigningKey;
  /** Remove a key from the JWKS. */
  removeKey(kid: string): void;
  /** Serve this exact JWKS body (any JSON value) instead of the keys' public JWKs; `undefined` undoes it. */
  setJwks(body: unknown): void;
  /**
   * Change the discovery document: an object is merged over the default one (a key set to
   * `undefined` is removed); a function receives the default and returns any JSON value.
   */
  setDiscovery(
    change: Record<string, unknown> | ((doc: Record<string, unknown>) => unknown) | undefined,
  ): void;
  /** Make a path misbehave. */
  setBehavior(path: IdpPath, behavior: Behavior): void;
  /** Requests received on a path since the last {@link resetHits}. */
  hits(path: IdpPath): number;
  /** Every request since the last {@link resetHits}, oldest first. */
  readonly requests: ReadonlyArray<{ path: string; headers: http.IncomingHttpHeaders }>;
  resetHits(): void;
  /** Back to normal: default behaviours, documents and hit counts (keys are kept). */
  reset(): void;
  /**
   * Sign a token. Defaults: `iss` = issuer, `iat` = now, `exp` = now + 300 s, header
   * `{ alg, kid, typ: 'JWT' }` of the first key. `kid: null` leaves the kid out.
   */
  sign(
    claims?: JWTPayload,
    options?: { key?: SigningKey; kid?: string | null; header?: Record<string, unknown> },
  ): Promise<string>;
  /** Stop listening and drop every open connection (hanging ones too). */
  close(): Promise<void>;
}

const DISCOVERY_PATH = '/.well-known/openid-configuration';
const JWKS_PATH = '/jwks';

/** Start a test IdP on a free loopback port. */
export async function startTestIdp(options: TestIdpOptions = {}): Promise<TestIdp> {
  const issuerPath = options.issuerPath ?? '';
  let keys: SigningKey[] = options.keys ?? [defaultKey()];
  let jwksOverride: unknown;
  let discoveryChange: Parameters<TestIdp['setDiscovery']>[0];
  const behaviors = new Map<string, Behavior>();
  const hitCounts = new Map<string, number>();
  const requests: Array<{ path: string; headers: http.IncomingHttpHeaders }> = [];
  const timers = new Set<NodeJS.Timeout>();
  let origin = '';

  const pathOf = (path: IdpPath) =>
    path === 'discovery'
      ? `${issuerPath}${DISCOVERY_PATH}`
      : path === 'jwks'
        ? `${issuerPath}${JWKS_PATH}`
        : path;

  function jwksDocument(): unknown {
    return jwksOverride !== undefined ? jwksOverride : { keys: keys.map((k) => k.publicJwk) };
  }

  /** The `alg` members of the JWKS actually served, so the discovery document agrees with it. */
  function servedAlgorithms(): string[] {
    const served = (jwksDocument() as { keys?: unknown } | null)?.keys;
    const algs = Array.isArray(served)
      ? served
          .map((k) => (k as { alg?: unknown } | null)?.alg)
          .filter((a): a is string => typeof a === 'string')
      : [];
    return [...new Set(algs)];
  }

  function discoveryDocument(): unknown {
    const algorithms = servedAlgorithms();
    const doc: Record<string, unknown> = {
      issuer: `${origin}${issuerPath}`,
      jwks_uri: `${origin}${issuerPath}${JWKS_PATH}`,
      response_types_supported: ['id_token'],
      subject_types_supported: ['public'],
      // The algs of the served keys (RS256 when none names one); ALG-03 tests override it.
      id_token_signing_alg_values_supported: algorithms.length > 0 ? algorithms : ['RS256'],
      claims_supported: ['sub', 'aud', 'iss', 'iat', 'exp'],
    };
    if (typeof discoveryChange === 'function') return discoveryChange(doc);
    if (discoveryChange) {
      for (const [name, value] of Object.entries(discoveryChange)) {
        if (value === undefined) delete doc[name];
        else doc[name] = value;
      }
    }
    return doc;
  }

  function documentFor(path: string): string | undefined {
    if (path === pathOf('discovery')) return JSON.stringify(discoveryDocument());
    if (path === pathOf('jwks')) {
      return JSON.stringify(jwksDocument());
    }
    return undefined;
  }

  const later = (ms: number, fn: () => void) => {
    const timer = setTimeout(() => {
      timers.delete(timer);
      fn();
    }, ms);
    timers.add(timer);
  };

  function handle(req: http.IncomingMessage, res: http.ServerResponse) {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    hitCounts.set(path, (hitCounts.get(path) ?? 0) + 1);
    requests.push({ path, headers: req.headers });
    const behavior = behaviors.get(path) ?? { kind: 'ok' };
    const doc = documentFor(path);
    const sendDoc = () => {
      if (doc === undefined) {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
      } else {
        res.writeHead(200, { 'content-type': 'application/json' }).end(doc);
      }
    };
    switch (behavior.kind) {
      case 'ok':
        return sendDoc();
      case 'status':
        return res.writeHead(behavior.status, { 'content-type': 'text/plain' }).end(behavior.body ?? '');
      case 'body':
        return res
          .writeHead(200, { 'content-type': behavior.contentType ?? 'application/json' })
          .end(behavior.body);
      case 'delay':
        return later(behavior.ms, sendDoc);
      case 'hang':
        return;
      case 'down':
        return req.socket.destroy();
      case 'gzip':
        return res
          .writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip' })
          .end(gzipSync(doc ?? ''));
      case 'redirect':
        return res.writeHead(behavior.status ?? 302, { location: behavior.location }).end();
      case 'trickle':
        return trickle(req, res, doc ?? '', behavior.intervalMs ?? 100, behavior.headers ?? false);
      case 'huge':
        return huge(res, behavior.bytes, behavior.contentLength);
    }
  }

  function trickle(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    body: string,
    interval: number,
    head: boolean,
  ) {
    const socket = req.socket;
    let bytes: Buffer;
    let write: (chunk: Buffer) => void;
    if (head) {
      bytes = Buffer.from(
        `HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n` +
          `connection: close\r\n\r\n${body}`,
      );
      write = (chunk) => socket.write(chunk);
    } else {
      bytes = Buffer.from(body);
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': bytes.length });
      res.flushHeaders();
      write = (chunk) => res.write(chunk);
    }
    let offset = 0;
    const step = () => {
      if (socket.destroyed) return;
      if (offset >= bytes.length) return head ? socket.end() : res.end();
      write(bytes.subarray(offset, offset + 1));
      offset++;
      later(interval, step);
    };
    step();
  }

  function huge(res: http.ServerResponse, total: number, contentLength: number | null | undefined) {
    const headers: Record<string, string | number> = { 'content-type': 'application/json' };
    if (contentLength !== null) headers['content-length'] = contentLength ?? total;
    res.writeHead(200, headers);
    const chunk = Buffer.alloc(64 * 1024, 0x20);
    chunk[0] = 0x5b; // '['
    let sent = 0;
    const pump = () => {
      while (sent < total && !res.destroyed) {
        const piece = chunk.subarray(0, Math.min(chunk.length, total - sent));
        sent += piece.length;
        if (!res.write(piece)) return void res.once('drain', pump);
      }
      if (!res.destroyed) res.end();
    };
    res.on('error', () => {});
    pump();
  }

  const server = options.tls
    ? https.createServer({ cert: options.tls.cert, key: options.tls.key }, handle)
    : http.createServer(handle);
  server.on('clientError', (_error, socket) => socket.destroy());
  await new Promise<void>((resolve) => server.listen(0, options.host ?? '127.0.0.1', resolve));
  const { port, address } = server.address() as AddressInfo;
  const hostPart = address.includes(':') ? `[${address}]` : address;
  origin = `${options.tls ? 'https' : 'http'}://${hostPart}:${port}`;

  const idp: TestIdp = {
    issuer: `${origin}${issuerPath}`,
    discoveryUrl: `${origin}${issuerPath}${DISCOVERY_PATH}`,
    jwksUrl: `${origin}${issuerPath}${JWKS_PATH}`,
    port,
    get keys() {
      return keys;
    },
    setKeys(next) {
      keys = [...next];
    },
    addKey(alg = 'RS256', kid) {
      const key = createSigningKey(alg, kid);
      keys = [...keys, key];
      return key;
    },
    removeKey(kid) {
      keys = keys.filter((k) => k.kid !== kid);
    },
    setJwks(body) {
      jwksOverride = body;
    },
    setDiscovery(change) {
      discoveryChange = change;
    },
    setBehavior(path, behavior) {
      behaviors.set(pathOf(path), behavior);
    },
    hits(path) {
      return hitCounts.get(pathOf(path)) ?? 0;
    },
    requests,
    resetHits() {
      hitCounts.clear();
      requests.length = 0;
    },
    reset() {
      behaviors.clear();
      hitCounts.clear();
      requests.length = 0;
      jwksOverride = undefined;
      discoveryChange = undefined;
    },
    async sign(claims = {}, signOptions = {}) {
      const key = signOptions.key ?? keys[0];
      if (!key) throw new Error('the test IdP has no signing key');
      const now = Math.floor(Date.now() / 1000);
      const header: Record<string, unknown> = { alg: key.alg, typ: 'JWT', ...signOptions.header };
      const kid = signOptions.kid === undefined ? key.kid : signOptions.kid;
      if (kid !== null) header.kid = kid;
      return new SignJWT({ iss: idp.issuer, iat: now, exp: now + 300, ...claims })
        .setProtectedHeader(header as { alg: string })
        .sign(key.privateKey);
    },
    async close() {
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  return idp;
}

/** An identity `ci` that discovers `idp` over loopback (opted in), bound to `subject` and `audience`. */
export function loopbackIdentity(idp: TestIdp, subject: string, audience: string): IdentityConfigInput {
  return {
    identityId: 'ci',
    oidcDiscoveryUrl: idp.issuer,
    allowInsecureLoopback: true,
    boundIssuer: idp.issuer,
    boundSubject: subject,
    boundAudiences: audience,
  };
}
