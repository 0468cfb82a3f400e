import { TOKEN_EXCHANGE_GRANT, TOKEN_TYPE } from '../oauth/urns.js';

/**
 * The name/value pairs of an `application/x-www-form-urlencoded` body, exactly as the WHATWG URL
 * Standard's urlencoded parser (§5.1) and so `URLSearchParams` read them: split on `&`, empty
 * sequences skipped, each split at its first `=`, `+` read as a space, then percent-decoded and read
 * as UTF-8 (an invalid sequence becoming U+FFFD).
 *
 * Faster than `URLSearchParams` on the bodies OAuth clients send (RFC 8693's URN parameters are
 * mostly `%3A`s, for which Node's parser takes a slow path): a part with no `%` or `+` is taken as it
 * is, one of those URNs encoded as clients encode them is looked up in a fixed table, and any other
 * part goes through `decodeURIComponent`, which gives the same string whenever it
 * succeeds (valid UTF-8 percent-encodings) and throws otherwise; such a part, and only it, is then
 * read by `URLSearchParams` itself. test/http/form.test.ts holds both to the same answers.
 */
export function parseFormPairs(body: string): [string, string][] {
  const pairs: [string, string][] = [];
  let start = 0;
  while (start <= body.length) {
    let end = body.indexOf('&', start);
    if (end < 0) end = body.length;
    if (end > start) {
      const eq = body.indexOf('=', start);
      if (eq >= 0 && eq < end) {
        pairs.push([decodePart(body.slice(start, eq)), decodePart(body.slice(eq + 1, end))]);
      } else {
        pairs.push([decodePart(body.slice(start, end)), '']);
      }
    }
    start = end + 1;
  }
  return pairs;
}

/**
 * The RFC 8693 URNs (src/oauth/urns.ts) a token-exchange request carries (`grant_type`,
 * `subject_token_type`, `requested_token_type`), as `URLSearchParams` and `encodeURIComponent`
 * encode them (`:` as `%3A`), with their decoded text: a fixed table, so the commonest escaped
 * values cost a lookup.
 */
const ENCODED_URNS: ReadonlyMap<string, string> = new Map(
  [TOKEN_EXCHANGE_GRANT, ...Object.values(TOKEN_TYPE)].map((urn) => [encodeURIComponent(urn), urn]),
);

/** One name or value: `+` as a space, percent-decoded as UTF-8. */
function decodePart(part: string): string {
  const percent = part.indexOf('%');
  const plus = part.indexOf('+');
  if (percent < 0 && plus < 0) return part;
  const urn = plus < 0 ? ENCODED_URNS.get(part) : undefined;
  if (urn !== undefined) return urn;
  const spaced = plus < 0 ? part : part.replaceAll('+', ' ');
  if (percent < 0) return spaced;
  try {
    return decodeURIComponent(spaced);
  } catch {
    // A malformed or non-UTF-8 percent-encoding: the standard's own reading (U+FFFD, `%` kept).
    return new URLSearchParams(`v=${part}`).get('v')!;
  }
}
