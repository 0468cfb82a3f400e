import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { OidcAuthError } from '../../src/index.js';
import { makeEngine } from '../helpers/engine.js';
import { githubClaims, makeKey, seconds, sign } from '../helpers/jwt.js';
import { failOnUnhandled, runs } from './support.js';

failOnUnhandled();

const key = makeKey('RS256');
const MINUTE = 60;

/**
 * A token minted at the engine clock's current second `T` with `iat = T`, `nbf = T` (or none) and
 * `exp = T + lifetime`, then the server clock moved by `skew` seconds; the outcome of the login.
 */
async function loginWithSkew(options: {
  skew: number;
  lifetime?: number;
  nbf?: boolean;
  clockSkewSeconds?: number;
}) {
  const { skew, lifetime = 10 * MINUTE, nbf = true } = options;
  const e = makeEngine({
    key,
    identity: options.clockSkewSeconds === undefined ? {} : { clockSkewSeconds: options.clockSkewSeconds },
  });
  const t = seconds(e.clock.ms);
  const jwt = await sign(
    e.key,
    githubClaims(e.clock.ms, { iat: t, nbf: nbf ? t : undefined, exp: t + lifetime }),
  );
  e.clock.advance(skew);
  try {
    const grant = await e.auth.login({ identityId: 'gh-deployer', jwt });
    return { ok: true as const, grant, serverNow: e.clock.ms, tokenExp: (t + lifetime) * 1000 };
  } catch (error) {
    return { ok: false as const, error: error as OidcAuthError };
  } finally {
    await e.auth.close();
  }
}

describe('TIME-08: clock skew both ways (fake clock, default leeway 60 s)', () => {
  it.each([
    ['server 59 s behind the token (iat/nbf 59 s ahead)', -59, true, undefined],
    ['server 61 s behind the token, with nbf', -61, true, 'token_not_yet_valid'],
    ['server 61 s behind the token, without nbf', -61, false, 'token_issued_in_future'],
    ['server 5 min behind the token', -5 * MINUTE, true, 'token_not_yet_valid'],
    ['server 5 min behind the token, without nbf', -5 * MINUTE, false, 'token_issued_in_future'],
    ['server 5 min ahead of a fresh 10 min token', 5 * MINUTE, true, undefined],
    ['server 59 s past the token exp', 10 * MINUTE + 59, true, undefined],
    ['server 61 s past the token exp', 10 * MINUTE + 61, true, 'token_expired'],
    ['server 5 min past the token exp', 15 * MINUTE, true, 'token_expired'],
  ] as const)('TIME-08: %s', async (_title, skew, nbf, reason) => {
    const outcome = await loginWithSkew({ skew, nbf });
    if (reason === undefined) {
      expect(outcome.ok).toBe(true);
      return;
    }
    expect(outcome.ok).toBe(false);
    const error = (outcome as { error: OidcAuthError }).error;
    expect({ status: error.status, code: error.code }).toEqual({ status: 401, code: reason });
  });

  it('TIME-08: the access token expiry follows the server clock, never the IdP token times', async () => {
    for (const skew of [-59, 0, 5 * MINUTE, 10 * MINUTE + 59]) {
      const outcome = await loginWithSkew({ skew });
      expect(outcome.ok).toBe(true);
      if (!outcome.ok) continue;
      expect(outcome.grant.expiresAt).toBe(outcome.serverNow + 7200 * 1000);
      expect(outcome.grant.expiresAt).not.toBe(outcome.tokenExp);
      expect(outcome.grant.expiresIn).toBe(7200);
    }
  });

  it('TIME-02/03/07/08: for any skew, leeway and lifetime, a login passes exactly inside [-leeway, lifetime + leeway)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: -400, max: 4_000 }),
        fc.integer({ min: 0, max: 300 }),
        fc.integer({ min: 60, max: 3_600 }),
        fc.boolean(),
        async (skew, leeway, lifetime, nbf) => {
          const outcome = await loginWithSkew({ skew, lifetime, nbf, clockSkewSeconds: leeway });
          const inside = skew >= -leeway && skew < lifetime + leeway;
          expect(outcome.ok, `skew ${skew}, leeway ${leeway}, lifetime ${lifetime}`).toBe(inside);
          if (outcome.ok) return;
          const expected =
            skew < -leeway ? (nbf ? 'token_not_yet_valid' : 'token_issued_in_future') : 'token_expired';
          expect(outcome.error.code).toBe(expected);
          expect(outcome.error.status).toBe(401);
        },
      ),
      { numRuns: runs(400) },
    );
  });
});
