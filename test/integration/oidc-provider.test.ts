import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createSecretsApp, listen } from '../../examples/secrets-api/app.js';
import { IDENTITY_ID, WORKSPACE_SLUG, pipelineIdentity } from '../../examples/secrets-api/identity.js';
import { startIdp, type DemoIdp } from '../../examples/secrets-api/idp.js';
import { PIPELINE_STEP_FILE, hasPipelineTools } from '../../examples/secrets-api/pipeline.js';
import { createOidcAuth, type OidcAuth, type OidcAuthOptions } from '../../src/index.js';
import type { IdentityConfigInput } from '../../src/types.js';
import { request, type RawResponse } from '../helpers/http.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const DATABASE_URL = 'postgres://payments:demo-only@db.prod.internal:5432/payments';

interface TestApp {
  url: string;
  auth: OidcAuth;
  close(): Promise<void>;
}

/** A settable clock starting at the real time (the IdP's tokens carry real `iat`/`exp`). */
class Clock {
  ms = Date.now();
  now = () => this.ms;
  advance(seconds: number): void {
    this.ms += seconds * 1000;
  }
}

const open: TestApp[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((app) => app.close()));
});

async function startApp(
  idp: DemoIdp,
  identity: Partial<IdentityConfigInput> = {},
  options: Partial<OidcAuthOptions> = {},
): Promise<TestApp> {
  const auth = createOidcAuth({
    identities: [pipelineIdentity(idp.issuer, identity)],
    signingKeys: { k1: 'an-integration-test-signing-secret-of-32-bytes+' },
    ...options,
  });
  const server = await listen(createSecretsApp({ auth }));
  const app = {
    url: server.url,
    auth,
    async close() {
      await server.close();
      await auth.close();
    },
  };
  open.push(app);
  return app;
}

function form(fields: Record<string, string>): { headers: string[]; body: string } {
  const body = new URLSearchParams(fields).toString();
  return {
    headers: [
      'content-type',
      'application/x-www-form-urlencoded',
      'content-length',
      String(Buffer.byteLength(body)),
    ],
    body,
  };
}

function json(value: unknown): { headers: string[]; body: string } {
  const body = JSON.stringify(value);
  return {
    headers: ['content-type', 'application/json', 'content-length', String(Buffer.byteLength(body))],
    body,
  };
}

/** Login as the pipeline does (form-urlencoded), optionally from another loopback address. */
const login = (app: TestApp, jwt: string, localAddress?: string) =>
  request(app.url, 'POST', '/api/v1/auth/oidc-auth/login', {
    ...form({ identityId: IDENTITY_ID, jwt }),
    localAddress,
  });

const renew = (app: TestApp, accessToken: string) =>
  request(app.url, 'POST', '/api/v1/auth/token/renew', json({ accessToken }));

const revoke = (app: TestApp, accessToken: string) =>
  request(app.url, 'POST', '/api/v1/auth/token/revoke', json({ accessToken }));

const secrets = (
  app: TestApp,
  accessToken: string,
  query = `environment=prod&workspaceSlug=${WORKSPACE_SLUG}`,
) =>
  request(app.url, 'GET', `/api/v3/secrets/raw?${query}`, {
    headers: ['authorization', `Bearer ${accessToken}`],
  });

async function loggedIn(app: TestApp, idp: DemoIdp): Promise<string> {
  const answer = await login(app, await idp.token());
  expect(answer.status).toBe(200);
  return answer.json.accessToken as string;
}

function expectRefusal(answer: RawResponse, status: number, reasonCode: string): void {
  expect({ status: answer.status, reasonCode: answer.json?.reasonCode }).toEqual({ status, reasonCode });
}

let idp: DemoIdp;
beforeAll(async () => {
  idp = await startIdp();
});
afterAll(async () => {
  await idp?.close();
});

describe('login against a real OpenID provider (oidc-provider on loopback)', () => {
  it('happy path: an Azure-like token logs in (form and JSON) and reads the secrets', async () => {
    const app = await startApp(idp);
    const jwt = await idp.token();

    const viaForm = await login(app, jwt);
    expect(viaForm.status).toBe(200);
    expect(viaForm.json).toEqual({
      accessToken: expect.stringMatching(/^omat_/),
      expiresIn: 600,
      accessTokenMaxTTL: 3600,
      tokenType: 'Bearer',
    });
    expect(viaForm.headers['cache-control']).toBe('no-store');

    const viaJson = await request(
      app.url,
      'POST',
      '/api/v1/auth/oidc-auth/login',
      json({ identityId: IDENTITY_ID, jwt, organizationSlug: '' }),
    );
    expect(viaJson.status).toBe(200);

    const read = await secrets(app, viaForm.json.accessToken);
    expect(read.status).toBe(200);
    expect(read.json.secrets).toContainEqual(
      expect.objectContaining({ secretKey: 'DATABASE_URL', secretValue: DATABASE_URL, environment: 'prod' }),
    );

    const context = await app.auth.authenticate(viaForm.json.accessToken, { clientIp: '127.0.0.1' });
    expect(context).toMatchObject({
      identityId: IDENTITY_ID,
      issuer: idp.issuer,
      metadata: { workspaces: [WORKSPACE_SLUG], servicePrincipal: '0a1b2c3d-4e5f-4607-8192-a3b4c5d6e7f8' },
    });
  });

  it('the secrets route: 400 on a missing or unknown environment or workspace, 403 on a workspace not granted', async () => {
    const app = await startApp(idp);
    const token = await loggedIn(app, idp);
    expect((await secrets(app, token, `workspaceSlug=${WORKSPACE_SLUG}`)).status).toBe(400);
    expect((await secrets(app, token, `environment=qa&workspaceSlug=${WORKSPACE_SLUG}`)).status).toBe(400);
    expect((await secrets(app, token, 'environment=prod')).status).toBe(400);
    expectRefusal(
      await secrets(app, token, 'environment=prod&workspaceSlug=billing-worker'),
      403,
      'forbidden',
    );
    expectRefusal(
      await secrets(app, token, 'environment=prod&workspaceSlug=no-such-workspace'),
      403,
      'forbidden',
    );
    expect((await secrets(app, token, 'environment=prod&workspaceSlug=payments-api')).status).toBe(200);
  });

  it('TOK-07: renewals extend by the TTL and never past the max TTL, then max_ttl_reached', async () => {
    const clock = new Clock();
    const app = await startApp(idp, { accessTokenTTL: 60, accessTokenMaxTTL: 150 }, { clock: clock.now });
    const first = await login(app, await idp.token());
    expect(first.json.expiresIn).toBe(60);
    expect(first.json.accessTokenMaxTTL).toBe(150);

    clock.advance(50);
    const second = await renew(app, first.json.accessToken);
    expect(second.status).toBe(200);
    expect(second.json.expiresIn).toBe(60);

    clock.advance(50);
    const third = await renew(app, second.json.accessToken);
    expect(third.status).toBe(200);
    expect(third.json.expiresIn).toBe(50); // capped: created + 150 s

    clock.advance(45);
    expect((await secrets(app, third.json.accessToken)).status).toBe(200);
    expectRefusal(await renew(app, third.json.accessToken), 401, 'max_ttl_reached');

    clock.advance(6);
    expectRefusal(await secrets(app, third.json.accessToken), 401, 'token_expired');
  });

  it('TOK-08: a revoked token is refused for reads and renewals, with every string of its grant', async () => {
    const app = await startApp(idp);
    const token = await loggedIn(app, idp);
    const renewed = (await renew(app, token)).json.accessToken as string;
    const answer = await revoke(app, renewed);
    expect(answer.status).toBe(200);
    expect(answer.json).toEqual({ message: 'Successfully revoked access token' });
    expectRefusal(await secrets(app, renewed), 401, 'token_revoked');
    expectRefusal(await secrets(app, token), 401, 'token_revoked');
    expectRefusal(await renew(app, token), 401, 'token_revoked');
    expect((await secrets(app, token)).headers['www-authenticate']).toMatch(
      /^Bearer .*error="invalid_token"/,
    );
  });

  it('TOK-04: a token with 2 uses reads twice, then uses_exhausted', async () => {
    const app = await startApp(idp, { accessTokenNumUsesLimit: 2 });
    const token = await loggedIn(app, idp);
    expect((await secrets(app, token)).status).toBe(200);
    expect((await secrets(app, token)).status).toBe(200);
    expectRefusal(await secrets(app, token), 401, 'uses_exhausted');
  });

  it('TOK-04: 50 parallel reads with a 1-use token over HTTP give exactly one 200', async () => {
    const app = await startApp(idp, { accessTokenNumUsesLimit: 1 });
    const token = await loggedIn(app, idp);
    const answers = await Promise.all(Array.from({ length: 50 }, () => secrets(app, token)));
    expect(answers.filter((a) => a.status === 200)).toHaveLength(1);
    expect(answers.filter((a) => a.status === 401 && a.json.reasonCode === 'uses_exhausted')).toHaveLength(
      49,
    );
  });

  it('TOK-06: the access token expires at its TTL by the server clock', async () => {
    const clock = new Clock();
    const app = await startApp(idp, { accessTokenTTL: 60 }, { clock: clock.now });
    const token = await loggedIn(app, idp);
    clock.advance(59);
    expect((await secrets(app, token)).status).toBe(200);
    clock.advance(2);
    expectRefusal(await secrets(app, token), 401, 'token_expired');
  });

  it('IP-01: a trusted range that excludes 127.0.0.1 refuses the login with 403 ip_not_allowed', async () => {
    const app = await startApp(idp, { accessTokenTrustedIps: ['10.0.0.0/8', '192.168.0.0/16'] });
    const answer = await login(app, await idp.token());
    expectRefusal(answer, 403, 'ip_not_allowed');
    expect(answer.text).not.toContain('10.0.0.0');
  });

  it('IP-01: the trusted range is checked again on every use (login from 127.0.0.2, read from 127.0.0.1)', async () => {
    const app = await startApp(idp, { accessTokenTrustedIps: '127.0.0.2/32' });
    const granted = await login(app, await idp.token(), '127.0.0.2');
    expect(granted.status).toBe(200);
    const token = granted.json.accessToken as string;
    const fromTrusted = await request(
      app.url,
      'GET',
      `/api/v3/secrets/raw?environment=prod&workspaceSlug=${WORKSPACE_SLUG}`,
      {
        headers: ['authorization', `Bearer ${token}`],
        localAddress: '127.0.0.2',
      },
    );
    expect(fromTrusted.status).toBe(200);
    expectRefusal(await secrets(app, token), 403, 'ip_not_allowed');
  });

  it('AUD-06: a token the IdP minted for another audience is refused with audience_not_allowed', async () => {
    const app = await startApp(idp);
    const answer = await login(app, await idp.token('https://management.azure.com/'));
    expectRefusal(answer, 401, 'audience_not_allowed');
  });

  it('ISS-01: a rogue provider presenting the same issuer string (and the same kid) is refused', async () => {
    const rogue = await startIdp({ issuer: idp.issuer });
    try {
      const app = await startApp(idp);
      await loggedIn(app, idp); // warm the key cache with the real IdP's keys
      const forged = await rogue.token();
      const answer = await login(app, forged);
      expectRefusal(answer, 401, 'invalid_credentials');
      expect(rogue.counts.discovery + rogue.counts.jwks).toBe(0);
    } finally {
      await rogue.close();
    }
  });

  it('FETCH-06 / KID-03: a key rotated at the IdP is picked up with one JWKS refetch, after the cooldown', async () => {
    const rotating = await startIdp();
    try {
      const clock = new Clock();
      const app = await startApp(rotating, {}, { clock: clock.now });
      expect((await login(app, await rotating.token())).status).toBe(200);
      expect(rotating.counts).toMatchObject({ discovery: 1, jwks: 1 });

      await rotating.rotateKeys();
      const rotated = await rotating.token();
      // Within the cooldown of the first fetch an unknown kid makes no request and is refused.
      expectRefusal(await login(app, rotated), 401, 'invalid_credentials');
      expect(rotating.counts.jwks).toBe(1);

      clock.advance(31);
      expect((await login(app, rotated)).status).toBe(200);
      expect(rotating.counts.jwks).toBe(2);
      expect((await login(app, await rotating.token())).status).toBe(200);
      expect(rotating.counts.jwks).toBe(2);
    } finally {
      await rotating.close();
    }
  });

  it('FETCH-08: 200 concurrent logins against a cold cache make one discovery and one JWKS fetch', async () => {
    const cold = await startIdp();
    try {
      const app = await startApp(cold);
      const tokens: string[] = [];
      for (let i = 0; i < 200; i++) tokens.push(await cold.token());
      cold.resetCounts();
      const answers = await Promise.all(tokens.map((jwt) => login(app, jwt)));
      expect(answers.filter((a) => a.status === 200)).toHaveLength(200);
      expect(cold.counts).toEqual({ discovery: 1, jwks: 1, token: 0 });
    } finally {
      await cold.close();
    }
  });
});

interface ScriptRun {
  child: ChildProcess;
  /** Output so far. */
  output(): { stdout: string; stderr: string };
  done: Promise<{ code: number | null; stdout: string; stderr: string }>;
}

/** Run a TypeScript entry point with tsx in a child process. */
function runScript(file: string, env: Record<string, string> = {}): ScriptRun {
  const child = spawn(process.execPath, ['--import', 'tsx', file], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const done = once(child, 'close').then(([code]) => ({ code: code as number | null, stdout, stderr }));
  return { child, output: () => ({ stdout, stderr }), done };
}

/** Resolves with the first match of `pattern` in the child's stdout; rejects if it exits first. */
function waitForOutput(run: ScriptRun, pattern: RegExp): Promise<RegExpExecArray> {
  return new Promise((resolve, reject) => {
    const look = () => {
      const match = pattern.exec(run.output().stdout);
      if (match) {
        run.child.stdout!.off('data', look);
        resolve(match);
      }
    };
    run.child.stdout!.on('data', look);
    void run.done.then(({ stderr }) => reject(new Error(`exited before printing ${pattern}: ${stderr}`)));
  });
}

describe('examples/secrets-api', () => {
  it(
    'npm start: the walkthrough runs every step and exits 0, printing no whole token',
    { timeout: 60_000 },
    async () => {
      const run = await runScript('examples/secrets-api/walkthrough.ts').done;
      expect(run.stderr).toBe('');
      expect(run.code).toBe(0);
      if (hasPipelineTools()) {
        expect(run.stdout).toMatch(/All 9 steps run behaved as expected \(\d+ checks\)\./);
        expect(run.stdout).toContain(
          '##vso[task.setvariable variable=DATABASE_URL;issecret=true]postgres://',
        );
      } else {
        // This machine lacks curl or jq: the pipeline step is skipped with a visible note.
        expect(run.stdout).toMatch(
          /All 8 steps run behaved as expected \(\d+ checks; 1 skipped, see above\)\./,
        );
      }
      expect(run.stdout).toContain('audience_not_allowed');
      expect(run.stdout).toContain('token_revoked');
      expect(run.stdout).not.toMatch(/eyJ[\w-]{10,}\.[\w-]+\.[\w-]+/); // an IdP JWT
      expect(run.stdout).not.toMatch(/omat_[\w-]+\.[\w-]{22}\./); // an access token
    },
  );

  it(
    'server.ts serves the app from IDENTITIES_JSON on PORT, and stops on SIGTERM',
    { timeout: 60_000 },
    async () => {
      const run = runScript('examples/secrets-api/server.ts', {
        PORT: '0',
        IDENTITIES_JSON: JSON.stringify([pipelineIdentity(idp.issuer)]),
      });
      try {
        const [, url] = await waitForOutput(run, /listening on (http:\/\/\S+)/);
        const app = { url: url!, auth: undefined as never, close: async () => {} };
        const read = await secrets(app, await loggedIn(app, idp));
        expect(read.status).toBe(200);
        expect(read.json.secrets).toContainEqual(expect.objectContaining({ secretValue: DATABASE_URL }));
      } finally {
        run.child.kill('SIGTERM');
      }
      expect((await run.done).code).toBe(0);
    },
  );

  it.each(['../../examples/secrets-api/README.md'])(
    'the AzureCLI@2 inline script in %s is pipeline-step.sh verbatim',
    (readmePath) => {
      const script = readFileSync(PIPELINE_STEP_FILE, 'utf8').split('\n');
      const expected = script
        .filter((line) => !line.startsWith('#'))
        .join('\n')
        .trim();
      const readme = readFileSync(new URL(readmePath, import.meta.url), 'utf8');
      const lines = readme.split('\n');
      const start = lines.findIndex((line) => line.trim() === 'inlineScript: |');
      expect(start).toBeGreaterThan(0);
      const indent = /^ */.exec(lines[start + 1]!)![0].length;
      const block: string[] = [];
      for (const line of lines.slice(start + 1)) {
        if (line.trim() !== '' && /^ */.exec(line)![0].length < indent) break;
        block.push(line.slice(indent));
      }
      expect(block.join('\n').trim()).toBe(expected);
    },
  );
});
