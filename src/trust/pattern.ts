import { ConfigError } from '../errors.js';

/** Longest issuer pattern accepted, in characters. */
const MAX_PATTERN_LENGTH = 512;
/** Most `*` path segments in one pattern. */
const MAX_PATH_WILDCARDS = 4;
/** What a `*` DNS label matches: one lowercase LDH label (RFC 1035 §2.3.1), 1-63 characters. */
const LABEL = '[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?';
/** What a `*` path segment matches: 1-128 unreserved characters (RFC 3986 §2.3), never `.` or `..`. */
const SEGMENT = '(?!\\.\\.?(?:/|$))[A-Za-z0-9._~-]{1,128}';
const FIXED_LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
const FIXED_SEGMENT = /^[A-Za-z0-9._~!$&'()+,;=:@%-]*$/;

/** A compiled issuer pattern: matches an `iss` string exactly, anchored, in time linear in its length. */
export interface IssuerPattern {
  readonly pattern: string;
  matches(issuer: string): boolean;
}

/**
 * Compile a host-pinned issuer pattern (docs/TRUST.md "Issuer patterns"). `*` stands for exactly
 * one DNS label (at most one in the host) or one whole path segment (at most four). Refused: any
 * scheme but https (http only with `allowInsecureLoopback`, to a fixed loopback host), a `*` in
 * the scheme, port, userinfo, query or fragment, a `*` inside a label or segment (`a*b`), a host
 * `*` without at least two fixed labels to its right (three when they look like a two-level
 * country suffix such as `co.uk`, as no public-suffix list is shipped), `*` as the last two labels
 * (`*.com`), uppercase or non-ASCII (IDN) hosts, `.`/`..` segments, and patterns over 512 chars.
 *
 * @throws {ConfigError} naming `field` and the problem.
 */
export function compileIssuerPattern(
  pattern: unknown,
  field: string,
  id: string | undefined,
  allowInsecureLoopback = false,
): IssuerPattern {
  const fail = (problem: string): never => {
    throw new ConfigError(field, problem, id);
  };
  if (typeof pattern !== 'string' || pattern === '') return fail('must be a non-empty string');
  if (pattern.length > MAX_PATTERN_LENGTH) return fail(`is longer than ${MAX_PATTERN_LENGTH} characters`);
  if (/[^\x21-\x7e]/.test(pattern)) {
    return fail('must be printable ASCII without spaces (write an IDN host in its xn-- form)');
  }
  const head = /^([a-z]+):\/\/([^/]*)(\/.*)?$/.exec(pattern);
  if (!head) return fail('must be an absolute URL: https://host/path');
  const [, scheme, authority, path = ''] = head as unknown as [string, string, string, string | undefined];
  const loopback = /^(127\.0\.0\.1|localhost|\[::1\])(:[0-9]{1,5})?$/.test(authority);
  if (scheme !== 'https' && !(scheme === 'http' && allowInsecureLoopback && loopback)) {
    return fail('must use https (the scheme is never a wildcard)');
  }
  if (/[?#]/.test(pattern)) return fail('must not have a query or fragment');
  if (authority.includes('@')) return fail('must not carry userinfo (user@)');
  const hostPort = /^(\[[0-9a-f:.]+\]|[^:]+)(?::([0-9]{1,5}))?$/.exec(authority);
  if (!hostPort) return fail('has a malformed host or port (the port is never a wildcard)');
  const host = hostPort[1] as string;
  if (hostPort[2] !== undefined && (Number(hostPort[2]) === 0 || Number(hostPort[2]) > 65_535)) {
    return fail('has a port out of range');
  }
  if (host !== host.toLowerCase()) return fail('must have a lowercase host (iss is compared exactly)');
  let hostSource: string;
  if (host.startsWith('[') || /^[0-9.]+$/.test(host)) {
    hostSource = escape(host); // an IP literal: fixed, never a wildcard
  } else {
    const labels = host.split('.');
    const stars = labels.filter((label) => label.includes('*'));
    if (stars.length > 1) return fail('may vary at most one DNS label of the host');
    if (stars.length === 1 && stars[0] !== '*') {
      return fail('has "*" inside a DNS label; "*" must be a whole label');
    }
    labels.forEach((label) => {
      if (label !== '*' && !FIXED_LABEL.test(label))
        fail(`has an invalid DNS label ${JSON.stringify(label)}`);
    });
    const star = labels.indexOf('*');
    if (star >= 0) {
      const fixed = labels.slice(star + 1);
      const tld = fixed.at(-1) ?? '';
      const second = fixed.at(-2) ?? '';
      const twoLevelSuffix = tld.length === 2 && second.length <= 3;
      const needed = twoLevelSuffix ? 3 : 2;
      if (fixed.length < needed) {
        fail(
          `varies the registrable domain itself; "*" must stand for one label under a fixed domain (at least ${needed} fixed labels to its right)`,
        );
      }
    }
    hostSource = labels.map((label) => (label === '*' ? LABEL : escape(label))).join('\\.');
  }
  const port = hostPort[2] === undefined ? '' : `:${hostPort[2]}`;
  let wildcards = 0;
  const segments = path === '' ? [] : path.slice(1).split('/');
  const pathSource = segments.map((segment) => {
    if (segment === '*') {
      wildcards++;
      return SEGMENT;
    }
    if (segment.includes('*')) fail('has "*" inside a path segment; "*" must be a whole segment');
    if (segment === '.' || segment === '..') fail('has a "." or ".." path segment');
    if (!FIXED_SEGMENT.test(segment)) fail(`has an invalid path segment ${JSON.stringify(segment)}`);
    return escape(segment);
  });
  if (wildcards > MAX_PATH_WILDCARDS) fail(`has more than ${MAX_PATH_WILDCARDS} "*" path segments`);
  if (wildcards === 0 && !host.split('.').includes('*')) {
    fail('has no "*": list an exact issuer with issuer instead');
  }
  const source = `^${scheme}://${hostSource}${escape(port)}${segments.length > 0 ? '/' : ''}${pathSource.join('/')}$`;
  const regex = new RegExp(source);
  return Object.freeze({
    pattern,
    matches: (issuer: string) => issuer.length <= MAX_PATTERN_LENGTH * 2 && regex.test(issuer),
  });
}

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}
