import assert from 'node:assert/strict';
import { OidcAuthError } from '../errors.js';
import type { AccessTokenRecord, ConsumeResult, ExtendResult, TokenStore } from '../types.js';

type Refusal = Extract<ConsumeResult | ExtendResult, { ok: false }>['reason'];

/** `result` granted; returns its record. */
export function assertGranted(result: ConsumeResult | ExtendResult, what: string): AccessTokenRecord {
  if (!result?.ok) {
    assert.fail(`${what}: expected { ok: true, record }, got ${show(result)}`);
  }
  return result.record;
}

/** `result` refused with exactly `reason`. */
export function assertRefused(result: ConsumeResult | ExtendResult, reason: Refusal, what: string): void {
  if (result?.ok !== false || result.reason !== reason) {
    assert.fail(`${what}: expected { ok: false, reason: '${reason}' }, got ${show(result)}`);
  }
}

/**
 * `actual` and `expected` hold the same data, types included (`'007'` is not `7`); a property that is
 * `undefined` counts as absent (a store may hand back `issuer: undefined` for a record without one).
 */
export function assertSameData(actual: unknown, expected: unknown, what: string): void {
  assert.deepStrictEqual(withoutUndefined(actual), withoutUndefined(expected), what);
}

function withoutUndefined(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withoutUndefined);
  if (value === null || typeof value !== 'object') return value;
  const out: Record<string, unknown> = {};
  for (const [key, inner] of Object.entries(value)) {
    if (inner !== undefined) out[key] = withoutUndefined(inner);
  }
  return out;
}

/** How a call settled, or `pending` if it had not within the time allowed. */
export type Settled<T> =
  { status: 'fulfilled'; value: T } | { status: 'rejected'; reason: unknown } | { status: 'pending' };

export async function settleWithin<T>(promise: Promise<T>, ms: number): Promise<Settled<T>> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<Settled<T>>((resolve) => {
    timer = setTimeout(() => resolve({ status: 'pending' }), ms);
  });
  try {
    return await Promise.race([
      promise.then(
        (value): Settled<T> => ({ status: 'fulfilled', value }),
        (reason: unknown): Settled<T> => ({ status: 'rejected', reason }),
      ),
      late,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * `call` fails closed: it rejects within `ms`, with an error the engine answers 503
 * `store_unavailable` for (any error that is not an `OidcAuthError`, or a `ServiceUnavailableError`
 * with code `store_unavailable`). Resolving, whatever with, or hanging, fails.
 */
export async function assertFailsClosed(
  call: () => Promise<unknown>,
  ms: number,
  what: string,
): Promise<void> {
  let settled: Settled<unknown>;
  try {
    settled = await settleWithin(call(), ms);
  } catch (error) {
    // Thrown synchronously: the engine awaits the call, so it sees a rejection all the same.
    settled = { status: 'rejected', reason: error };
  }
  if (settled.status === 'pending') {
    assert.fail(
      `${what}: neither resolved nor rejected within ${ms} ms while the backend was unreachable; ` +
        'the request would hang: bound every backend call with a timeout and throw when it passes',
    );
  }
  if (settled.status === 'fulfilled') {
    assert.fail(
      `${what}: resolved ${show(settled.value)} while the backend was unreachable; it must throw ` +
        '(fail closed), never answer from a cache or a default',
    );
  }
  const error = settled.reason;
  if (error instanceof OidcAuthError && (error.status !== 503 || error.code !== 'store_unavailable')) {
    assert.fail(
      `${what}: threw ${error.name} (${error.status} ${error.code}), which the engine passes on as is; ` +
        "throw ServiceUnavailableError('store_unavailable', …) or any error that is not an OidcAuthError",
    );
  }
}

/** Calls `attempt` until it resolves, every `intervalMs`, for at most `ms`; then throws its last error. */
export async function eventually<T>(attempt: () => Promise<T>, ms: number, what: string): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const settled = await settleWithin(attempt(), Math.max(1, until - Date.now()));
    if (settled.status === 'fulfilled') return settled.value;
    if (Date.now() >= until) {
      const reason = settled.status === 'rejected' ? describeError(settled.reason) : 'a call that hung';
      assert.fail(`${what}: still failing after ${ms} ms (last: ${reason})`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

export function show(value: unknown): string {
  try {
    const text = JSON.stringify(value);
    return text === undefined ? String(value) : text.length > 300 ? `${text.slice(0, 300)}…` : text;
  } catch {
    return String(value);
  }
}

function describeError(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : show(error);
}

/** Lets other callbacks run: a backend round trip's worth of interleaving. */
export function tick(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/**
 * Every record is refused `revoked` by consume and by extend, on every instance: no token of a login
 * in flight survived `revocation` (`revokeIdentity`, `revokeWhere`).
 */
export async function expectAllRevoked(
  instances: readonly TokenStore[],
  records: readonly AccessTokenRecord[],
  what: string,
  revocation: string,
): Promise<void> {
  const now = Date.now();
  const checks = records.flatMap((record, i) =>
    instances.flatMap((store, s) => [
      store.consume(record.tokenId, now).then((r) => ({ op: 'consume', r, i, s })),
      store.extend(record.tokenId, now).then((r) => ({ op: 'extend', r, i, s })),
    ]),
  );
  const survivors = (await Promise.all(checks)).filter(({ r }) => r.ok || r.reason !== 'revoked');
  assert.deepEqual(
    survivors.map(
      ({ op, r, i, s }) =>
        `record ${i}: ${op} on instance ${s + 1} answered ${JSON.stringify(r.ok ? 'ok' : r.reason)}`,
    ),
    [],
    `${what}: tokens of logins in flight during ${revocation} survived it`,
  );
}
