import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import type { OidcAuthError } from '../../src/index.js';
import { makeEngine } from '../helpers/engine.js';
import { ISSUER, githubClaims, makeKey } from '../helpers/jwt.js';
import {
  applyEdits,
  applyStringEdits,
  hostileDocument,
  hostileValue,
  sameMeaning,
  stringEdit,
  tokenTexts,
} from './arbitraries.js';
import { MAPPED_CLAIMS, expectedVerdict, unstorableMapped, type Bindings } from './oracle.js';
import {
  b64text,
  errorView,
  expectNoSecrets,
  failOnUnhandled,
  runs,
  signText,
  stringLeaves,
  tryJson,
} from './support.js';

failOnUnhandled();

const key = makeKey('RS256', 'fuzz-key-1');
// Hundreds of refused logins of one subject under a frozen clock are this fuzz's method, which the
// failed-login lockout (docs/RATE-LIMITS.md) rightly stops after 60: only that budget is off here.
const e = makeEngine({ key, auth: { rateLimits: { failedLoginsPerSubject: false } } });
afterAll(() => e.auth.close());

const BINDINGS: Bindings = {
  issuer: ISSUER,
  subject: 'repo:acme-corp/payments-api:ref:refs/heads/main',
  audience: 'https://github.com/acme-corp',
  repositoryId: '612345678',
  kid: key.kid,
  skewSeconds: 60,
  maxLifetimeSeconds: 86_400,
};

const {
  header: HEADER,
  payload: PAYLOAD,
  headerText,
  payloadText,
} = tokenTexts(key.kid, githubClaims(e.clock.ms));
const BOUND_CLAIMS = new Set(['iss', 'sub', 'aud', 'exp', 'iat', 'nbf', 'jti', 'repository_id']);

const UNIFORM = { status: 401, code: 'invalid_credentials', message: 'Invalid credentials' };
const decode = (segment: string | undefined) => Buffer.from(segment ?? '', 'base64url').toString('utf8');

/** Strings a refusal must never carry: the token, its segments, and the strings inside it. */
function secretsOf(jwt: string): string[] {
  const segments = jwt.split('.');
  const leaves = segments.slice(0, 2).flatMap((s) => stringLeaves(tryJson(decode(s))));
  return [jwt, ...segments.filter((s) => s.length >= 12), ...leaves.filter((s) => s.length >= 8)].filter(
    (s) => s.length >= 8,
  );
}

/** Log in; returns 'ok' or the error, and the events and log lines this one call produced. */
async function attempt(jwt: string) {
  const events = e.rec.events.length;
  const logs = e.rec.logs.length;
  const outcome = await e.auth.login({ identityId: 'gh-deployer', jwt }).then(
    () => 'ok' as const,
    (error: unknown) => error as OidcAuthError,
  );
  const recorded = JSON.stringify({ events: e.rec.events.slice(events), logs: e.rec.logs.slice(logs) });
  return { outcome, recorded };
}

/** The one challenge every login 401 carries, whatever the reason (#13.15, RFC 6750 §3). */
const LOGIN_CHALLENGE = { 'www-authenticate': 'Bearer realm="oidc-machine-auth", error="invalid_token"' };

describe('FUZZ-JWT: mutated IdP tokens through the engine', () => {
  it('FUZZ-JWT-01 (STR-02, ENUM-01): unsigned mutations never log in unless byte-identical in meaning; every refusal is the uniform 401', async () => {
    const original = signText(key, applyEdits(HEADER, []), applyEdits(PAYLOAD, []));
    expect((await attempt(original)).outcome).toBe('ok');
    await fc.assert(
      fc.asyncProperty(
        fc.array(stringEdit(headerText, payloadText), { minLength: 1, maxLength: 4 }),
        async (edits) => {
          const jwt = applyStringEdits(original, edits);
          const { outcome, recorded } = await attempt(jwt);
          if (outcome === 'ok') {
            expect(sameMeaning(jwt, original), 'only the same bytes may log in').toBe(true);
            return;
          }
          expect({ status: outcome.status, code: outcome.code, message: outcome.message }).toEqual(UNIFORM);
          expect(outcome.headers).toEqual(LOGIN_CHALLENGE);
          const secrets = secretsOf(jwt);
          expectNoSecrets(errorView(outcome), secrets);
          expectNoSecrets(recorded, secrets);
        },
      ),
      { numRuns: runs(800) },
    );
  });

  it('FUZZ-JWT-02 (ALG-01/04, HDR-01..05, STR-01/06): tokens built from scratch never log in, whatever the header says', async () => {
    const signature = fc.oneof(
      fc.constant(''),
      fc.string({ unit: fc.constantFrom(...'ABCabc012-_'), maxLength: 400 }),
      fc.uint8Array({ maxLength: 512 }).map((bytes) => Buffer.from(bytes).toString('base64url')),
    );
    const segment = fc.oneof(
      { weight: 3, arbitrary: headerText.map(b64text) },
      { weight: 3, arbitrary: payloadText.map(b64text) },
      { weight: 2, arbitrary: hostileDocument.map(b64text) },
      { weight: 1, arbitrary: hostileValue.map(b64text) },
    );
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.oneof(segment, signature), { minLength: 0, maxLength: 6 }),
        async (segments) => {
          const jwt = segments.join('.');
          const { outcome, recorded } = await attempt(jwt);
          expect(outcome).not.toBe('ok');
          const error = outcome as OidcAuthError;
          expect({ status: error.status, code: error.code, message: error.message }).toEqual(UNIFORM);
          const secrets = secretsOf(jwt);
          expectNoSecrets(errorView(error), secrets);
          expectNoSecrets(recorded, secrets);
        },
      ),
      { numRuns: runs(500) },
    );
  });

  it('FUZZ-JWT-03 (TIME-04/05, AUD-03/04, SUB-01/02, CLM-02, STR-05/07): re-signed mutations log in exactly when every binding still holds', async () => {
    const verdicts = { accept: 0, reject: 0, either: 0 };
    await fc.assert(
      fc.asyncProperty(headerText, payloadText, async (h, p) => {
        const jwt = signText(key, h, p);
        const expected = expectedVerdict(jwt, e.clock.ms, BINDINGS);
        verdicts[expected]++;
        const { outcome, recorded } = await attempt(jwt);
        if (expected === 'accept') expect(outcome, 'a token satisfying every binding logs in').toBe('ok');
        if (expected === 'reject') expect(outcome, 'a token failing a binding never logs in').not.toBe('ok');

        const report = await e.auth.explain({ identityId: 'gh-deployer', jwt });
        expect(report.ok, 'explain agrees with login').toBe(outcome === 'ok');

        if (outcome === 'ok') return;
        expect([401, 403]).toContain(outcome.status);
        expect(outcome.headers).toEqual(outcome.status === 401 ? LOGIN_CHALLENGE : {});
        // Audit fields of a verified token are carried in events by design (LOG-03); nothing else.
        const payload = tryJson(decode(jwt.split('.')[1]));
        const audit = ['iss', 'sub', 'jti']
          .map((k) => (payload as Record<string, unknown> | undefined)?.[k])
          .filter((v): v is string => typeof v === 'string');
        const secrets = secretsOf(jwt).filter((s) => !audit.some((a) => a.includes(s)));
        expectNoSecrets(errorView(outcome), secretsOf(jwt));
        expectNoSecrets(recorded, secrets);
      }),
      { numRuns: runs(600) },
    );
    expect(verdicts.accept, 'the generator reaches accepted tokens').toBeGreaterThan(10);
    expect(verdicts.reject, 'the generator reaches refused tokens').toBeGreaterThan(10);
  });

  it('FUZZ-JWT-04 (STR-04/05, CLM-06, HTTP-06): unbound claims of any shape never break a valid login, and events stay serialisable', async () => {
    const junkKey = fc.oneof(
      fc.constantFrom('__proto__', 'constructor', 'prototype', 'environment', 'ref', 'repository', 'x'),
      fc.string({ maxLength: 16 }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(junkKey, hostileValue), { maxLength: 4 }), async (extra) => {
        const entries = [...PAYLOAD, ...extra.filter(([k]) => !BOUND_CLAIMS.has(k))];
        const payload = `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${v}`).join(',')}}`;
        const jwt = signText(key, applyEdits(HEADER, []), payload);
        fc.pre(jwt.length <= 16 * 1024);
        const { outcome, recorded } = await attempt(jwt);
        // #13.6: a mapped claim (ref, repository) no store can keep as sent is refused, nothing else.
        const claims = JSON.parse(payload) as Record<string, unknown>;
        if (MAPPED_CLAIMS.some((name) => unstorableMapped(claims[name]))) {
          expect(outcome).toMatchObject({ status: 401, code: 'claim_value_unsupported' });
          return;
        }
        expect(outcome).toBe('ok');
        expect(recorded).toContain('login.success');
        expect(({} as Record<string, unknown>).admin).toBeUndefined();
      }),
      { numRuns: runs(200) },
    );
  });
});
