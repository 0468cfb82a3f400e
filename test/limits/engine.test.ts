import { describe, expect, it } from 'vitest';
import {
  ConfigError,
  DEFAULT_RATE_LIMITS,
  MemoryRateLimiter,
  OidcAuthError,
  exchange,
  oauthErrorAnswer,
  errorAnswer,
  type OidcAuth,
  type RateLimitsOptions,
} from '../../src/index.js';
import { githubIdentity, makeEngine, type TestEngine } from '../helpers/engine.js';
import { githubClaims, makeKey, rawToken, sign } from '../helpers/jwt.js';

const A = '203.0.113.7';
const B = '198.51.100.20';
const key = makeKey('RS256');
const DEV = 'repo:acme-corp/payments-api:ref:refs/heads/dev';

/** An engine with two identities (any branch of the repo may log in) and the given budgets. */
function engine(rateLimits?: RateLimitsOptions | false): TestEngine {
  return makeEngine({
    key,
    identities: [
      githubIdentity(key, { boundSubject: 'repo:acme-corp/payments-api:ref:refs/heads/*' }),
      githubIdentity(key, {
        identityId: 'other',
        boundSubject: 'repo:acme-corp/payments-api:ref:refs/heads/*',
      }),
    ],
    ...(rateLimits === undefined ? {} : { auth: { rateLimits } }),
  });
}

/** The outcome of a call: `ok`, or the refusal's status and reason code. */
async function outcome(call: Promise<unknown>): Promise<string> {
  try {
    await call;
    return 'ok';
  } catch (error) {
    if (error instanceof OidcAuthError) return `${error.status} ${error.code}`;
    throw error;
  }
}

async function retryAfter(call: Promise<unknown>): Promise<string | undefined> {
  try {
    await call;
  } catch (error) {
    if (error instanceof OidcAuthError) return error.headers['retry-after'];
  }
  return undefined;
}

const garbage = rawToken({ alg: 'RS256', kid: 'nope' }, { iss: 'x' });

describe('rate limits on login (Throttled: 429, docs/RATE-LIMITS.md)', () => {
  it('a flood of invalid IdP tokens from address A spends only A: a valid pipeline at B logs in, the identity budget is untouched', async () => {
    const { auth, clock } = engine({
      failedLoginsPerAddress: { perMinute: 6, burst: 20 },
      perIdentity: { perMinute: 1, burst: 3 },
    });
    const valid = await sign(key, githubClaims(clock.ms));
    const forged = await sign(makeKey('RS256', key.kid), githubClaims(clock.ms));
    const seen = new Set<string>();
    for (let i = 0; i < 100; i++) {
      seen.add(
        await outcome(auth.login({ identityId: 'gh-deployer', jwt: i % 2 ? garbage : forged, clientIp: A })),
      );
    }
    expect([...seen].sort()).toEqual(['401 invalid_credentials', '429 rate_limited']);
    // A is now refused even with a genuine token; the Retry-After says when its budget has room.
    expect(await outcome(auth.login({ identityId: 'gh-deployer', jwt: valid, clientIp: A }))).toBe(
      '429 rate_limited',
    );
    expect(await retryAfter(auth.login({ identityId: 'gh-deployer', jwt: valid, clientIp: A }))).toBe('10');
    // B logs in as often as the identity's own budget allows (3): A's flood spent none of it.
    for (let i = 0; i < 3; i++) {
      expect(await outcome(auth.login({ identityId: 'gh-deployer', jwt: valid, clientIp: B }))).toBe('ok');
    }
    clock.advance(10);
    expect(await outcome(auth.login({ identityId: 'other', jwt: valid, clientIp: A }))).toBe('ok');
  });

  it('failed logins after the signature verified lock that (identity, subject) out for a while, not other subjects or identities', async () => {
    const { auth, clock, rec } = engine({ failedLoginsPerSubject: { perMinute: 2, burst: 5 } });
    const wrongAudience = await sign(key, githubClaims(clock.ms, { aud: 'https://elsewhere.example' }));
    const otherRepo = await sign(key, githubClaims(clock.ms, { repository_id: '1' }));
    // From many addresses: the count follows the subject, not the address.
    for (let i = 0; i < 5; i++) {
      const jwt = i % 2 ? otherRepo : wrongAudience;
      expect(await outcome(auth.login({ identityId: 'gh-deployer', jwt, clientIp: `10.0.0.${i}` }))).toMatch(
        /^401 /,
      );
    }
    const main = await sign(key, githubClaims(clock.ms));
    expect(await outcome(auth.login({ identityId: 'gh-deployer', jwt: main, clientIp: B }))).toBe(
      '429 locked_out',
    );
    expect(await retryAfter(auth.login({ identityId: 'gh-deployer', jwt: main, clientIp: B }))).toBe('30');
    expect(rec.last('login.failure')).toMatchObject({ reasonCode: 'locked_out', identityId: 'gh-deployer' });
    // Another subject of the same identity, and the same subject at another identity, log in.
    const dev = await sign(key, githubClaims(clock.ms, { sub: DEV }));
    expect(await outcome(auth.login({ identityId: 'gh-deployer', jwt: dev, clientIp: B }))).toBe('ok');
    expect(await outcome(auth.login({ identityId: 'other', jwt: main, clientIp: B }))).toBe('ok');
    clock.advance(30);
    expect(await outcome(auth.login({ identityId: 'gh-deployer', jwt: main, clientIp: B }))).toBe('ok');
  });

  it('a leaked stale token (expired, or single-use and already exchanged) replayed from anywhere never locks its subject out: it spends its addresses', async () => {
    const { auth, clock } = makeEngine({
      key,
      identity: { singleUseTokens: true },
      auth: {
        rateLimits: {
          failedLoginsPerSubject: { perMinute: 1, burst: 1 },
          failedLoginsPerAddress: { perMinute: 6, burst: 10 },
        },
      },
    });
    const expired = await sign(key, githubClaims(clock.ms - 3_600_000));
    const used = await sign(key, githubClaims(clock.ms, { jti: 'leaked-once' }));
    expect(await outcome(auth.login({ identityId: 'gh-deployer', jwt: used, clientIp: B }))).toBe('ok');
    const seen = new Set<string>();
    for (let i = 0; i < 40; i++) {
      const jwt = i % 2 ? expired : used;
      seen.add(
        await outcome(auth.login({ identityId: 'gh-deployer', jwt, clientIp: i < 30 ? A : `10.4.0.${i}` })),
      );
    }
    expect([...seen].sort()).toEqual(['401 token_already_used', '401 token_expired', '429 rate_limited']);
    const fresh = await sign(key, githubClaims(clock.ms, { jti: 'fresh' }));
    expect(await outcome(auth.login({ identityId: 'gh-deployer', jwt: fresh, clientIp: B }))).toBe('ok');
    expect(await outcome(auth.login({ identityId: 'gh-deployer', jwt: fresh, clientIp: A }))).toBe(
      '429 rate_limited',
    );
  });

  it('a leaked IdP token sent without the DPoP proof its identity requires, from an address its tokens are not for, or asking for a scope or audience the identity does not grant, never locks the pipeline out', async () => {
    const { auth, clock } = makeEngine({
      key,
      identities: [
        githubIdentity(key, { identityId: 'must-dpop', requireDpop: true }),
        githubIdentity(key, { identityId: 'fenced', accessTokenTrustedIps: ['198.51.100.0/24'] }),
      ],
      auth: { rateLimits: { failedLoginsPerSubject: { perMinute: 1, burst: 1 } } },
    });
    const leaked = await sign(key, githubClaims(clock.ms));
    for (let i = 0; i < 10; i++) {
      expect(
        await outcome(auth.login({ identityId: 'must-dpop', jwt: leaked, clientIp: `10.2.0.${i}` })),
      ).toBe('401 dpop_required');
      expect(await outcome(auth.login({ identityId: 'fenced', jwt: leaked, clientIp: `10.3.0.${i}` }))).toBe(
        '403 ip_not_allowed',
      );
    }
    // Nor a scope, audience or format asked for that the identity does not grant: the caller chose it.
    for (let i = 0; i < 10; i++) {
      expect(
        await outcome(
          auth.login({ identityId: 'fenced', jwt: leaked, clientIp: B, grant: { scopes: ['admin'] } }),
        ),
      ).toBe('401 scope_not_allowed');
      expect(
        await outcome(
          auth.login({
            identityId: 'fenced',
            jwt: leaked,
            clientIp: B,
            grant: { audience: 'https://x.example' },
          }),
        ),
      ).toBe('401 target_not_allowed');
    }
    // The pipeline itself, same subject, from its own address: not locked out.
    expect(await outcome(auth.login({ identityId: 'fenced', jwt: leaked, clientIp: B }))).toBe('ok');
  });

  it('long subjects (hashed into the key) lock out one by one too', async () => {
    const { auth, clock } = engine({ failedLoginsPerSubject: { perMinute: 1, burst: 1 } });
    const long = (branch: string) => `repo:acme-corp/payments-api:ref:refs/heads/${branch}${'x'.repeat(300)}`;
    const refused = await sign(
      key,
      githubClaims(clock.ms, { sub: long('a'), aud: 'https://elsewhere.example' }),
    );
    expect(await outcome(auth.login({ identityId: 'gh-deployer', jwt: refused, clientIp: A }))).toBe(
      '401 audience_not_allowed',
    );
    const a = await sign(key, githubClaims(clock.ms, { sub: long('a') }));
    const b = await sign(key, githubClaims(clock.ms, { sub: long('b') }));
    expect(await outcome(auth.login({ identityId: 'gh-deployer', jwt: a, clientIp: B }))).toBe(
      '429 locked_out',
    );
    expect(await outcome(auth.login({ identityId: 'gh-deployer', jwt: b, clientIp: B }))).toBe('ok');
  });

  it('invalid tokens never lock a subject out: only a caller holding a genuine token for it can', async () => {
    const { auth, clock } = engine({ failedLoginsPerSubject: { perMinute: 1, burst: 1 } });
    const forged = await sign(makeKey('RS256', key.kid), githubClaims(clock.ms));
    for (let i = 0; i < 50; i++) {
      expect(
        await outcome(auth.login({ identityId: 'gh-deployer', jwt: forged, clientIp: `10.1.0.${i}` })),
      ).toBe('401 invalid_credentials');
    }
    const main = await sign(key, githubClaims(clock.ms));
    expect(await outcome(auth.login({ identityId: 'gh-deployer', jwt: main, clientIp: B }))).toBe('ok');
  });

  it('per address: the burst passes, the next login is 429 with Retry-After; another address is unaffected', async () => {
    const { auth, clock, rec } = engine({ perAddress: { perMinute: 60, burst: 5 } });
    const jwt = await sign(key, githubClaims(clock.ms));
    for (let i = 0; i < 5; i++)
      expect(await outcome(auth.login({ identityId: 'gh-deployer', jwt, clientIp: A }))).toBe('ok');
    expect(await outcome(auth.login({ identityId: 'gh-deployer', jwt, clientIp: A }))).toBe(
      '429 rate_limited',
    );
    expect(rec.last('login.failure')).toMatchObject({ reasonCode: 'rate_limited', clientIp: A });
    expect(await outcome(auth.login({ identityId: 'gh-deployer', jwt, clientIp: B }))).toBe('ok');
    clock.advance(1);
    expect(await outcome(auth.login({ identityId: 'gh-deployer', jwt, clientIp: A }))).toBe('ok');
  });

  it('per address: an IPv6 /64 is one address, an IPv4-mapped address is its IPv4', async () => {
    const { auth, clock } = engine({ perAddress: { perMinute: 1, burst: 2 } });
    const jwt = await sign(key, githubClaims(clock.ms));
    const login = (clientIp: string) => outcome(auth.login({ identityId: 'gh-deployer', jwt, clientIp }));
    expect(await login('2001:db8:1:1::1')).toBe('ok');
    expect(await login('2001:db8:1:1:ffff:ffff:ffff:fffe')).toBe('ok');
    expect(await login('2001:0db8:0001:0001::9')).toBe('429 rate_limited');
    expect(await login('2001:db8:1:2::1')).toBe('ok');
    expect(await login('10.9.8.7')).toBe('ok');
    expect(await login('::ffff:10.9.8.7')).toBe('ok');
    expect(await login('::ffff:a09:807')).toBe('429 rate_limited');
  });

  it('per identity: counted once the token verified, for every address; other identities unaffected', async () => {
    const { auth, clock } = engine({ perIdentity: { perMinute: 60, burst: 3 } });
    const jwt = await sign(key, githubClaims(clock.ms));
    for (let i = 0; i < 3; i++) {
      expect(await outcome(auth.login({ identityId: 'gh-deployer', jwt, clientIp: `10.2.0.${i}` }))).toBe(
        'ok',
      );
    }
    expect(await outcome(auth.login({ identityId: 'gh-deployer', jwt, clientIp: B }))).toBe(
      '429 rate_limited',
    );
    expect(await outcome(auth.login({ identityId: 'other', jwt, clientIp: B }))).toBe('ok');
  });

  it('RFC 8693 token exchange: the same budgets, answered 429 with Retry-After in the RFC 6749 §5.2 shape', async () => {
    const { auth, clock } = engine({ perAddress: { perMinute: 60, burst: 1 } });
    const subjectToken = await sign(key, githubClaims(clock.ms));
    const request = { subjectToken, identityId: 'gh-deployer' };
    expect(await outcome(exchange(auth, request, { clientIp: A }))).toBe('ok');
    let refusal: unknown;
    await exchange(auth, request, { clientIp: A }).catch((error: unknown) => (refusal = error));
    const answer = oauthErrorAnswer(auth, refusal);
    expect(answer.status).toBe(429);
    expect(answer.headers['retry-after']).toBe('1');
    expect(answer.body).toMatchObject({ error: 'temporarily_unavailable', reasonCode: 'rate_limited' });
  });

  it('the Infisical answer: 429 TooManyRequests, Retry-After, no challenge, no token echoed', async () => {
    const { auth, clock } = engine({ perAddress: { perMinute: 60, burst: 1 } });
    const jwt = await sign(key, githubClaims(clock.ms));
    await auth.login({ identityId: 'gh-deployer', jwt, clientIp: A });
    let refusal: unknown;
    await auth
      .login({ identityId: 'gh-deployer', jwt, clientIp: A })
      .catch((error: unknown) => (refusal = error));
    const answer = errorAnswer(auth, refusal);
    expect(answer.status).toBe(429);
    expect(answer.headers['retry-after']).toBe('1');
    expect(answer.headers['www-authenticate']).toBeUndefined();
    expect({ ...(answer.body as object), reqId: undefined }).toEqual({
      statusCode: 429,
      error: 'TooManyRequests',
      message: 'Too many requests; retry later',
      reasonCode: 'rate_limited',
      reqId: undefined,
    });
    expect(JSON.stringify(answer)).not.toContain(jwt);
  });

  it('calls without a client address (the host calling login itself) meet no address budget', async () => {
    const { auth, clock } = engine({
      perAddress: { perMinute: 1, burst: 1 },
      failedLoginsPerAddress: { perMinute: 1, burst: 1 },
    });
    const jwt = await sign(key, githubClaims(clock.ms));
    for (let i = 0; i < 5; i++) await outcome(auth.login({ identityId: 'gh-deployer', jwt: garbage }));
    for (let i = 0; i < 5; i++)
      expect(await outcome(auth.login({ identityId: 'gh-deployer', jwt }))).toBe('ok');
  });
});

describe('rate limits on renew', () => {
  it('per identity: only renewals granted count; renewing revoked tokens (an audit, a race) spends nothing', async () => {
    const { auth, clock } = engine({ perIdentity: { perMinute: 60, burst: 3 } });
    const jwt = await sign(key, githubClaims(clock.ms));
    const { accessToken: revoked } = await auth.login({ identityId: 'gh-deployer', jwt });
    await auth.revoke(revoked);
    for (let i = 0; i < 50; i++) expect(await outcome(auth.renew(revoked))).toBe('401 token_revoked');
    const { accessToken } = await auth.login({ identityId: 'gh-deployer', jwt });
    for (let i = 0; i < 3; i++) expect(await outcome(auth.renew(accessToken))).toBe('ok');
    expect(await outcome(auth.renew(accessToken))).toBe('429 rate_limited');
  });

  it('per address and per identity, checked before anything is extended', async () => {
    const { auth, clock } = engine({
      perAddress: { perMinute: 60, burst: 100 },
      perIdentity: { perMinute: 60, burst: 3 },
    });
    const jwt = await sign(key, githubClaims(clock.ms));
    const { accessToken } = await auth.login({ identityId: 'gh-deployer', jwt, clientIp: A });
    for (let i = 0; i < 3; i++)
      expect(await outcome(auth.renew(accessToken, { clientIp: `10.3.0.${i}` }))).toBe('ok');
    expect(await outcome(auth.renew(accessToken, { clientIp: B }))).toBe('429 rate_limited');
    clock.advance(1);
    expect(await outcome(auth.renew(accessToken, { clientIp: B }))).toBe('ok');
  });

  it('per address: a renew flood from A is refused, renewals from B go on', async () => {
    const { auth, clock } = engine({ perAddress: { perMinute: 60, burst: 4 } });
    const jwt = await sign(key, githubClaims(clock.ms));
    const { accessToken } = await auth.login({ identityId: 'gh-deployer', jwt, clientIp: B });
    const seen: string[] = [];
    for (let i = 0; i < 6; i++) seen.push(await outcome(auth.renew(accessToken, { clientIp: A })));
    expect(seen).toEqual(['ok', 'ok', 'ok', 'ok', '429 rate_limited', '429 rate_limited']);
    expect(await outcome(auth.renew(accessToken, { clientIp: B }))).toBe('ok');
  });
});

describe('TOK-02: floods of random bearer tokens (RFC 6750 §3.1), per address, in memory', () => {
  async function floodGuard(auth: OidcAuth, clientIp: string, count: number): Promise<Set<string>> {
    const seen = new Set<string>();
    for (let i = 0; i < count; i++) {
      seen.add(await outcome(auth.authenticate(`omat_${crypto.randomUUID()}`, { clientIp })));
    }
    return seen;
  }

  it('A flooding random tokens gets 429 (valid tokens from A too), valid and invalid tokens from B answer as before', async () => {
    const { auth, clock, rec } = engine({ invalidTokensPerAddress: { perMinute: 60, burst: 50 } });
    const jwt = await sign(key, githubClaims(clock.ms));
    const { accessToken } = await auth.login({ identityId: 'gh-deployer', jwt, clientIp: B });
    expect([...(await floodGuard(auth, A, 80))].sort()).toEqual(['401 invalid_token', '429 rate_limited']);
    expect(await outcome(auth.authenticate(accessToken, { clientIp: A }))).toBe('429 rate_limited');
    expect(await retryAfter(auth.authenticate(accessToken, { clientIp: A }))).toBe('1');
    expect(rec.last('guard.denied')).toMatchObject({ reasonCode: 'rate_limited', clientIp: A });
    for (let i = 0; i < 100; i++)
      expect(await outcome(auth.authenticate(accessToken, { clientIp: B }))).toBe('ok');
    expect(await outcome(auth.authenticate('omat_x', { clientIp: B }))).toBe('401 invalid_token');
    clock.advance(1);
    expect(await outcome(auth.authenticate(accessToken, { clientIp: A }))).toBe('ok');
  });

  it('expired, revoked and used-up tokens are not counted: only tokens refused as invalid', async () => {
    const { auth, clock } = engine({ invalidTokensPerAddress: { perMinute: 1, burst: 1 } });
    const jwt = await sign(key, githubClaims(clock.ms));
    const { accessToken: revoked } = await auth.login({ identityId: 'gh-deployer', jwt });
    await auth.revoke(revoked);
    for (let i = 0; i < 20; i++)
      expect(await outcome(auth.authenticate(revoked, { clientIp: A }))).toBe('401 token_revoked');
    const { accessToken } = await auth.login({ identityId: 'gh-deployer', jwt });
    expect(await outcome(auth.authenticate(accessToken, { clientIp: A }))).toBe('ok');
  });

  it('forged tokens sent to revoke count too; and revoke from a throttled address is refused', async () => {
    const { auth } = engine({ invalidTokensPerAddress: { perMinute: 60, burst: 3 } });
    for (let i = 0; i < 3; i++)
      expect(await outcome(auth.revoke('omat_forged', { clientIp: A }))).toBe('401 invalid_token');
    expect(await outcome(auth.revoke('omat_forged', { clientIp: A }))).toBe('429 rate_limited');
    expect(await outcome(auth.authenticate('omat_forged', { clientIp: A }))).toBe('429 rate_limited');
  });
});

describe('rate limits: options and defaults', () => {
  it('rateLimits: false turns every budget off', async () => {
    const { auth, clock } = engine(false);
    const jwt = await sign(key, githubClaims(clock.ms));
    for (let i = 0; i < DEFAULT_RATE_LIMITS.failedLoginsPerAddress.burst + 10; i++) {
      await auth.login({ identityId: 'gh-deployer', jwt: garbage, clientIp: A }).catch(() => {});
    }
    for (let i = 0; i < DEFAULT_RATE_LIMITS.invalidTokensPerAddress.burst + 10; i++) {
      await auth.authenticate('omat_forged', { clientIp: A }).catch(() => {});
    }
    const { accessToken } = await auth.login({ identityId: 'gh-deployer', jwt, clientIp: A });
    expect(await outcome(auth.authenticate(accessToken, { clientIp: A }))).toBe('ok');
  });

  it('a single budget set to false is off, the others keep their defaults', async () => {
    const { auth } = engine({ invalidTokensPerAddress: false });
    for (let i = 0; i < DEFAULT_RATE_LIMITS.invalidTokensPerAddress.burst + 10; i++) {
      expect(await outcome(auth.authenticate('omat_forged', { clientIp: A }))).toBe('401 invalid_token');
    }
    for (let i = 0; i < DEFAULT_RATE_LIMITS.failedLoginsPerAddress.burst; i++) {
      await auth.login({ identityId: 'gh-deployer', jwt: garbage, clientIp: A }).catch(() => {});
    }
    expect(await outcome(auth.login({ identityId: 'gh-deployer', jwt: garbage, clientIp: A }))).toBe(
      '429 rate_limited',
    );
  });

  it('defaults: a runner fleet behind one NAT address, 1,000 jobs starting at once then 1,000 logins a minute, never meets them', async () => {
    const { auth, clock } = engine();
    const jwt = await sign(key, githubClaims(clock.ms));
    for (let i = 0; i < 1000; i++) {
      expect(await outcome(auth.login({ identityId: 'gh-deployer', jwt, clientIp: A }))).toBe('ok');
    }
    for (let i = 0; i < 1000; i++) {
      clock.ms += 60;
      expect(await outcome(auth.login({ identityId: 'gh-deployer', jwt, clientIp: A }))).toBe('ok');
    }
  });

  it('a bad option is refused at start-up, naming it', () => {
    const bad: Array<[unknown, string]> = [
      [{ perAddress: { perMinute: 0, burst: 1 } }, 'rateLimits.perAddress'],
      [{ perIdentity: { perMinute: 10 } }, 'rateLimits.perIdentity'],
      [{ failedLoginsPerSubject: true }, 'rateLimits.failedLoginsPerSubject'],
      [{ maxKeys: 0 }, 'rateLimits.maxKeys'],
      [{ limiter: {} }, 'rateLimits.limiter'],
      ['on', 'rateLimits'],
    ];
    for (const [rateLimits, field] of bad) {
      let thrown: unknown;
      try {
        engine(rateLimits as RateLimitsOptions);
      } catch (error) {
        thrown = error;
      }
      expect(thrown).toBeInstanceOf(ConfigError);
      expect((thrown as ConfigError).field).toBe(field);
    }
  });

  it('a shared limiter of the host is used for logins and renewals; its keys stay within its bound under a flood of addresses', async () => {
    const limiter = new MemoryRateLimiter({ maxKeys: 200 });
    const { auth } = engine({ limiter, maxKeys: 200 });
    for (let i = 0; i < 3000; i++) {
      await auth
        .login({ identityId: 'gh-deployer', jwt: garbage, clientIp: `10.${i >> 8}.${i & 255}.1` })
        .catch(() => {});
      expect(limiter.size).toBeLessThanOrEqual(200);
    }
    expect(limiter.size).toBeGreaterThan(0);
  });

  it('a limiter that fails answers 503 store_unavailable (fail closed); the guard, counted in memory, keeps serving', async () => {
    let down = false;
    const memory = new MemoryRateLimiter();
    const limiter = {
      hit: (...args: Parameters<MemoryRateLimiter['hit']>) => {
        if (down) throw new Error('ECONNREFUSED');
        return memory.hit(...args);
      },
    };
    const { auth, clock, rec } = engine({ limiter });
    const jwt = await sign(key, githubClaims(clock.ms));
    const { accessToken } = await auth.login({ identityId: 'gh-deployer', jwt, clientIp: A });
    down = true;
    expect(await outcome(auth.login({ identityId: 'gh-deployer', jwt, clientIp: A }))).toBe(
      '503 store_unavailable',
    );
    expect(await outcome(auth.renew(accessToken, { clientIp: A }))).toBe('503 store_unavailable');
    expect(await outcome(auth.authenticate(accessToken, { clientIp: A }))).toBe('ok');
    expect(rec.dump()).not.toContain('ECONNREFUSED');
  });
});
