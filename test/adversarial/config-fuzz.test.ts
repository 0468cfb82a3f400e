import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, parseIdentityConfig } from '../../src/index.js';
import { compileIdentityPolicy } from '../../src/policy/match.js';
import type { IdentityConfig } from '../../src/types.js';
import { createTestCertificates } from '../helpers/certs.js';
import { makeKey } from '../helpers/jwt.js';
import { failOnUnhandled, runs } from './support.js';

failOnUnhandled();

const rsa = makeKey('RS256');
const ec = makeKey('ES256');
let caCert = '';
beforeAll(async () => {
  caCert = (await createTestCertificates()).caCert;
});

/** Parse, and classify: a config, or a ConfigError. Anything else fails the property. */
function parse(input: unknown): IdentityConfig | ConfigError {
  try {
    return parseIdentityConfig(input);
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw new Error(`parseIdentityConfig threw ${String(error)} instead of a ConfigError`, { cause: error });
  }
}

function isDeepFrozen(value: unknown, depth = 0): boolean {
  if (value === null || typeof value !== 'object' || depth > 40) return true;
  if (!Object.isFrozen(value)) return false;
  return Object.values(value).every((v) => isDeepFrozen(v, depth + 1));
}

/** A returned config: frozen, idempotent, equal after a JSON or spread copy, and compilable. */
function expectRoundTrip(config: IdentityConfig): void {
  expect(isDeepFrozen(config)).toBe(true);
  expect(parseIdentityConfig(config)).toBe(config);
  const json = JSON.stringify(config);
  const fromJson = parse(JSON.parse(json));
  expect(fromJson, 'a stored (JSON) config parses again').not.toBeInstanceOf(ConfigError);
  expect(JSON.stringify(fromJson)).toBe(json);
  const fromSpread = parse({ ...config });
  expect(fromSpread).not.toBeInstanceOf(ConfigError);
  expect(JSON.stringify(fromSpread)).toBe(json);
  expect(() => compileIdentityPolicy(config)).not.toThrow();
}

const anything = fc.anything({
  maxDepth: 3,
  withBigInt: true,
  withBoxedValues: true,
  withDate: true,
  withMap: true,
  withSet: true,
  withNullPrototype: true,
  withObjectString: true,
  withSparseArray: true,
  withTypedArray: true,
});

const text = (chars: string, maxLength = 24) => fc.string({ unit: fc.constantFrom(...chars), maxLength });
const GLOB_CHARS = 'ab-/:*?[]{}!\\.,+() ^';
const glob = fc.oneof(
  fc.constantFrom(
    'repo:acme/*',
    'repo:acme/app:ref:refs/heads/main',
    '**',
    '*',
    '!repo:x',
    ' x',
    'a,b',
    'a, b',
    '*a*a*a*b',
    '{a,b}'.repeat(20),
    '{'.repeat(600),
    '{1..1000000}',
    'x'.repeat(513),
    'a\\d',
    '[!a]',
    '[a/b]',
    '@(a|b)',
  ),
  text(GLOB_CHARS),
);
const list = (item: fc.Arbitrary<string>) =>
  fc.oneof(
    fc.array(item, { maxLength: 4 }),
    fc.array(item, { maxLength: 4 }).map((items) => items.join(',')),
    item,
  );
const url = fc.oneof(
  fc.constantFrom(
    'https://token.actions.githubusercontent.com',
    'https://idp.example.com/',
    'https://idp.example.com/.well-known/openid-configuration',
    'https://idp.example.com//.well-known/openid-configuration/',
    'https://idp.example.com/a/.well-known/jwks.json',
    'https://idp.example.com/?q=1',
    'https://idp.example.com/#f',
    'http://127.0.0.1:8080',
    'http://localhost:1',
    'https://10.0.0.1',
    'https://[::ffff:a9fe:a9fe]/',
    'https://169.254.169.254/latest',
    'https://2130706433/',
    'https://0x7f.1/',
    'https://u:p@idp.example.com',
    'https://idp.example.com:443@127.0.0.1/',
    'https://metadata.google.internal/',
    'file:///etc/passwd',
    'javascript:alert(1)',
    'https://login.microsoftonline.com/common/v2.0',
    'https://login.microsoftonline.com/{tenantid}/v2.0',
    'https://idp.example.com/ x',
    'https://xn--idp-9oa.example/',
    'https://idp.example.com/%2e%2e/',
  ),
  text('htps:/.exampl0-9%@#?[]', 40),
);
const cidr = fc.oneof(
  fc.constantFrom(
    '10.0.0.0/8',
    '10/8',
    '010.0.0.0/8',
    '10.0.0.1/8',
    '10.0.0.0/33',
    ' 10.0.0.0/8',
    '0.0.0.0/0',
    '::/0',
    '::ffff:10.0.0.1',
    'fd00::/8',
    'fe80::1%eth0',
    '2001:db8::/32',
    '1.2.3.4',
    '',
  ),
  text('0123456789abcdef.:/% ', 30),
  fc.record(
    {
      ipAddress: fc.oneof(fc.constantFrom('10.0.0.0', '10.0.0.0/8', '::1'), text('0123456789.:/')),
      prefix: fc.oneof(fc.integer({ min: -1, max: 130 }), anything),
      type: fc.oneof(fc.constantFrom('ipv4', 'ipv6', 'x'), anything),
    },
    { requiredKeys: ['ipAddress'] },
  ),
);
const integerish = fc.oneof(
  fc.integer({ min: -10, max: 400_000_000 }),
  fc.constantFrom('60', '0060', '1e3', '-0', ' 60', '9007199254740993', 1.5, Infinity, NaN, -0),
  // The store-bound caps (#13.5) and one past them, as numbers and strings.
  fc.constantFrom(
    2_147_483_647,
    2_147_483_648,
    '2147483648',
    315_360_001,
    1e15,
    '1234567890123456',
    '9'.repeat(70),
  ),
  anything,
);
const claimPath = fc.oneof(
  fc.constantFrom(
    'repository_id',
    'kubernetes.io.namespace',
    'oidc.circleci.com/project-id',
    '/kubernetes.io/namespace',
    '/a~2',
    '__proto__',
    'a.__proto__.b',
    '/constructor',
    'a..b',
    '.a',
    ' a',
    'x'.repeat(300),
  ),
  text('ab._/~01'),
);
const fieldValues: Record<string, fc.Arbitrary<unknown>> = {
  identityId: fc.oneof(
    fc.constantFrom('gh-deployer', '__proto__', 'a'.repeat(129), '-x'),
    text('aZ09._:- /'),
  ),
  oidcDiscoveryUrl: url,
  jwksUrl: url,
  discoveryIssuer: url,
  boundIssuer: list(url),
  boundSubject: list(glob),
  boundAudiences: list(glob),
  boundClaims: fc.dictionary(claimPath, list(glob), { maxKeys: 3 }),
  claimMetadataMapping: fc.dictionary(fc.oneof(text('abc_'), fc.constant('__proto__')), claimPath, {
    maxKeys: 3,
  }),
  accessTokenTTL: integerish,
  accessTokenMaxTTL: integerish,
  accessTokenNumUsesLimit: integerish,
  clockSkewSeconds: integerish,
  maxTokenLifetimeSeconds: integerish,
  accessTokenTrustedIps: fc.oneof(fc.array(cidr, { maxLength: 4 }), list(text('0123456789./:'))),
  allowedAlgorithms: list(
    fc.oneof(
      fc.constantFrom('RS256', 'ES256', 'EdDSA', 'Ed25519', 'HS256', 'none', 'rs256'),
      text('RSHE0-9'),
    ),
  ),
  allowPrivateNetwork: fc.oneof(fc.boolean(), anything),
  allowInsecureLoopback: fc.oneof(fc.boolean(), anything),
  allowAnyAudience: fc.oneof(fc.boolean(), anything),
  metadata: fc.oneof(fc.jsonValue({ maxDepth: 4 }), anything),
  publicKeys: fc.array(
    fc.oneof(
      fc.constant(rsa.publicJwk),
      fc.constant(ec.publicJwk),
      fc.constant(rsa.publicKey.export({ format: 'pem', type: 'spki' }) as string),
      fc.constant({ ...rsa.publicJwk, d: 'AAAA' }),
      fc.constant({ kty: 'oct', k: 'AAAA' }),
      fc.constant({ ...ec.publicJwk, crv: 'P-192' }),
      anything,
    ),
    { maxLength: 3 },
  ),
  caCert: fc.oneof(
    fc.constant('CA'),
    fc.constantFrom('', '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----', 'x'),
    anything,
  ),
};

/** A valid GitHub-shaped config, with some fields replaced by generated values. */
const config = fc
  .tuple(
    fc.dictionary(fc.constantFrom(...Object.keys(fieldValues)), fc.constant(true), { maxKeys: 4 }),
    fc.record(fieldValues, { requiredKeys: [] }),
    fc.constantFrom('discovery', 'jwks', 'keys'),
    fc.dictionary(fc.string({ maxLength: 12 }), anything, { maxKeys: 1 }),
    fc.boolean(),
  )
  .map(([chosen, values, source, unknown, addUnknown]) => {
    const base: Record<string, unknown> = {
      identityId: 'gh-deployer',
      boundIssuer: 'https://token.actions.githubusercontent.com',
      boundSubject: 'repo:acme-corp/payments-api:ref:refs/heads/main',
      boundAudiences: ['https://github.com/acme-corp'],
      ...(source === 'discovery'
        ? { oidcDiscoveryUrl: 'https://token.actions.githubusercontent.com' }
        : source === 'jwks'
          ? { jwksUrl: 'https://token.actions.githubusercontent.com/.well-known/jwks' }
          : { publicKeys: [rsa.publicJwk] }),
    };
    for (const name of Object.keys(chosen)) {
      if (Object.hasOwn(values, name)) base[name] = (values as Record<string, unknown>)[name];
    }
    if (addUnknown) Object.assign(base, unknown);
    return base;
  });

describe('FUZZ-CFG: parseIdentityConfig', () => {
  it('FUZZ-CFG-01 (CFG-01): any value at all gives a config or a ConfigError, never another exception', () => {
    fc.assert(
      fc.property(anything, (input) => {
        const result = parse(input);
        if (!(result instanceof ConfigError)) expectRoundTrip(result);
      }),
      { numRuns: runs(500) },
    );
  });

  it('FUZZ-CFG-02 (CFG-01, IP-06, GLOB-03/07, ISS-03/08, SSRF-01/03/07): mutated configs give a config that round-trips, or a ConfigError naming a field', () => {
    const outcomes = { config: 0, error: 0 };
    fc.assert(
      fc.property(config, (input) => {
        if (input.caCert === 'CA') input.caCert = caCert;
        const result = parse(input);
        if (result instanceof ConfigError) {
          outcomes.error++;
          expect(result.field.length).toBeGreaterThan(0);
          expect(result.status).toBe(400);
          expect(result.message.length).toBeLessThan(1_000);
          return;
        }
        outcomes.config++;
        expectRoundTrip(result);
      }),
      { numRuns: runs(1_500) },
    );
    expect(outcomes.config, 'the generator reaches valid configs').toBeGreaterThan(50);
    expect(outcomes.error, 'the generator reaches invalid configs').toBeGreaterThan(50);
  });

  it('#13.5 configs the stores cannot hold: every accepted config fits every store (PostgreSQL integer columns, Redis 15-digit counts, safe epoch ms)', () => {
    const int32 = 2 ** 31 - 1;
    const farFuture = Date.UTC(2200, 0, 1);
    fc.assert(
      fc.property(config, (input) => {
        if (input.caCert === 'CA') input.caCert = caCert;
        const result = parse(input);
        if (result instanceof ConfigError) return;
        for (const n of [result.accessTokenTTL, result.accessTokenMaxTTL, result.accessTokenNumUsesLimit]) {
          expect(Number.isInteger(n) && n >= 0 && n <= int32).toBe(true);
        }
        expect(String(result.accessTokenNumUsesLimit).length).toBeLessThanOrEqual(15);
        expect(Number.isSafeInteger(farFuture + result.accessTokenMaxTTL * 1000)).toBe(true);
        expect(
          Number.isSafeInteger(result.clockSkewSeconds * 1000 + result.maxTokenLifetimeSeconds * 1000),
        ).toBe(true);
      }),
      { numRuns: runs(1_000) },
    );
  });

  it('FUZZ-CFG-03 (CFG-01): ConfigError messages quote user input truncated, never whole', () => {
    fc.assert(
      fc.property(
        fc.string({ minLength: 300, maxLength: 2_000 }),
        fc.constantFrom('key', 'alg', 'path'),
        (junk, where) => {
          const input: Record<string, unknown> = {
            identityId: 'gh-deployer',
            boundIssuer: 'https://token.actions.githubusercontent.com',
            boundSubject: 'repo:acme/app',
            publicKeys: [rsa.publicJwk],
          };
          if (where === 'key') input[junk] = 1;
          if (where === 'alg') input.allowedAlgorithms = [junk.replace(/,/g, '')];
          if (where === 'path') input.boundClaims = { [junk]: 'x' };
          const result = parse(input);
          expect(result).toBeInstanceOf(ConfigError);
          expect((result as ConfigError).message).not.toContain(junk);
        },
      ),
      { numRuns: runs(200) },
    );
  });
});
