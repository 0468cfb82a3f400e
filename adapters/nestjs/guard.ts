import {
  Inject,
  Injectable,
  SetMetadata,
  createParamDecorator,
  type CanActivate,
  type ExecutionContext,
} from '@nestjs/common';
import { HttpAdapterHost, Reflector } from '@nestjs/core';
import type { IncomingMessage } from 'node:http';
import {
  authorizeRequest,
  errorAnswer,
  guard,
  nodeGuardRequest,
  platformDpopRequest,
  type AuthContext,
  type PlatformDpopSource,
  type Authorize,
  type OidcAuth,
} from '../../src/index.js';
import { OidcAuthHttpException, setAnswerHeaders } from './exception.js';
import { OIDC_MACHINE_AUTH, OIDC_MACHINE_AUTH_OPTIONS, type OidcMachineAuthOptions } from './options.js';

/** Metadata key of {@link OidcAuthorize}. */
export const OIDC_AUTHORIZE = 'oidc-machine-auth:authorize';
/** Metadata key of {@link OidcPublic}. */
export const OIDC_PUBLIC = 'oidc-machine-auth:public';

/**
 * Extra authorization for a route or controller behind {@link OidcAuthGuard}: return false to answer
 * 403 `forbidden` with an `insufficient_scope` challenge. The request is the platform's own (Express
 * `Request` or Fastify `FastifyRequest`). A handler's predicate replaces its controller's.
 */
export const OidcAuthorize = (predicate: Authorize<unknown>) => SetMetadata(OIDC_AUTHORIZE, predicate);

/**
 * Marks a route or controller the guard lets through without a token, for when the guard is global
 * (`APP_GUARD`). The module's login, renew and revoke routes carry it.
 */
export const OidcPublic = () => SetMetadata(OIDC_PUBLIC, true);

interface RouteMetadata {
  open: boolean;
  authorize: Authorize<unknown> | undefined;
}

/** The request shapes the guard reads: Express's (a Node request) or Fastify's (with `raw`). */
interface PlatformRequest {
  ip?: string;
  app?: { get(setting: string): unknown };
  socket?: { remoteAddress?: string };
  raw?: IncomingMessage;
  rawHeaders?: string[];
  auth?: AuthContext;
}

/**
 * `request.ip`: the platform's proxy trust decides. On Express with `trust proxy` off that is the
 * socket's address, read straight (what `req.ip` returns then, without its per-request proxy walk).
 */
export function platformIp(request: PlatformRequest): string | undefined {
  const app = request.app;
  if (app && typeof app.get === 'function' && !app.get('trust proxy')) return request.socket?.remoteAddress;
  return request.ip;
}

/** The Node request under a platform request: Express's is one; Fastify's keeps it in `raw`. */
export function nodeRequestOf(request: PlatformRequest): IncomingMessage {
  return (request.rawHeaders ? request : request.raw) as IncomingMessage;
}

/**
 * The bearer guard: sets `request.auth` (read it with {@link OidcAuthContext}), or throws an
 * {@link OidcAuthHttpException} (401/400/403/503 with our body and an RFC 6750 challenge). Use per
 * route (`@UseGuards(OidcAuthGuard)`) or for every route (`globalGuard: true`, or `APP_GUARD`), with
 * {@link OidcPublic} on the routes that stay open. Only HTTP requests are supported: any other
 * context (RPC, WebSockets) is refused.
 */
@Injectable()
export class OidcAuthGuard implements CanActivate {
  constructor(
    @Inject(OIDC_MACHINE_AUTH) private readonly auth: OidcAuth,
    @Inject(OIDC_MACHINE_AUTH_OPTIONS) private readonly options: OidcMachineAuthOptions,
    @Inject(Reflector) private readonly reflector: Reflector,
    @Inject(HttpAdapterHost) private readonly adapterHost: HttpAdapterHost,
  ) {}

  /** Route metadata, read once per controller class and handler. */
  private readonly routes = new WeakMap<object, WeakMap<object, RouteMetadata>>();

  private metadataOf(context: ExecutionContext): RouteMetadata {
    const handler = context.getHandler();
    const controller = context.getClass();
    let byHandler = this.routes.get(controller);
    if (!byHandler) this.routes.set(controller, (byHandler = new WeakMap()));
    let found = byHandler.get(handler);
    if (!found) {
      const targets = [handler, controller];
      found = {
        open: this.reflector.getAllAndOverride<boolean | undefined>(OIDC_PUBLIC, targets) === true,
        authorize: this.reflector.getAllAndOverride<Authorize<unknown> | undefined>(OIDC_AUTHORIZE, targets),
      };
      byHandler.set(handler, found);
    }
    return found;
  }

  async canActivate(context: ExecutionContext): Promise<boolean> {
    if (context.getType() !== 'http') return false;
    const { open, authorize } = this.metadataOf(context);
    if (open) return true;
    const http = context.switchToHttp();
    const request = http.getRequest<PlatformRequest>();
    const ip = this.options.getClientIp ? this.options.getClientIp(request as never) : platformIp(request);
    try {
      const dpop = () => platformDpopRequest(request as PlatformDpopSource);
      const auth = await guard(this.auth, nodeGuardRequest(nodeRequestOf(request), ip, dpop));
      request.auth = auth;
      if (this.auth.dpop.nonces) {
        setAnswerHeaders(this.adapterHost, http.getResponse(), {
          status: 200,
          headers: this.auth.dpop.answerHeaders(),
          body: undefined,
        });
      }
      if (authorize) await authorizeRequest(this.auth, auth, authorize, request);
      return true;
    } catch (error) {
      const answer = errorAnswer(this.auth, error);
      setAnswerHeaders(this.adapterHost, http.getResponse(), answer);
      throw new OidcAuthHttpException(answer, error);
    }
  }
}

/**
 * The caller's {@link AuthContext}, as {@link OidcAuthGuard} set it: `@OidcAuthContext() auth: AuthContext`.
 * Undefined on a route the guard did not run on.
 */
export const OidcAuthContext = createParamDecorator(
  (_data: unknown, context: ExecutionContext): AuthContext | undefined =>
    context.switchToHttp().getRequest<PlatformRequest>().auth,
);
