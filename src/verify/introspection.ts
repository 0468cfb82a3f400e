import { LRUCache } from 'lru-cache';
import { VerifyError } from './errors.js';
import { fetchJsonObject, type HttpContext } from './http.js';
import { parseSeconds } from './options.js';

/**
 * How the verifier authenticates to the issuer's RFC 7662 introspection endpoint (the endpoint
 * requires it, section 2.1). Give `clientId` + `clientSecret` (sent as HTTP Basic, RFC 6749 section
 * 2.3.1), or `headers` (a static set or a function called per request, e.g. for a bearer token), or
 * both.
 */
export interface IntrospectionOptions {
  clientId?: string;
  clientSecret?: string;
  headers?: Record<string, string> | (() => Record<string, string> | Promise<Record<string, string>>);
  /**
   * How long an answer (active or not) may be reused for the same token, in seconds, never past the
   * token's `exp`. Default 0: every `verify(token, { introspect: true })` asks the issuer. Max 300.
   */
  cacheSeconds?: number;
  /** Most answers kept when `cacheSeconds` > 0. Default 10,000. */
  cacheMax?: number;
}

/** Asks the introspection endpoint whether a (locally verified) token is still active. */
export interface Introspector {
  /** Resolves when the issuer says `active: true`; throws `token_inactive` otherwise. */
  check(endpoint: URL, token: string, exp: number): Promise<void>;
}

interface Answer {
  active: boolean;
  until: number;
}

/** Build the introspection client once, checking its options. */
export function createIntrospector(options: IntrospectionOptions, context: HttpContext): Introspector {
  const hasBasic = options.clientId !== undefined || options.clientSecret !== undefined;
  if (hasBasic && (typeof options.clientId !== 'string' || typeof options.clientSecret !== 'string')) {
    throw new VerifyError('invalid_config', 'introspection: clientId and clientSecret go together');
  }
  if (!hasBasic && options.headers === undefined) {
    throw new VerifyError('invalid_config', 'introspection: give clientId + clientSecret, or headers');
  }
  const cacheSeconds = parseSeconds(options.cacheSeconds, 'introspection.cacheSeconds', 0, 0, 300);
  const cacheMax = parseSeconds(options.cacheMax, 'introspection.cacheMax', 10_000, 1, 1_000_000);
  const cache = cacheSeconds > 0 ? new LRUCache<string, Answer>({ max: cacheMax }) : undefined;
  const basic = hasBasic
    ? `Basic ${btoa(`${formEncode(options.clientId!)}:${formEncode(options.clientSecret!)}`)}`
    : undefined;

  async function ask(endpoint: URL, token: string): Promise<boolean> {
    const extra = typeof options.headers === 'function' ? await options.headers() : (options.headers ?? {});
    const headers = new Headers(extra);
    headers.set('content-type', 'application/x-www-form-urlencoded');
    headers.set('accept', 'application/json');
    if (basic) headers.set('authorization', basic);
    let answer: Record<string, unknown>;
    try {
      answer = await fetchJsonObject(
        endpoint,
        {
          method: 'POST',
          headers,
          body: new URLSearchParams({ token, token_type_hint: 'access_token' }).toString(),
        },
        context,
      );
    } catch (cause) {
      throw new VerifyError('introspection_unavailable', `introspection: ${(cause as Error).message}`, {
        cause,
      });
    }
    if (typeof answer.active !== 'boolean') {
      throw new VerifyError('introspection_unavailable', 'introspection: the answer has no boolean "active"');
    }
    return answer.active;
  }

  return {
    async check(endpoint, token, exp) {
      const now = Date.now();
      let answer = cache?.get(token);
      if (!answer || answer.until <= now) {
        const active = await ask(endpoint, token);
        answer = { active, until: Math.min(now + cacheSeconds * 1000, exp * 1000) };
        if (cache && answer.until > now) cache.set(token, answer);
      }
      if (!answer.active) throw new VerifyError('token_inactive', 'the issuer says the token is not active');
    },
  };
}

/** application/x-www-form-urlencoded, as RFC 6749 section 2.3.1 asks for Basic credentials. */
function formEncode(value: string): string {
  return new URLSearchParams({ v: value }).toString().slice(2);
}
