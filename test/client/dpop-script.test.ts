import { execFile } from 'node:child_process';
import { createHash, generateKeyPairSync, sign } from 'node:crypto';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { calculateJwkThumbprint, decodeJwt, EmbeddedJWK, jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStandInServer, type StandInServer } from './servers.js';

/**
 * examples/ci/dpop/dpop-proof.sh and dpop-curl.sh, run as a pipeline step runs them (bash, openssl,
 * curl), their proofs checked by jose and by express-oauth2-jwt-bearer's DPoP mode.
 */
const DIR = fileURLToPath(new URL('../../examples/ci/dpop/', import.meta.url));
const PROOF = join(DIR, 'dpop-proof.sh');
const CURL = join(DIR, 'dpop-curl.sh');

let scratch = '';
let env: NodeJS.ProcessEnv = {};

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function run(
  script: string,
  args: string[],
  options: { env?: NodeJS.ProcessEnv; input?: string; encoding?: 'utf8' | 'buffer' } = {},
): Promise<Run & { raw: Buffer }> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      'bash',
      [script, ...args],
      { env: { ...env, ...options.env }, encoding: 'buffer', timeout: 30_000 },
      (error, stdout, stderr) => {
        if (error && typeof error.code !== 'number') return reject(error);
        resolve({
          code: error ? (error.code as number) : 0,
          stdout: stdout.toString('utf8'),
          stderr: stderr.toString('utf8'),
          raw: stdout,
        });
      },
    );
    // A script that refuses its arguments exits before it reads stdin: the pipe is then closed
    // (EPIPE), which is the script's answer, not a test error; its exit code and stderr are asserted.
    child.stdin!.on('error', ignoreClosedPipe);
    child.stdin!.end(options.input ?? '');
  });
}

function ignoreClosedPipe(error: NodeJS.ErrnoException): void {
  if (error.code !== 'EPIPE') throw error;
}

const proofOf = async (...args: string[]) => {
  const result = await run(PROOF, args);
  expect(result.stderr).toBe('');
  expect(result.code).toBe(0);
  return result.stdout.trim();
};

beforeAll(() => {
  scratch = mkdtempSync(join(tmpdir(), 'dpop-script-'));
  env = { PATH: process.env.PATH, DPOP_KEY_FILE: join(scratch, 'dpop-key.pem') };
});
afterAll(() => {
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

describe('examples/ci/dpop/dpop-proof.sh (bash + openssl)', () => {
  it('RFC 9449 §4.2: its proof verifies with jose EmbeddedJWK: typ dpop+jwt, ES256, a public P-256 jwk, the claims asked for', async () => {
    const token = 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln';
    const before = Math.floor(Date.now() / 1000);
    const proof = await proofOf('GET', 'https://API.example.com/secrets/x?env=prod#top', token, 'nonce-1');
    const { protectedHeader, payload } = await jwtVerify(proof, EmbeddedJWK, {
      typ: 'dpop+jwt',
      algorithms: ['ES256'],
    });
    expect(protectedHeader).toEqual({
      typ: 'dpop+jwt',
      alg: 'ES256',
      jwk: { kty: 'EC', crv: 'P-256', x: expect.any(String), y: expect.any(String) },
    });
    expect(payload).toEqual({
      jti: expect.any(String),
      htm: 'GET',
      htu: 'https://api.example.com/secrets/x',
      iat: expect.any(Number),
      ath: createHash('sha256').update(token).digest('base64url'),
      nonce: 'nonce-1',
    });
    expect(payload.iat).toBeGreaterThanOrEqual(before);
    expect(Buffer.from(payload.jti!, 'base64url')).toHaveLength(16);
    expect(proof).not.toContain(token);
  });

  it('makes the key once per job with mode 600, and every proof after uses it; jkt prints its RFC 7638 thumbprint', async () => {
    const a = await jwtVerify(await proofOf('POST', 'https://a.example/login'), EmbeddedJWK);
    const b = await jwtVerify(await proofOf('POST', 'https://a.example/login'), EmbeddedJWK);
    expect(a.protectedHeader.jwk).toEqual(b.protectedHeader.jwk);
    expect(a.payload.jti).not.toBe(b.payload.jti);
    expect(a.payload).not.toHaveProperty('ath');
    expect(statSync(env.DPOP_KEY_FILE!).mode & 0o777).toBe(0o600);
    expect(await proofOf('jkt')).toBe(await calculateJwkThumbprint(a.protectedHeader.jwk!));
  });

  it('takes the access token from DPOP_ACCESS_TOKEN, so it need not be an argument', async () => {
    const result = await run(PROOF, ['GET', 'https://a.example/r'], {
      env: { DPOP_ACCESS_TOKEN: 'tok-env' },
    });
    expect(decodeJwt(result.stdout.trim()).ath).toBe(
      createHash('sha256').update('tok-env').digest('base64url'),
    );
  });

  it('RFC 9449 §4.2: htu is the WHATWG form: lower-case scheme and host, default port dropped, "/" for an empty path', async () => {
    expect(decodeJwt(await proofOf('GET', 'HTTPS://Api.Example.com:443')).htu).toBe(
      'https://api.example.com/',
    );
    expect(decodeJwt(await proofOf('GET', 'http://127.0.0.1:8080/a%20b?q')).htu).toBe(
      'http://127.0.0.1:8080/a%20b',
    );
  });

  it.each<[string, string[]]>([
    ['a lower-case method', ['get', 'https://a.example/']],
    ['a relative URL', ['GET', '/x']],
    ['a URL with a quote (it would break the JSON)', ['GET', 'https://a.example/"x']],
    ['a nonce with a quote (not NQCHAR, RFC 9449 §8.1)', ['GET', 'https://a.example/', '', 'a"b']],
    ['too many arguments', ['GET', 'https://a.example/', 't', 'n', 'x']],
  ])('refuses %s: exit 2, a message, no proof', async (_name, args) => {
    const result = await run(PROOF, args);
    expect(result.code).toBe(2);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(/^dpop-proof\.sh: /);
  });

  it('RFC 7518 §3.4: der-to-jose turns DER ECDSA signatures into 64-byte r||s, including short and sign-padded integers', async () => {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    // Signatures whose r or s has a leading zero byte (DER drops it) or a high bit (DER adds 00).
    const wanted = { shortR: false, shortS: false, longR: false, longS: false };
    const cases: Array<{ der: Buffer; raw: Buffer }> = [];
    for (let i = 0; i < 20_000 && Object.values(wanted).includes(false); i++) {
      const data = Buffer.from(`message ${i}`);
      const raw = sign('sha256', data, { key: privateKey, dsaEncoding: 'ieee-p1363' });
      const kinds = {
        shortR: raw[0] === 0,
        shortS: raw[32] === 0,
        longR: raw[0]! >= 0x80,
        longS: raw[32]! >= 0x80,
      };
      const kind = (Object.keys(kinds) as Array<keyof typeof kinds>).find((k) => kinds[k] && !wanted[k]);
      if (!kind) continue;
      wanted[kind] = true;
      cases.push({ der: p1363ToDer(raw), raw });
    }
    expect(wanted).toEqual({ shortR: true, shortS: true, longR: true, longS: true });
    for (const { der, raw } of cases) {
      const result = await new Promise<Buffer>((resolve, reject) => {
        const child = execFile(
          'bash',
          [PROOF, 'der-to-jose'],
          { env, encoding: 'buffer' },
          (error, stdout) => (error ? reject(error) : resolve(stdout)),
        );
        child.stdin!.on('error', ignoreClosedPipe);
        child.stdin!.end(der);
      });
      expect(result.toString('hex')).toBe(raw.toString('hex'));
    }
  });
});

/** The DER ECDSA-Sig-Value of a raw r||s signature (what openssl dgst -sign prints). */
function p1363ToDer(raw: Buffer): Buffer {
  const integer = (bytes: Buffer) => {
    let i = 0;
    while (i < bytes.length - 1 && bytes[i] === 0) i++;
    let value = bytes.subarray(i);
    if (value[0]! >= 0x80) value = Buffer.concat([Buffer.from([0]), value]);
    return Buffer.concat([Buffer.from([0x02, value.length]), value]);
  };
  const body = Buffer.concat([integer(raw.subarray(0, 32)), integer(raw.subarray(32))]);
  return Buffer.concat([Buffer.from([0x30, body.length]), body]);
}

describe('the scripts against express-oauth2-jwt-bearer in DPoP mode', () => {
  let server: StandInServer;
  beforeAll(async () => {
    server = await startStandInServer();
  });
  afterAll(() => server?.close());

  it('RFC 9449 §7.1: a dpop-proof.sh proof for a token bound to its jkt passes the guard; the same token with a proof from another key does not', async () => {
    const accessToken = await server.mintAccessToken(await proofOf('jkt'));
    const url = `${server.url}/resource?page=1`;
    const proof = await proofOf('GET', url, accessToken);
    const ok = await fetch(url, { headers: { authorization: `DPoP ${accessToken}`, dpop: proof } });
    expect(ok.status).toBe(200);

    const other = await run(PROOF, ['GET', url, accessToken], {
      env: { DPOP_KEY_FILE: join(scratch, 'other-key.pem') },
    });
    const refused = await fetch(url, {
      headers: { authorization: `DPoP ${accessToken}`, dpop: other.stdout.trim() },
    });
    expect(refused.status).toBe(401);
  });

  it('RFC 9449 §5, §7.1: dpop-curl.sh logs in with a proof (body from stdin), then calls the guard with Authorization: DPoP', async () => {
    const body = JSON.stringify({ identityId: 'deployer', jwt: await server.mintIdpToken() });
    const login = await run(
      CURL,
      ['POST', `${server.authUrl}/oidc-auth/login`, '-H', 'content-type: application/json'],
      {
        input: body,
      },
    );
    expect(login.code).toBe(0);
    const grant = JSON.parse(login.stdout) as { accessToken: string; tokenType: string };
    expect(grant.tokenType).toBe('DPoP');
    expect(decodeJwt(grant.accessToken).cnf).toEqual({ jkt: await proofOf('jkt') });

    const call = await run(CURL, ['GET', `${server.url}/resource`], {
      env: { DPOP_ACCESS_TOKEN: grant.accessToken },
    });
    expect(call).toMatchObject({ code: 0, stderr: '' });
    expect(JSON.parse(call.stdout)).toEqual({ sub: 'deployer', method: 'GET' });
  });

  it('RFC 9449 §8: dpop-curl.sh answers the login route’s use_dpop_nonce with one retry carrying the nonce', async () => {
    server.requireNonce = 'script-nonce-1';
    try {
      const body = JSON.stringify({ identityId: 'deployer', jwt: await server.mintIdpToken() });
      server.proofs.length = 0;
      const login = await run(
        CURL,
        ['POST', `${server.authUrl}/oidc-auth/login`, '-H', 'content-type: application/json'],
        {
          input: body,
          env: { DPOP_KEY_FILE: join(scratch, 'nonce-key.pem') },
        },
      );
      expect(login.code).toBe(0);
      expect(JSON.parse(login.stdout).tokenType).toBe('DPoP');
      expect(server.proofs.map((p) => p.claims.nonce)).toEqual([undefined, 'script-nonce-1']);
    } finally {
      server.requireNonce = undefined;
    }
  });

  it('dpop-curl.sh exits 22 on a refusal and prints the status and the error body on stderr, never the token', async () => {
    const accessToken = await server.mintAccessToken('not-this-key-thumbprint');
    const call = await run(CURL, ['GET', `${server.url}/resource`], {
      env: { DPOP_ACCESS_TOKEN: accessToken },
    });
    expect(call.code).toBe(22);
    expect(call.stdout).toBe('');
    expect(call.stderr).toMatch(/^dpop-curl\.sh: HTTP 401\n/);
    expect(call.stderr).not.toContain(accessToken);
  });
});

describe('examples/ci/dpop/dpop-curl.sh and server nonces (RFC 9449 §9, §8.2)', () => {
  it('RFC 9449 §9: a 401 DPoP use_dpop_nonce is answered by one retry with the nonce; the nonce is kept for the next call', async () => {
    const seen: Array<unknown> = [];
    const rs = http.createServer((req, res) => {
      const nonce = decodeJwt(String(req.headers.dpop)).nonce;
      seen.push(nonce);
      if (nonce === 'rs-1') res.writeHead(200, { 'content-type': 'text/plain' }).end('secret-value');
      else
        res.writeHead(401, { 'www-authenticate': 'DPoP error="use_dpop_nonce"', 'dpop-nonce': 'rs-1' }).end();
    });
    await new Promise<void>((resolve) => rs.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(rs.address() as AddressInfo).port}/secrets/x`;
    const keyEnv = { DPOP_KEY_FILE: join(scratch, 'rs-key.pem'), DPOP_ACCESS_TOKEN: 'tok' };
    try {
      const first = await run(CURL, ['GET', url], { env: keyEnv });
      expect(first).toMatchObject({ code: 0, stdout: 'secret-value' });
      const second = await run(CURL, ['GET', url], { env: keyEnv });
      expect(second).toMatchObject({ code: 0, stdout: 'secret-value' });
      expect(seen).toEqual([undefined, 'rs-1', 'rs-1']);
    } finally {
      await new Promise((resolve) => rs.close(resolve));
    }
  });
});
