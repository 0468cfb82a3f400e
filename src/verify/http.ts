import type { FetchLike } from './options.js';

/** Largest metadata or introspection answer read, in bytes. */
export const MAX_RESPONSE_BYTES = 64 * 1024;

/** What a JSON request needs to know about how to reach the issuer. */
export interface HttpContext {
  fetch: FetchLike;
  /** Per request, in milliseconds. */
  timeoutMs: number;
}

/** Why a JSON request failed; callers turn it into their own {@link VerifyError} code. */
export class HttpFailure extends Error {
  override name = 'HttpFailure';
  constructor(
    readonly status: number | undefined,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/**
 * Fetch a URL and parse a JSON object from a 200 answer: no redirects followed, a timeout, and at
 * most {@link MAX_RESPONSE_BYTES} read.
 */
export async function fetchJsonObject(
  url: URL,
  init: RequestInit,
  context: HttpContext,
): Promise<Record<string, unknown>> {
  let response: Response;
  try {
    response = await context.fetch(url.href, {
      ...init,
      redirect: 'manual',
      signal: AbortSignal.timeout(context.timeoutMs),
    });
  } catch (cause) {
    throw new HttpFailure(undefined, 'request failed', { cause });
  }
  if (response.status !== 200) {
    await response.body?.cancel().catch(() => undefined);
    throw new HttpFailure(response.status, `answered ${response.status}`);
  }
  const text = await readCapped(response);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (cause) {
    throw new HttpFailure(200, 'answer is not JSON', { cause });
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new HttpFailure(200, 'answer is not a JSON object');
  }
  return value as Record<string, unknown>;
}

async function readCapped(response: Response): Promise<string> {
  const declared = Number(response.headers.get('content-length'));
  if (declared > MAX_RESPONSE_BYTES) {
    await response.body?.cancel().catch(() => undefined);
    throw new HttpFailure(200, 'answer too large');
  }
  if (!response.body) return '';
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.byteLength;
      if (size > MAX_RESPONSE_BYTES) {
        await reader.cancel().catch(() => undefined);
        throw new HttpFailure(200, 'answer too large');
      }
      chunks.push(value);
    }
  } catch (cause) {
    if (cause instanceof HttpFailure) throw cause;
    throw new HttpFailure(200, 'answer could not be read', { cause });
  }
  const bytes = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return new TextDecoder().decode(bytes);
}
