import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  createHttpGet,
  FetchError,
  httpGet,
  validateFetchUrl,
  type HttpGetOptions,
  type Resolver,
} from '../../src/trust/fetch.js';
import { createTestCertificates, type TestCertificates } from '../helpers/certs.js';
import { startTestIdp, type TestIdp } from '../helpers/idp-server.js';

const STRICT: HttpGetOptions = {
  timeoutMs: 2_000,
  maxBytes: 256 * 1024,
  allowPrivateNetwork: false,
  allowInsecureLoopback: false,
};
const LOOPBACK: HttpGetOptions = { ...STRICT, allowInsecureLoopback: true };

async function failure(promise: Promise<unknown>): Promise<FetchError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(FetchError);
    return error as FetchError;
  }
  throw new Error('expected the fetch to fail');
}

function validationCode(url: string, options: Partial<HttpGetOptions> = {}): string {
  try {
    validateFetchUrl(url, { ...STRICT, ...options });
    return 'ok';
  } catch (error) {
    expect(error).toBeInstanceOf(FetchError);
    return (error as FetchError).code;
  }
}

/** A resolver that answers from a table and counts its calls. */
function fakeResolver(table: Record<string, string[] | (() => string[])>) {
  const calls: string[] = [];
  const resolve: Resolver = async (hostname) => {
    calls.push(hostname);
    const entry = table[hostname];
    if (!entry) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' });
    const addresses = typeof entry === 'function' ? entry() : entry;
    return addresses.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
  };
  return { resolve, calls };
}

describe('fetch: URL rules and SSRF guard', () => {
  const blockedLiterals = [
    'https://127.0.0.1/',
    'https://2130706433/',
    'https://0x7f.1/',
    'https://017700000001/',
    'https://127.1/',
    'https://0/',
    'https://0.0.0.0/',
    'https://[::1]/',
    'https://[::]/',
    'https://[::ffff:a9fe:a9fe]/',
    'https://[::ffff:127.0.0.1]/',
    'https://[::ffff:10.0.0.1]/',
    'https://[fd00::1]/',
    'https://[fe80::1]/',
    'https://10.0.0.1/',
    'https://172.16.5.4/',
    'https://192.168.1.1/',
    'https://100.64.0.1/',
    'https://169.254.169.254/latest/meta-data/',
    'https://224.0.0.1/',
    'https://255.255.255.255/',
    'https://240.0.0.1/',
    'https://192.0.2.10/',
    'https://[64:ff9b::7f00:1]/',
    'https://[64:ff9b::a9fe:a9fe]/',
    'https://[2002:7f00:1::1]/',
    'https://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/',
    'https://[::127.0.0.1]/',
    'https://[ff02::1]/',
  ];

  it.each(blockedLiterals)('SSRF-01: %s is refused at validation and at fetch time', async (url) => {
    expect(validationCode(url)).toBe('blocked_address');
    const error = await failure(httpGet(url, STRICT));
    expect(error.code).toBe('blocked_address');
  });

  it('SSRF-01: localhost resolving to loopback is refused without the loopback opt-in', async () => {
    const error = await failure(httpGet('https://localhost/.well-known/openid-configuration', STRICT));
    expect(error.code).toBe('blocked_address');
  });

  it('SSRF-01: allowPrivateNetwork opens RFC 1918, CGNAT and ULA, never loopback or link-local', () => {
    const priv = { allowPrivateNetwork: true };
    for (const url of [
      'https://10.0.0.1/',
      'https://172.20.0.3:6443/',
      'https://100.64.0.1/',
      'https://[fd00::1]/',
    ]) {
      expect(validationCode(url, priv)).toBe('ok');
    }
    for (const url of [
      'https://127.0.0.1/',
      'https://[::1]/',
      'https://169.254.169.254/',
      'https://[::ffff:a9fe:a9fe]/',
      'https://[fe80::1]/',
      'https://0.0.0.0/',
    ]) {
      expect(validationCode(url, priv)).toBe('blocked_address');
    }
  });

  it('SSRF-01: allowInsecureLoopback opens loopback only, not private ranges or metadata', () => {
    const loop = { allowInsecureLoopback: true };
    expect(validationCode('https://127.0.0.1/', loop)).toBe('ok');
    expect(validationCode('https://[::1]/', loop)).toBe('ok');
    expect(validationCode('https://10.0.0.1/', loop)).toBe('blocked_address');
    expect(validationCode('https://169.254.169.254/', loop)).toBe('blocked_address');
  });

  it('SSRF-01: public literals pass, including a NAT64 address embedding a public IPv4', () => {
    expect(validationCode('https://93.184.216.34/')).toBe('ok');
    expect(validationCode('https://[2606:4700:4700::1111]/')).toBe('ok');
    expect(validationCode('https://[64:ff9b::5db8:d822]/')).toBe('ok');
    expect(validationCode('https://idp.example.com/')).toBe('ok');
  });

  it('SSRF-03: userinfo is refused, and no credential reaches the error', async () => {
    for (const url of ['https://idp.example.com:443@127.0.0.1/', 'https://user:s3cret@idp.example.com/x']) {
      const error = await failure(httpGet(url, LOOPBACK));
      expect(error.code).toBe('invalid_url');
      expect(error.message).not.toContain('s3cret');
      expect(error.url).not.toContain('s3cret');
      expect(error.url).not.toContain('@');
    }
  });

  it('SSRF-07: non-https schemes are refused; http only to loopback with the opt-in', () => {
    for (const url of [
      'http://idp.example.com/',
      'file:///etc/passwd',
      'data:application/json,{}',
      'gopher://127.0.0.1:70/',
      'ftp://idp.example.com/',
      'ws://idp.example.com/',
      'not a url',
      '',
    ]) {
      expect(validationCode(url, { allowInsecureLoopback: true, allowPrivateNetwork: true })).toBe(
        'invalid_url',
      );
    }
    expect(validationCode('http://127.0.0.1:8080/')).toBe('invalid_url');
    expect(validationCode('http://127.0.0.1:8080/', { allowInsecureLoopback: true })).toBe('ok');
    expect(validationCode('http://localhost:8080/', { allowInsecureLoopback: true })).toBe('ok');
    expect(
      validationCode('http://10.0.0.1/', { allowInsecureLoopback: true, allowPrivateNetwork: true }),
    ).toBe('invalid_url');
  });

  it('SSRF-07: http to a name that resolves beyond loopback is refused at fetch time', async () => {
    const { resolve } = fakeResolver({ 'evil.localhost': ['127.0.0.1', '93.184.216.34'] });
    const error = await failure(createHttpGet({ resolve })('http://evil.localhost/', LOOPBACK));
    expect(error.code).toBe('blocked_address');
  });

  it('error messages carry no query string', async () => {
    const error = await failure(httpGet('https://10.0.0.1/jwks?token=CANARY-123', STRICT));
    expect(error.message).not.toContain('CANARY');
    expect(error.url).toBe('https://10.0.0.1/jwks');
  });
});

describe('fetch: DNS answers (SSRF-04)', () => {
  let idp: TestIdp;
  beforeAll(async () => {
    idp = await startTestIdp();
  });
  afterAll(() => idp.close());
  afterEach(() => idp.reset());

  it('SSRF-04: a public-looking name with any private address among its answers is refused', async () => {
    const { resolve } = fakeResolver({
      'idp.example.com': ['93.184.216.34', '10.0.0.1'],
      'v6only.example.com': ['fd00::1'],
      'meta.example.com': ['169.254.169.254'],
      'mapped.example.com': ['::ffff:10.0.0.1'],
      'nip.example.com': ['127.0.0.1'],
    });
    const get = createHttpGet({ resolve });
    for (const host of ['idp.example.com', 'v6only.example.com', 'meta.example.com', 'mapped.example.com']) {
      expect((await failure(get(`https://${host}/`, STRICT))).code).toBe('blocked_address');
      expect((await failure(get(`https://${host}/`, { ...STRICT, allowInsecureLoopback: true }))).code).toBe(
        'blocked_address',
      );
    }
    expect((await failure(get('https://nip.example.com/', STRICT))).code).toBe('blocked_address');
  });

  it('SSRF-04: the connection goes to the checked address; a rebinding second answer is never asked for', async () => {
    let answers = 0;
    const { resolve, calls } = fakeResolver({
      'idp.localhost': () => (answers++ === 0 ? ['127.0.0.1'] : ['169.254.169.254']),
    });
    const get = createHttpGet({ resolve });
    const result = await get(`http://idp.localhost:${idp.port}/.well-known/openid-configuration`, LOOPBACK);
    expect(result.status).toBe(200);
    expect(calls).toEqual(['idp.localhost']);
    expect(idp.requests.at(-1)?.headers.host).toBe(`idp.localhost:${idp.port}`);
  });

  it('SSRF-04: a resolver failure is a network error, not a crash', async () => {
    const { resolve } = fakeResolver({});
    expect((await failure(createHttpGet({ resolve })('https://nowhere.example/', STRICT))).code).toBe(
      'network',
    );
  });
});

describe('fetch: responses', () => {
  let idp: TestIdp;
  beforeAll(async () => {
    idp = await startTestIdp();
  });
  afterAll(() => idp.close());
  afterEach(() => idp.reset());

  it('GETs a 200 body as UTF-8 with accept-encoding identity', async () => {
    idp.setBehavior('/doc', { kind: 'body', body: '{"name":"Zoë ✓"}' });
    const result = await httpGet(`${idp.issuer}/doc`, LOOPBACK);
    expect(result.status).toBe(200);
    expect(JSON.parse(result.body)).toEqual({ name: 'Zoë ✓' });
    expect(idp.requests.at(-1)?.headers['accept-encoding']).toBe('identity');
  });

  it('SSRF-05: a redirect is not followed', async () => {
    for (const status of [301, 302, 307, 308] as const) {
      idp.setBehavior('/moved', { kind: 'redirect', status, location: `${idp.issuer}/target` });
      const error = await failure(httpGet(`${idp.issuer}/moved`, LOOPBACK));
      expect(error.code).toBe('http_status');
      expect(error.status).toBe(status);
    }
    idp.setBehavior('/moved', { kind: 'redirect', location: 'http://169.254.169.254/latest/meta-data/' });
    expect((await failure(httpGet(`${idp.issuer}/moved`, LOOPBACK))).code).toBe('http_status');
    expect(idp.hits('/target')).toBe(0);
  });

  it('only 200 is accepted', async () => {
    for (const status of [201, 204, 404, 500, 503]) {
      idp.setBehavior('/s', { kind: 'status', status, body: 'upstream secret text' });
      const error = await failure(httpGet(`${idp.issuer}/s`, LOOPBACK));
      expect(error.code).toBe('http_status');
      expect(error.status).toBe(status);
      expect(error.message).not.toContain('upstream secret text');
    }
  });

  it('a dropped connection is a network error', async () => {
    idp.setBehavior('/down', { kind: 'down' });
    expect((await failure(httpGet(`${idp.issuer}/down`, LOOPBACK))).code).toBe('network');
  });

  it('a refused connection is a network error', async () => {
    const other = await startTestIdp();
    const url = `${other.issuer}/x`;
    await other.close();
    expect((await failure(httpGet(url, LOOPBACK))).code).toBe('network');
  });

  it('FETCH-01: a server that never answers is cut at the timeout', async () => {
    idp.setBehavior('/hang', { kind: 'hang' });
    const started = Date.now();
    const error = await failure(httpGet(`${idp.issuer}/hang`, { ...LOOPBACK, timeoutMs: 300 }));
    expect(error.code).toBe('timeout');
    expect(Date.now() - started).toBeLessThan(2_000);
  });

  it('FETCH-01: trickling headers (1 byte per 100 ms) do not keep the request alive', async () => {
    idp.setBehavior('/slow', { kind: 'trickle', intervalMs: 100, headers: true });
    const started = Date.now();
    const error = await failure(httpGet(`${idp.issuer}/slow`, { ...LOOPBACK, timeoutMs: 500 }));
    expect(error.code).toBe('timeout');
    expect(Date.now() - started).toBeLessThan(2_500);
  });

  it('FETCH-01: a trickling body (1 byte per 100 ms) does not keep the request alive', async () => {
    idp.setBehavior('jwks', { kind: 'trickle', intervalMs: 100 });
    const started = Date.now();
    const error = await failure(httpGet(idp.jwksUrl, { ...LOOPBACK, timeoutMs: 500 }));
    expect(error.code).toBe('timeout');
    expect(Date.now() - started).toBeLessThan(2_500);
  });

  it('FETCH-01: a resolver that never answers is cut at the timeout', async () => {
    const get = createHttpGet({ resolve: () => new Promise(() => {}) });
    const error = await failure(get('https://idp.example.com/', { ...STRICT, timeoutMs: 200 }));
    expect(error.code).toBe('timeout');
  });

  it('FETCH-02: a huge chunked body with no length is cut past maxBytes', async () => {
    idp.setBehavior('/huge', { kind: 'huge', bytes: 20 * 1024 * 1024, contentLength: null });
    const error = await failure(httpGet(`${idp.issuer}/huge`, { ...LOOPBACK, maxBytes: 256 * 1024 }));
    expect(error.code).toBe('too_large');
  });

  it('FETCH-02: a body larger than its (lying) content-length cannot get past the cap', async () => {
    idp.setBehavior('/lie', { kind: 'huge', bytes: 600 * 1024, contentLength: 100 });
    const result = await httpGet(`${idp.issuer}/lie`, { ...LOOPBACK, maxBytes: 256 * 1024 }).catch(
      (error: unknown) => error,
    );
    if (result instanceof FetchError) expect(['too_large', 'network']).toContain(result.code);
    else expect((result as { body: string }).body.length).toBeLessThanOrEqual(100);
  });

  it('FETCH-02: an announced content-length above the cap is refused before the body', async () => {
    idp.setBehavior('/big', { kind: 'huge', bytes: 1024, contentLength: 1024 ** 3 });
    const error = await failure(httpGet(`${idp.issuer}/big`, { ...LOOPBACK, maxBytes: 256 * 1024 }));
    expect(error.code).toBe('too_large');
  });

  it('FETCH-02: a body of exactly maxBytes is accepted, one more byte is not', async () => {
    idp.setBehavior('/exact', { kind: 'huge', bytes: 1000 });
    expect((await httpGet(`${idp.issuer}/exact`, { ...LOOPBACK, maxBytes: 1000 })).body).toHaveLength(1000);
    expect((await failure(httpGet(`${idp.issuer}/exact`, { ...LOOPBACK, maxBytes: 999 }))).code).toBe(
      'too_large',
    );
  });

  it('FETCH-02: a gzip-encoded answer (gzip bomb) is refused, never decoded', async () => {
    idp.setBehavior('jwks', { kind: 'gzip' });
    const error = await failure(httpGet(idp.jwksUrl, LOOPBACK));
    expect(error.code).toBe('http_status');
  });
});

describe('fetch: per-identity CA (SSRF-08)', () => {
  let certs: TestCertificates;
  let idp: TestIdp;
  beforeAll(async () => {
    certs = await createTestCertificates({ hosts: ['127.0.0.1', 'localhost', 'idp.test'] });
    idp = await startTestIdp({ tls: certs });
  });
  afterAll(() => idp.close());

  it('SSRF-08: an https IdP signed by a private CA works with caCert', async () => {
    const result = await httpGet(idp.discoveryUrl, { ...LOOPBACK, caCert: certs.caCert });
    expect(result.status).toBe(200);
    expect(JSON.parse(result.body).issuer).toBe(idp.issuer);
  });

  it('SSRF-08: without caCert (system CAs) the same IdP fails with a tls error', async () => {
    const error = await failure(httpGet(idp.discoveryUrl, LOOPBACK));
    expect(error.code).toBe('tls');
  });

  it('SSRF-08: the CA applies to its own requests only, and another CA does not verify', async () => {
    await httpGet(idp.discoveryUrl, { ...LOOPBACK, caCert: certs.caCert });
    expect((await failure(httpGet(idp.discoveryUrl, LOOPBACK))).code).toBe('tls');
    const other = await createTestCertificates();
    expect((await failure(httpGet(idp.discoveryUrl, { ...LOOPBACK, caCert: other.caCert }))).code).toBe(
      'tls',
    );
  });

  it('SSRF-08: with a pinned address, the certificate is checked against the host name (SNI)', async () => {
    const { resolve } = fakeResolver({ 'idp.test': ['127.0.0.1'], 'other.test': ['127.0.0.1'] });
    const get = createHttpGet({ resolve });
    const options = { ...LOOPBACK, caCert: certs.caCert };
    expect((await get(`https://idp.test:${idp.port}/.well-known/openid-configuration`, options)).status).toBe(
      200,
    );
    expect((await failure(get(`https://other.test:${idp.port}/`, options))).code).toBe('tls');
  });

  it('SSRF-08: https to loopback needs allowInsecureLoopback even with a CA (loopback is a test-only opt-in)', async () => {
    const error = await failure(
      httpGet(idp.discoveryUrl, { ...STRICT, allowPrivateNetwork: true, caCert: certs.caCert }),
    );
    expect(error.code).toBe('blocked_address');
  });
});
