import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { createOidcAuth, type OidcAuth, type OidcAuthError } from '../../src/index.js';
import type { KeyManagerOptions } from '../../src/trust/keys.js';
import { FakeClock, Recorder, SIGNING_KEYS } from '../helpers/engine.js';
import { postJson } from '../helpers/http.js';
import {
  createSigningKey,
  loopbackIdentity,
  startTestIdp,
  type SigningKey,
  type TestIdp,
} from '../helpers/idp-server.js';
import { rawToken, seconds } from '../helpers/jwt.js';
import { startFloodServer, type FloodServer } from './flood-server.js';
import { LOGIN, expectSafeAnswer, failOnUnhandled, mountExpress, type MountedApp } from './support.js';

failOnUnhandled();

const SUBJECT = 'repo:acme-corp/payments-api:ref:refs/heads/main';
const AUDIENCE = 'oidc-machine-auth-tests';
const MINUTE = 60;
const HOUR = 60 * MINUTE;
const GiB = 1024 ** 3;

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  await Promise.all(cleanups.splice(0).map((close) => close()));
});

interface Fault {
  idp: TestIdp;
  auth: OidcAuth;
  clock: FakeClock;
  rec: Recorder;
  fetches: Array<{ kind: string; ok: boolean; error?: string }>;
  /** A token of the IdP, times from the fake clock. */
  token(options?: {
    key?: SigningKey;
    kid?: string | null;
    claims?: Record<string, unknown>;
  }): Promise<string>;
  /** A token naming the IdP with a random `kid` and a signature no key made. */
  forged(): string;
  /** Log in: 'ok' or the error. */
  login(jwt: string): Promise<'ok' | OidcAuthError>;
}

/** A loopback IdP reached through discovery, and an engine on a fake clock trusting it. */
async function setup(keys: Omit<KeyManagerOptions, 'httpGet' | 'clock' | 'logger'> = {}): Promise<Fault> {
  const idp = await startTestIdp();
  cleanups.push(() => idp.close());
  const clock = new FakeClock(Math.floor(Date.now() / 1000) * 1000);
  const rec = new Recorder();
  const fetches: Fault['fetches'] = [];
  const auth = createOidcAuth({
    identities: [loopbackIdentity(idp, SUBJECT, AUDIENCE)],
    signingKeys: SIGNING_KEYS,
    clock: clock.now,
    onEvent: rec.onEvent,
    logger: rec.logger,
    keys: { ...keys, onFetch: (info) => fetches.push(info) },
  });
  cleanups.push(() => auth.close());
  return {
    idp,
    auth,
    clock,
    rec,
    fetches,
    token: ({ key, kid, claims } = {}) => {
      const now = seconds(clock.ms);
      return idp.sign({ sub: SUBJECT, aud: AUDIENCE, iat: now, exp: now + 300, ...claims }, { key, kid });
    },
    forged: () =>
      rawToken(
        { alg: 'RS256', kid: randomUUID() },
        { iss: idp.issuer, sub: SUBJECT, aud: AUDIENCE, iat: seconds(clock.ms), exp: seconds(clock.ms) + 60 },
      ),
    login: (jwt) =>
      auth.login({ identityId: 'ci', jwt }).then(
        () => 'ok' as const,
        (error: unknown) => error as OidcAuthError,
      ),
  };
}

/** The 503 a login gets when no key can be had: retryable, with Retry-After, never a 401 or a 500. */
function expectUnavailable(outcome: 'ok' | OidcAuthError): void {
  expect(outcome).not.toBe('ok');
  const error = outcome as OidcAuthError;
  expect({ status: error.status, code: error.code }).toEqual({ status: 503, code: 'idp_unavailable' });
  expect(error.headers['retry-after']).toMatch(/^[1-9][0-9]*$/);
  expect(error.message).toBe('The identity provider cannot be reached');
}

function expectUniform401(outcome: 'ok' | OidcAuthError): void {
  expect(outcome).not.toBe('ok');
  const error = outcome as OidcAuthError;
  expect({ status: error.status, code: error.code }).toEqual({ status: 401, code: 'invalid_credentials' });
}

async function timed<T>(work: Promise<T>): Promise<[T, number]> {
  const started = Date.now();
  const result = await work;
  return [result, Date.now() - started];
}

describe('IdP faults through login (FETCH-01..03, SSRF-09)', () => {
  it('FETCH-01: an IdP that drops every connection gives 503 idp_unavailable with Retry-After', async () => {
    const f = await setup();
    f.idp.setBehavior('discovery', { kind: 'down' });
    expectUnavailable(await f.login(await f.token()));
    expect(f.rec.last('login.failure')?.reasonCode).toBe('idp_unavailable');
  });

  it('FETCH-01: a hanging IdP: login returns within the timeout with 503 and Retry-After', async () => {
    const f = await setup({ timeoutMs: 400 });
    f.idp.setBehavior('discovery', { kind: 'hang' });
    const [outcome, ms] = await timed(f.login(await f.token()));
    expectUnavailable(outcome);
    expect(ms).toBeLessThan(400 + 1_500);

    f.idp.reset();
    f.clock.advance(31);
    f.idp.setBehavior('jwks', { kind: 'hang' });
    const [again, ms2] = await timed(f.login(await f.token()));
    expectUnavailable(again);
    expect(ms2).toBeLessThan(400 + 1_500);
  });

  it('FETCH-01: the 503 of a hanging IdP reaches the client over HTTP with Retry-After', async () => {
    const f = await setup({ timeoutMs: 300 });
    const app: MountedApp = await mountExpress(f.auth);
    cleanups.push(() => app.close());
    f.idp.setBehavior('discovery', { kind: 'hang' });
    const jwt = await f.token();
    const res = await postJson(app.url, LOGIN, { identityId: 'ci', jwt });
    expectSafeAnswer(res, [jwt]);
    expect(res.status).toBe(503);
    expect(res.json.reasonCode).toBe('idp_unavailable');
    expect(Number(res.headers['retry-after'])).toBeGreaterThan(0);
  });

  it('FETCH-01: trickling bytes (headers or body, one byte per 50 ms) are cut at the timeout', async () => {
    for (const behaviour of [
      { kind: 'trickle' as const, intervalMs: 50, headers: true },
      { kind: 'trickle' as const, intervalMs: 50 },
    ]) {
      const f = await setup({ timeoutMs: 400 });
      f.idp.setBehavior('jwks', behaviour);
      const [outcome, ms] = await timed(f.login(await f.token()));
      expectUnavailable(outcome);
      expect(ms).toBeLessThan(400 + 1_500);
      expect(f.fetches.at(-1)).toMatchObject({ kind: 'jwks', ok: false, error: 'timeout' });
    }
  });

  it('FETCH-02: a 1 GiB JWKS streamed without a length is cut at the cap; the IdP sends little past it', async () => {
    const flood: FloodServer = await startFloodServer(GiB);
    cleanups.push(() => flood.close());
    const f = await setup({ timeoutMs: 10_000 });
    f.idp.setDiscovery({ jwks_uri: `${flood.url}/jwks` });
    const [outcome, ms] = await timed(f.login(await f.token()));
    expectUnavailable(outcome);
    expect(f.fetches.at(-1)).toMatchObject({ kind: 'jwks', ok: false, error: 'too_large' });
    expect(ms, 'aborted at the cap, not at the timeout').toBeLessThan(5_000);
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(flood.requests()).toBe(1);
    expect(flood.completed()).toBe(0);
    // 512 KiB cap; what the kernel buffers on loopback comes on top (about 4 MiB measured).
    expect(flood.sent()).toBeLessThan(16 * 1024 ** 2);
  });

  it('FETCH-02: a 1 GiB discovery document announced by content-length is refused before its body', async () => {
    const flood = await startFloodServer(GiB);
    cleanups.push(() => flood.close());
    const clock = new FakeClock();
    const fetches: Array<{ error?: string }> = [];
    const auth = createOidcAuth({
      identities: [
        {
          identityId: 'ci',
          oidcDiscoveryUrl: `${flood.url}/announce`,
          allowInsecureLoopback: true,
          boundIssuer: `${flood.url}/announce`,
          boundAudiences: AUDIENCE,
        },
      ],
      signingKeys: SIGNING_KEYS,
      clock: clock.now,
      keys: { onFetch: (info) => fetches.push(info) },
    });
    cleanups.push(() => auth.close());
    const jwt = rawToken({ alg: 'RS256', kid: 'k' }, { iss: `${flood.url}/announce` });
    const outcome = await auth.login({ identityId: 'ci', jwt }).catch((error: OidcAuthError) => error);
    expectUnavailable(outcome as OidcAuthError);
    expect(fetches).toMatchObject([{ error: 'too_large' }]);
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(flood.completed()).toBe(0);
    expect(flood.sent()).toBeLessThan(16 * 1024 ** 2);
  });

  it('FETCH-03: invalid JSON, arrays, missing members or private key material in discovery or JWKS give 503, never 500', async () => {
    const cases: Array<[path: 'discovery' | 'jwks', body: string]> = [
      ['discovery', 'not json'],
      ['discovery', '{"issuer":'],
      ['discovery', '[]'],
      ['discovery', 'null'],
      ['jwks', 'not json'],
      ['jwks', '{"keys":{}}'],
      ['jwks', '[]'],
      ['jwks', `${'['.repeat(50_000)}${']'.repeat(50_000)}`],
      ['jwks', '{"keys":[{"kty":"oct","k":"AAAA","kid":"key-1"}]}'],
    ];
    for (const [path, body] of cases) {
      const f = await setup();
      f.idp.setBehavior(path, { kind: 'body', body });
      expectUnavailable(await f.login(await f.token()));
      expect(() => f.rec.dump()).not.toThrow();
    }
  });

  it('FETCH-03/04: a JWKS whose keys are all unusable (nested junk, oct, use:enc, broken RSA) is key_not_found: the uniform 401', async () => {
    for (const keys of [
      `[${'['.repeat(50_000)}${']'.repeat(50_000)}]`,
      '[{"kty":"oct","kid":"key-1","use":"sig"}, {"kty":"RSA","kid":"key-1","use":"enc"}]',
      '[null, 1, "x", {"kty":"RSA","kid":"key-1","n":"AQAB","e":"AQAB"}]',
    ]) {
      const f = await setup();
      f.idp.setBehavior('jwks', { kind: 'body', body: `{"keys":${keys}}` });
      expectUniform401(await f.login(await f.token()));
      expect(f.rec.last('login.failure')?.reasonCode).toBe('key_not_found');
      expect(() => f.rec.dump()).not.toThrow();
    }
  });

  it('SSRF-09: refused, hanging, erroring and garbage IdPs all give the same answer', async () => {
    const answers: unknown[] = [];
    for (const behaviour of [
      { kind: 'down' as const },
      { kind: 'hang' as const },
      { kind: 'status' as const, status: 500, body: 'upstream says: database password wrong' },
      { kind: 'body' as const, body: '<html>' },
      { kind: 'redirect' as const, location: 'http://169.254.169.254/latest/meta-data' },
    ]) {
      const f = await setup({ timeoutMs: 300 });
      f.idp.setBehavior('discovery', behaviour);
      const error = (await f.login(await f.token())) as OidcAuthError;
      expectUnavailable(error);
      answers.push({ body: error.toBody(), headers: Object.keys(error.headers) });
      expect(f.rec.dump()).not.toContain('database password');
    }
    for (const answer of answers) expect(answer).toEqual(answers[0]);
  });
});

describe('IdP documents that lie or change (ISS-05, FETCH-05/06, KID-03)', () => {
  it('ISS-05: a discovery document naming another issuer: 401 invalid_credentials, event issuer_mismatch, no JWKS fetched', async () => {
    const f = await setup();
    f.idp.setDiscovery({ issuer: 'https://token.actions.githubusercontent.com' });
    for (let i = 0; i < 5; i++) {
      const outcome = await f.login(await f.token());
      expectUniform401(outcome);
      expect((outcome as OidcAuthError).headers['retry-after']).toBeUndefined();
      const event = f.rec.last('login.failure');
      expect(event?.reasonCode).toBe('issuer_mismatch');
      expect(event?.detail).toMatchObject({ source: 'discovery' });
    }
    expect(f.idp.hits('jwks')).toBe(0);
    expect(f.idp.hits('discovery'), 'refusals do not hammer the IdP (cooldown)').toBe(1);
  });

  it('FETCH-06: JWKS swapped under us: the new kid works after one refetch, the old kid stops working', async () => {
    const f = await setup();
    const oldKey = f.idp.keys[0]!;
    expect(await f.login(await f.token())).toBe('ok');
    expect(f.idp.hits('jwks')).toBe(1);

    const newKey = createSigningKey('RS256', `rotated-${randomUUID()}`);
    f.idp.setKeys([newKey]);
    f.clock.advance(31);
    expect(await f.login(await f.token({ key: newKey }))).toBe('ok');
    expect(f.idp.hits('jwks'), 'one refetch').toBe(2);

    expectUniform401(await f.login(await f.token({ key: oldKey })));
    expect(f.rec.last('login.failure')?.reasonCode).toBe('key_not_found');
    f.clock.advance(11 * MINUTE);
    expectUniform401(await f.login(await f.token({ key: oldKey })));
    expect(await f.login(await f.token({ key: newKey }))).toBe('ok');
  });

  it('FETCH-05: stale-if-error: the cached kid works up to the max stale age while the IdP is down; a new kid gets 503 with Retry-After', async () => {
    const f = await setup();
    expect(await f.login(await f.token())).toBe('ok');
    f.idp.setBehavior('discovery', { kind: 'status', status: 503 });
    f.idp.setBehavior('jwks', { kind: 'down' });

    for (const step of [11 * MINUTE, 2 * HOUR, 20 * HOUR, HOUR]) {
      f.clock.advance(step);
      expect(await f.login(await f.token()), `cached key after ${f.clock.ms}`).toBe('ok');
    }
    const newKid = await f.login(await f.token({ kid: `new-${randomUUID()}` }));
    expectUnavailable(newKid);
    expect(f.rec.last('login.failure')?.reasonCode).toBe('idp_unavailable');

    f.clock.advance(HOUR);
    expectUnavailable(await f.login(await f.token()));

    f.idp.reset();
    f.clock.advance(MINUTE);
    expect(await f.login(await f.token()), 'recovers once the IdP is back').toBe('ok');
  });

  it('KID-03: a flood of 500 random kids makes at most one JWKS fetch per cooldown window', async () => {
    const f = await setup({ cooldownMs: 30_000 });
    expect(await f.login(await f.token())).toBe('ok');
    expect(f.idp.hits('jwks')).toBe(1);
    const flood = f.forged;

    f.clock.advance(31);
    const outcomes = await Promise.all(Array.from({ length: 500 }, () => f.login(flood())));
    outcomes.forEach(expectUniform401);
    expect(f.idp.hits('jwks')).toBe(2);

    let windows = 0;
    for (let second = 0; second < 150; second += 5) {
      f.clock.advance(5);
      if (second % 30 === 0) windows++;
      const burst = await Promise.all(Array.from({ length: 20 }, () => f.login(flood())));
      burst.forEach(expectUniform401);
    }
    expect(f.idp.hits('jwks')).toBeLessThanOrEqual(2 + windows);
    expect(f.idp.hits('discovery')).toBe(1);
    expect(await f.login(await f.token()), 'the real kid still works').toBe('ok');
  });

  it('FETCH-08: 100 parallel cold logins make one discovery and one JWKS fetch', async () => {
    const f = await setup();
    const tokens = await Promise.all(Array.from({ length: 100 }, () => f.token()));
    const outcomes = await Promise.all(tokens.map((jwt) => f.login(jwt)));
    expect(outcomes.every((o) => o === 'ok')).toBe(true);
    expect([f.idp.hits('discovery'), f.idp.hits('jwks')]).toEqual([1, 1]);
  });
});

describe('#13.19 IdP recovery: logins recover as soon as the IdP answers, floods stay bounded', () => {
  it('#13.19 IdP recovery: after an outage that began with a cold cache, a login succeeds within about a second of the IdP answering (real clock)', async () => {
    const idp = await startTestIdp();
    cleanups.push(() => idp.close());
    const auth = createOidcAuth({
      identities: [loopbackIdentity(idp, SUBJECT, AUDIENCE)],
      signingKeys: SIGNING_KEYS,
    });
    cleanups.push(() => auth.close());
    const login = async () => {
      const jwt = await idp.sign({ sub: SUBJECT, aud: AUDIENCE });
      return auth.login({ identityId: 'ci', jwt }).then(
        () => 'ok' as const,
        (error: unknown) => error as OidcAuthError,
      );
    };
    idp.setBehavior('discovery', { kind: 'down' });
    const down = await login();
    expectUnavailable(down);
    expect((down as OidcAuthError).headers['retry-after'], 'retry after the probe interval').toBe('1');
    idp.reset();
    const back = Date.now();
    let outcome = await login();
    while (outcome !== 'ok' && Date.now() - back < 40_000) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      outcome = await login();
    }
    expect(outcome).toBe('ok');
    // The 30 s cooldown no longer decides: one probe per second (plus scheduling slack).
    expect(Date.now() - back).toBeLessThan(2_500);
  });

  it('#13.19 IdP recovery: a flood of logins during the outage makes at most one fetch per probe interval, and the next login after the IdP is back succeeds', async () => {
    const f = await setup();
    f.idp.setBehavior('discovery', { kind: 'down' });
    const forged = f.forged;
    const seconds_ = 20;
    for (let step = 0; step < seconds_ * 10; step++) {
      f.clock.advance(0.1);
      const burst = await Promise.all([
        ...Array.from({ length: 8 }, () => f.login(forged())),
        f.token().then((jwt) => f.login(jwt)),
        f.auth.login({ identityId: `nobody-${step}`, jwt: forged() }).then(
          () => 'ok' as const,
          (error: OidcAuthError) => error,
        ),
      ]);
      for (const outcome of burst) expectUnavailable(outcome);
    }
    expect(f.idp.hits('discovery')).toBeGreaterThanOrEqual(seconds_ - 1);
    expect(f.idp.hits('discovery')).toBeLessThanOrEqual(seconds_ + 1);
    expect(f.idp.hits('jwks')).toBe(0);
    f.idp.reset();
    f.clock.advance(1);
    expect(await f.login(await f.token())).toBe('ok');
  });
});
