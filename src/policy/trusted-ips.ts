import ipaddr from 'ipaddr.js';
import { LRUCache } from 'lru-cache';
import { ConfigError } from '../errors.js';

/** The trusted-IP list when an identity sets none: anywhere, explicitly (IP-08). */
export const ALLOW_ALL_IPS: readonly string[] = Object.freeze(['0.0.0.0/0', '::/0']);

const FIELD = 'accessTokenTrustedIps';
const MAX_ENTRIES = 256;
const MAX_ENTRY_LENGTH = 64;

/**
 * Parse and validate an identity's trusted IP ranges (`accessTokenTrustedIps`).
 *
 * Accepts an array of strings, a comma-separated string (items trimmed), or Infisical's
 * `[{ ipAddress: "10.0.0.0/8" }]` (optionally with `prefix`). Each entry is a CIDR or a bare address
 * (a bare address becomes `/32` or `/128`). Parsing is strict: IPv4 must be four-part decimal
 * (`10/8`, `010.0.0.0/8`, `0x7f.1`, `2130706433` are refused), a range with host bits set
 * (`10.0.0.1/8`) is refused with the network form suggested, IPv6 zone ids and IPv4-mapped ranges
 * are refused. An empty list is refused: an identity never allows every address by accident (IP-08);
 * the default when the field is absent is {@link ALLOW_ALL_IPS}, applied by the config parser.
 *
 * @returns Canonical `address/prefix` strings, de-duplicated, in input order.
 * @throws {ConfigError} naming `accessTokenTrustedIps[i]` and the problem.
 */
export function parseTrustedIps(input: unknown, identityId?: string): string[] {
  const entries = listEntries(input, identityId);
  if (entries.length === 0) {
    throw new ConfigError(
      FIELD,
      'is empty; list the allowed ranges, or omit the field to allow 0.0.0.0/0 and ::/0 explicitly',
      identityId,
    );
  }
  if (entries.length > MAX_ENTRIES) {
    throw new ConfigError(FIELD, `has more than ${MAX_ENTRIES} entries`, identityId);
  }
  const out: string[] = [];
  for (let i = 0; i < entries.length; i++) {
    const canonical = parseRange(entries[i], `${FIELD}[${i}]`, identityId);
    if (!out.includes(canonical)) out.push(canonical);
  }
  return out;
}

function listEntries(input: unknown, identityId: string | undefined): unknown[] {
  if (typeof input === 'string') {
    if (input.trim() === '') return [];
    return input.split(',').map((item) => item.trim());
  }
  if (!Array.isArray(input)) {
    throw new ConfigError(FIELD, 'must be an array of CIDRs or a comma-separated string', identityId);
  }
  return input.map((item: unknown, i) => {
    if (typeof item === 'string') return item;
    if (item !== null && typeof item === 'object' && !Array.isArray(item))
      return infisicalEntry(item, i, identityId);
    throw new ConfigError(`${FIELD}[${i}]`, 'must be a string or { ipAddress }', identityId);
  });
}

/** Infisical stores `{ ipAddress, prefix?, type? }`; the prefix may also sit inside `ipAddress`. */
function infisicalEntry(item: object, i: number, identityId: string | undefined): string {
  const field = `${FIELD}[${i}]`;
  const { ipAddress, prefix, type, ...rest } = item as Record<string, unknown>;
  const extra = Object.keys(rest)[0];
  if (extra !== undefined)
    throw new ConfigError(`${field}.${short(extra)}`, 'is not a known field', identityId);
  if (typeof ipAddress !== 'string')
    throw new ConfigError(`${field}.ipAddress`, 'must be a string', identityId);
  if (type !== undefined && type !== 'ipv4' && type !== 'ipv6') {
    throw new ConfigError(`${field}.type`, 'must be "ipv4" or "ipv6"', identityId);
  }
  const family = ipAddress.includes(':') ? 'ipv6' : 'ipv4';
  if (type !== undefined && type !== family) {
    throw new ConfigError(`${field}.type`, `says ${type} but ipAddress is ${family}`, identityId);
  }
  if (prefix === undefined) return ipAddress;
  if (typeof prefix !== 'number' || !Number.isInteger(prefix)) {
    throw new ConfigError(`${field}.prefix`, 'must be an integer', identityId);
  }
  if (!ipAddress.includes('/')) return `${ipAddress}/${prefix}`;
  if (ipAddress.endsWith(`/${prefix}`)) return ipAddress;
  throw new ConfigError(`${field}.prefix`, 'disagrees with the prefix inside ipAddress', identityId);
}

const PREFIX = /^(0|[1-9][0-9]{0,2})$/;

function parseRange(entry: unknown, field: string, identityId: string | undefined): string {
  if (typeof entry !== 'string' || entry === '') {
    throw new ConfigError(field, 'must be a non-empty CIDR or address', identityId);
  }
  if (entry.length > MAX_ENTRY_LENGTH) throw new ConfigError(field, 'is too long for an address', identityId);
  if (entry.trim() !== entry) {
    throw new ConfigError(field, 'has surrounding whitespace; give the range alone', identityId);
  }
  if (entry.includes(',')) {
    throw new ConfigError(field, 'contains a comma; give each range as its own list item', identityId);
  }
  const slash = entry.indexOf('/');
  const address = slash === -1 ? entry : entry.slice(0, slash);
  const prefixText = slash === -1 ? undefined : entry.slice(slash + 1);
  const shown = JSON.stringify(entry);

  let parsed: ipaddr.IPv4 | ipaddr.IPv6;
  let max: number;
  if (!address.includes(':') && ipaddr.IPv4.isValidFourPartDecimal(address)) {
    parsed = ipaddr.IPv4.parse(address);
    max = 32;
  } else if (isStrictIPv6(address)) {
    parsed = ipaddr.IPv6.parse(address);
    max = 128;
    if ((parsed as ipaddr.IPv6).isIPv4MappedAddress()) {
      throw new ConfigError(
        field,
        `${shown} is an IPv4-mapped IPv6 range; write the IPv4 range (clients are matched as IPv4)`,
        identityId,
      );
    }
  } else {
    throw new ConfigError(
      field,
      `${shown} is not a CIDR or address (IPv4 must be four-part decimal like 10.0.0.0/8; IPv6 like fd00::/8)`,
      identityId,
    );
  }

  let prefix = max;
  if (prefixText !== undefined) {
    if (!PREFIX.test(prefixText) || Number(prefixText) > max) {
      throw new ConfigError(field, `${shown} has an invalid prefix length (0 to ${max})`, identityId);
    }
    prefix = Number(prefixText);
  }
  const canonical = canonicalAddress(parsed);
  const network = networkOf(parsed, prefix);
  if (network !== canonical) {
    throw new ConfigError(
      field,
      `${shown} has host bits set; did you mean ${network}/${prefix}?`,
      identityId,
    );
  }
  return `${canonical}/${prefix}`;
}

function isStrictIPv6(address: string): boolean {
  if (!address.includes(':') || address.includes('%')) return false;
  if (!ipaddr.IPv6.isValid(address)) return false;
  const lastColon = address.lastIndexOf(':');
  const tail = address.slice(lastColon + 1);
  if (!tail.includes('.')) return true;
  // An embedded dotted quad must itself be four-part decimal, and only in the IPv4-mapped form
  // spelled out (`::ffff:1.2.3.4`): ipaddr.js 2 reads the deprecated IPv4-compatible `::1.2.3.4` as
  // `::ffff:1.2.3.4` but `0:0:0:0:0:0:1.2.3.4` as IPv6, so one address would match by spelling.
  return ipaddr.IPv4.isValidFourPartDecimal(tail) && /(?:^|:)ffff$/i.test(address.slice(0, lastColon));
}

function canonicalAddress(address: ipaddr.IPv4 | ipaddr.IPv6): string {
  return address.kind() === 'ipv6' ? (address as ipaddr.IPv6).toRFC5952String() : address.toString();
}

function networkOf(address: ipaddr.IPv4 | ipaddr.IPv6, prefix: number): string {
  const bytes = address.toByteArray();
  for (let bit = prefix; bit < bytes.length * 8; bit++) {
    const index = bit >> 3;
    bytes[index] = (bytes[index] ?? 0) & ~(0x80 >> (bit & 7));
  }
  return canonicalAddress(ipaddr.fromByteArray(bytes));
}

function short(text: string): string {
  return text.length > 40 ? `${text.slice(0, 40)}…` : text;
}

/** A compiled trusted-IP list. */
export interface IpAllowList {
  /** True when both `0.0.0.0/0` and `::/0` are listed: every address (and none) is allowed. */
  readonly allowAll: boolean;
  /**
   * Whether a client address may use the token. IPv4-mapped IPv6 (`::ffff:10.0.0.1`) is matched as
   * IPv4 (IP-04); NAT64 is not unwrapped; an address of the other family never matches (IP-05); an
   * unparsable or missing address is denied unless {@link allowAll}.
   */
  allows(ip: string | undefined): boolean;
}

/** One parsed client address: IPv4 as a 32-bit unsigned int, IPv6 as its 8 parts. */
type ClientAddress = { v4: number; v6?: undefined } | { v4?: undefined; v6: readonly number[] };

interface V4Range {
  network: number;
  mask: number;
}
interface V6Range {
  parts: readonly number[];
  prefix: number;
}

const ALLOW_ALL: IpAllowList = Object.freeze({ allowAll: true, allows: () => true });
const compiledLists = new LRUCache<string, IpAllowList>({ max: 1000 });
// Client addresses repeat (a CI fleet, a few proxies): parsing one costs ~1 µs, a hit ~0.1 µs.
const clientAddresses = new LRUCache<string, ClientAddress | false>({ max: 4096 });

/**
 * Compile a trusted-IP list (canonical CIDRs, as {@link parseTrustedIps} returns them) for the hot
 * path. Compiled lists are cached by content, so calling this per request is a cheap hit.
 */
export function compileIpAllowList(cidrs: readonly string[]): IpAllowList {
  const key = cidrs.join(',');
  let list = compiledLists.get(key);
  if (!list) {
    list = buildList(cidrs);
    compiledLists.set(key, list);
  }
  return list;
}

function buildList(cidrs: readonly string[]): IpAllowList {
  if (cidrs.includes('0.0.0.0/0') && cidrs.includes('::/0')) return ALLOW_ALL;
  const v4: V4Range[] = [];
  const v6: V6Range[] = [];
  for (const cidr of cidrs) {
    let range: [ipaddr.IPv4 | ipaddr.IPv6, number];
    try {
      range = ipaddr.parseCIDR(cidr);
    } catch {
      continue; // Stored records are validated at login; an unreadable entry allows nothing.
    }
    const [address, prefix] = range;
    if (address.kind() === 'ipv4') {
      const mask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
      v4.push({ network: (toUint32((address as ipaddr.IPv4).octets) & mask) >>> 0, mask });
    } else {
      v6.push({ parts: (address as ipaddr.IPv6).parts, prefix });
    }
  }
  return Object.freeze({
    allowAll: false,
    allows(ip: string | undefined): boolean {
      const client = ip === undefined ? false : readClient(ip);
      if (client === false) return false;
      if (client.v4 !== undefined) {
        for (const range of v4) if ((client.v4 & range.mask) >>> 0 === range.network) return true;
        return false;
      }
      for (const range of v6) if (matchV6(client.v6, range)) return true;
      return false;
    },
  });
}

function toUint32(octets: readonly number[]): number {
  return (
    (((octets[0] ?? 0) << 24) | ((octets[1] ?? 0) << 16) | ((octets[2] ?? 0) << 8) | (octets[3] ?? 0)) >>> 0
  );
}

function matchV6(parts: readonly number[], range: V6Range): boolean {
  let bits = range.prefix;
  for (let i = 0; i < 8 && bits > 0; i++, bits -= 16) {
    const shift = bits >= 16 ? 0 : 16 - bits;
    if ((parts[i] ?? 0) >> shift !== (range.parts[i] ?? 0) >> shift) return false;
  }
  return true;
}

function readClient(ip: string): ClientAddress | false {
  if (typeof ip !== 'string' || ip.length === 0 || ip.length > 64) return false;
  let client = clientAddresses.get(ip);
  if (client === undefined) {
    const parsed = parseClient(ip);
    client = parsed
      ? parsed.kind() === 'ipv4'
        ? { v4: toUint32((parsed as ipaddr.IPv4).octets) }
        : { v6: (parsed as ipaddr.IPv6).parts }
      : false;
    clientAddresses.set(ip, client);
  }
  return client;
}

/**
 * Parse a client address strictly (four-part decimal IPv4, or IPv6 with an optional zone id) and
 * unwrap IPv4-mapped IPv6. Lenient forms (`010.0.0.1` as octal, `2130706433`) are refused: the
 * address may come from a header a proxy copied.
 */
function parseClient(ip: string): ipaddr.IPv4 | ipaddr.IPv6 | undefined {
  // isValidFourPartDecimal costs ~12 µs on an IPv6 string (it throws internally): test the family first.
  if (ip.includes(':')) {
    const percent = ip.indexOf('%');
    if (!isStrictIPv6(percent === -1 ? ip : ip.slice(0, percent))) return undefined;
  } else if (!ipaddr.IPv4.isValidFourPartDecimal(ip)) {
    return undefined;
  }
  try {
    return ipaddr.process(ip);
  } catch {
    return undefined;
  }
}

/**
 * The canonical form of a client address (`::ffff:10.0.0.1` → `10.0.0.1`, IPv6 in RFC 5952 form,
 * zone id dropped), or `undefined` when it is not an address.
 */
export function normalizeIp(ip: string): string | undefined {
  if (typeof ip !== 'string' || ip.length === 0 || ip.length > 64) return undefined;
  const parsed = parseClient(ip);
  if (!parsed) return undefined;
  return parsed.kind() === 'ipv6'
    ? new ipaddr.IPv6((parsed as ipaddr.IPv6).parts).toRFC5952String()
    : parsed.toString();
}
