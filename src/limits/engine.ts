import { OidcAuthError, ServiceUnavailableError, TooManyRequestsError } from '../errors.js';
import type { AuthEvent, Logger } from '../types.js';
import { addressKey, subjectKey } from './keys.js';
import type { ResolvedRateLimits } from './options.js';
import type { RateLimitDecision, RateLimitRule } from './rate-limiter.js';

type Decision = RateLimitDecision | Promise<RateLimitDecision>;
type Emit = (event: Omit<AuthEvent, 'time'>) => void;

/**
 * The engine's budgets (see `RateLimitsOptions`): what `login`, `renew` and the bearer guard ask
 * before they work, and what they report when a caller failed. Every refusal is a
 * {@link TooManyRequestsError} (429, `Retry-After`); a limiter that cannot answer is a 503
 * `store_unavailable`.
 *
 * Keys (the limiter's namespace): `l:a:<address>` and `r:a:<address>` logins and renewals per
 * address, `l:i:<identityId>` and `r:i:<identityId>` per identity, `f:a:<address>` failed logins per
 * address, `f:s:<identityId>:<issuer and subject>` failed verified logins.
 *
 * @internal
 */
export class EngineRateLimits {
  readonly #limits: ResolvedRateLimits;
  readonly #emit: Emit;
  readonly #logger: Logger | undefined;

  constructor(limits: ResolvedRateLimits, emit: Emit, logger: Logger | undefined) {
    this.#limits = limits;
    this.#emit = emit;
    this.#logger = logger;
  }

  /**
   * Before a login does anything: the address's login budget, and whether its failed-login budget
   * is spent. Throws synchronously when the limiter answered synchronously (memory), so the login
   * pays no promise; a pending answer is returned to be awaited.
   */
  admitLogin(clientIp: string | undefined, now: number): Promise<void> | undefined {
    const address = addressKey(clientIp);
    if (address === undefined) return undefined;
    const { perAddress, failedLoginsPerAddress } = this.#limits;
    const failed = !failedLoginsPerAddress
      ? undefined
      : this.#hit(`f:a:${address}`, failedLoginsPerAddress, 0, now);
    const attempts = !perAddress ? undefined : this.#hit(`l:a:${address}`, perAddress, 1, now);
    return both(failed, attempts, (spent, used) => {
      const refused = spent?.allowed === false ? spent : used?.allowed === false ? used : undefined;
      if (refused) throw this.#refuse('login.failure', 'rate_limited', refused, { clientIp });
    });
  }

  /**
   * Once the IdP token verified for the identity: the identity's login budget, and whether this
   * subject is locked out by its failed logins.
   */
  admitVerifiedLogin(
    identityId: string,
    issuer: string,
    subject: string,
    clientIp: string | undefined,
    now: number,
  ): Promise<void> | undefined {
    const { perIdentity, failedLoginsPerSubject } = this.#limits;
    const locked = !failedLoginsPerSubject
      ? undefined
      : this.#hit(`f:s:${subjectKey(identityId, issuer, subject)}`, failedLoginsPerSubject, 0, now);
    const used = !perIdentity ? undefined : this.#hit(`l:i:${identityId}`, perIdentity, 1, now);
    return both(locked, used, (lock, identity) => {
      const context = { clientIp, identityId, issuer, subject };
      if (lock?.allowed === false) throw this.#refuse('login.failure', 'locked_out', lock, context);
      if (identity?.allowed === false) {
        throw this.#refuse('login.failure', 'rate_limited', identity, context);
      }
    });
  }

  /**
   * A login refused with `code`: the subject's failed-login budget when the identity refused what
   * the verified token itself says ({@link OWN_CLAIMS}), else the address's: a leaked token must not
   * let its holder lock the pipeline's subject out. An IdP or store outage is nobody's failure.
   * Never throws: the refusal stands whatever the limiter does.
   */
  async loginFailed(
    failure: { code: string; verified: boolean },
    context: { identityId: string; clientIp?: string | undefined; issuer?: string; subject?: string },
    jwt: string,
    now: number,
  ): Promise<void> {
    if (failure.code === 'idp_unavailable' || failure.code === 'store_unavailable') return;
    const { failedLoginsPerAddress, failedLoginsPerSubject } = this.#limits;
    let key: string | undefined;
    let rule: RateLimitRule | undefined;
    if (failure.verified && OWN_CLAIMS.has(failure.code)) {
      const claims = context.issuer === undefined ? verifiedClaims(jwt) : context;
      if (claims?.issuer === undefined) return;
      key = `f:s:${subjectKey(context.identityId, claims.issuer, claims.subject ?? '')}`;
      rule = failedLoginsPerSubject;
    } else {
      const address = addressKey(context.clientIp);
      key = address === undefined ? undefined : `f:a:${address}`;
      rule = failedLoginsPerAddress;
    }
    if (key === undefined || rule === undefined) return;
    try {
      await this.#hit(key, rule, 1, now);
    } catch (error) {
      this.#logger?.warn(
        { event: 'rate_limiter.error', operation: 'login.failed', err: { name: (error as Error).name } },
        'rate limiter failed to count a failed login',
      );
    }
  }

  /** Before a renewal does anything: the address's renewal budget. */
  async admitRenew(clientIp: string | undefined, now: number): Promise<void> {
    const address = addressKey(clientIp);
    const { perAddress } = this.#limits;
    if (address === undefined || !perAddress) return;
    const decision = await this.#hit(`r:a:${address}`, perAddress, 1, now);
    if (!decision.allowed) throw this.#refuse('token.renew.failure', 'rate_limited', decision, { clientIp });
  }

  /**
   * Once the token is known genuine: whether its identity's renewal budget has room. Only renewals
   * granted spend it ({@link renewed}): renewing a revoked or used-up token costs nothing.
   */
  async admitRenewIdentity(identityId: string, clientIp: string | undefined, now: number): Promise<void> {
    const { perIdentity } = this.#limits;
    if (!perIdentity) return;
    const decision = await this.#hit(`r:i:${identityId}`, perIdentity, 0, now);
    if (!decision.allowed) {
      throw this.#refuse('token.renew.failure', 'rate_limited', decision, { clientIp, identityId });
    }
  }

  /**
   * A renewal was granted: spends one of its identity's renewal budget. Not awaited by the renewal
   * (the grant is decided); a limiter that fails here is logged, and the next admission sees it down.
   */
  renewed(identityId: string, now: number): void {
    const { perIdentity } = this.#limits;
    if (!perIdentity) return;
    const failed = (error: unknown) => {
      this.#logger?.warn(
        { event: 'rate_limiter.error', operation: 'renewed', err: { name: (error as Error)?.name } },
        'rate limiter failed to count a renewal',
      );
    };
    try {
      const decision = this.#hit(`r:i:${identityId}`, perIdentity, 1, now);
      if (decision instanceof Promise) decision.catch(failed);
    } catch (error) {
      failed(error);
    }
  }

  /**
   * Before the bearer guard (or revoke) looks at a token: whether the address's invalid-token budget
   * is spent. Synchronous, one map read for an address that never sent a bad token.
   */
  admitBearer(clientIp: string | undefined, now: number): void {
    const rule = this.#limits.invalidTokensPerAddress;
    if (!rule || clientIp === undefined || this.#limits.tokens.size === 0) return;
    const address = addressKey(clientIp);
    if (address === undefined) return;
    const retryAfterSeconds = this.#limits.tokens.retryAfter(address, rule, now);
    if (retryAfterSeconds > 0) {
      throw this.#refuse('guard.denied', 'rate_limited', { retryAfterSeconds }, { clientIp });
    }
  }

  /** A bearer token refused as `invalid_token` from `clientIp`: spends that address's budget. */
  bearerFailed(clientIp: string | undefined, now: number): void {
    const rule = this.#limits.invalidTokensPerAddress;
    const address = rule && addressKey(clientIp);
    if (address) this.#limits.tokens.hit(address, rule, 1, now);
  }

  #hit(key: string, rule: RateLimitRule, cost: number, now: number): Decision {
    let decision: Decision;
    try {
      decision = this.#limits.limiter.hit(key, rule, cost, now);
    } catch (error) {
      return Promise.reject(this.#down(error));
    }
    if (decision instanceof Promise) {
      return decision.then(
        (value) => this.#checked(value),
        (error: unknown) => {
          throw this.#down(error);
        },
      );
    }
    return this.#checked(decision);
  }

  #checked(decision: RateLimitDecision): RateLimitDecision {
    if (typeof decision?.allowed !== 'boolean') throw this.#down(new TypeError('not a rate limit decision'));
    return decision;
  }

  #down(error: unknown): OidcAuthError {
    if (error instanceof OidcAuthError) return error;
    this.#logger?.error(
      { event: 'store.error', operation: 'rateLimiter.hit', err: { name: (error as Error)?.name } },
      'rate limiter failed',
    );
    return new ServiceUnavailableError('store_unavailable', 'The rate limiter is unavailable', {
      cause: error,
    });
  }

  #refuse(
    type: AuthEvent['type'],
    code: 'rate_limited' | 'locked_out',
    decision: Pick<RateLimitDecision, 'retryAfterSeconds'>,
    context: Omit<AuthEvent, 'time' | 'type' | 'reasonCode'>,
  ): TooManyRequestsError {
    this.#emit({
      type,
      reasonCode: code,
      ...context,
      detail: { retryAfterSeconds: decision.retryAfterSeconds },
    });
    return code === 'locked_out'
      ? new TooManyRequestsError('locked_out', 'Too many failed logins for this subject; retry later', {
          retryAfterSeconds: decision.retryAfterSeconds,
        })
      : new TooManyRequestsError('rate_limited', 'Too many requests; retry later', {
          retryAfterSeconds: decision.retryAfterSeconds,
        });
  }
}

/**
 * Verified refusals that lock a subject out: the identity refuses what the token itself says (its
 * issuer, lifetime, subject, audience, claims, rules), so every token of that subject fails alike and
 * only the pipeline's own misconfiguration spends the budget. Every other verified refusal is one a
 * holder of a leaked token can cause at will, from anywhere, and is counted against the address:
 * time (expired, not yet valid), an IdP token already exchanged, a login without the DPoP proof
 * the identity requires or from outside its trusted IPs, a requested scope, audience or format the
 * identity does not grant.
 */
const OWN_CLAIMS: ReadonlySet<string> = new Set([
  'issuer_mismatch',
  'token_lifetime_too_long',
  'token_malformed',
  'subject_not_allowed',
  'audience_not_allowed',
  'claim_not_allowed',
  'claim_missing',
  'claim_value_unsupported',
  'denied_by_rule',
  'no_rule_matched',
]);

/**
 * `decide` on two optional decisions: at once when both are in hand (memory), else once both
 * arrive (sent together: one round trip on a shared Redis), as a promise.
 */
function both(
  a: Decision | undefined,
  b: Decision | undefined,
  decide: (a: RateLimitDecision | undefined, b: RateLimitDecision | undefined) => void,
): Promise<void> | undefined {
  if (a instanceof Promise || b instanceof Promise) {
    return Promise.all([a, b]).then(([x, y]) => decide(x, y));
  }
  decide(a, b);
  return undefined;
}

/** `iss` and `sub` of an IdP token whose signature verified (the login failed on a later check). */
function verifiedClaims(jwt: string): { issuer?: string; subject?: string } | undefined {
  try {
    const payload: unknown = JSON.parse(Buffer.from(jwt.split('.')[1] ?? '', 'base64url').toString('utf8'));
    const { iss, sub } = (payload ?? {}) as { iss?: unknown; sub?: unknown };
    if (typeof iss !== 'string') return undefined;
    return typeof sub === 'string' ? { issuer: iss, subject: sub } : { issuer: iss };
  } catch {
    return undefined;
  }
}
