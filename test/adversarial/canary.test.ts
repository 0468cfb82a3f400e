import { randomUUID } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { MemoryTokenStore, createOidcAuth, parseIdentityConfig, type OidcAuth } from '../../src/index.js';
import type { IdentityConfig, IdentityStore } from '../../src/types.js';
import { FakeClock, Recorder, SIGNING_KEYS, githubIdentity } from '../helpers/engine.js';
import { postJson, request, type RawResponse } from '../helpers/http.js';
import { startTestIdp, type TestIdp } from '../helpers/idp-server.js';
import { githubClaims, makeKey, rawToken, seconds, sign, signRaw } from '../helpers/jwt.js';
import {
  ADMIN,
  LOGIN,
  RENEW,
  REVOKE,
  SECRETS,
  failOnUnhandled,
  mountExpress,
  type MountedApp,
} from './support.js';

failOnUnhandled();

/**
 * ENUM-02, LOG-01, LOG-02, SSRF-09: one unique marker goes into tokens, kids, headers, bodies, IdP
 * answers and store errors along every failure path reachable from outside; afterwards it must be
 * in no answer (body or header), no event, no log line and nothing written to the console.
 *
 * The `iss`, `sub` and `jti` of a token whose signature VERIFIED are audit fields carried in events
 * by design (LOG-03), so the marker never goes there on a verified token.
 */
const M = `CANARY-${randomUUID()}`;

const key = makeKey('RS256');
const impostor = makeKey('RS256', key.kid);
const clock = new FakeClock();
const rec = new Recorder();
const storeRec = new Recorder();
let auth: OidcAuth;
let storeAuth: OidcAuth;
let idp: TestIdp;
let app: MountedApp;
let storeApp: MountedApp;

const answers: RawResponse[] = [];
const sentTokens: string[] = [];
const mintedTokens: string[] = [];
const console_: string[] = [];
const failStore = { identity: false, create: false, consume: false };

/** A store whose failures carry the marker in their message (it must never surface). */
class FailingIdentityStore implements IdentityStore {
  constructor(private readonly config: IdentityConfig) {}
  async get(identityId: string): Promise<IdentityConfig | undefined> {
    if (identityId === 'bad-config') {
      return parseIdentityConfig({ ...githubIdentity(key), identityId: 'bad-config', [M]: M });
    }
    // #13.8: plain objects a custom store hands back are validated; their errors never surface.
    if (identityId === 'raw-config') {
      return { ...githubIdentity(key), identityId: 'raw-config', [M]: M } as unknown as IdentityConfig;
    }
    if (identityId === 'raw-unbound') {
      const config = JSON.parse(JSON.stringify(this.config)) as Record<string, unknown>;
      return {
        ...config,
        identityId: 'raw-unbound',
        boundSubject: [M],
        boundAudiences: [],
        boundClaims: {},
      } as unknown as IdentityConfig;
    }
    if (failStore.identity) throw new Error(`identity store down: ${M}`);
    return identityId === this.config.identityId ? this.config : undefined;
  }
}

class FailingTokenStore extends MemoryTokenStore {
  override async create(...args: Parameters<MemoryTokenStore['create']>) {
    if (failStore.create) throw new Error(`token store down: ${M}`);
    return super.create(...args);
  }
  override async consume(...args: Parameters<MemoryTokenStore['consume']>) {
    if (failStore.consume) throw Object.assign(new Error(`token store down: ${M}`), { code: 'ECONNRESET' });
    return super.consume(...args);
  }
}

const claims = (overrides: Record<string, unknown> = {}) =>
  githubClaims(clock.ms, { environment: M, ...overrides });
const now = () => seconds(clock.ms);

async function loginAt(base: string, identityId: string, jwt: string): Promise<RawResponse> {
  sentTokens.push(jwt);
  const res = await postJson(base, LOGIN, { identityId, jwt });
  if (res.status === 200) mintedTokens.push(res.json.accessToken);
  else answers.push(res);
  return res;
}
const login = (identityId: string, jwt: string) => loginAt(app.url, identityId, jwt);

async function guarded(path: string, headers: string[], base = app.url): Promise<RawResponse> {
  const res = await request(base, 'GET', path, { headers });
  answers.push(res);
  return res;
}

async function post(path: string, body: unknown, base = app.url): Promise<RawResponse> {
  const res = await postJson(base, path, body);
  if (res.status === 200 && res.json.accessToken) mintedTokens.push(res.json.accessToken);
  else answers.push(res);
  return res;
}

async function raw(path: string, headers: string[], body: string | Buffer): Promise<RawResponse> {
  const res = await request(app.url, 'POST', path, { headers, body });
  answers.push(res);
  return res;
}

async function token(identityId = 'gh-deployer'): Promise<string> {
  const res = await login(identityId, await sign(key, claims()));
  expect(res.status).toBe(200);
  return res.json.accessToken;
}

beforeAll(async () => {
  for (const level of ['log', 'info', 'warn', 'error', 'debug'] as const) {
    vi.spyOn(console, level).mockImplementation((...args: unknown[]) => {
      console_.push(
        args.map((a) => (typeof a === 'string' ? a : (JSON.stringify(a) ?? String(a)))).join(' '),
      );
    });
  }
  idp = await startTestIdp();
  auth = createOidcAuth({
    identities: [
      githubIdentity(key),
      githubIdentity(key, { identityId: 'limited', accessTokenNumUsesLimit: 1 }),
      githubIdentity(key, { identityId: 'private-net', accessTokenTrustedIps: ['10.0.0.0/8'] }),
      githubIdentity(key, { identityId: 'short', accessTokenTTL: 60, accessTokenMaxTTL: 60 }),
      {
        identityId: 'idp-backed',
        oidcDiscoveryUrl: idp.issuer,
        allowInsecureLoopback: true,
        boundIssuer: idp.issuer,
        boundAudiences: 'oidc-machine-auth',
      },
    ],
    signingKeys: SIGNING_KEYS,
    clock: clock.now,
    onEvent: rec.onEvent,
    logger: rec.logger,
  });
  storeAuth = createOidcAuth({
    identities: new FailingIdentityStore(parseIdentityConfig(githubIdentity(key))),
    tokens: new FailingTokenStore({ clock: clock.now, sweepIntervalMs: 0 }),
    signingKeys: SIGNING_KEYS,
    clock: clock.now,
    onEvent: storeRec.onEvent,
    logger: storeRec.logger,
  });
  app = await mountExpress(auth);
  storeApp = await mountExpress(storeAuth);
});

afterAll(async () => {
  vi.restoreAllMocks();
  await Promise.all([app?.close(), storeApp?.close(), idp?.close(), auth?.close(), storeAuth?.close()]);
});

describe('canary: a marker sent through every failure path is never repeated (ENUM-02, LOG-01/02)', () => {
  it('LOG-01: login refusals, for every reason code', async () => {
    const t = now();
    await login('nobody', await sign(key, claims()));
    await login('gh-deployer', `${M}.${M}.${M}`);
    await login('gh-deployer', `${M}.`.repeat(500));
    await login('gh-deployer', rawToken({ alg: M, kid: M }, { sub: M }));
    await login('gh-deployer', rawToken({ alg: 'HS256', kid: M, typ: M }, claims(), M));
    await login('gh-deployer', await sign(key, claims(), { header: { kid: M } }));
    await login(
      'gh-deployer',
      await sign(key, claims(), { header: { kid: `${M}\n{"level":"error"}\u001b[31m` } }),
    );
    await login('gh-deployer', await sign(impostor, claims({ sub: M, jti: M })));
    await login('gh-deployer', await sign(key, claims({ iss: `https://${M}.example` })));
    await login('gh-deployer', await sign(key, claims({ iat: t - 7200, nbf: t - 7200, exp: t - 3600 })));
    await login('gh-deployer', await sign(key, claims({ nbf: t + 3600 })));
    await login('gh-deployer', await sign(key, claims({ iat: t + 3600, nbf: undefined })));
    await login('gh-deployer', await sign(key, claims({ exp: t + 10_000_000 })));
    await login('gh-deployer', await sign(key, claims({ repository_id: undefined })));
    await login('gh-deployer', await sign(key, claims({ repository_id: M })));
    await login('gh-deployer', await sign(key, claims({ repository_id: [M, { x: M }] })));
    await login('gh-deployer', await sign(key, claims({ sub: 'repo:acme-corp/other:ref:refs/heads/main' })));
    await login('gh-deployer', await sign(key, claims({ aud: M })));
    await login('gh-deployer', await sign(key, claims({ aud: [M, 1] })));
    // #13.6: a mapped claim (ref) holding U+0000 or a lone surrogate
    await login('gh-deployer', await sign(key, claims({ ref: `${M}\u0000` })));
    await login('gh-deployer', await sign(key, claims({ ref: [`${M}\ud800`] })));
    // #13.2: another issuer, and an unknown id with a real kid
    await login('nobody', await sign(impostor, claims({ sub: M })));
    await login(
      'gh-deployer',
      signRaw(key, { alg: 'RS256', kid: key.kid }, JSON.stringify(claims({ exp: M }))),
    );
    await login(
      'gh-deployer',
      signRaw(key, { alg: 'RS256', kid: key.kid, crit: [M], [M]: 1 }, JSON.stringify(claims())),
    );
    await login(
      'gh-deployer',
      signRaw(
        key,
        { alg: 'RS256', kid: key.kid },
        JSON.stringify(claims())
          .replace('{', `{"deep":${'['.repeat(3000)}"${M}"${']'.repeat(3000)},`)
          .replace('"aud":"https://github.com/acme-corp"', `"aud":"${M}"`),
      ),
    );
    await login('private-net', await sign(key, claims()));
    // HDR-01: an attacker-signed token pointing its keys at a URL: refused, and nothing fetched.
    await login(
      'gh-deployer',
      await sign(impostor, claims(), {
        header: { jku: `${idp.issuer}/${M}`, x5u: `${idp.issuer}/${M}`, jwk: impostor.publicJwk },
      }),
    );
    expect(idp.requests.filter((r) => r.path.includes(M))).toEqual([]);
  });

  it('LOG-01, SSRF-09: IdP faults whose answers carry the marker', async () => {
    const jwt = async () =>
      idp.sign({ sub: M, aud: M, iat: now(), exp: now() + 300, environment: M }, { kid: M });
    const cases: Array<() => void> = [
      () => idp.setBehavior('discovery', { kind: 'status', status: 500, body: `upstream error ${M}` }),
      () => idp.setBehavior('discovery', { kind: 'body', body: `{"issuer":"${M}` }),
      () => idp.setBehavior('discovery', { kind: 'redirect', location: `https://169.254.169.254/${M}` }),
      () => idp.setDiscovery({ issuer: `https://${M}.example` }),
      () => idp.setDiscovery({ jwks_uri: `https://169.254.169.254/${M}` }),
      () => idp.setDiscovery({ jwks_uri: `http://user:${M}@127.0.0.1:${idp.port}/jwks` }),
      () => idp.setJwks({ keys: [{ ...idp.keys[0]!.publicJwk, d: M, kid: M }] }),
      () => idp.setBehavior('jwks', { kind: 'body', body: `${M} is not json` }),
      () => idp.setJwks({ keys: [{ kty: 'RSA', kid: M, n: M, e: M }] }),
    ];
    for (const arrange of cases) {
      idp.reset();
      arrange();
      clock.advance(31);
      const res = await login('idp-backed', await jwt());
      expect([401, 503]).toContain(res.status);
    }
    idp.reset();
  });

  it('LOG-01: identity and token stores failing with the marker in their errors', async () => {
    const jwt = await sign(key, claims());
    await loginAt(storeApp.url, 'bad-config', jwt);
    await loginAt(storeApp.url, 'raw-config', jwt);
    await loginAt(storeApp.url, 'raw-unbound', jwt);
    failStore.identity = true;
    await loginAt(storeApp.url, 'gh-deployer', jwt);
    failStore.identity = false;
    failStore.create = true;
    await loginAt(storeApp.url, 'gh-deployer', jwt);
    failStore.create = false;
    const ok = await loginAt(storeApp.url, 'gh-deployer', jwt);
    expect(ok.status).toBe(200);
    failStore.consume = true;
    await guarded(SECRETS, ['authorization', `Bearer ${ok.json.accessToken}`], storeApp.url);
    failStore.consume = false;
  });

  it('LOG-01: guard, renew and revoke refusals', async () => {
    await guarded(SECRETS, []);
    await guarded(SECRETS, ['authorization', `Basic ${M}`]);
    await guarded(SECRETS, ['authorization', `Bearer ${M} ${M}`]);
    await guarded(SECRETS, ['authorization', `Bearer ${M}`, 'authorization', `Bearer ${M}`]);
    await guarded(`${SECRETS}?access_token=${M}`, []);
    await guarded(SECRETS, ['authorization', `Bearer ${M}`]);
    await guarded(SECRETS, ['authorization', `Bearer omat_k1.${M}.zzz.${M}`]);

    const forbidden = await token();
    await guarded(ADMIN, ['authorization', `Bearer ${forbidden}`]);
    await guarded(SECRETS, ['authorization', `Bearer ${forbidden}`, 'authorization', `Bearer ${forbidden}`]);

    const once = await token('limited');
    await guarded(SECRETS, ['authorization', `Bearer ${once}`]);
    await guarded(SECRETS, ['authorization', `Bearer ${once}`]);

    const elsewhere = await auth.login({
      identityId: 'private-net',
      jwt: await sign(key, claims()),
      clientIp: '10.1.2.3',
    });
    mintedTokens.push(elsewhere.accessToken);
    await guarded(SECRETS, ['authorization', `Bearer ${elsewhere.accessToken}`]);
    await post(RENEW, { accessToken: elsewhere.accessToken });

    const revoked = await token();
    await post(REVOKE, { accessToken: revoked });
    await guarded(SECRETS, ['authorization', `Bearer ${revoked}`]);
    await post(RENEW, { accessToken: revoked });

    const short = await token('short');
    await post(RENEW, { accessToken: short });

    await post(RENEW, { accessToken: M });
    await post(RENEW, { accessToken: [M] });
    await post(REVOKE, { accessToken: M });
    await post(REVOKE, { accessToken: { [M]: M } });

    const expiring = await token();
    clock.advance(7201);
    await guarded(SECRETS, ['authorization', `Bearer ${expiring}`]);
    await post(RENEW, { accessToken: expiring });
  });

  it('LOG-01: malformed bodies', async () => {
    const json = ['content-type', 'application/json'];
    await raw(LOGIN, json, `{"identityId":"${M}`);
    await raw(LOGIN, json, `["${M}"]`);
    await post(LOGIN, { identityId: `${M}' OR 1=1 --`, jwt: M });
    await post(LOGIN, { identityId: 'gh-deployer', jwt: [M] });
    await post(LOGIN, { identityId: 'gh-deployer', jwt: M, organizationSlug: { [M]: M } });
    await post(LOGIN, { identityId: M.repeat(10), jwt: M });
    await post(LOGIN, { identityId: 'gh-deployer', jwt: M.repeat(2_000) });
    await raw(LOGIN, ['content-type', 'text/plain'], `{"identityId":"gh-deployer","jwt":"${M}"}`);
    await raw(LOGIN, ['content-type', `application/${M}`], M);
    await raw(LOGIN, ['content-type', 'application/json; charset=latin1'], `{"jwt":"${M}"}`);
    await raw(
      LOGIN,
      ['content-type', 'application/x-www-form-urlencoded'],
      `identityId=gh-deployer&jwt=${M}`,
    );
    await raw(
      LOGIN,
      ['content-type', 'application/json', 'content-encoding', 'gzip'],
      gzipSync(`{"jwt":"${M}`),
    );
    await raw(LOGIN, ['content-type', 'application/json', 'content-encoding', 'gzip'], Buffer.from(M));
  });

  it('ENUM-02, LOG-01/02: the marker, the tokens sent and the access tokens minted appear nowhere', () => {
    const answerText = answers.map((r) => `${r.status}\n${JSON.stringify(r.headers)}\n${r.text}`).join('\n');
    const recorded = `${rec.dump()}\n${storeRec.dump()}`;
    const everything = `${answerText}\n${recorded}\n${console_.join('\n')}`;
    expect(answers.length).toBeGreaterThan(60);
    expect(everything.includes(M), 'the marker leaked').toBe(false);
    expect(everything.toLowerCase().includes(M.slice(7).toLowerCase()), 'the marker uuid leaked').toBe(false);
    for (const jwt of sentTokens) {
      for (const segment of jwt.split('.').filter((s) => s.length >= 16)) {
        expect(everything.includes(segment), 'a token segment leaked').toBe(false);
      }
    }
    for (const accessToken of mintedTokens) {
      expect(everything.includes(accessToken), 'an access token leaked').toBe(false);
      expect(everything.includes(accessToken.split('.').at(-1)!), 'an access token MAC leaked').toBe(false);
    }
    expect(recorded).not.toMatch(/\\u001b|\\n\{"level"/);
  });

  it('ENUM-02, LOG-01: the canary went through every reason code a client can cause', () => {
    const seen = new Set<string>();
    for (const r of answers) if (typeof r.json?.reasonCode === 'string') seen.add(r.json.reasonCode);
    for (const e of [...rec.events, ...storeRec.events]) if (e.reasonCode) seen.add(e.reasonCode);
    const expected = [
      'invalid_credentials',
      'identity_not_found',
      'token_malformed',
      'token_too_large',
      'algorithm_not_allowed',
      'key_not_found',
      'signature_invalid',
      'issuer_mismatch',
      'token_expired',
      'token_not_yet_valid',
      'token_issued_in_future',
      'token_lifetime_too_long',
      'subject_not_allowed',
      'audience_not_allowed',
      'claim_not_allowed',
      'claim_missing',
      'claim_value_unsupported',
      'missing_token',
      'invalid_request',
      'invalid_token',
      'token_revoked',
      'uses_exhausted',
      'max_ttl_reached',
      'ip_not_allowed',
      'forbidden',
      'invalid_body',
      'body_too_large',
      'unsupported_media_type',
      'idp_unavailable',
      'store_unavailable',
    ];
    expect(expected.filter((code) => !seen.has(code))).toEqual([]);
  });
});
