import {
  type ArgumentsHost,
  Catch,
  Controller,
  HttpCode,
  HttpException,
  Inject,
  Post,
  Req,
  Res,
  type Type,
} from '@nestjs/common';
import { BaseExceptionFilter, HttpAdapterHost } from '@nestjs/core';
import type { IncomingMessage } from 'node:http';
import {
  DEFAULT_BODY_LIMIT,
  ROUTES,
  bodyKind,
  bodyTooLarge,
  errorAnswer,
  invalidBody,
  loginAnswer,
  parseRequestBody,
  readRequestBody,
  renewAnswer,
  revokeAnswer,
  unsupportedMediaType,
  type HttpAnswer,
  type OidcAuth,
  type RequestBodyError,
} from '../../src/index.js';
import { OidcAuthHttpException, setAnswerHeaders } from './exception.js';
import { OidcPublic, nodeRequestOf, platformIp } from './guard.js';
import {
  OIDC_MACHINE_AUTH,
  OIDC_MACHINE_AUTH_OPTIONS,
  OIDC_MACHINE_AUTH_PATHS,
  type OidcMachineAuthOptions,
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
 * with `bodyParser: false`) the stream is read here.
 */
async function requestBody(request: RouteRequest, limit: number): Promise<unknown> {
  const node = nodeRequestOf(request);
  const contentType = node.headers['content-type'];
  const encoding = node.headers['content-encoding'];
  const kind = bodyKind(contentType);
  if (!kind || (encoding !== undefined && encoding.toLowerCase() !== 'identity')) {
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

/**
 * The auth routes' controller under `prefix`: `POST /oidc-auth/login`, `/token/renew`, `/token/revoke`,
 * answering what every adapter answers. Errors are thrown as {@link OidcAuthHttpException}s, their
 * headers set on the response first.
 */
export function oidcAuthController(prefix: string): Type<unknown> {
  @OidcPublic()
  @Controller(prefix)
  class OidcAuthController {
    private readonly limit: number;

    constructor(
      @Inject(OIDC_MACHINE_AUTH) private readonly auth: OidcAuth,
      @Inject(OIDC_MACHINE_AUTH_OPTIONS) private readonly options: OidcMachineAuthOptions,
      @Inject(HttpAdapterHost) private readonly adapterHost: HttpAdapterHost,
    ) {
      this.limit = options.bodyLimit ?? DEFAULT_BODY_LIMIT;
    }

    private async answer(handle: typeof loginAnswer, request: RouteRequest, response: unknown) {
      let answer: HttpAnswer;
      try {
        const body = await requestBody(request, this.limit);
        const ip = this.options.getClientIp
          ? this.options.getClientIp(request as never)
          : platformIp(request);
        answer = await handle(this.auth, body, ip);
      } catch (error) {
        answer = errorAnswer(this.auth, error);
      }
      setAnswerHeaders(this.adapterHost, response, answer);
      if (answer.status !== 200) throw new OidcAuthHttpException(answer);
      return answer.body;
    }

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
  }
  return OidcAuthController;
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
 * parser's limit, an unknown media type or encoding) as every adapter does (422/413/415 with our body),
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
    const answer = errorAnswer(this.auth, known);
    const adapter = this.httpAdapterHost!.httpAdapter;
    const response = host.switchToHttp().getResponse<unknown>();
    setAnswerHeaders(this.httpAdapterHost!, response, answer);
    adapter.reply(response, answer.body, answer.status);
  }
}

/** The route paths under a prefix. */
export function routePaths(prefix: string): string[] {
  const base = `/${prefix}`.replace(/\/+/g, '/').replace(/\/$/, '');
  return [ROUTES.login, ROUTES.renew, ROUTES.revoke].map((route) => base + route);
}
