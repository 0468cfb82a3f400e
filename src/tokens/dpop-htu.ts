/**
 * RFC 9449 §4.3 step 9: a proof's `htu` matches the request URL ignoring query and fragment, after
 * syntax-based (RFC 3986 §6.2.2: case of scheme and host, percent-encoding case, unreserved
 * characters decoded, dot segments) and scheme-based (§6.2.3: default port, empty path `/`)
 * normalisation. Only `http` and `https` URLs match anything.
 */
export function htuMatches(htu: string, requestUrl: string): boolean {
  if (htu.length > 8192) return false;
  // The same text normalises the same way: only a plain http(s) URL is taken without parsing.
  if (htu === requestUrl && /^https?:\/\/[^?#@\\]+$/.test(htu)) return true;
  const a = normaliseHttpUrl(htu);
  return a !== undefined && a === normaliseHttpUrl(requestUrl);
}

/**
 * `scheme://host[:port]/path` of an http(s) URL, normalised per RFC 3986 §6.2.2 and §6.2.3, query and
 * fragment dropped; `undefined` for anything else (another scheme, user info, unparseable).
 */
export function normaliseHttpUrl(url: string): string | undefined {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return undefined;
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') return undefined;
  if (parsed.username !== '' || parsed.password !== '') return undefined;
  // WHATWG URL lowercases scheme and host, drops a default port, resolves dot segments and gives
  // an empty path as `/`; percent-encodings are left as written, so they are normalised here.
  const path = parsed.pathname.replace(/%([0-9A-Fa-f]{2})/g, (_m, hex: string) => {
    const code = parseInt(hex, 16);
    const char = String.fromCharCode(code);
    return /[A-Za-z0-9\-._~]/.test(char) ? char : `%${hex.toUpperCase()}`;
  });
  return `${parsed.protocol}//${parsed.host}${path}`;
}
