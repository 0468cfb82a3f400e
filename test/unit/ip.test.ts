import fc from 'fast-check';
import ipaddr from 'ipaddr.js';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/errors.js';
import {
  ALLOW_ALL_IPS,
  compileIpAllowList,
  normalizeIp,
  parseTrustedIps,
} from '../../src/policy/trusted-ips.js';

function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return error as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

describe('parseTrustedIps', () => {
  it('accepts arrays, comma-separated strings and Infisical {ipAddress} objects', () => {
    expect(parseTrustedIps(['10.0.0.0/8', '192.168.0.0/16'])).toEqual(['10.0.0.0/8', '192.168.0.0/16']);
    expect(parseTrustedIps('10.0.0.0/8, 192.168.0.0/16 ,2001:db8::/32')).toEqual([
      '10.0.0.0/8',
      '192.168.0.0/16',
      '2001:db8::/32',
    ]);
    expect(parseTrustedIps([{ ipAddress: '0.0.0.0/0' }, { ipAddress: '::/0' }])).toEqual([
      '0.0.0.0/0',
      '::/0',
    ]);
    expect(parseTrustedIps([{ ipAddress: '10.0.0.0', prefix: 8, type: 'ipv4' }])).toEqual(['10.0.0.0/8']);
  });

  it('turns bare addresses into /32 and /128 and returns canonical strings', () => {
    expect(parseTrustedIps(['203.0.113.9', '2001:0DB8:0000:0000::1', '2001:db8:0:0::/64'])).toEqual([
      '203.0.113.9/32',
      '2001:db8::1/128',
      '2001:db8::/64',
    ]);
  });

  it('de-duplicates and is idempotent on its own output', () => {
    const once = parseTrustedIps(['10.0.0.0/8', '10.0.0.0/8', '2001:db8::/32']);
    expect(once).toEqual(['10.0.0.0/8', '2001:db8::/32']);
    expect(parseTrustedIps(once)).toEqual(once);
  });

  it.each([
    ['10/8', 'four-part decimal'],
    ['010.0.0.0/8', 'four-part decimal'],
    ['0x7f.0.0.1', 'four-part decimal'],
    ['0x7f.1', 'four-part decimal'],
    ['2130706433', 'four-part decimal'],
    ['10.0.0', 'four-part decimal'],
    ['10.0.0.0/33', 'prefix length'],
    ['10.0.0.0/08', 'prefix length'],
    ['10.0.0.0/', 'prefix length'],
    ['2001:db8::/129', 'prefix length'],
    ['1:2:3:4:5:6:7:8:9', 'not a CIDR'],
    ['::ffff:010.0.0.1', 'not a CIDR'],
    ['fe80::1%eth0', 'not a CIDR'],
    ['10.0.0.0/8,192.168.0.0/16', 'comma'],
    ['localhost', 'not a CIDR'],
  ])('IP-06: refuses %j', (entry, problem) => {
    const error = configError(() => parseTrustedIps(['192.0.2.0/24', entry], 'ci-deploy'));
    expect(error.field).toBe('accessTokenTrustedIps[1]');
    expect(error.identityId).toBe('ci-deploy');
    expect(error.message).toContain(problem);
  });

  it('IP-06: refuses whitespace-padded entries in an array', () => {
    expect(configError(() => parseTrustedIps([' 10.0.0.0/8'])).message).toContain('whitespace');
    expect(configError(() => parseTrustedIps(['10.0.0.0/8 '])).field).toBe('accessTokenTrustedIps[0]');
  });

  it('IP-06: refuses host bits and suggests the network form', () => {
    expect(configError(() => parseTrustedIps(['10.0.0.1/8'])).message).toContain('did you mean 10.0.0.0/8?');
    expect(configError(() => parseTrustedIps(['2001:db8::1/32'])).message).toContain(
      'did you mean 2001:db8::/32?',
    );
    expect(configError(() => parseTrustedIps(['192.168.1.77/20'])).message).toContain('192.168.0.0/20');
  });

  it('refuses IPv4-mapped IPv6 ranges (clients are matched as IPv4)', () => {
    expect(configError(() => parseTrustedIps(['::ffff:10.0.0.0/104'])).message).toContain('IPv4-mapped');
  });

  it.each([[[]], [''], ['  '], [' , ']])(
    'IP-08: refuses the empty list %j (never allow-all by accident)',
    (input) => {
      const error = configError(() => parseTrustedIps(input));
      expect(error.field).toMatch(/^accessTokenTrustedIps/);
    },
  );

  it('refuses other shapes and inconsistent Infisical objects', () => {
    expect(configError(() => parseTrustedIps(42)).field).toBe('accessTokenTrustedIps');
    expect(configError(() => parseTrustedIps([10])).field).toBe('accessTokenTrustedIps[0]');
    expect(configError(() => parseTrustedIps([{ ip: '10.0.0.0/8' }])).field).toBe(
      'accessTokenTrustedIps[0].ip',
    );
    expect(configError(() => parseTrustedIps([{ ipAddress: '10.0.0.0', type: 'ipv6' }])).field).toBe(
      'accessTokenTrustedIps[0].type',
    );
    expect(configError(() => parseTrustedIps([{ ipAddress: '10.0.0.0/8', prefix: 16 }])).field).toBe(
      'accessTokenTrustedIps[0].prefix',
    );
  });

  it('caps the list size and entry length without echoing huge input', () => {
    const many = Array.from({ length: 300 }, (_, i) => `10.${i >> 8}.${i & 255}.0/24`);
    expect(configError(() => parseTrustedIps(many)).message).toContain('more than 256');
    const huge = configError(() => parseTrustedIps(['1'.repeat(100_000)]));
    expect(huge.message.length).toBeLessThan(200);
  });
});

describe('compileIpAllowList', () => {
  it('IP-08: the default list allows every address, and skips parsing', () => {
    const list = compileIpAllowList(ALLOW_ALL_IPS);
    expect(list.allowAll).toBe(true);
    expect(list.allows('203.0.113.9')).toBe(true);
    expect(list.allows('2001:db8::1')).toBe(true);
    expect(list.allows(undefined)).toBe(true);
    expect(compileIpAllowList(['0.0.0.0/0']).allowAll).toBe(false);
  });

  it('caches compiled lists by content, so the per-request call is a hit', () => {
    const a = compileIpAllowList(['10.0.0.0/8', '2001:db8::/32']);
    const b = compileIpAllowList(['10.0.0.0/8', '2001:db8::/32'].slice());
    expect(b).toBe(a);
    expect(compileIpAllowList(['10.0.0.0/8'])).not.toBe(a);
  });

  it('matches IPv4 ranges, /32 and /0', () => {
    const list = compileIpAllowList(['10.0.0.0/8', '203.0.113.9/32']);
    expect(list.allows('10.255.1.2')).toBe(true);
    expect(list.allows('11.0.0.1')).toBe(false);
    expect(list.allows('203.0.113.9')).toBe(true);
    expect(list.allows('203.0.113.10')).toBe(false);
    expect(compileIpAllowList(['0.0.0.0/0']).allows('198.51.100.1')).toBe(true);
  });

  it('matches IPv6 ranges, /128 and /0, with a zone id on the client', () => {
    const list = compileIpAllowList(['2001:db8::/32', 'fe80::/10', '2001:db8:ffff::7/128']);
    expect(list.allows('2001:db8:1::1')).toBe(true);
    expect(list.allows('2001:db9::1')).toBe(false);
    expect(list.allows('fe80::1%eth0')).toBe(true);
    expect(compileIpAllowList(['::/0']).allows('2606:4700::1')).toBe(true);
  });

  it('IP-04: an IPv4-mapped IPv6 client matches IPv4 ranges; NAT64 does not', () => {
    const list = compileIpAllowList(['10.0.0.0/8']);
    expect(list.allows('::ffff:10.0.0.1')).toBe(true);
    expect(list.allows('::ffff:a00:1')).toBe(true);
    expect(list.allows('64:ff9b::a00:1')).toBe(false);
    expect(list.allows('::ffff:11.0.0.1')).toBe(false);
  });

  it('IP-04: an IPv4-compatible spelling (::10.0.0.1) is no address at all, whatever its zeros', () => {
    // ipaddr.js reads `::10.0.0.1` as `::ffff:10.0.0.1` but `0:0:0:0:0:0:10.0.0.1` as IPv6 `::a00:1`.
    const v4 = compileIpAllowList(['10.0.0.0/8']);
    const v6 = compileIpAllowList(['::/96']);
    for (const spelling of ['::10.0.0.1', '0:0:0:0:0:0:10.0.0.1', '::0:10.0.0.1', '1::10.0.0.1']) {
      expect(v4.allows(spelling)).toBe(false);
      expect(v6.allows(spelling)).toBe(false);
      expect(normalizeIp(spelling)).toBeUndefined();
    }
    expect(normalizeIp('0:0:0:0:0:FFFF:10.0.0.1')).toBe('10.0.0.1');
    expect(configError(() => parseTrustedIps(['::10.0.0.0/104'])).message).toContain('not a CIDR');
  });

  it('IP-05: mixed families never throw, they just do not match', () => {
    expect(compileIpAllowList(['::/0']).allows('10.0.0.1')).toBe(false);
    expect(compileIpAllowList(['0.0.0.0/0']).allows('2001:db8::1')).toBe(false);
    expect(compileIpAllowList(['2001:db8::/32']).allows('10.0.0.1')).toBe(false);
  });

  it.each([
    undefined,
    '',
    'garbage',
    ' 10.0.0.1',
    '10.0.0.1 ',
    '010.0.0.1',
    '2130706433',
    '0x0a.0.0.1',
    '10.0.0',
    'x'.repeat(10_000),
  ])('denies an unparsable or missing client address %j', (ip) => {
    const list = compileIpAllowList(['0.0.0.0/1', '8.0.0.0/8', '10.0.0.0/8', '127.0.0.0/8', '::/1']);
    expect(list.allows(ip)).toBe(false);
  });

  it('denies non-string input at runtime instead of throwing', () => {
    const list = compileIpAllowList(['10.0.0.0/8']);
    expect(list.allows(167772161 as unknown as string)).toBe(false);
    expect(list.allows(null as unknown as string)).toBe(false);
  });

  it('agrees with ipaddr.js match() on random IPv4 and IPv6 ranges', () => {
    fc.assert(
      fc.property(fc.ipV4(), fc.ipV4(), fc.integer({ min: 0, max: 32 }), (client, base, prefix) => {
        const network = ipaddr.IPv4.networkAddressFromCIDR(`${base}/${prefix}`).toString();
        const expected = ipaddr.IPv4.parse(client).match(ipaddr.IPv4.parse(network), prefix);
        return compileIpAllowList([`${network}/${prefix}`]).allows(client) === expected;
      }),
    );
    fc.assert(
      fc.property(fc.ipV6(), fc.ipV6(), fc.integer({ min: 1, max: 128 }), (client, base, prefix) => {
        const net = ipaddr.IPv6.networkAddressFromCIDR(`${base}/${prefix}`);
        // Mapped ranges are refused as config (written as IPv4 instead); dotted quads are only
        // read in the mapped form, which ipaddr.js also gives `::1.2.3.4` (see IP-04 above).
        fc.pre(!net.isIPv4MappedAddress() && !client.includes('.'));
        const network = net.toRFC5952String();
        const parsed = ipaddr.process(client);
        const expected =
          parsed.kind() === 'ipv6' && (parsed as ipaddr.IPv6).match(ipaddr.IPv6.parse(network), prefix);
        const [range] = parseTrustedIps([`${network}/${prefix}`]);
        return compileIpAllowList([range as string]).allows(client) === expected;
      }),
    );
  });
});

describe('normalizeIp', () => {
  it('unwraps IPv4-mapped IPv6, canonicalises IPv6 and drops zone ids', () => {
    expect(normalizeIp('::ffff:10.0.0.1')).toBe('10.0.0.1');
    expect(normalizeIp('2001:0DB8::0001')).toBe('2001:db8::1');
    expect(normalizeIp('fe80::1%eth0')).toBe('fe80::1');
    expect(normalizeIp('64:ff9b::a00:1')).toBe('64:ff9b::a00:1');
    expect(normalizeIp('10.0.0.1')).toBe('10.0.0.1');
  });

  it('returns undefined for anything that is not a strict address', () => {
    for (const ip of ['', 'garbage', '010.0.0.1', '2130706433', ' 10.0.0.1', '10.0.0.0/8']) {
      expect(normalizeIp(ip)).toBeUndefined();
    }
  });
});
