import { createSign } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { afterAll, beforeAll, expect } from 'vitest';
import {
  oidcAuthRouter,
  requireAccessToken,
  type AuthenticatedRequest,
} from '../../adapters/express/index.js';
import { OidcAuthError, type OidcAuth } from '../../src/index.js';
import type { RawResponse } from '../helpers/http.js';
import type { TestKey } from '../helpers/jwt.js';

/** Routes of the host app built by {@link mountExpress}. */
export const LOGIN = '/api/v1/auth/oidc-auth/login';
export const RENEW = '/api/v1/auth/token/renew';
export const REVOKE = '/api/v1/auth/token/revoke';
export const SECRETS = '/api/v3/secrets/raw';
export const ADMIN = '/admin';

/** A host app on 127.0.0.1. */
export interface MountedApp {
  url: string;
  close(): Promise<void>;
}

/**
 * An Express host app: the auth router under `/api/v1/auth`, `GET /api/v3/secrets/raw` behind the
 * guard, and `GET /admin` behind the guard with an authorize predicate that always refuses.
 */
export async function mountExpress(auth: OidcAuth): Promise<MountedApp> {
  const app = express();
  app.use('/api/v1/auth', oidcAuthRouter(auth));
  app.get(SECRETS, requireAccessToken(auth), (req, res) => {
    res.json({ identityId: (req as AuthenticatedRequest).auth.identityId });
  });
  app.get(ADMIN, requireAccessToken(auth, { authorize: () => false }), (_req, res) => {
    res.json({ ok: true });
  });
  const server = app.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/**
 * Fail the file when anything escapes as an uncaught exception or an unhandled rejection while its
 * tests run (vitest reports them too; this names the invariant in the file itself).
 */
export function failOnUnhandled(): void {
  const escaped: unknown[] = [];
  const record = (error: unknown) => void escaped.push(error);
  beforeAll(() => {
    process.on('unhandledRejection', record);
    process.on('uncaughtException', record);
  });
  afterAll(() => {
    process.off('unhandledRejection', record);
    process.off('uncaughtException', record);
    expect(escaped.map((e) => (e instanceof Error ? `${e.name}: ${e.message}` : String(e)))).toEqual([]);
  });
}

/**
 * Property-test runs: `base` scaled by the `FUZZ_SCALE` environment variable (default 1), so a
 * nightly job can fuzz deeper (`FUZZ_SCALE=20 npx vitest run test/adversarial`).
 */
export function runs(base: number): number {
  const scale = Number(process.env.FUZZ_SCALE ?? 1);
  return Math.max(1, Math.round(base * (Number.isFinite(scale) && scale > 0 ? scale : 1)));
}

/** The keys of every error body. */
export const ERROR_BODY_KEYS = ['error', 'message', 'reasonCode', 'reqId', 'statusCode'];

/** Reason codes a 503 may carry (fail closed on an unreachable IdP or store). */
const RETRYABLE = new Set(['idp_unavailable', 'store_unavailable']);

/**
 * The invariants of every answer of the library's routes: never a 5xx except the documented 503
 * (with `Retry-After`), JSON error bodies of the documented shape with no stack trace, and none of
 * `secrets` (tokens, claim values, markers) anywhere in the body or the headers.
 */
export function expectSafeAnswer(res: RawResponse, secrets: readonly string[] = []): void {
  if (res.status >= 500) {
    expect(res.status, `unexpected ${res.status}: ${res.text.slice(0, 200)}`).toBe(503);
    expect(RETRYABLE.has(res.json?.reasonCode), 'a 503 names a retryable reason').toBe(true);
    expect(res.headers['retry-after']).toMatch(/^[1-9][0-9]*$/);
  }
  expect(res.status).toBeGreaterThanOrEqual(200);
  expect(res.headers['content-type'], `status ${res.status}: ${res.text.slice(0, 200)}`).toMatch(
    /^application\/json/,
  );
  if (res.status !== 200) {
    expect(Object.keys(res.json ?? {}).sort()).toEqual(ERROR_BODY_KEYS);
    expect(res.json.statusCode).toBe(res.status);
  }
  expect(res.text).not.toMatch(/\n\s+at |Error: /);
  expectNoSecrets(`${res.text}\n${JSON.stringify(res.headers)}`, secrets);
}

/** None of `secrets` occurs in `text`. Strings under 8 characters are skipped: they occur by chance. */
export function expectNoSecrets(text: string, secrets: readonly string[]): void {
  for (const secret of secrets) {
    if (secret.length < 8) continue;
    expect(text.includes(secret), `leaked ${JSON.stringify(secret.slice(0, 80))}`).toBe(false);
  }
}

/** An engine error as the client would see it: status, headers and body, serialised. */
export function errorView(error: unknown): string {
  expect(error).toBeInstanceOf(OidcAuthError);
  const e = error as OidcAuthError;
  return JSON.stringify({
    status: e.status,
    headers: e.headers,
    body: e.toBody(),
    json: e,
    message: e.message,
  });
}

/** A JSON object text from `[key, valueText]` pairs, so tests can write duplicate and `__proto__` keys. */
export function objectText(entries: ReadonlyArray<readonly [string, string]>): string {
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${v}`).join(',')}}`;
}

/** Base64url of a UTF-8 text. */
export const b64text = (text: string) => Buffer.from(text, 'utf8').toString('base64url');

/**
 * An RS256 signature over arbitrary header and payload texts with a test key, whatever the header
 * says: genuinely signed hostile tokens (duplicate keys, `__proto__`, non-object payloads).
 */
export function signText(key: TestKey, headerText: string, payloadText: string): string {
  const input = `${b64text(headerText)}.${b64text(payloadText)}`;
  return `${input}.${createSign('RSA-SHA256').update(input).sign(key.privateKey).toString('base64url')}`;
}

/** Parse JSON, or `undefined`. */
export function tryJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** Every string value inside a JSON value (claim names are not secrets), bounded. */
export function stringLeaves(value: unknown, out: string[] = [], depth = 0): string[] {
  if (out.length > 500 || depth > 50) return out;
  if (typeof value === 'string') out.push(value);
  else if (Array.isArray(value)) for (const item of value) stringLeaves(item, out, depth + 1);
  else if (value !== null && typeof value === 'object') {
    for (const v of Object.values(value)) stringLeaves(v, out, depth + 1);
  }
  return out;
}
