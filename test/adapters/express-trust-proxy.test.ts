import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { oidcAuthRouter, requireAccessToken } from '../../adapters/express/index.js';
import { makeEngine, type TestEngine } from '../helpers/engine.js';
import { getWith, postJson } from '../helpers/http.js';
import { githubClaims, sign } from '../helpers/jwt.js';

/**
 * What the README's Express section says about `trust proxy`, on real Express: the adapter takes
 * `req.ip`, so Express's setting decides which `X-Forwarded-For` hop is the client. With `true`,
 * Express believes the left-most hop, which the client writes, and a spoofed
 * `X-Forwarded-For: 10.1.1.1, 8.8.8.8` passes a `10.0.0.0/8` trusted-IP list; a hop count or the
 * proxies' addresses take the hop the proxy appended. The requests come from 127.0.0.1, standing in
 * for a reverse proxy on the same host that appended the real client, 8.8.8.8.
 */

const SPOOFED = ['x-forwarded-for', '10.1.1.1, 8.8.8.8'];

type TrustProxy = boolean | number | string | string[];

let e: TestEngine;
const servers = new Map<string, { url: string; close: () => Promise<void> }>();

async function serve(setting: TrustProxy | undefined): Promise<string> {
  const name = JSON.stringify(setting ?? null);
  const running = servers.get(name);
  if (running) return running.url;
  const app = express();
  if (setting !== undefined) app.set('trust proxy', setting);
  app.use('/api/v1/auth', oidcAuthRouter(e.auth));
  app.get('/api/v3/secrets/raw', requireAccessToken(e.auth), (req, res) => {
    res.json({ clientIp: req.auth!.clientIp });
  });
  const server = app.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  servers.set(name, { url, close: () => new Promise<void>((resolve) => server.close(() => resolve())) });
  return url;
}

async function login(setting: TrustProxy | undefined, forwardedFor: string[]) {
  const jwt = await sign(e.key, githubClaims(e.clock.ms));
  return postJson(await serve(setting), '/api/v1/auth/oidc-auth/login', { identityId: 'gh-deployer', jwt }, [
    ...forwardedFor,
  ]);
}

beforeAll(() => {
  e = makeEngine({ identity: { accessTokenTrustedIps: '10.0.0.0/8' } });
});

afterAll(async () => {
  for (const server of servers.values()) await server.close();
  await e.auth.close();
});

describe('#13.11 Express trust proxy', () => {
  it("#13.11 Express trust proxy: with `true` Express takes the left-most X-Forwarded-For hop, so a spoofed '10.1.1.1, 8.8.8.8' passes a 10.0.0.0/8 identity", async () => {
    const answer = await login(true, SPOOFED);
    expect(answer.status).toBe(200);
    const guarded = await getWith(await serve(true), '/api/v3/secrets/raw', [
      'authorization',
      `Bearer ${answer.json.accessToken}`,
      ...SPOOFED,
    ]);
    expect(guarded.status).toBe(200);
    expect(guarded.json).toEqual({ clientIp: '10.1.1.1' });
  });

  it.each<[string, TrustProxy | undefined]>([
    ['hop count 1', 1],
    ["'loopback'", 'loopback'],
    ['a proxy subnet list', ['loopback', '10.0.1.0/24']],
    ['unset (X-Forwarded-For ignored)', undefined],
  ])(
    '#13.11 Express trust proxy: with %s the spoof is refused (403 ip_not_allowed) at login and on the guard',
    async (_name, setting) => {
      const refused = await login(setting, SPOOFED);
      expect(refused.status).toBe(403);
      expect(refused.json.reasonCode).toBe('ip_not_allowed');

      // A token obtained legitimately (a 10.x client behind one proxy), then used with the spoof.
      const granted = await login(1, ['x-forwarded-for', '10.2.3.4']);
      expect(granted.status).toBe(200);
      const guarded = await getWith(await serve(setting), '/api/v3/secrets/raw', [
        'authorization',
        `Bearer ${granted.json.accessToken}`,
        ...SPOOFED,
      ]);
      expect(guarded.status).toBe(403);
      expect(guarded.json.reasonCode).toBe('ip_not_allowed');
    },
  );

  it('#13.11 Express trust proxy: with hop count 1 the address the proxy appended is the client (a 10.x client behind it logs in)', async () => {
    const answer = await login(1, ['x-forwarded-for', '10.2.3.4']);
    expect(answer.status).toBe(200);
    const guarded = await getWith(await serve(1), '/api/v3/secrets/raw', [
      'authorization',
      `Bearer ${answer.json.accessToken}`,
      'x-forwarded-for',
      '203.0.113.9, 10.2.3.4',
    ]);
    expect(guarded.json).toEqual({ clientIp: '10.2.3.4' });
  });

  it("#13.11 Express trust proxy: the README's Express section warns against `true` with this spoof and shows the hop-count and subnet settings", () => {
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    const start = readme.search(/^## .*Express/m);
    expect(start).toBeGreaterThanOrEqual(0);
    const end = readme.indexOf('\n## ', start + 1);
    const section = readme.slice(start, end < 0 ? undefined : end);
    expect(section).toMatch(/never[^.]*`app\.set\('trust proxy', true\)`/i);
    expect(section).toContain('10.1.1.1, 8.8.8.8');
    expect(section).toContain('`10.0.0.0/8`');
    expect(section).toContain("app.set('trust proxy', 1)");
    expect(section).toMatch(/app\.set\('trust proxy', \['loopback', /);
  });
});
