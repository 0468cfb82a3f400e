import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { EXIT, runCli, type CliIo } from '../src/cli/main.js';
import { FetchError } from '../src/trust/fetch.js';
import type { IdentityConfigInput } from '../src/types.js';
import { createOidcAuth } from '../src/index.js';
import { FakeClock, SIGNING_KEYS, githubIdentity } from './helpers/engine.js';
import { ISSUER, githubClaims, makeKey, rawToken, sign } from './helpers/jwt.js';

const key = makeKey('RS256', 'gh-key-1');
const TENANT = '7f3a2c1e-5b4d-4e6f-9a8b-0c1d2e3f4a5b';
const clock = new FakeClock();

/** The identity an operator debugs: a branch glob and the bindings of a deploy job. */
const deployer: IdentityConfigInput = githubIdentity(key, {
  boundSubject: 'repo:acme-corp/payments-api:ref:refs/heads/*',
  boundAudiences: 'https://secrets.example.com',
  boundClaims: {
    repository_id: '612345678',
    ref: 'refs/heads/main',
    event_name: ['push', 'workflow_dispatch'],
  },
});

const FILES: Record<string, string> = {
  'identities.json': JSON.stringify([deployer]),
  'wrapped.json': JSON.stringify({ identities: [deployer] }),
  'restricted.json': JSON.stringify({
    ...deployer,
    accessTokenTrustedIps: ['10.0.0.0/8'],
    accessTokenNumUsesLimit: 5,
  }),
  'mixed.json': JSON.stringify([
    deployer,
    { ...deployer, identityId: 'bad-ttl', accessTokenTTL: 9000, accessTokenMaxTTL: 60 },
    { ...deployer, identityId: 'gh-deployer' },
    { boundIssuer: ISSUER },
    { ...deployer, identityId: 'bad-cidr', accessTokenTrustedIps: ['10.0.0.1/8'] },
    { ...deployer, identityId: 'no-aud', boundAudiences: undefined },
  ]),
  'broken.json': '{"identityId": ',
  // A policy file with a shared trust entry (docs/TRUST.md) and identities naming it.
  'trusted.json': JSON.stringify({
    trust: [
      {
        trustId: 'github',
        issuer: ISSUER,
        publicKeys: [key.publicJwk],
        audiences: 'https://github.com/acme-corp',
      },
    ],
    identities: [
      { identityId: 'deploy', trust: 'github', boundSubject: 'repo:acme-corp/*:ref:refs/heads/main' },
      { identityId: 'orphan', trust: 'gitlab', boundSubject: 'project_path:acme/*' },
    ],
  }),
  'trust-elsewhere.json': JSON.stringify([
    { identityId: 'deploy', trust: 'github', boundSubject: 'repo:acme-corp/*' },
  ]),
  'entra.json': JSON.stringify({
    identityId: 'ado',
    publicKeys: [key.publicJwk],
    boundIssuer: `https://login.microsoftonline.com/${TENANT}/v2.0`,
    boundAudiences: 'api://AzureADTokenExchange',
  }),
  'discovery.json': JSON.stringify([
    { ...deployer, publicKeys: undefined, oidcDiscoveryUrl: 'https://token.actions.githubusercontent.com' },
  ]),
};

interface Run {
  code: number;
  out: string;
  err: string;
}

async function cli(argv: string[], options: { stdin?: string; io?: Partial<CliIo> } = {}): Promise<Run> {
  let out = '';
  let err = '';
  const io: CliIo = {
    stdout: { write: (text: string) => (out += text) },
    stderr: { write: (text: string) => (err += text) },
    stdin:
      options.stdin === undefined
        ? Object.assign(Readable.from([]), { isTTY: true })
        : Readable.from([options.stdin]),
    readFile: async (path) => {
      const text = FILES[path];
      if (text === undefined) throw Object.assign(new Error('ENOENT'), { code: 'ENOENT' });
      return text;
    },
    clock: clock.now,
    ...options.io,
  };
  const code = await runCli(argv, io);
  return { code, out, err };
}

const failingClaims = () =>
  githubClaims(clock.ms, {
    aud: ['https://secrets.example.com', 'https://github.com/acme-corp'],
    sub: 'repo:acme-corp/payments-api:ref:refs/heads/feature/x',
    ref: 'refs/heads/feature/x',
    event_name: 'pull_request',
  });

const explain = ['explain', '--config', 'identities.json', '--identity', 'gh-deployer'];

describe('explain', () => {
  it('GLOB-08: prints every check for a failing GitHub token, with the failing patterns, values and hints', async () => {
    const jwt = await sign(key, failingClaims());
    const run = await cli([...explain, '--jwt', jwt]);
    expect(run.code).toBe(EXIT.failed);
    const out = run.out;
    for (const line of [
      /✔ token +compact JWS, alg "RS256", kid "gh-key-1"/,
      /✔ signature +verified/,
      /✔ issuer +"https:\/\/token.actions.githubusercontent.com"/,
      /✔ times +within the allowed window/,
      /clock skew allowed ±60 s/,
      /exp +2026-01-01T00:05:00Z \(in 5 min\)/,
      /✔ audience "https:\/\/secrets.example.com" matches "https:\/\/secrets.example.com"/,
      /✘ audience "https:\/\/github.com\/acme-corp" matches no bound pattern/,
      /✘ subject +no bound pattern matches/,
      /expected +"repo:acme-corp\/payments-api:ref:refs\/heads\/\*"/,
      /got +"repo:acme-corp\/payments-api:ref:refs\/heads\/feature\/x"/,
      /hint +"\*" does not match "\/".*"repo:acme-corp\/payments-api:ref:refs\/heads\/\*\*" would match/,
      /✔ claim repository_id +"612345678" matches "612345678"/,
      /✘ claim ref +no bound pattern matches/,
      /✘ claim event_name +no bound pattern matches\n +expected +"push", "workflow_dispatch"\n +got +"pull_request"/,
      /✔ trusted ip +any address/,
      /✘ Login would FAIL with reason subject_not_allowed\./,
      /a login grants an access token valid 2 h \(7200 s\), renewable up to 24 h after login, unlimited uses/,
    ]) {
      expect(out).toMatch(line);
    }
  });

  it('ENUM-02: never prints the token (nor its signature)', async () => {
    const jwt = await sign(key, failingClaims());
    for (const argv of [
      [...explain, '--jwt', jwt],
      [...explain, '--jwt', jwt, '--json'],
      ['decode', '--jwt', jwt],
      ['decode', '--jwt', jwt, '--json'],
    ]) {
      const run = await cli(argv);
      expect(run.out + run.err).not.toContain(jwt.split('.')[2]!);
      expect(run.out + run.err).not.toContain(jwt);
    }
  });

  it('exits 0 and says what a login grants when every check passes (token on stdin)', async () => {
    const jwt = await sign(key, githubClaims(clock.ms, { aud: 'https://secrets.example.com' }));
    const run = await cli(['explain', '-c', 'wrapped.json', '-i', 'gh-deployer'], { stdin: `${jwt}\n` });
    expect(run.code).toBe(EXIT.ok);
    expect(run.out).toContain('✔ Login would SUCCEED and grant an access token valid 2 h (7200 s)');
    expect(run.out).not.toContain('✘');
  });

  it('--json gives the report with every check, per-audience items and the IdP fetches', async () => {
    const jwt = await sign(key, failingClaims());
    const run = await cli([...explain, '--json'], { stdin: jwt });
    expect(run.code).toBe(EXIT.failed);
    const report = JSON.parse(run.out);
    expect(report).toMatchObject({
      ok: false,
      identityId: 'gh-deployer',
      reasonCode: 'subject_not_allowed',
      fetches: [],
    });
    expect(report.checks.map((c: { check: string }) => c.check)).toEqual([
      'token',
      'identity',
      'signature',
      'issuer',
      'times',
      'audience',
      'subject',
      'claim:repository_id',
      'claim:ref',
      'claim:event_name',
      'trusted_ip',
    ]);
    expect(report.checks[5].items).toEqual([
      { value: 'https://secrets.example.com', pass: true, matched: 'https://secrets.example.com' },
      { value: 'https://github.com/acme-corp', pass: false },
    ]);
  });

  it('TIME-01: an expired token still shows every binding check after the failed time check', async () => {
    const jwt = await sign(key, failingClaims());
    const later = new FakeClock(clock.ms + 3600_000);
    const run = await cli([...explain, '--jwt', jwt, '--json'], { io: { clock: later.now } });
    const report = JSON.parse(run.out);
    expect(report.reasonCode).toBe('token_expired');
    const times = report.checks.find((c: { check: string }) => c.check === 'times');
    expect(times).toMatchObject({ pass: false, actual: { skew: 60, lifetime: 300, maxLifetime: 86400 } });
    expect(report.checks.find((c: { check: string }) => c.check === 'subject')?.pass).toBe(false);
    const human = await cli([...explain, '--jwt', jwt], { io: { clock: later.now } });
    expect(human.out).toMatch(/✘ times +exp is in the past/);
    expect(human.out).toMatch(/exp +2026-01-01T00:05:00Z \(55 min ago\)/);
  });

  it('ISS-02: an issuer differing by a trailing "/" is named, with a hint', async () => {
    const jwt = await sign(
      key,
      githubClaims(clock.ms, { iss: `${ISSUER}/`, aud: 'https://secrets.example.com' }),
    );
    const run = await cli([...explain, '--jwt', jwt]);
    expect(run.code).toBe(EXIT.failed);
    expect(run.out).toMatch(/✘ issuer +the iss claim is not one of boundIssuer/);
    expect(run.out).toContain('differ only by a trailing "/"');
  });

  it('ISS-03: an Entra v1 token against a v2-only config says to add the v1 issuer of the tenant', async () => {
    const iat = Math.floor(clock.ms / 1000);
    const jwt = await sign(key, {
      iss: `https://sts.windows.net/${TENANT}/`,
      aud: 'api://AzureADTokenExchange',
      sub: 'sp',
      iat,
      exp: iat + 3600,
    });
    const run = await cli(['explain', '--config', 'entra.json', '--identity', 'ado', '--jwt', jwt]);
    expect(run.code).toBe(EXIT.failed);
    expect(run.out).toContain(`this is an Entra v1 token of the same tenant`);
    expect(run.out).toContain(`add "https://sts.windows.net/${TENANT}/" to boundIssuer`);
    expect(run.out).toMatch(/✔ times/);
    expect(run.out).toMatch(/✔ audience/);
  });

  it('IP-01: checks --client-ip against the trusted ranges, and says how when it is not given', async () => {
    const jwt = await sign(key, githubClaims(clock.ms, { aud: 'https://secrets.example.com' }));
    const restricted = ['explain', '--config', 'restricted.json', '--identity', 'gh-deployer', '--jwt', jwt];
    const outside = await cli([...restricted, '--client-ip', '203.0.113.9']);
    expect(outside.code).toBe(EXIT.failed);
    expect(outside.out).toMatch(/✘ trusted ip +"203.0.113.9" is outside 10.0.0.0\/8/);
    const inside = await cli([...restricted, '--client-ip', '10.1.2.3']);
    expect(inside.code).toBe(EXIT.ok);
    expect(inside.out).toContain('5 uses, usable from 10.0.0.0/8');
    const unknown = await cli(restricted);
    expect(unknown.code).toBe(EXIT.failed);
    expect(unknown.out).toContain('pass --client-ip ADDRESS');
  });

  it('signature failures say where the keys came from and what the unverified issuer is', async () => {
    const other = makeKey('RS256', 'gh-key-1');
    const jwt = await sign(other, githubClaims(clock.ms, { iss: 'https://gitlab.com' }));
    const run = await cli([...explain, '--jwt', jwt]);
    expect(run.code).toBe(EXIT.failed);
    expect(run.out).toMatch(/✘ signature +the signature does not verify with the IdP keys/);
    expect(run.out).toContain('keys from 1 static publicKeys');
    expect(run.out).toContain('token iss "https://gitlab.com" (unverified), which is not one of boundIssuer');
    expect(run.out).not.toMatch(/✔ subject/);
  });

  it('FETCH-05: an unreachable IdP lists each fetch with its error and cause', async () => {
    const jwt = await sign(key, githubClaims(clock.ms));
    const httpGet = async () => {
      throw new FetchError('network', 'fetch failed', { cause: new Error('getaddrinfo ENOTFOUND idp') });
    };
    const run = await cli(
      ['explain', '--config', 'discovery.json', '--identity', 'gh-deployer', '--jwt', jwt],
      {
        io: { httpGet },
      },
    );
    expect(run.code).toBe(EXIT.failed);
    expect(run.out).toMatch(/✘ signature +the IdP discovery document or JWKS could not be fetched/);
    expect(run.out).toMatch(
      /✘ network {2}discovery https:\/\/token.actions.githubusercontent.com\/.well-known\/openid-configuration/,
    );
    expect(run.out).toContain('cause: "getaddrinfo ENOTFOUND idp"');
  });

  it('LOG-02: claim values with control characters are printed escaped', async () => {
    const jwt = await sign(key, githubClaims(clock.ms, { ref: 'refs/heads/\u001b[31mmain\r\nok' }));
    const run = await cli([...explain, '--jwt', jwt]);
    expect(run.out).not.toContain('\u001b');
    expect(run.out).not.toContain('\r');
    expect(run.out).toContain('"refs/heads/\\u001b[31mmain\\r\\nok"');
  });

  it('an identity missing from the file, or an invalid config, fails with the reason', async () => {
    const jwt = await sign(key, githubClaims(clock.ms));
    const missing = await cli([
      'explain',
      '--config',
      'identities.json',
      '--identity',
      'nobody',
      '--jwt',
      jwt,
    ]);
    expect(missing.code).toBe(EXIT.failed);
    expect(missing.out).toContain('no identity "nobody" in identities.json (it has: "gh-deployer")');
    const invalid = await cli([
      'explain',
      '--config',
      'mixed.json',
      '--identity',
      'bad-cidr',
      '--jwt',
      jwt,
      '--json',
    ]);
    expect(invalid.code).toBe(EXIT.failed);
    expect(JSON.parse(invalid.out)).toMatchObject({
      ok: false,
      reasonCode: 'invalid_config',
      checks: [{ check: 'identity', pass: false, field: 'accessTokenTrustedIps[0]' }],
    });
  });

  it('STR-02: a malformed token fails at the token check', async () => {
    const run = await cli([...explain, '--jwt', 'not-a-jwt']);
    expect(run.code).toBe(EXIT.failed);
    expect(run.out).toMatch(/✘ token +the token is not a compact JWS/);
  });
});

describe('#13.13 explain on a discovery issuer mismatch', () => {
  const GH = 'https://token.actions.githubusercontent.com';
  const OTHER = 'https://token.actions.githubusercontent.com/acme-enterprise';
  /** An IdP whose discovery document names `issuer` (and serves no keys: none is ever asked for). */
  const idpNaming =
    (issuer: string): NonNullable<CliIo['httpGet']> =>
    async (url) => {
      if (!url.endsWith('/.well-known/openid-configuration')) throw new Error(`unexpected fetch ${url}`);
      return {
        status: 200,
        headers: {},
        body: JSON.stringify({ issuer, jwks_uri: `${GH}/.well-known/jwks` }),
      };
    };
  const files = {
    'discovery.json': FILES['discovery.json']!,
    'pinned.json': JSON.stringify([
      { ...deployer, publicKeys: undefined, oidcDiscoveryUrl: GH, discoveryIssuer: `${GH}/acme-pinned` },
    ]),
  };
  const readFile = async (path: string) => files[path as keyof typeof files] ?? FILES[path]!;

  it("#13.13 explain on a discovery issuer mismatch: the CLI says the discovery document's issuer did not match, shows both, and points at discoveryIssuer", async () => {
    const jwt = await sign(key, githubClaims(clock.ms));
    const run = await cli(
      ['explain', '--config', 'discovery.json', '--identity', 'gh-deployer', '--jwt', jwt],
      {
        io: { httpGet: idpNaming(OTHER), readFile },
      },
    );
    expect(run.code).toBe(EXIT.failed);
    expect(run.out).toMatch(/✘ discovery +the discovery document's issuer does not match/);
    expect(run.out).toContain(`expected  "${GH}" (oidcDiscoveryUrl; discoveryIssuer is unset)`);
    expect(run.out).toContain(`got       "${OTHER}" (the document's "issuer")`);
    expect(run.out).toContain(`${GH}/.well-known/openid-configuration`);
    expect(run.out).toContain(`set discoveryIssuer to "${OTHER}"`);
    expect(run.out).toContain('Login would FAIL with reason issuer_mismatch');
    // Not the old, wrong story: the token's iss is fine, and no signature was ever checked.
    expect(run.out).not.toContain('the iss claim is not one of boundIssuer');
    expect(run.out).not.toMatch(/signature/);
  });

  it('#13.13 explain on a discovery issuer mismatch: with discoveryIssuer set, it is the value compared and named', async () => {
    const jwt = await sign(key, githubClaims(clock.ms));
    const run = await cli(
      ['explain', '--config', 'pinned.json', '--identity', 'gh-deployer', '--jwt', jwt, '--json'],
      {
        io: { httpGet: idpNaming(OTHER), readFile },
      },
    );
    expect(run.code).toBe(EXIT.failed);
    const report = JSON.parse(run.out);
    expect(report.reasonCode).toBe('issuer_mismatch');
    expect(report.checks.map((c: { check: string }) => c.check)).toEqual(['token', 'identity', 'discovery']);
    expect(report.checks[2]).toMatchObject({
      check: 'discovery',
      pass: false,
      expected: `${GH}/acme-pinned`,
      actual: OTHER,
    });
    expect(report.checks[2].reason).toContain('(discoveryIssuer)');
    expect(report.checks[2].hint).toContain(
      `discoveryIssuer must be exactly the document's issuer: set it to "${OTHER}"`,
    );
  });

  it("#13.13 explain on a discovery issuer mismatch: the engine's explain() reports the same, and a document without an issuer says so", async () => {
    const jwt = await sign(key, githubClaims(clock.ms));
    const identities = [{ ...deployer, publicKeys: undefined, oidcDiscoveryUrl: GH }];
    for (const [httpGet, actual, named] of [
      [idpNaming(OTHER), OTHER, `names "${OTHER}"`],
      [
        (async () => ({
          status: 200,
          headers: {},
          body: JSON.stringify({ jwks_uri: `${GH}/jwks` }),
        })) as CliIo['httpGet'],
        null,
        'names no issuer',
      ],
    ] as const) {
      const auth = createOidcAuth({ identities, signingKeys: SIGNING_KEYS, httpGet, clock: clock.now });
      const report = await auth.explain({ identityId: 'gh-deployer', jwt });
      expect(report.ok).toBe(false);
      expect(report.reasonCode).toBe('issuer_mismatch');
      const check = report.checks.at(-1)!;
      expect(check).toMatchObject({ check: 'discovery', pass: false, expected: GH, actual });
      expect(check.reason).toContain(named);
      expect(check.reason).toContain(`not the expected issuer "${GH}"`);
      expect(report.checks.some((c) => c.check === 'signature' || c.check === 'issuer')).toBe(false);
      await auth.close();
    }
  });
});

describe('validate', () => {
  it('CFG-01: reports every invalid identity with its id and field, exit 1', async () => {
    const run = await cli(['validate', '--config', 'mixed.json']);
    expect(run.code).toBe(EXIT.failed);
    expect(run.out).toContain('✔ [0] "gh-deployer"');
    expect(run.out).toMatch(
      /✘ \[1\] "bad-ttl": identity "bad-ttl": accessTokenTTL: \(9000 s\) cannot be greater/,
    );
    expect(run.out).toMatch(/✘ \[2\] "gh-deployer": .*identityId: is also the id of entry 0/);
    expect(run.out).toMatch(/✘ \[3\] \(no identityId\): identityId: is required/);
    expect(run.out).toMatch(/✘ \[4\] "bad-cidr": identity "bad-cidr": accessTokenTrustedIps\[0\]:/);
    expect(run.out).toMatch(/✔ \[5\] "no-aud"\n +⚠ boundAudiences: not bound/);
    expect(run.out).toContain('✘ 4 invalid');
  });

  it('--json lists each identity with ok, field and error', async () => {
    const run = await cli(['validate', '--config', 'mixed.json', '--json']);
    const result = JSON.parse(run.out);
    expect(result.ok).toBe(false);
    expect(result.identities.map((r: { ok: boolean; field?: string }) => [r.ok, r.field])).toEqual([
      [true, undefined],
      [false, 'accessTokenTTL'],
      [false, 'identityId'],
      [false, 'identityId'],
      [false, 'accessTokenTrustedIps[0]'],
      [true, undefined],
    ]);
  });

  it('exits 0 for a valid file', async () => {
    const run = await cli(['validate', '--config', 'identities.json']);
    expect(run.code).toBe(EXIT.ok);
    expect(run.out).toContain('✔ all valid');
  });
});

describe('decode', () => {
  it('prints header and claims labelled UNVERIFIED, with times', async () => {
    const jwt = await sign(key, githubClaims(clock.ms));
    const run = await cli(['decode'], { stdin: `Bearer ${jwt}` });
    expect(run.code).toBe(EXIT.ok);
    expect(run.out.split('\n')[0]).toContain('UNVERIFIED');
    expect(run.out).toContain('"kid": "gh-key-1"');
    expect(run.out).toContain('"sub": "repo:acme-corp/payments-api:ref:refs/heads/main"');
    expect(run.out).toMatch(/exp {2}2026-01-01T00:05:00Z \(in 5 min\)/);
  });

  it('--json marks the result verified: false', async () => {
    const jwt = await sign(key, githubClaims(clock.ms));
    const decoded = JSON.parse((await cli(['decode', '--jwt', jwt, '--json'])).out);
    expect(decoded).toMatchObject({
      verified: false,
      header: { alg: 'RS256' },
      claims: { repository_id: '612345678' },
    });
  });

  it('STR-01: refuses JWEs and garbage with exit 1, without echoing the input', async () => {
    const jwe = 'eyJhbGciOiJSU0EtT0FFUCJ9.a.b.c.d';
    const run = await cli(['decode', '--jwt', jwe]);
    expect(run.code).toBe(EXIT.failed);
    expect(run.out).toContain('encrypted JWE');
    const garbage = await cli(['decode', '--jwt', rawToken('x', 'y').replace(/\./g, '')]);
    expect(garbage.code).toBe(EXIT.failed);
    const notJson = await cli(['decode', '--jwt', 'aaaa.bbbb.cccc']);
    expect(notJson.out).toContain('not base64url-encoded JSON');
  });
});

describe('usage', () => {
  it.each<[string[], string]>([
    [[], 'Usage:'],
    [['frobnicate'], 'unknown command "frobnicate"'],
    [['explain', '--identity', 'x', '--jwt', 'a.b.c'], '--config is required'],
    [['explain', '--config', 'identities.json', '--jwt', 'a.b.c'], '--identity is required'],
    [['validate', '--config', 'nope.json'], 'cannot read nope.json: ENOENT'],
    [['validate', '--config', 'broken.json'], 'broken.json is not valid JSON'],
    [['validate', '--bogus'], "Unknown option '--bogus'"],
    [['decode'], 'pass --jwt TOKEN or pipe the token on stdin'],
  ])('%j exits 2 with a message', async (argv, message) => {
    const run = await cli(argv);
    expect(run.code).toBe(EXIT.usage);
    expect(run.err).toContain(message);
  });

  it('--help prints the usage on stdout, exit 0', async () => {
    const run = await cli(['--help']);
    expect(run.code).toBe(EXIT.ok);
    expect(run.out).toContain('explain');
    expect(run.out).toContain('Exit codes');
  });
});

describe('the real CLI process', () => {
  const dir = mkdtempSync(join(tmpdir(), 'oidc-cli-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('node --import tsx src/cli/main.ts explain reads the file and stdin and exits 1 for a failing token', async () => {
    const config = join(dir, 'identities.json');
    writeFileSync(config, FILES['identities.json']!);
    const now = new FakeClock(Date.now());
    const failing = await sign(key, { ...failingClaims(), ...timesAt(now.ms) });
    const passing = await sign(key, { ...githubClaims(now.ms, { aud: 'https://secrets.example.com' }) });
    const root = fileURLToPath(new URL('..', import.meta.url));
    const run = (jwt: string) =>
      spawnSync(
        process.execPath,
        ['--import', 'tsx', 'src/cli/main.ts', ...explain.slice(0, 2), config, ...explain.slice(3)],
        {
          cwd: root,
          input: jwt,
          encoding: 'utf8',
          timeout: 30_000,
        },
      );
    const failed = run(failing);
    expect(failed.stderr).toBe('');
    expect(failed.status).toBe(EXIT.failed);
    expect(failed.stdout).toContain('✘ Login would FAIL with reason subject_not_allowed.');
    const passed = run(passing);
    expect(passed.status).toBe(EXIT.ok);
  });
});

function timesAt(ms: number) {
  const iat = Math.floor(ms / 1000);
  return { iat, nbf: iat - 600, exp: iat + 300 };
}

describe('#13.9 stricter audiences than Vault (explain)', () => {
  it('#13.9 stricter audiences than Vault: explain of an identity with no bound audience shows the refused aud as a failure, never as "any value passes"', async () => {
    const jwt = await sign(key, githubClaims(clock.ms));
    const run = await cli(['explain', '--config', 'mixed.json', '--identity', 'no-aud', '--jwt', jwt]);
    expect(run.code).toBe(EXIT.failed);
    expect(run.out).toMatch(/✘ audience\b.*/);
    expect(run.out).not.toMatch(/✘ audience.*any value passes/);
    expect(run.out).toMatch(/FAIL with reason audience_not_allowed/);
  });
});

describe('#13.6 claim values a store cannot hold (explain)', () => {
  it('#13.6 claim values a store cannot hold: explain prints the refused claim by name, never throws and never prints its value', async () => {
    const jwt = await sign(
      key,
      githubClaims(clock.ms, {
        aud: 'https://secrets.example.com',
        repository: 'acme-corp/payments-api\u0000x',
      }),
    );
    const run = await cli([...explain, '--jwt', jwt]);
    expect(run.err).toBe('');
    expect(run.code).toBe(EXIT.failed);
    expect(run.out).toMatch(/✘ claim values/);
    expect(run.out).toMatch(/claim +"repository"/);
    expect(run.out).toMatch(/FAIL with reason claim_value_unsupported/);
    expect(run.out).not.toContain('\u0000');
  });
});

describe('explain and validate with trust entries (issue 14: shared trust)', () => {
  it('explain resolves an identity naming a trust entry of the policy file: its issuer, keys and audiences', async () => {
    const jwt = await sign(key, githubClaims(clock.ms));
    const run = await cli(['explain', '--config', 'trusted.json', '--identity', 'deploy', '--jwt', jwt]);
    expect(run.out).toMatch(/✔ signature +verified/);
    expect(run.out).toMatch(/✔ issuer +"https:\/\/token.actions.githubusercontent.com"/);
    expect(run.code).toBe(EXIT.ok);
    const wrongAudience = await sign(key, githubClaims(clock.ms, { aud: 'https://elsewhere.example' }));
    const refused = await cli([
      'explain',
      '--config',
      'trusted.json',
      '--identity',
      'deploy',
      '--jwt',
      wrongAudience,
    ]);
    expect(refused.code).toBe(EXIT.failed);
    expect(refused.out).toMatch(/✘ audience/);
  });

  it('explain and validate refuse an identity naming a trust entry the file does not declare, naming the field', async () => {
    const jwt = await sign(key, githubClaims(clock.ms));
    const run = await cli(['explain', '--config', 'trusted.json', '--identity', 'orphan', '--jwt', jwt]);
    expect(run.code).toBe(EXIT.failed);
    expect(run.out).toContain('gitlab');
    const validated = await cli(['validate', '--config', 'trusted.json', '--json']);
    expect(validated.code).toBe(EXIT.failed);
    const results = JSON.parse(validated.out).identities as Array<{
      identityId: string;
      ok: boolean;
      field?: string;
    }>;
    expect(results.find((r) => r.identityId === 'deploy')?.ok).toBe(true);
    expect(results.find((r) => r.identityId === 'orphan')).toMatchObject({ ok: false, field: 'trust' });
  });

  it('validate warns, without failing, when an identity names a trust entry the file leaves to the engine', async () => {
    const run = await cli(['validate', '--config', 'trust-elsewhere.json', '--json']);
    expect(run.code).toBe(EXIT.ok);
    const [result] = JSON.parse(run.out).identities as Array<{ ok: boolean; warnings: string[] }>;
    expect(result!.warnings.join(' ')).toMatch(/does not declare/);
  });
});
