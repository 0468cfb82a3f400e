import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Path of the `openssl` CLI used to mint test certificates. */
export const OPENSSL = process.env.OPENSSL_BIN ?? '/usr/bin/openssl';

/** A throwaway CA and a server certificate it signed. Everything is PEM. */
export interface TestCertificates {
  /** The CA certificate: pass it as an identity's `caCert` to trust the server. */
  caCert: string;
  /** The server certificate (leaf only). */
  cert: string;
  /** The server's private key (PKCS#8). */
  key: string;
}

/** Options of {@link createTestCertificates}. */
export interface TestCertificateOptions {
  /** Subject alternative names of the server certificate. Default `['127.0.0.1', '::1', 'localhost']`. */
  hosts?: readonly string[];
  /** Validity in days. Default 2. */
  days?: number;
}

/**
 * Mint a fresh CA (EC P-256) and a server certificate for loopback hosts with the `openssl` CLI,
 * in a temporary directory that is removed before returning. Nothing is installed anywhere: a test
 * trusts the CA only by passing `caCert` to the code under test.
 *
 * ```ts
 * const certs = await createTestCertificates();
 * const idp = await startTestIdp({ tls: certs });
 * // config: { oidcDiscoveryUrl: idp.issuer, caCert: certs.caCert, allowInsecureLoopback: true }
 * ```
 */
export async function createTestCertificates(
  options: TestCertificateOptions = {},
): Promise<TestCertificates> {
  const hosts = options.hosts ?? ['127.0.0.1', '::1', 'localhost'];
  const days = String(options.days ?? 2);
  const dir = await mkdtemp(join(tmpdir(), 'oidc-test-certs-'));
  const file = (name: string) => join(dir, name);
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  try {
    await run(OPENSSL, [
      'req',
      '-x509',
      ...ec,
      '-keyout',
      file('ca.key'),
      '-out',
      file('ca.pem'),
      '-days',
      days,
      '-subj',
      '/CN=oidc-machine-auth test CA',
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
    ]);
    await run(OPENSSL, [
      'req',
      ...ec,
      '-keyout',
      file('server.key'),
      '-out',
      file('server.csr'),
      '-subj',
      `/CN=${hosts[0] ?? 'localhost'}`,
    ]);
    const san = hosts.map((host) => (/^[\d.]+$|:/.test(host) ? `IP:${host}` : `DNS:${host}`)).join(',');
    await writeFile(
      file('server.ext'),
      [
        `subjectAltName=${san}`,
        'basicConstraints=critical,CA:FALSE',
        'keyUsage=critical,digitalSignature',
        'extendedKeyUsage=serverAuth',
        '',
      ].join('\n'),
    );
    await run(OPENSSL, [
      'x509',
      '-req',
      '-in',
      file('server.csr'),
      '-CA',
      file('ca.pem'),
      '-CAkey',
      file('ca.key'),
      '-CAcreateserial',
      '-out',
      file('server.pem'),
      '-days',
      days,
      '-extfile',
      file('server.ext'),
    ]);
    const [caCert, cert, key] = await Promise.all(
      ['ca.pem', 'server.pem', 'server.key'].map((name) => readFile(file(name), 'utf8')),
    );
    return { caCert: caCert!, cert: cert!, key: key! };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
