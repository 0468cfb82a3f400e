import type { IncomingMessage } from 'node:http';
import { Strategy as BaseStrategy } from 'passport-strategy';
import {
  OidcAuthError,
  authorizeRequest,
  bearerChallenge,
  errorAnswer,
  guard,
  nodeGuardRequest,
  platformDpopRequest,
  type AuthContext,
  type PlatformDpopSource,
  type Authorize,
  type OidcAuth,
} from '../../src/index.js';

/** Options of the Passport {@link Strategy}. */
export interface StrategyOptions {
  /** The engine. */
  auth: OidcAuth;
  /** The name `passport.authenticate(name)` takes. Default `oidc-machine-auth`. */
  name?: string;
  /** Client address. Default `req.ip` (Express's `trust proxy` decides), else the socket's address. */
  getClientIp?: (req: IncomingMessage) => string | undefined;
  /** Extra authorization: return false to fail with 403 and an `insufficient_scope` challenge. */
  authorize?: Authorize<IncomingMessage>;
}

/**
 * Passport's verify callback: map the auth context to the user Passport sets (`done(null, user)`), or
 * refuse (`done(null, false)`: 401 with our `invalid_token` challenge) or fail (`done(err)`). This is
 * what `@nestjs/passport` passes to call `validate(context)`.
 */
export type VerifyCallback = (
  context: AuthContext,
  done: (error: unknown, user?: unknown, info?: unknown) => void,
) => void;

/** Where the strategy leaves its last refusal on the request, for {@link oidcAuthErrorHandler}. */
const REFUSAL = Symbol.for('oidc-machine-auth:passport-refusal');

type StrategyRequest = IncomingMessage & { ip?: string; [REFUSAL]?: OidcAuthError };

/**
 * A Passport strategy for our access tokens (RFC 6750 bearer): on success `req.user` is the caller's
 * {@link AuthContext}. A refused token fails the strategy with our `WWW-Authenticate` challenge and
 * status (`this.fail(challenge, status)`: 401, 400 or 403), so other strategies can still run; a store
 * outage or any unexpected error is `this.error(err)`. Works with `passport.authenticate(...)` in
 * Express and with `@nestjs/passport` (`PassportStrategy(Strategy)`).
 */
export class Strategy extends BaseStrategy {
  name: string;
  private readonly auth: OidcAuth;
  private readonly getClientIp: (req: StrategyRequest) => string | undefined;
  private readonly authorize: Authorize<IncomingMessage> | undefined;
  private readonly verify: VerifyCallback | undefined;

  /** `verify` is optional: without it `req.user` is the {@link AuthContext} itself. */
  constructor(options: StrategyOptions, verify?: VerifyCallback) {
    super();
    if (!options || typeof options.auth?.authenticate !== 'function') {
      throw new TypeError(
        'oidc-machine-auth passport Strategy: options.auth (an OidcAuth engine) is required',
      );
    }
    this.name = options.name ?? 'oidc-machine-auth';
    this.auth = options.auth;
    this.getClientIp = options.getClientIp ?? ((req) => req.ip ?? req.socket?.remoteAddress);
    this.authorize = options.authorize;
    this.verify = verify;
  }

  override authenticate(req: StrategyRequest): void {
    // Only reached when the next handler throws synchronously inside success/fail.
    this.check(req).catch((error: unknown) => this.error(error as Error));
  }

  private async check(req: StrategyRequest): Promise<void> {
    let context: AuthContext;
    try {
      const dpop = () => platformDpopRequest(req as PlatformDpopSource);
      context = await guard(this.auth, nodeGuardRequest(req, this.getClientIp(req), dpop));
      if (this.authorize) await authorizeRequest(this.auth, context, this.authorize, req);
    } catch (error) {
      if (!(error instanceof OidcAuthError) || error.status >= 500) return this.error(error as Error);
      req[REFUSAL] = error;
      const { headers, status } = errorAnswer(this.auth, error);
      return this.fail(headers['www-authenticate'], status);
    }
    if (!this.verify) return this.success(context);
    this.verify(context, (error, user, info) => {
      if (error) return this.error(error as Error);
      if (!user) return this.fail(bearerChallenge(this.auth.realm, 'invalid_token'), 401);
      this.success(user, info as object | undefined);
    });
  }
}

interface ErrorResponse {
  headersSent: boolean;
  status(code: number): { set(headers: Record<string, string>): { json(body: unknown): void } };
}

/**
 * Express error middleware that answers what every adapter answers (our JSON body, `WWW-Authenticate`,
 * `Retry-After`) for the strategy's refusals and errors. Use it after routes authenticated with
 * `passport.authenticate(name, { session: false, failWithError: true })`; without it Passport answers
 * a refusal itself (status, challenge, a plain-text status line). Any other error goes to `next`.
 */
export function oidcAuthErrorHandler(auth: OidcAuth) {
  return function oidcAuthErrorMiddleware(
    err: unknown,
    req: StrategyRequest,
    res: ErrorResponse,
    next: (err?: unknown) => void,
  ): void {
    const refusal = (err as { name?: unknown })?.name === 'AuthenticationError' ? req[REFUSAL] : undefined;
    const error = refusal ?? (err instanceof OidcAuthError ? err : undefined);
    if (!error || res.headersSent) return next(err);
    const answer = errorAnswer(auth, error);
    res.status(answer.status).set(answer.headers).json(answer.body);
  };
}
