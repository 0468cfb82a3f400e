import { expect, it } from 'vitest';
import {
  createDpopClient,
  createDpopProof,
  dpopFetch,
  DpopNonces,
  generateDpopKey,
} from '../../src/client/index.js';

/** What the DPoP client cases need of a server: its auth routes, one guarded route, an IdP token. */
export interface DpopClientCaseContext {
  /** Where the auth routes are mounted, e.g. `http://127.0.0.1:PORT/api/v1/auth`. */
  authUrl: string;
  /** Absolute URL of a `GET` route behind the guard that answers 200 to a valid DPoP call. */
  guardedUrl: string;
  /** The identity the IdP tokens log in to. */
  identityId: string;
  /** A fresh IdP JWT that logs in to `identityId` (a new one per call when tokens are single-use). */
  mintIdpToken(): Promise<string>;
  /** The server's clock (ms), for the proofs' `iat`, when it is not the real one. */
  clock?: () => number;
  /** The `client_id` of an identity the RFC 8693 exchange takes with these IdP tokens. */
  exchangeClientId: string;
}

/** What the server under test does beyond RFC 9449's musts, fixed when the cases are registered. */
export interface DpopClientCaseOptions {
  /** Whether the guard refuses a proof it has seen (RFC 9449 §11.1; express-oauth2-jwt-bearer keeps no jti cache). */
  refusesReplayedProofs: boolean;
}

/**
 * The machine client of `oidc-machine-auth/client` against a server: call inside a `describe` of the
 * host's suite (test/adapters/conformance.ts after the server side merged; test/client/dpop.test.ts
 * against express-oauth2-jwt-bearer until then). Each case logs in afresh.
 */
/**
 * A refusal of a guarded call: 401, or 400 where the guard follows RFC 6750 §3.1 for a malformed
 * request or proof (express-oauth2-jwt-bearer does), with a DPoP challenge (RFC 9449 §7.1).
 */
function expectRefused(res: Response): void {
  expect([400, 401]).toContain(res.status);
  expect(res.headers.get('www-authenticate')).toMatch(/(^|,)\s*DPoP\b/i);
}

export function dpopClientCases(context: () => DpopClientCaseContext, options: DpopClientCaseOptions): void {
  const clientFor = (c: DpopClientCaseContext, nonces = new DpopNonces()) =>
    createDpopClient({ authUrl: c.authUrl, nonces, ...(c.clock ? { clock: c.clock } : {}) });

  async function loggedIn() {
    const c = context();
    const nonces = new DpopNonces();
    const client = clientFor(c, nonces);
    const grant = await client.login({ identityId: c.identityId, jwt: await c.mintIdpToken() });
    return { c, client, grant, nonces };
  }

  it('RFC 9449 §5: a login with a DPoP proof answers token type DPoP', async () => {
    const { grant } = await loggedIn();
    expect(grant.tokenType).toBe('DPoP');
    expect(grant.expiresIn).toBeGreaterThan(0);
  });

  it('RFC 9449 §7.1: the bound token with Authorization: DPoP and a fresh proof per request passes the guard, twice', async () => {
    const { c, client } = await loggedIn();
    for (let i = 0; i < 2; i++) {
      const res = await client.fetch(c.guardedUrl);
      expect(res.status).toBe(200);
      await res.body?.cancel();
    }
  });

  it('RFC 9449 §7.1: the bound token sent as a Bearer token without a proof is refused', async () => {
    const { c, grant } = await loggedIn();
    const res = await fetch(c.guardedUrl, { headers: { authorization: `Bearer ${grant.accessToken}` } });
    expectRefused(res);
    expect(await res.text()).not.toContain(grant.accessToken);
  });

  it('RFC 9449 §4.3 step 12 / §6.1: the bound token with a proof from another key is refused', async () => {
    const { c, grant } = await loggedIn();
    const thief = await generateDpopKey();
    const res = await dpopFetch(
      c.guardedUrl,
      {},
      { key: thief, accessToken: grant.accessToken, ...(c.clock ? { clock: c.clock } : {}) },
    );
    expectRefused(res);
  });

  it('RFC 9449 §4.3 step 9: a proof made for another URL is refused', async () => {
    const { c, client, grant, nonces } = await loggedIn();
    expect((await client.fetch(c.guardedUrl)).status).toBe(200);
    const other = new URL(c.guardedUrl);
    other.pathname = `${other.pathname}-other`;
    const proof = await createDpopProof({
      key: await client.key(),
      method: 'GET',
      url: other,
      accessToken: grant.accessToken,
      nonce: nonces.get(c.guardedUrl),
      ...(c.clock ? { now: c.clock() } : {}),
    });
    const res = await fetch(c.guardedUrl, {
      headers: { authorization: `DPoP ${grant.accessToken}`, dpop: proof },
    });
    expectRefused(res);
  });

  it(`RFC 9449 §11.1: a proof sent twice is ${options.refusesReplayedProofs ? 'refused' : 'taken (no jti cache)'} the second time`, async () => {
    const { c, client, grant, nonces } = await loggedIn();
    // One call first, so the proof below carries the guard's nonce if it hands out nonces (§9).
    expect((await client.fetch(c.guardedUrl)).status).toBe(200);
    const proof = await createDpopProof({
      key: await client.key(),
      method: 'GET',
      url: c.guardedUrl,
      accessToken: grant.accessToken,
      nonce: nonces.get(c.guardedUrl),
      ...(c.clock ? { now: c.clock() } : {}),
    });
    const send = () =>
      fetch(c.guardedUrl, { headers: { authorization: `DPoP ${grant.accessToken}`, dpop: proof } });
    expect((await send()).status).toBe(200);
    const again = await send();
    if (options.refusesReplayedProofs) expectRefused(again);
    else expect(again.status).toBe(200);
  });

  it('RFC 8693 + RFC 9449 §5: the token exchange with a DPoP proof answers a DPoP token the guard takes', async () => {
    const c = context();
    const client = clientFor(c);
    const grant = await client.exchange({
      subjectToken: await c.mintIdpToken(),
      clientId: c.exchangeClientId,
    });
    expect(grant.tokenType).toBe('DPoP');
    const res = await client.fetch(c.guardedUrl);
    expect(res.status).toBe(200);
  });
}
