import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import {
  DEFAULT_BODY_LIMIT,
  OidcAuthError,
  bodyTooLarge,
  invalidBody,
  parseRequestBody,
  unsupportedMediaType,
  type HttpAnswer,
} from '../../src/index.js';

/** One framework-neutral answer, sent as Fastify sends. */
export function send(reply: FastifyReply, answer: HttpAnswer): FastifyReply {
  return reply.code(answer.status).headers(answer.headers).send(answer.body);
}

/** Fastify's own body errors, as the answers every adapter gives; undefined for anything else. */
function bodyError(error: FastifyError): OidcAuthError | undefined {
  if (error instanceof OidcAuthError) return error;
  const code: unknown = error.code;
  if (code === 'FST_ERR_CTP_BODY_TOO_LARGE') return bodyTooLarge();
  if (code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') return unsupportedMediaType();
  if (typeof code === 'string' && code.startsWith('FST_ERR_CTP_')) return invalidBody('Malformed body');
  return undefined;
}

/**
 * Our JSON and form parsers for an encapsulated context (prototype keys kept as data, never merged;
 * at most `bodyLimit` bytes), and its body errors answered as `answer` words them (413/415/422, or
 * RFC 6749 section 5.2 bodies on the OAuth routes). Any other error goes to the host's handler.
 */
export function readAuthBodies(
  app: FastifyInstance,
  bodyLimit: number | undefined,
  answer: (error: OidcAuthError) => HttpAnswer,
): void {
  app.removeAllContentTypeParsers();
  app.addContentTypeParser(
    '*',
    { parseAs: 'string', bodyLimit: bodyLimit ?? DEFAULT_BODY_LIMIT },
    async (request: FastifyRequest, raw: string) => parseRequestBody(request.headers['content-type'], raw),
  );
  app.setErrorHandler(function authBodyErrorHandler(error: FastifyError, _request, reply) {
    const known = bodyError(error);
    if (!known) throw error; // the host's error handler decides
    return send(reply, answer(known));
  });
}
