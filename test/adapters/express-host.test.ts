import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import express, { type Request } from 'express';
import { SignJWT, exportJWK, generateKeyPair, type CryptoKey, type JWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { oidcAuthRouter, requireAccessToken } from '../../adapters/express/index.js';
import { dpopOf } from '../../adapters/express/oauth.js';
import { createOidcAuth, platformDpopRequest, type OidcAuth } from '../../src/index.js';
import { accessTokenHash } from '../../src/tokens/dpop.js';
import { FakeClock, SIGNING_KEYS, githubIdentity } from '../helpers/engine.js';
import { answerClientErrors, getWith, postJson, type RawResponse } from '../helpers/http.js';
import { githubClaims, makeKey, seconds, sign } from '../helpers/jwt.js';

/**
 * RFC 9449 §4.3 step 9 compares a proof's `htu` with the request URL, port included. Express 5's
 * `req.host` keeps the port; Express 4's is the deprecated `req.hostname`, which drops it, so the
 * adapter computes the authority itself, as Express 5's `req.host` does, with the app's own
 * `trust proxy fn` (the same setting on Express 4 and 5). Express 4 is not installed here: an
 * Express 5 app whose `req.host` is made Express 4's (`req.hostname`) stands in for it.
 */

const LOGIN = '/api/v1/auth/oidc-auth/login';
const SECRETS = '/api/v3/secrets/raw';
const idpKey = makeKey('RS256');
const clock = new FakeClock(Date.now());
let auth: OidcAuth;
let proofKey: { privateKey: CryptoKey; jwk: JWK };
const closers: Array<() => Promise<void>> = [];

beforeAll(async () => {
  auth = createOidcAuth({
    identities: [githubIdentity(idpKey)],
    signingKeys: SIGNING_KEYS,
    clock: clock.now,
  });
  const pair = await generateKeyPair('ES256', { extractable: true });
  proofKey = { privateKey: pair.privateKey, jwk: await exportJWK(pair.publicKey) };
});
afterAll(async () => {
  for (const close of closers) await close();
  await auth?.close();
});

/** An Express app with the auth routes, a guarded route, and `/probe` answering what the adapter sees. */
async function serve(options: { trustProxy?: string; express4Host?: boolean }): Promise<string> {
  const app = express();
  if (options.trustProxy !== undefined) app.set('trust proxy', options.trustProxy);
  if (options.express4Host) {
    // Express 4.21's `req.host` (its `req.hostname`): the trusted X-Forwarded-Host or Host, port dropped.
    Object.defineProperty(app.request, 'host', {
      configurable: true,
      get(this: Request) {
        const trust = this.app.get('trust proxy fn') as (address: string | undefined, hop: number) => boolean;
        let host = this.get('X-Forwarded-Host');
        if (!host || !trust(this.socket.remoteAddress, 0)) host = this.get('Host');
        else if (host.includes(',')) host = host.slice(0, host.indexOf(',')).trimEnd();
        if (!host) return undefined;
        const offset = host.startsWith('[') ? host.indexOf(']') + 1 : 0;
        const colon = host.indexOf(':', offset);
        return colon === -1 ? host : host.slice(0, colon);
      },
    });
  }
  app.get('/probe', (req, res) => void res.json({ host: req.host ?? null, url: dpopOf(req).url }));
  app.use('/api/v1/auth', oidcAuthRouter(auth));
  app.get(SECRETS, requireAccessToken(auth), (_req, res) => void res.json({ ok: true }));
  const server = answerClientErrors(app.listen(0, '127.0.0.1'));
  await new Promise((resolve) => server.once('listening', resolve));
  closers.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

const proof = (htm: string, htu: string, token?: string) =>
  new SignJWT({
    jti: randomUUID(),
    iat: seconds(clock.ms),
    htm,
    htu,
    ...(token ? { ath: accessTokenHash(token) } : {}),
  })
    .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk: proofKey.jwk })
    .sign(proofKey.privateKey);

/** Log in and call the guarded route with proofs naming `publicBase`; `headers` go on both requests. */
async function flow(base: string, publicBase: string, headers: string[] = []) {
  const login = await postJson(
    base,
    LOGIN,
    { identityId: 'gh-deployer', jwt: await sign(idpKey, githubClaims(clock.ms)) },
    ['dpop', await proof('POST', publicBase + LOGIN), ...headers],
  );
  if (login.status !== 200) return { login, use: undefined as RawResponse | undefined };
  const token = login.json.accessToken as string;
  const use = await getWith(base, `${SECRETS}?environment=prod`, [
    'authorization',
    `DPoP ${token}`,
    'dpop',
    await proof('GET', publicBase + SECRETS, token),
    ...headers,
  ]);
  return { login, use };
}

describe('RFC 9449 §4.3 step 9 on Express: the request authority keeps its port', () => {
  it('on Express 5 the URL a proof is checked against has exactly req.host, with trust proxy off and on', async () => {
    for (const trustProxy of [undefined, 'loopback']) {
      const base = await serve({ trustProxy });
      const port = new URL(base).port;
      const cases: Array<{ headers: string[]; trusted: string; untrusted: string }> = [
        { headers: [], trusted: `127.0.0.1:${port}`, untrusted: `127.0.0.1:${port}` },
        { headers: ['host', 'api.example:8443'], trusted: 'api.example:8443', untrusted: 'api.example:8443' },
        { headers: ['host', '[::1]:3000'], trusted: '[::1]:3000', untrusted: '[::1]:3000' },
        {
          headers: ['x-forwarded-host', 'secrets.example:8443'],
          trusted: 'secrets.example:8443',
          untrusted: `127.0.0.1:${port}`,
        },
        {
          headers: ['x-forwarded-host', 'first.example:1 , second.example:2'],
          trusted: 'first.example:1',
          untrusted: `127.0.0.1:${port}`,
        },
        { headers: ['x-forwarded-host', ''], trusted: `127.0.0.1:${port}`, untrusted: `127.0.0.1:${port}` },
      ];
      for (const c of cases) {
        const res = await getWith(base, '/probe?q=1', c.headers);
        const expected = trustProxy ? c.trusted : c.untrusted;
        expect(res.json.host, JSON.stringify(c.headers)).toBe(expected);
        expect(res.json.url).toBe(`http://${expected}/probe`);
      }
    }
  });

  it('on an Express whose req.host drops the port (Express 4), the URL keeps it: proofs naming host:port pass', async () => {
    const base = await serve({ express4Host: true });
    // The stand-in does what Express 4 does: req.host without the port.
    const probe = await getWith(base, '/probe');
    expect(probe.json.host).toBe('127.0.0.1');
    expect(probe.json.url).toBe(`${base}/probe`);
    const { login, use } = await flow(base, base);
    expect(login.status).toBe(200);
    expect(use?.status).toBe(200);
    // A proof naming the host without the port names another URL.
    const portless = await flow(base, 'http://127.0.0.1');
    expect(portless.login.status).toBe(400);
    expect(portless.login.json.reasonCode).toBe('invalid_dpop_proof');
  });

  it('on Express 4 behind a trusted proxy, X-Forwarded-Host counts with its port; untrusted, it is ignored', async () => {
    const forwarded = ['x-forwarded-proto', 'https', 'x-forwarded-host', 'secrets.example:8443'];
    const trusted = await serve({ express4Host: true, trustProxy: 'loopback' });
    const ok = await flow(trusted, 'https://secrets.example:8443', forwarded);
    expect(ok.login.status).toBe(200);
    expect(ok.use?.status).toBe(200);
    const untrusted = await serve({ express4Host: true });
    const spoofed = await flow(untrusted, 'https://secrets.example:8443', forwarded);
    expect(spoofed.login.status).toBe(400);
    expect(spoofed.login.json.reasonCode).toBe('invalid_dpop_proof');
  });

  it('platformDpopRequest (Passport, NestJS) reads an Express 4 request the same way; a Fastify one by its host', () => {
    const express4 = (trusted: boolean, headers: Record<string, string>) => ({
      method: 'GET',
      protocol: 'http',
      host: 'api.example', // Express 4's req.host: no port
      originalUrl: '/x?y=1',
      headers: { host: 'api.example:8080', ...headers },
      socket: { remoteAddress: '127.0.0.1' },
      app: { get: (setting: string) => (setting === 'trust proxy fn' ? () => trusted : undefined) },
    });
    expect(platformDpopRequest(express4(false, {})).url).toBe('http://api.example:8080/x');
    expect(platformDpopRequest(express4(false, { 'x-forwarded-host': 'evil.example' })).url).toBe(
      'http://api.example:8080/x',
    );
    expect(platformDpopRequest(express4(true, { 'x-forwarded-host': 'pub.example:9443' })).url).toBe(
      'http://pub.example:9443/x',
    );
    const fastify = { method: 'GET', protocol: 'https', host: 'api.example:8443', url: '/x', headers: {} };
    expect(platformDpopRequest(fastify).url).toBe('https://api.example:8443/x');
    const bare = { method: 'GET', url: '/x', headers: { host: 'api.example:81' }, socket: {} };
    expect(platformDpopRequest(bare).url).toBe('http://api.example:81/x');
  });
});
