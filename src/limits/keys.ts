import { createHash } from 'node:crypto';
import ipaddr from 'ipaddr.js';
import { LRUCache } from 'lru-cache';

/** Longest client address text keyed as it is; longer text is not an address. */
const MAX_ADDRESS_LENGTH = 64;
const NOT_AN_ADDRESS = '?';
/** IPv6 address text → its key; parsing costs ~1 µs, a cache hit ~0.1 µs. */
const ipv6Keys = new LRUCache<string, string>({ max: 4096 });

/**
 * The budget key of a client address: an IPv4 address as it is (an IPv4-mapped IPv6 address as its
 * IPv4), an IPv6 address by its /64 (one host or site holds a whole /64, so one attacker cannot
 * spread a flood over 2^64 budgets). Text that is not an address is keyed as it is when short, else
 * all such text shares one key. `undefined` when the call carried no address: per-address budgets
 * then do not apply (a direct `auth.login()` call from the host itself).
 *
 * @internal
 */
export function addressKey(ip: string | undefined): string | undefined {
  if (typeof ip !== 'string' || ip.length === 0) return undefined;
  if (ip.length > MAX_ADDRESS_LENGTH) return NOT_AN_ADDRESS;
  if (!ip.includes(':')) return ip;
  let key = ipv6Keys.get(ip);
  if (key === undefined) {
    key = ipv6Key(ip);
    ipv6Keys.set(ip, key);
  }
  return key;
}

function ipv6Key(ip: string): string {
  const percent = ip.indexOf('%');
  const bare = percent === -1 ? ip : ip.slice(0, percent);
  if (!ipaddr.IPv6.isValid(bare)) return ip;
  const address = ipaddr.IPv6.parse(bare);
  if (address.isIPv4MappedAddress()) return address.toIPv4Address().toString();
  return `${address.parts
    .slice(0, 4)
    .map((part) => part.toString(16))
    .join(':')}::/64`;
}

/**
 * The lockout key of a verified IdP token's issuer and subject, within an identity: short enough
 * for any limiter (long subjects are hashed).
 *
 * @internal
 */
export function subjectKey(identityId: string, issuer: string, subject: string): string {
  // The issuer's length makes the pair unambiguous whatever characters either holds.
  const pair = `${issuer.length}:${issuer}:${subject}`;
  return `${identityId}:${pair.length <= 256 ? pair : hashed(pair)}`;
}

function hashed(text: string): string {
  return `sha256:${createHash('sha256').update(text).digest('base64url')}`;
}
