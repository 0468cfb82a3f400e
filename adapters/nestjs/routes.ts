import {
  type ArgumentsHost,
  Catch,
  Controller,
  Get,
  HttpCode,
  HttpException,
  Inject,
  Post,
  Req,
  Res,
  UseGuards,
  type Type,
} from '@nestjs/common';
import { BaseExceptionFilter, HttpAdapterHost } from '@nestjs/core';
import type { IncomingMessage } from 'node:http';
import {
  ConfigError,
  DEFAULT_BODY_LIMIT,
  OAUTH_ROUTES,
  WELL_KNOWN_ROUTES,
  ROUTES,
  bodyKind,
  bodyTooLarge,
  errorAnswer,
  invalidBody,
  jwksAnswer,
  loginAnswer,
  metadataAnswer,
  platformDpopRequest,
  type PlatformDpopSource,
  oauthErrorAnswer,
  oauthIntrospectAnswer,
  oauthRevokeAnswer,
  oauthTokenAnswer,
  parseRequestBody,
  readRequestBody,
  renewAnswer,
  revokeAnswer,
  unsupportedMediaType,
  type HttpAnswer,
  type OAuthRequest,
  type OidcAuth,
  type RequestBodyError,
} from '../../src/index.js';
import { OidcAuthHttpException, setAnswerHeaders } from './exception.js';
import { OidcAuthorize, OidcPublic, nodeRequestOf, platformIp } from './guard.js';
import {
  OIDC_MACHINE_AUTH,
  OIDC_MACHINE_AUTH_OPTIONS,
  OIDC_MACHINE_AUTH_PATHS,
  type OidcIntrospectionOptions,
  type OidcMachineAuthOptions,
  type OidcRouteGuard,
} from './options.js';

interface RouteRequest {
  ip?: string;
  body?: unknown;
  raw?: IncomingMessage;
  rawHeaders?: string[];
}

/**
 * The request body, as every adapter takes it: JSON or a form (415 otherwise, and for any
 * `Content-Encoding` but identity), an object (422 otherwise), at most `limit` bytes by
 * `Content-Length` (413). Nest's platform parser has usually read it already; without one (Express
 * with `bodyParser: false`) the stream is read here. `formOnly`: the OAuth routes, forms alone (415 otherwise).
 */
async function requestBody(request: RouteRequest, limit: number, formOnly = false): Promise<unknown> {
  const node = nodeRequestOf(request);
  const contentType = node.headers['content-type'];
  const encoding = node.headers['content-encoding'];
  const kind = bodyKind(contentType);
  if (
    !kind ||
    (formOnly && kind !== 'form') ||
    (encoding !== undefined && encoding.toLowerCase() !== 'identity')
  ) {
    throw unsupportedMediaType();
  }
  if (Number(node.headers['content-length']) > limit) throw bodyTooLarge();
  const { body } = request;
  if (body === undefined) {
    // Nothing parsed it: Express without a body parser reads it here; on Fastify it was empty.
    if (node.readableEnded || node.readableDidRead) throw invalidBody('Request body is empty');
    return readRequestBody(node, limit);
  }
  if (typeof body === 'string' || Buffer.isBuffer(body)) return parseRequestBody(contentType, String(body));
  if (kind === 'json' && (typeof body !== 'object' || body === null || Array.isArray(body))) {
    throw invalidBody('Request body must be a JSON object');
  }
  return body;
}

type OAuthAnswer = (auth: OidcAuth, request: OAuthRequest) => Promise<HttpAnswer>;

/** What both controllers share: the engine, the options, and answering as every adapter answers. */
class OidcRoutes {
  private readonly limit: number;

  constructor(
    @Inject(OIDC_MACHINE_AUTH) protected readonly auth: OidcAuth,
    @Inject(OIDC_MACHINE_AUTH_OPTIONS) protected readonly options: OidcMachineAuthOptions,
    @Inject(HttpAdapterHost) private readonly adapterHost: HttpAdapterHost,
  ) {
    this.limit = options.bodyLimit ?? DEFAULT_BODY_LIMIT;
  }

  private ipOf(request: RouteRequest): string | undefined {
    return this.options.getClientIp ? this.options.getClientIp(request as never) : platformIp(request);
  }

  /** Headers set on the response; the body returned (200) or thrown as an {@link OidcAuthHttpException}. */
  protected reply(answer: HttpAnswer, response: unknown): unknown {
    setAnswerHeaders(this.adapterHost, response, answer);
    if (answer.status !== 200) throw new OidcAuthHttpException(answer);
    return answer.body;
  }

  /** A login, renew or revoke route. */
  protected async answer(handle: typeof loginAnswer, request: RouteRequest, response: unknown) {
    let answer: HttpAnswer;
    try {
      const body = await requestBody(request, this.limit);
      answer = await handle(
        this.auth,
        body,
        this.ipOf(request),
        platformDpopRequest(request as PlatformDpopSource),
      );
    } catch (error) {
      answer = errorAnswer(this.auth, error);
    }
    return this.reply(answer, response);
  }

  /** An OAuth route: a form body, errors as RFC 6749 §5.2 JSON with our reason code, `Cache-Control: no-store`. */
  protected async oauth(handle: OAuthAnswer, request: RouteRequest, response: unknown) {
    let answer: HttpAnswer;
    try {
      const body = await requestBody(request, this.limit, true);
      const contentType = nodeRequestOf(request).headers['content-type'];
      answer = await handle(this.auth, {
        contentType,
        body,
        clientIp: this.ipOf(request),
        dpop: platformDpopRequest(request as PlatformDpopSource),
      });
    } catch (error) {
      answer = oauthErrorAnswer(this.auth, error);
    }
    return this.reply(answer, response);
  }
}

/**
 * The auth routes' controller under `prefix`: `POST /oidc-auth/login`, `/token/renew`, `/token/revoke`,
 * `/oauth/token` (RFC 8693), `GET /.well-known/jwks.json` (RFC 7517) and
 * `/.well-known/oauth-authorization-server` (RFC 8414), answering what every adapter answers. Errors are thrown as
 * {@link OidcAuthHttpException}s, their headers set on the response first.
 */
export function oidcAuthController(prefix: string): Type<unknown> {
  @OidcPublic()
  @Controller(prefix)
  class OidcAuthController extends OidcRoutes {
    @Post(ROUTES.login)
    @HttpCode(200)
    login(@Req() request: RouteRequest, @Res({ passthrough: true }) response: unknown) {
      return this.answer(loginAnswer, request, response);
    }

    @Post(ROUTES.renew)
    @HttpCode(200)
    renew(@Req() request: RouteRequest, @Res({ passthrough: true }) response: unknown) {
      return this.answer(renewAnswer, request, response);
    }

    @Post(ROUTES.revoke)
    @HttpCode(200)
    revoke(@Req() request: RouteRequest, @Res({ passthrough: true }) response: unknown) {
      return this.answer(revokeAnswer, request, response);
    }

    @Post(OAUTH_ROUTES.token)
    @HttpCode(200)
    token(@Req() request: RouteRequest, @Res({ passthrough: true }) response: unknown) {
      return this.oauth(oauthTokenAnswer, request, response);
    }

    @Get(WELL_KNOWN_ROUTES.jwks)
    jwks(@Res({ passthrough: true }) response: unknown) {
      return this.reply(jwksAnswer(this.auth), response);
    }

    @Get(WELL_KNOWN_ROUTES.metadata)
    metadata(@Res({ passthrough: true }) response: unknown) {
      const endpoints = this.options.oauthEndpoints;
      return this.reply(metadataAnswer(this.auth, endpoints), response);
    }
  }
  return OidcAuthController;
}

/** The introspection guards as a list; a `ConfigError` (field `guard`) when there are none or one is not a guard. */
export function introspectionGuards(options: OidcIntrospectionOptions | undefined): OidcRouteGuard[] {
  const guards = [options?.guard ?? []].flat() as OidcRouteGuard[];
  const isGuard = (g: unknown) =>
    typeof g === 'function' ||
    (typeof g === 'object' &&
      g !== null &&
      typeof (g as { canActivate?: unknown }).canActivate === 'function');
  if (guards.length === 0 || !guards.every(isGuard)) {
    throw new ConfigError(
      'guard',
      'is required: introspection and revocation must only answer callers the host trusts; pass a Nest guard',
    );
  }
  return guards;
}

/**
 * `POST {prefix}/oauth/introspect` (RFC 7662) and `{prefix}/oauth/revoke` (RFC 7009), behind `guards`
 * (none left when the global guard already is `OidcAuthGuard`), with `authorize` as `@OidcAuthorize`.
 */
export function oidcIntrospectionController(
  prefix: string,
  guards: readonly OidcRouteGuard[],
  authorize: OidcIntrospectionOptions['authorize'],
): Type<unknown> {
  const decorators: ClassDecorator[] = [Controller(prefix)];
  if (guards.length > 0) decorators.push(UseGuards(...guards));
  if (authorize) decorators.push(OidcAuthorize(authorize));
  class OidcIntrospectionController extends OidcRoutes {
    @Post(OAUTH_ROUTES.introspect)
    @HttpCode(200)
    introspect(@Req() request: RouteRequest, @Res({ passthrough: true }) response: unknown) {
      return this.oauth(oauthIntrospectAnswer, request, response);
    }

    @Post(OAUTH_ROUTES.revoke)
    @HttpCode(200)
    revoke(@Req() request: RouteRequest, @Res({ passthrough: true }) response: unknown) {
      return this.oauth(oauthRevokeAnswer, request, response);
    }
  }
  for (const decorate of decorators.reverse()) decorate(OidcIntrospectionController);
  return OidcIntrospectionController;
}

/** The platform parser's failure (Express body-parser, Fastify content-type parser) as our body error. */
function bodyError(exception: unknown, contentType: string | undefined): RequestBodyError | undefined {
  if (!(exception instanceof HttpException) || exception instanceof OidcAuthHttpException) return undefined;
  const cause = exception.cause as { type?: unknown; code?: unknown } | undefined;
  const status = exception.getStatus();
  const type = typeof cause?.type === 'string' ? cause.type : '';
  const code = typeof cause?.code === 'string' ? cause.code : '';
  if (status === 413 || type === 'entity.too.large' || code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
    return bodyTooLarge();
  }
  if (status === 415 || type === 'encoding.unsupported' || code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
    return unsupportedMediaType();
  }
  const parserError =
    cause instanceof SyntaxError ||
    type.startsWith('entity.') ||
    type === 'charset.unsupported' ||
    code.startsWith('FST_ERR_CTP_') ||
    (status === 400 && exception.message === 'Object contains forbidden prototype property');
  if (!parserError) return undefined;
  return invalidBody(bodyKind(contentType) === 'json' ? 'Request body is not valid JSON' : 'Malformed body');
}

/**
 * Answers the platform body parser's refusals on the auth routes (malformed JSON, a body over the
 * parser's limit, an unknown media type or encoding) as every adapter does (422/413/415 with our body;
 * on the OAuth routes 400/413/415 with the RFC 6749 §5.2 body),
 * instead of Nest's own `{ statusCode, message }`. Nest's parsers run before any route, so only a
 * global filter sees them: `app.useGlobalFilters(app.get(OidcAuthBodyErrorFilter))`. Anything else,
 * and any other path, goes to Nest's built-in handling.
 */
@Catch()
export class OidcAuthBodyErrorFilter extends BaseExceptionFilter {
  private readonly paths: readonly string[];

  constructor(
    @Inject(OIDC_MACHINE_AUTH) private readonly auth: OidcAuth,
    @Inject(OIDC_MACHINE_AUTH_PATHS) paths: readonly string[],
    @Inject(HttpAdapterHost) adapterHost: HttpAdapterHost,
  ) {
    super();
    Object.assign(this, { httpAdapterHost: adapterHost }); // read by BaseExceptionFilter.catch
    this.paths = paths;
  }

  override catch(exception: unknown, host: ArgumentsHost): void {
    const request = host.switchToHttp().getRequest<RouteRequest & { originalUrl?: string; url?: string }>();
    const url = request.originalUrl ?? request.url ?? '';
    const path = url.split('?', 1)[0]!;
    const known = this.paths.some((p) => path.endsWith(p))
      ? bodyError(exception, nodeRequestOf(request).headers['content-type'])
      : undefined;
    if (!known) return super.catch(exception, host);
    const oauth = Object.values(OAUTH_ROUTES).some((route) => path.endsWith(route));
    const answer = oauth ? oauthErrorAnswer(this.auth, known) : errorAnswer(this.auth, known);
    const adapter = this.httpAdapterHost!.httpAdapter;
    const response = host.switchToHttp().getResponse<unknown>();
    setAnswerHeaders(this.httpAdapterHost!, response, answer);
    adapter.reply(response, answer.body, answer.status);
  }
}

/** The route paths under a prefix; with `introspection`, the introspection and revocation routes too. */
export function routePaths(prefix: string, introspection = false): string[] {
  const base = `/${prefix}`.replace(/\/+/g, '/').replace(/\/$/, '');
  const routes: string[] = [ROUTES.login, ROUTES.renew, ROUTES.revoke, OAUTH_ROUTES.token];
  if (introspection) routes.push(OAUTH_ROUTES.introspect, OAUTH_ROUTES.revoke);
  return routes.map((route) => base + route);
}
