import { HttpException } from '@nestjs/common';
import type { HttpAdapterHost } from '@nestjs/core';
import type { ErrorBody, HttpAnswer } from '../../src/index.js';

/**
 * An error answer as a Nest `HttpException`: `getResponse()` is our JSON body (`statusCode`, `error`,
 * `message`, `reasonCode`, `reqId`; on the OAuth routes the RFC 6749 §5.2 body: `error`,
 * `error_description`, `reasonCode`, `reqId`), `getStatus()` its status, and `headers` the answer's headers
 * (`WWW-Authenticate`, `Retry-After`, `Cache-Control`). The guard and the routes also set those headers
 * on the response before throwing, so Nest's built-in exception filter answers exactly what the other
 * adapters answer; a host filter that writes its own answer can read them from `headers`.
 */
export class OidcAuthHttpException extends HttpException {
  /** The answer's headers, lower-case names. */
  readonly headers: Readonly<Record<string, string>>;
  /** The stable reason code of the body. */
  readonly reasonCode: string;

  constructor(answer: HttpAnswer, cause?: unknown) {
    const body = answer.body as ErrorBody;
    super(body, answer.status, cause === undefined ? undefined : { cause });
    this.headers = answer.headers;
    this.reasonCode = body.reasonCode;
  }
}

/** Set an answer's headers on the platform's response (Express or Fastify) through Nest's adapter. */
export function setAnswerHeaders(adapterHost: HttpAdapterHost, response: unknown, answer: HttpAnswer): void {
  const adapter = adapterHost.httpAdapter;
  for (const [name, value] of Object.entries(answer.headers)) adapter.setHeader(response, name, value);
}
