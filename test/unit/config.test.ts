import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  DEFAULT_ALGORITHMS,
  IDENTITY_ID_PATTERN,
  discoveryDocumentUrl,
  parseIdentityConfig,
  parseIdentityConfigs,
} from '../../src/trust/config.js';
import { validateIdentities } from '../../src/cli/validate.js';
import { ConfigError } from '../../src/errors.js';
import type { IdentityConfigInput } from '../../src/types.js';

const GITHUB = 'https://token.actions.githubusercontent.com';

/** A minimal valid GitHub identity; tests override one field at a time. */
function input(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    identityId: 'gh-deploy',
    oidcDiscoveryUrl: GITHUB,
    boundIssuer: GITHUB,
    boundSubject: 'repo:acme-corp/payments-api:ref:refs/heads/main',
    boundAudiences: 'https://secrets.example.com',
    ...overrides,
  };
}

function refused(overrides: Record<string, unknown>, base = input()): ConfigError {
  const candidate = { ...base, ...overrides };
  for (const [key, value] of Object.entries(overrides)) if (value === undefined) delete candidate[key];
  try {
    parseIdentityConfig(candidate);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return error as ConfigError;
  }
  throw new Error(`expected ${JSON.stringify(overrides).slice(0, 200)} to be refused`);
}

/** A throwaway self-signed P-256 CA (test fixture only). */
const CA_PEM = `-----BEGIN CERTIFICATE-----
MIIBnjCCAUWgAwIBAgIUVs8oG5LqWDNojnjVcLrLarL0Wh8wCgYIKoZIzj0EAwIw
JDEiMCAGA1UEAwwZb2lkYy1tYWNoaW5lLWF1dGggdGVzdCBDQTAgFw0yNjExMjYw
NTA3MjZaGA8yMTI2MTEwMjA1MDcyNlowJDEiMCAGA1UEAwwZb2lkYy1tYWNoaW5l
LWF1dGggdGVzdCBDQTBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABG6Y4yz4PG6h
gm/gCK+0E/FmaHYFOvcGkSYpr3GMo2khbYQi3GbMCGuOF2KGj5aKg7HaQvt3rTiZ
dJpG8veCS+ejUzBRMB0GA1UdDgQWBBRHXg0vj3Ufuw5PtmTzztZdvv4NvzAfBgNV
HSMEGDAWgBRHXg0vj3Ufuw5PtmTzztZdvv4NvzAPBgNVHRMBAf8EBTADAQH/MAoG
CCqGSM49BAMCA0cAMEQCIC+dqLNALPotD/EG9ZqXk2UaTgH+QlV9kDofYmCukPNd
AiAoVvZy1a4E+vBRgiLu1W6j1YsoU/hp7C3O4MwJAFnBJA==
-----END CERTIFICATE-----
`;

describe('parseIdentityConfig: shape, defaults, freezing', () => {
  it('applies the documented defaults', () => {
    const config = parseIdentityConfig(input());
    expect(config).toEqual({
      identityId: 'gh-deploy',
      oidcDiscoveryUrl: GITHUB,
      jwksUrl: undefined,
      publicKeys: undefined,
      caCert: undefined,
      boundIssuer: [GITHUB],
      boundSubject: ['repo:acme-corp/payments-api:ref:refs/heads/main'],
      boundAudiences: ['https://secrets.example.com'],
      allowAnyAudience: false,
      boundClaims: {},
      claimMetadataMapping: {},
      accessTokenTTL: 7200,
      accessTokenMaxTTL: 86400,
      accessTokenNumUsesLimit: 0,
      accessTokenTrustedIps: ['0.0.0.0/0', '::/0'],
      allowedAlgorithms: [
        'RS256',
        'RS384',
        'RS512',
        'PS256',
        'PS384',
        'PS512',
        'ES256',
        'ES384',
        'ES512',
        'EdDSA',
      ],
      clockSkewSeconds: 60,
      maxTokenLifetimeSeconds: 86400,
      discoveryIssuer: undefined,
      allowPrivateNetwork: false,
      allowInsecureLoopback: false,
      metadata: {},
    });
    expect(config.allowedAlgorithms).toEqual(DEFAULT_ALGORITHMS);
  });

  it('freezes the config deeply', () => {
    const config = parseIdentityConfig(
      input({ boundClaims: { ref: ['refs/heads/main'] }, metadata: { roles: ['a'], nested: { x: [1] } } }),
    );
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.boundSubject)).toBe(true);
    expect(Object.isFrozen(config.boundClaims)).toBe(true);
    expect(Object.isFrozen(config.boundClaims.ref)).toBe(true);
    expect(Object.isFrozen(config.metadata.nested)).toBe(true);
    expect(Object.isFrozen((config.metadata.nested as { x: number[] }).x)).toBe(true);
    expect(Object.isFrozen(config.accessTokenTrustedIps)).toBe(true);
  });

  it('is idempotent: a parsed config (or its JSON round-trip from a store) parses to an equal config', () => {
    const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const full = parseIdentityConfig(
      input({
        oidcDiscoveryUrl: `${GITHUB}/.well-known/openid-configuration/`,
        publicKeys: [
          publicKey.export({ type: 'spki', format: 'pem' }).toString(),
          publicKey.export({ format: 'jwk' }),
        ],
        caCert: CA_PEM,
        boundIssuer: `${GITHUB}, ${GITHUB}/acme-enterprise`,
        boundClaims: { 'kubernetes.io.namespace': 'payments', '/a~1b': ['x', 'y*'] },
        claimMetadataMapping: { ns: 'kubernetes.io.namespace' },
        accessTokenTTL: '600',
        accessTokenTrustedIps: [{ ipAddress: '10.0.0.1' }, '2001:0db8::/32'],
        allowedAlgorithms: 'RS256,ES256',
        discoveryIssuer: 'https://sts.windows.net/7f3a2c1e-5b4d-4e6f-9a8b-0c1d2e3f4a5b/',
        metadata: { roles: ['reader'] },
      }),
    );
    expect(parseIdentityConfig(full)).toBe(full);
    const roundTrip = parseIdentityConfig(JSON.parse(JSON.stringify(full)));
    expect(roundTrip).toEqual(full);
    expect(parseIdentityConfig({ ...roundTrip })).toEqual(full);
  });

  it('treats null and "" on optional fields as absent (as Infisical stores them)', () => {
    const config = parseIdentityConfig(
      input({ caCert: '', jwksUrl: null, boundSubject: '', accessTokenTTL: null, metadata: null }),
    );
    expect(config.caCert).toBeUndefined();
    expect(config.jwksUrl).toBeUndefined();
    expect(config.boundSubject).toEqual([]);
    expect(config.accessTokenTTL).toBe(7200);
  });

  it('refuses non-objects', () => {
    for (const value of [null, undefined, 'x', 42, [], new Date()]) {
      expect(() => parseIdentityConfig(value)).toThrow(ConfigError);
    }
  });

  it('CFG-01: refuses unknown fields by name, suggesting the near miss (a typo must not drop a binding)', () => {
    const error = refused({ boundAudience: 'https://secrets.example.com', boundAudiences: undefined });
    expect(error.field).toBe('boundAudience');
    expect(error.message).toContain('did you mean boundAudiences?');
    expect(refused({ BoundSubject: 'x' }).message).toContain('did you mean boundSubject?');
    expect(refused({ organizationSlug: '' }).field).toBe('organizationSlug');
    const huge = refused({ ['k'.repeat(100_000)]: 1 });
    expect(huge.message.length).toBeLessThan(300);
  });

  it('ConfigError carries status 400, code invalid_config, the field and the identity', () => {
    const error = refused({ accessTokenTTL: 'soon' });
    expect(error.status).toBe(400);
    expect(error.code).toBe('invalid_config');
    expect(error.field).toBe('accessTokenTTL');
    expect(error.identityId).toBe('gh-deploy');
    expect(error.message).toBe(
      'identity "gh-deploy": accessTokenTTL: must be an integer (a number or a decimal string)',
    );
  });
});

describe('identityId', () => {
  it.each([
    'gh-deploy',
    'a',
    'f47ac10b-58cc-4372-a567-0e02b2c3d479',
    'team.payments:prod_1',
    'A'.repeat(128),
  ])('accepts %j', (identityId) => {
    expect(parseIdentityConfig(input({ identityId })).identityId).toBe(identityId);
    expect(IDENTITY_ID_PATTERN.test(identityId)).toBe(true);
  });

  it.each(['', '_x', '-x', '../etc', 'a b', '__proto__', "x' OR '1'='1", 'a'.repeat(129), 'é', 'a/b'])(
    'HTTP-04: refuses %j',
    (identityId) => {
      expect(refused({ identityId }).field).toBe('identityId');
      expect(IDENTITY_ID_PATTERN.test(identityId)).toBe(false);
    },
  );

  it('refuses a missing or non-string id', () => {
    expect(refused({ identityId: undefined }).field).toBe('identityId');
    expect(refused({ identityId: 123 }).field).toBe('identityId');
  });
});

describe('key sources and URLs', () => {
  it('needs at least one of oidcDiscoveryUrl, jwksUrl, publicKeys', () => {
    expect(refused({ oidcDiscoveryUrl: undefined }).message).toContain('key source');
    expect(
      parseIdentityConfig(input({ oidcDiscoveryUrl: undefined, jwksUrl: `${GITHUB}/.well-known/jwks` }))
        .jwksUrl,
    ).toBe(`${GITHUB}/.well-known/jwks`);
  });

  it.each([
    [GITHUB, GITHUB],
    [`${GITHUB}/`, GITHUB],
    [`${GITHUB}/.well-known/openid-configuration`, GITHUB],
    [`${GITHUB}/.well-known/openid-configuration/`, GITHUB],
    ['https://TOKEN.actions.githubusercontent.com:443', GITHUB],
    [`${GITHUB}/acme-enterprise`, `${GITHUB}/acme-enterprise`],
    [
      'https://api.bitbucket.org/2.0/workspaces/acme-corp/pipelines-config/identity/oidc',
      'https://api.bitbucket.org/2.0/workspaces/acme-corp/pipelines-config/identity/oidc',
    ],
    [
      'https://api.bitbucket.org/2.0/workspaces/acme-corp/pipelines-config/identity/oidc/.well-known/openid-configuration',
      'https://api.bitbucket.org/2.0/workspaces/acme-corp/pipelines-config/identity/oidc',
    ],
    [
      'https://oidc.circleci.com/org/0f1e2d3c-4b5a-4697-8786-a5b4c3d2e1f0/',
      'https://oidc.circleci.com/org/0f1e2d3c-4b5a-4697-8786-a5b4c3d2e1f0',
    ],
    [
      'https://westeurope.oic.prod-aks.azure.com/7f3a2c1e-5b4d-4e6f-9a8b-0c1d2e3f4a5b/3c2b1a09-8f7e-4d6c-9b5a-4f3e2d1c0b9a/',
      'https://westeurope.oic.prod-aks.azure.com/7f3a2c1e-5b4d-4e6f-9a8b-0c1d2e3f4a5b/3c2b1a09-8f7e-4d6c-9b5a-4f3e2d1c0b9a',
    ],
    [
      'https://login.microsoftonline.com/7f3a2c1e-5b4d-4e6f-9a8b-0c1d2e3f4a5b/v2.0',
      'https://login.microsoftonline.com/7f3a2c1e-5b4d-4e6f-9a8b-0c1d2e3f4a5b/v2.0',
    ],
  ])('ISS-06: discovery URL %j is stored as %j and the document URL is built once', (url, base) => {
    const config = parseIdentityConfig(input({ oidcDiscoveryUrl: url }));
    expect(config.oidcDiscoveryUrl).toBe(base);
    const documentUrl = discoveryDocumentUrl(config);
    expect(documentUrl).toBe(`${base}/.well-known/openid-configuration`);
    expect(documentUrl.indexOf('/.well-known/')).toBe(documentUrl.lastIndexOf('/.well-known/'));
    expect(documentUrl.slice('https://'.length)).not.toContain('//');
  });

  it('ISS-06: refuses a discovery URL that points at another .well-known document', () => {
    expect(refused({ oidcDiscoveryUrl: `${GITHUB}/.well-known/jwks` }).field).toBe('oidcDiscoveryUrl');
  });

  it('discoveryDocumentUrl needs a discovery URL', () => {
    const config = parseIdentityConfig(input({ oidcDiscoveryUrl: undefined, jwksUrl: `${GITHUB}/jwks` }));
    expect(() => discoveryDocumentUrl(config)).toThrow(ConfigError);
  });

  it.each([
    'http://idp.example.com',
    'file:///etc/passwd',
    'data:application/json,{}',
    'gopher://idp.example.com/',
    'ftp://idp.example.com/',
    'javascript:alert(1)',
    'idp.example.com',
    '//idp.example.com',
  ])('SSRF-07: refuses the scheme of %j', (url) => {
    expect(refused({ oidcDiscoveryUrl: url }).field).toBe('oidcDiscoveryUrl');
    expect(refused({ oidcDiscoveryUrl: undefined, jwksUrl: url }).field).toBe('jwksUrl');
  });

  it('SSRF-07: plain http only to a loopback IdP with allowInsecureLoopback', () => {
    for (const url of ['http://127.0.0.1:8080', 'http://localhost:3000/issuer', 'http://[::1]:9000']) {
      expect(
        parseIdentityConfig(input({ oidcDiscoveryUrl: url, allowInsecureLoopback: true })).oidcDiscoveryUrl,
      ).toBe(new URL(url).href.replace(/\/$/, ''));
      expect(refused({ oidcDiscoveryUrl: url }).field).toBe('oidcDiscoveryUrl');
    }
    expect(
      refused({ oidcDiscoveryUrl: 'http://idp.example.com', allowInsecureLoopback: true }).message,
    ).toContain('https');
    expect(
      refused({ oidcDiscoveryUrl: 'http://10.0.0.5', allowInsecureLoopback: true, allowPrivateNetwork: true })
        .field,
    ).toBe('oidcDiscoveryUrl');
  });

  it.each([
    'https://idp.example.com:443@127.0.0.1/',
    'https://user:pass@idp.example.com/',
    'https://user@idp.example.com/',
    'https://@idp.example.com/',
  ])('SSRF-03: refuses userinfo in %j', (url) => {
    expect(refused({ oidcDiscoveryUrl: url }).message).toContain('credentials');
    expect(refused({ oidcDiscoveryUrl: undefined, jwksUrl: url }).message).toContain('credentials');
  });

  it('refuses fragments, discovery query strings and whitespace; allows a JWKS query string', () => {
    expect(refused({ oidcDiscoveryUrl: `${GITHUB}#x` }).message).toContain('fragment');
    expect(refused({ oidcDiscoveryUrl: `${GITHUB}/#` }).message).toContain('fragment');
    expect(refused({ oidcDiscoveryUrl: `${GITHUB}?a=b` }).message).toContain('query');
    expect(refused({ oidcDiscoveryUrl: ` ${GITHUB}` }).message).toContain('whitespace');
    expect(parseIdentityConfig(input({ jwksUrl: 'https://idp.example.com/keys?v=2' })).jwksUrl).toBe(
      'https://idp.example.com/keys?v=2',
    );
    expect(refused({ oidcDiscoveryUrl: `https://${'a'.repeat(3000)}.com` }).message.length).toBeLessThan(200);
  });

  it.each([
    'https://127.0.0.1/',
    'https://[::1]/',
    'https://10.0.0.1/',
    'https://172.16.0.1/',
    'https://192.168.1.1/',
    'https://100.64.0.1/',
    'https://169.254.169.254/latest/meta-data',
    'https://[fd00::1]/',
    'https://0.0.0.0/',
    'https://2130706433/',
    'https://0x7f.1/',
    'https://017700000001/',
    'https://127.1/',
    'https://0/',
    'https://[::ffff:a9fe:a9fe]/',
    'https://[::ffff:127.0.0.1]/',
    'https://[64:ff9b::a9fe:a9fe]/',
    'https://[fe80::1]/',
    'https://224.0.0.1/',
    'https://metadata.google.internal/computeMetadata/v1/',
  ])('SSRF-01: refuses the internal literal %j at config time', (url) => {
    expect(refused({ oidcDiscoveryUrl: url }).field).toBe('oidcDiscoveryUrl');
    expect(refused({ oidcDiscoveryUrl: undefined, jwksUrl: url }).field).toBe('jwksUrl');
  });

  it('SSRF-01: allowPrivateNetwork opens private ranges for in-cluster issuers, never metadata', () => {
    for (const url of [
      'https://172.20.0.3:6443',
      'https://10.0.0.1',
      'https://[fd00::1]',
      'https://100.64.0.1',
    ]) {
      expect(
        parseIdentityConfig(input({ oidcDiscoveryUrl: url, allowPrivateNetwork: true })).oidcDiscoveryUrl,
      ).toBe(url);
    }
    expect(
      parseIdentityConfig(
        input({ jwksUrl: 'https://172.20.0.3:6443/openid/v1/jwks', allowPrivateNetwork: true }),
      ).jwksUrl,
    ).toBe('https://172.20.0.3:6443/openid/v1/jwks');
    for (const url of ['https://169.254.169.254/', 'https://metadata.google.internal/', 'https://0.0.0.0/']) {
      expect(refused({ oidcDiscoveryUrl: url, allowPrivateNetwork: true }).field).toBe('oidcDiscoveryUrl');
    }
  });

  it('SSRF-01: loopback https needs allowInsecureLoopback; public literals and host names pass', () => {
    expect(refused({ oidcDiscoveryUrl: 'https://127.0.0.1:8443', allowPrivateNetwork: true }).field).toBe(
      'oidcDiscoveryUrl',
    );
    expect(
      parseIdentityConfig(input({ oidcDiscoveryUrl: 'https://127.0.0.1:8443', allowInsecureLoopback: true }))
        .oidcDiscoveryUrl,
    ).toBe('https://127.0.0.1:8443');
    expect(parseIdentityConfig(input({ oidcDiscoveryUrl: 'https://8.8.8.8' })).oidcDiscoveryUrl).toBe(
      'https://8.8.8.8',
    );
    expect(
      parseIdentityConfig(input({ oidcDiscoveryUrl: 'https://gitlab.internal.example' })).oidcDiscoveryUrl,
    ).toBe('https://gitlab.internal.example');
  });

  it('flags must be booleans', () => {
    expect(refused({ allowPrivateNetwork: 'true' }).field).toBe('allowPrivateNetwork');
    expect(refused({ allowInsecureLoopback: 1 }).field).toBe('allowInsecureLoopback');
  });

  it('discoveryIssuer: an https URL kept verbatim (Azure v1 override)', () => {
    const issuer = 'https://sts.windows.net/7f3a2c1e-5b4d-4e6f-9a8b-0c1d2e3f4a5b/';
    expect(parseIdentityConfig(input({ discoveryIssuer: issuer })).discoveryIssuer).toBe(issuer);
    expect(refused({ discoveryIssuer: 'http://sts.windows.net/x/' }).field).toBe('discoveryIssuer');
    expect(refused({ discoveryIssuer: 'https://u:p@sts.windows.net/x/' }).field).toBe('discoveryIssuer');
    expect(refused({ discoveryIssuer: 42 }).field).toBe('discoveryIssuer');
  });
});

describe('boundIssuer', () => {
  it('is required and non-empty (CFG-01: empty issuer)', () => {
    expect(refused({ boundIssuer: undefined }).field).toBe('boundIssuer');
    expect(refused({ boundIssuer: '' }).field).toBe('boundIssuer');
    expect(refused({ boundIssuer: [] }).field).toBe('boundIssuer');
    expect(refused({ boundIssuer: ' , ' }).field).toBe('boundIssuer[0]');
  });

  it('ISS-03: accepts both Azure issuers of one pinned tenant', () => {
    const tid = '7f3a2c1e-5b4d-4e6f-9a8b-0c1d2e3f4a5b';
    const config = parseIdentityConfig(
      input({
        oidcDiscoveryUrl: `https://login.microsoftonline.com/${tid}/v2.0`,
        boundIssuer: [`https://sts.windows.net/${tid}/`, `https://login.microsoftonline.com/${tid}/v2.0`],
      }),
    );
    expect(config.boundIssuer).toHaveLength(2);
  });

  it.each([
    'https://login.microsoftonline.com/common/v2.0',
    'https://login.microsoftonline.com/organizations/v2.0',
    'https://login.microsoftonline.com/consumers/v2.0',
    'https://login.microsoftonline.com/{tenantid}/v2.0',
    'https://sts.windows.net/{tenantid}/',
    'https://login.microsoftonline.com/COMMON/',
  ])('ISS-03: refuses the multi-tenant placeholder %j as issuer and discovery URL', (url) => {
    expect(refused({ boundIssuer: url }).message).toContain('multi-tenant');
    expect(refused({ oidcDiscoveryUrl: url }).message).toContain('multi-tenant');
    expect(refused({ discoveryIssuer: url }).message).toContain('multi-tenant');
  });

  it('ISS-04: issuers are exact strings, URL or not (Google accounts.google.com)', () => {
    const config = parseIdentityConfig(
      input({ boundIssuer: ['https://accounts.google.com', 'accounts.google.com'] }),
    );
    expect(config.boundIssuer).toEqual(['https://accounts.google.com', 'accounts.google.com']);
  });

  it('refuses globs, whitespace and comma-joined array items in issuers', () => {
    expect(refused({ boundIssuer: 'https://*.example.com' }).message).toContain('exact string');
    expect(refused({ boundIssuer: [` ${GITHUB}`] }).field).toBe('boundIssuer[0]');
    expect(refused({ boundIssuer: [`${GITHUB}, https://gitlab.com`] }).message).toContain('comma-joined');
    expect(parseIdentityConfig(input({ boundIssuer: `${GITHUB}, https://gitlab.com` })).boundIssuer).toEqual([
      GITHUB,
      'https://gitlab.com',
    ]);
  });
});

describe('bindings', () => {
  it('ISS-08: an identity with no subject, audience or claim binding is refused', () => {
    const error = refused({ boundSubject: undefined, boundAudiences: undefined });
    expect(error.message).toContain('at least one bound constraint');
    expect(refused({ boundSubject: '', boundAudiences: [], boundClaims: {} }).message).toContain(
      'at least one bound',
    );
    expect(
      parseIdentityConfig(
        input({ boundSubject: undefined, boundAudiences: undefined, boundClaims: { repository_id: '1' } }),
      ).boundClaims,
    ).toEqual({
      repository_id: ['1'],
    });
  });

  it('lists: arrays kept verbatim, comma strings split and trimmed, duplicates dropped', () => {
    const config = parseIdentityConfig(
      input({ boundSubject: 'repo:acme-corp/a:ref:refs/heads/main , repo:acme-corp/b:*,repo:acme-corp/b:*' }),
    );
    expect(config.boundSubject).toEqual(['repo:acme-corp/a:ref:refs/heads/main', 'repo:acme-corp/b:*']);
    expect(refused({ boundSubject: 'a,,b' }).field).toBe('boundSubject[1]');
    expect(refused({ boundSubject: 42 }).field).toBe('boundSubject');
    expect(refused({ boundSubject: ['a', 7] }).field).toBe('boundSubject[1]');
  });

  it.each([
    [{ boundSubject: ['!repo:acme-corp/evil'] }, 'boundSubject[0]', 'negation'],
    [{ boundSubject: [' repo:acme-corp/*'] }, 'boundSubject[0]', 'whitespace'],
    [{ boundSubject: ['repo:a/*, repo:b/*'] }, 'boundSubject[0]', 'comma-joined'],
    [{ boundSubject: ['ok', ''] }, 'boundSubject[1]', 'empty'],
    [{ boundSubject: ['*a*a*a*b'] }, 'boundSubject[0]', '"*" in one'],
    [{ boundSubject: ['@(a|b)'] }, 'boundSubject[0]', 'regex groups'],
    [{ boundSubject: ['{'.repeat(50_000)] }, 'boundSubject[0]', 'longer than 512'],
    [{ boundAudiences: ['x', '**'] }, 'boundAudiences[1]', 'binds nothing'],
    [{ boundClaims: { ref: ['refs/heads/main', '!refs/heads/evil'] } }, 'boundClaims["ref"][1]', 'negation'],
    [{ boundClaims: { ref: 'refs/heads/main, ' } }, 'boundClaims["ref"][1]', 'stray comma'],
  ])('GLOB-03/05/06/07: %j is refused naming %s', (overrides, field, problem) => {
    const error = refused(overrides);
    expect(error.field).toBe(field);
    expect(error.message).toContain(problem);
    expect(error.message.length).toBeLessThan(400);
  });

  it('AUD-05: refuses a wildcard in the host of an audience URL', () => {
    for (const aud of [
      'https://api.example.com*',
      'https://*.example.com',
      'https://api.example.co?',
      'api://Azure*',
    ]) {
      expect(refused({ boundAudiences: aud }).message).toContain('list audiences exactly');
    }
    expect(
      parseIdentityConfig(input({ boundAudiences: 'https://api.example.com/tenants/*' })).boundAudiences,
    ).toEqual(['https://api.example.com/tenants/*']);
    expect(
      parseIdentityConfig(input({ boundAudiences: ['api://AzureADTokenExchange', 'fb60f99c-*'] }))
        .boundAudiences,
    ).toHaveLength(2);
  });

  it('boundClaims: keys are claim paths, each needs at least one pattern', () => {
    expect(refused({ boundClaims: { ref: [] } }).message).toContain('no patterns');
    expect(refused({ boundClaims: { ref: '' } }).message).toContain('no patterns');
    expect(refused({ boundClaims: { 'a..b': 'x' } }).field).toBe('boundClaims["a..b"]');
    expect(refused({ boundClaims: JSON.parse('{"__proto__": ["x"]}') as object }).field).toBe(
      'boundClaims["__proto__"]',
    );
    expect(refused({ boundClaims: { '/a~2': 'x' } }).field).toBe('boundClaims["/a~2"]');
    expect(refused({ boundClaims: ['ref'] }).field).toBe('boundClaims');
    const many = Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`c${i}`, 'x']));
    expect(refused({ boundClaims: many }).message).toContain('more than 64');
  });

  it('CLM-03/CLM-04: dotted, literal-dot and pointer claim paths with several patterns', () => {
    const config = parseIdentityConfig(
      input({
        boundClaims: {
          'kubernetes.io.namespace': ['payments', 'payments-staging'],
          'oidc.circleci.com/project-id': '9a8b7c6d-5e4f-4a3b-9c1d-0e9f8a7b6c5d',
          '/google/compute_engine/project_id': 'acme-prod-*',
        },
      }),
    );
    expect(Object.keys(config.boundClaims)).toEqual([
      'kubernetes.io.namespace',
      'oidc.circleci.com/project-id',
      '/google/compute_engine/project_id',
    ]);
  });

  it('claimMetadataMapping: names and claim paths are checked; a name may not shadow metadata', () => {
    const config = parseIdentityConfig(
      input({
        claimMetadataMapping: { namespace: 'kubernetes.io.namespace' },
        metadata: { roles: ['reader'] },
      }),
    );
    expect(config.claimMetadataMapping).toEqual({ namespace: 'kubernetes.io.namespace' });
    expect(refused({ claimMetadataMapping: { roles: 'sub' }, metadata: { roles: ['x'] } }).message).toContain(
      'shadow',
    );
    expect(refused({ claimMetadataMapping: { x: 'a..b' } }).field).toBe('claimMetadataMapping["x"]');
    expect(refused({ claimMetadataMapping: { x: 1 } }).field).toBe('claimMetadataMapping["x"]');
    expect(refused({ claimMetadataMapping: JSON.parse('{"__proto__": "sub"}') as object }).field).toBe(
      'claimMetadataMapping["__proto__"]',
    );
    expect(refused({ claimMetadataMapping: 'sub' }).field).toBe('claimMetadataMapping');
  });
});

describe('#13.9 stricter audiences than Vault', () => {
  it('#13.9 stricter audiences than Vault: allowAnyAudience defaults to false, and true is kept (idempotent, JSON round trip)', () => {
    expect(parseIdentityConfig(input()).allowAnyAudience).toBe(false);
    expect(parseIdentityConfig(input({ boundAudiences: undefined })).allowAnyAudience).toBe(false);
    expect(
      parseIdentityConfig(input({ boundAudiences: undefined, allowAnyAudience: null })).allowAnyAudience,
    ).toBe(false);
    const open = parseIdentityConfig(input({ boundAudiences: undefined, allowAnyAudience: true }));
    expect(open.allowAnyAudience).toBe(true);
    expect(parseIdentityConfig(open)).toBe(open);
    expect(parseIdentityConfig(JSON.parse(JSON.stringify(open)))).toEqual(open);
  });

  it.each([['true'], [1], ['yes'], [{}]])(
    '#13.9 stricter audiences than Vault: allowAnyAudience %j is refused (true or false only)',
    (flag) => {
      const error = refused({ boundAudiences: undefined, allowAnyAudience: flag });
      expect(error.field).toBe('allowAnyAudience');
      expect(error.message).toContain('true or false');
    },
  );

  it('#13.9 stricter audiences than Vault: allowAnyAudience together with boundAudiences is refused', () => {
    const error = refused({ allowAnyAudience: true });
    expect(error.field).toBe('allowAnyAudience');
    expect(error.message).toContain('boundAudiences');
    expect(parseIdentityConfig(input({ allowAnyAudience: false })).boundAudiences).toEqual([
      'https://secrets.example.com',
    ]);
  });

  it('#13.9 stricter audiences than Vault: allowAnyAudience is not a binding (an identity still needs one)', () => {
    const error = refused({ boundSubject: undefined, boundAudiences: undefined, allowAnyAudience: true });
    expect(error.message).toContain('at least one bound constraint');
  });

  it('#13.9 stricter audiences than Vault: the CLI validator warns about an unbound audience and shows the opt-out', () => {
    const [strict, open, bound, bad] = validateIdentities([
      input({ identityId: 'strict', boundAudiences: undefined }),
      input({ identityId: 'open', boundAudiences: undefined, allowAnyAudience: true }),
      input({ identityId: 'bound' }),
      input({ identityId: 'bad', allowAnyAudience: true }),
    ]);
    expect(strict?.ok).toBe(true);
    expect(strict?.warnings.join('\n')).toMatch(
      /^boundAudiences: not bound, so every token that carries an aud is refused/,
    );
    expect(open?.warnings.join('\n')).toMatch(/^allowAnyAudience: true .* any other service log in too/);
    expect(bound?.warnings).toEqual([]);
    expect(bad).toMatchObject({ ok: false, field: 'allowAnyAudience' });
  });

  it('#13.9 stricter audiences than Vault: a misspelt allowAnyAudiences is refused with a suggestion', () => {
    const error = refused({ boundAudiences: undefined, allowAnyAudiences: true });
    expect(error.field).toBe('allowAnyAudiences');
    expect(error.message).toContain('did you mean allowAnyAudience');
  });
});

describe('numbers', () => {
  it('accept numbers and decimal-integer strings', () => {
    const config = parseIdentityConfig(
      input({
        accessTokenTTL: '3600',
        accessTokenMaxTTL: 7200,
        accessTokenNumUsesLimit: '5',
        clockSkewSeconds: '0',
      }),
    );
    expect(config).toMatchObject({
      accessTokenTTL: 3600,
      accessTokenMaxTTL: 7200,
      accessTokenNumUsesLimit: 5,
      clockSkewSeconds: 0,
    });
  });

  it.each([
    [{ accessTokenTTL: 0 }, 'accessTokenTTL'],
    [{ accessTokenTTL: -1 }, 'accessTokenTTL'],
    [{ accessTokenTTL: 3600.5 }, 'accessTokenTTL'],
    [{ accessTokenTTL: '3600.5' }, 'accessTokenTTL'],
    [{ accessTokenTTL: '1e3' }, 'accessTokenTTL'],
    [{ accessTokenTTL: ' 3600' }, 'accessTokenTTL'],
    [{ accessTokenTTL: Number.NaN }, 'accessTokenTTL'],
    [{ accessTokenTTL: true }, 'accessTokenTTL'],
    [{ accessTokenMaxTTL: 315_360_001 }, 'accessTokenMaxTTL'],
    [{ accessTokenNumUsesLimit: -1 }, 'accessTokenNumUsesLimit'],
    [{ accessTokenNumUsesLimit: '-1' }, 'accessTokenNumUsesLimit'],
    [{ clockSkewSeconds: 301 }, 'clockSkewSeconds'],
    [{ maxTokenLifetimeSeconds: 59 }, 'maxTokenLifetimeSeconds'],
    [{ maxTokenLifetimeSeconds: 31_622_401 }, 'maxTokenLifetimeSeconds'],
  ])('CFG-01: refuses %j', (overrides, field) => {
    expect(refused(overrides).field).toBe(field);
  });

  it('TOK-07/CFG-01: refuses TTL greater than max TTL', () => {
    const error = refused({ accessTokenTTL: 7200, accessTokenMaxTTL: 3600 });
    expect(error.field).toBe('accessTokenTTL');
    expect(error.message).toContain('cannot be greater than accessTokenMaxTTL');
    expect(refused({ accessTokenTTL: 90_000 }).field).toBe('accessTokenTTL');
    expect(parseIdentityConfig(input({ accessTokenTTL: 86_400 })).accessTokenTTL).toBe(86_400);
  });

  it('accepts the extremes: TTL 315360000 s, a one-year Kubernetes token lifetime', () => {
    const config = parseIdentityConfig(
      input({
        accessTokenTTL: 315_360_000,
        accessTokenMaxTTL: '315360000',
        maxTokenLifetimeSeconds: 31_622_400,
      }),
    );
    expect(config.accessTokenMaxTTL).toBe(315_360_000);
    expect(config.maxTokenLifetimeSeconds).toBe(31_622_400);
  });
});

describe('allowedAlgorithms', () => {
  it('accepts a subset as array or comma string, and Ed25519', () => {
    expect(parseIdentityConfig(input({ allowedAlgorithms: 'RS256, ES256' })).allowedAlgorithms).toEqual([
      'RS256',
      'ES256',
    ]);
    expect(parseIdentityConfig(input({ allowedAlgorithms: ['EdDSA', 'Ed25519'] })).allowedAlgorithms).toEqual(
      ['EdDSA', 'Ed25519'],
    );
  });

  it.each(['none', 'None', 'NONE'])('ALG-01: refuses %j', (alg) => {
    expect(refused({ allowedAlgorithms: ['RS256', alg] }).message).toContain('never accepted (ALG-01)');
  });

  it.each(['HS256', 'HS384', 'HS512', 'hs256'])('ALG-02: refuses the HMAC algorithm %j', (alg) => {
    const error = refused({ allowedAlgorithms: [alg] });
    expect(error.field).toBe('allowedAlgorithms[0]');
    expect(error.message).toContain('HMAC');
  });

  it('refuses unknown, padded and wrong-case names, and an empty list', () => {
    expect(refused({ allowedAlgorithms: ['ES256K'] }).message).toContain('not supported');
    expect(refused({ allowedAlgorithms: ['rs256'] }).message).toContain('case-sensitive: RS256');
    expect(refused({ allowedAlgorithms: ['RS256 '] }).field).toBe('allowedAlgorithms[0]');
    expect(refused({ allowedAlgorithms: [] }).field).toBe('allowedAlgorithms');
  });
});

describe('trusted IPs', () => {
  it('IP-06: malformed CIDRs are refused naming the entry', () => {
    for (const cidr of [
      '10/8',
      '010.0.0.0/8',
      '10.0.0.0/33',
      '10.0.0.1/8',
      ' 10.0.0.0/8',
      '10.0.0.0/8,192.168.0.0/16',
    ]) {
      expect(refused({ accessTokenTrustedIps: ['192.0.2.0/24', cidr] }).field).toBe(
        'accessTokenTrustedIps[1]',
      );
    }
  });

  it('IP-08: the default is explicit allow-all; an empty list is refused', () => {
    expect(parseIdentityConfig(input()).accessTokenTrustedIps).toEqual(['0.0.0.0/0', '::/0']);
    expect(refused({ accessTokenTrustedIps: [] }).field).toBe('accessTokenTrustedIps');
    expect(refused({ accessTokenTrustedIps: '' }).field).toBe('accessTokenTrustedIps');
  });

  it("accepts Infisical's [{ipAddress}] shape and comma strings", () => {
    expect(
      parseIdentityConfig(
        input({ accessTokenTrustedIps: [{ ipAddress: '203.0.113.0/24' }, { ipAddress: '2001:db8::1' }] }),
      ).accessTokenTrustedIps,
    ).toEqual(['203.0.113.0/24', '2001:db8::1/128']);
    expect(
      parseIdentityConfig(input({ accessTokenTrustedIps: '10.0.0.0/8, 192.168.0.0/16' }))
        .accessTokenTrustedIps,
    ).toEqual(['10.0.0.0/8', '192.168.0.0/16']);
  });
});

describe('publicKeys', () => {
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const ed = generateKeyPairSync('ed25519');

  it('accepts SPKI PEM and public JWKs (RSA, EC, OKP), as the only key source', () => {
    const config = parseIdentityConfig(
      input({
        oidcDiscoveryUrl: undefined,
        publicKeys: [
          `\n${rsa.publicKey.export({ type: 'spki', format: 'pem' }).toString()}\n`,
          { ...ec.publicKey.export({ format: 'jwk' }), kid: 'k1', alg: 'ES256', use: 'sig' },
          ed.publicKey.export({ format: 'jwk' }),
        ],
      }),
    );
    expect(config.publicKeys).toHaveLength(3);
    expect(config.publicKeys?.[0]).toBe(rsa.publicKey.export({ type: 'spki', format: 'pem' }).toString());
    expect(config.publicKeys?.[1]).toMatchObject({ kty: 'EC', crv: 'P-256', kid: 'k1' });
    expect(Object.isFrozen(config.publicKeys?.[1])).toBe(true);
  });

  it('refuses private keys in PEM or JWK form', () => {
    const pem = rsa.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    expect(refused({ publicKeys: [pem] }).message).toContain('private key');
    const jwk = ec.privateKey.export({ format: 'jwk' });
    expect(refused({ publicKeys: [jwk] }).field).toBe('publicKeys[0].d');
    expect(refused({ publicKeys: [{ kty: 'oct', k: 'c2VjcmV0' }] }).message).toContain('HMAC');
  });

  it('ALG-05: refuses RSA keys under 2048 bits and curves other than P-256/384/521', () => {
    const small = generateKeyPairSync('rsa', { modulusLength: 1024 });
    expect(
      refused({ publicKeys: [small.publicKey.export({ type: 'spki', format: 'pem' }).toString()] }).message,
    ).toContain('under 2048 bits');
    expect(refused({ publicKeys: [small.publicKey.export({ format: 'jwk' })] }).message).toContain(
      'under 2048 bits',
    );
    const k1 = generateKeyPairSync('ec', { namedCurve: 'secp256k1' });
    expect(
      refused({ publicKeys: [k1.publicKey.export({ type: 'spki', format: 'pem' }).toString()] }).message,
    ).toContain('curve');
    const x = generateKeyPairSync('x25519');
    expect(
      refused({ publicKeys: [x.publicKey.export({ type: 'spki', format: 'pem' }).toString()] }).field,
    ).toBe('publicKeys[0]');
  });

  it('refuses certificates, PKCS#1, garbage and other shapes', () => {
    expect(refused({ publicKeys: [CA_PEM] }).message).toContain('BEGIN PUBLIC KEY');
    const pkcs1 = rsa.publicKey.export({ type: 'pkcs1', format: 'pem' }).toString();
    expect(refused({ publicKeys: [pkcs1] }).field).toBe('publicKeys[0]');
    expect(
      refused({ publicKeys: ['-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----'] }).message,
    ).toContain('not a readable');
    expect(refused({ publicKeys: [{ kty: 'RSA', n: 'x', e: 'AQAB' }] }).field).toBe('publicKeys[0]');
    expect(refused({ publicKeys: [{ kty: 'DSA' }] }).field).toBe('publicKeys[0].kty');
    expect(refused({ publicKeys: [{ ...ec.publicKey.export({ format: 'jwk' }), alg: 'HS256' }] }).field).toBe(
      'publicKeys[0].alg',
    );
    expect(refused({ publicKeys: [{ ...ec.publicKey.export({ format: 'jwk' }), use: 'enc' }] }).field).toBe(
      'publicKeys[0].use',
    );
    expect(refused({ publicKeys: [] }).field).toBe('publicKeys');
    expect(refused({ publicKeys: 'pem' }).field).toBe('publicKeys');
    expect(refused({ publicKeys: [42] }).field).toBe('publicKeys[0]');
  });
});

describe('caCert', () => {
  it('accepts a bundle of one or more PEM certificates', () => {
    expect(parseIdentityConfig(input({ caCert: CA_PEM })).caCert).toBe(CA_PEM);
    const bundle = `# corporate root\n${CA_PEM}subject=CN=second\n${CA_PEM}`;
    expect(parseIdentityConfig(input({ caCert: bundle })).caCert).toBe(bundle);
  });

  it('refuses garbage, broken certificates, keys and non-strings', () => {
    expect(refused({ caCert: 'not a cert' }).field).toBe('caCert');
    expect(refused({ caCert: CA_PEM.replace('MIIBnjCCAUWgAwIBAgIU', 'MIIBnjCCAUWgAwIBAgIA') }).field).toBe(
      'caCert[0]',
    );
    const key = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({
      type: 'pkcs8',
      format: 'pem',
    });
    expect(refused({ caCert: `${CA_PEM}${key.toString()}` }).message).toContain('private key');
    const pub = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({
      type: 'spki',
      format: 'pem',
    });
    expect(refused({ caCert: `${CA_PEM}${pub.toString()}` }).message).toContain('not certificates');
    expect(refused({ caCert: 42 }).field).toBe('caCert');
  });
});

describe('metadata', () => {
  it('accepts JSON data and copies it', () => {
    const source = { roles: ['reader'], project: { id: 7, tags: [null, true, 'x'] } };
    const config = parseIdentityConfig(input({ metadata: source }));
    expect(config.metadata).toEqual(source);
    source.roles.push('admin');
    expect(config.metadata.roles).toEqual(['reader']);
  });

  it('refuses non-JSON values, reserved keys and deep nesting', () => {
    expect(refused({ metadata: ['x'] }).field).toBe('metadata');
    expect(refused({ metadata: { when: new Date() } }).field).toBe('metadata["when"]');
    expect(refused({ metadata: { f: () => 1 } }).field).toBe('metadata["f"]');
    expect(refused({ metadata: { n: Number.NaN } }).field).toBe('metadata["n"]');
    expect(refused({ metadata: { u: undefined } }).field).toBe('metadata["u"]');
    expect(refused({ metadata: JSON.parse('{"a": {"__proto__": {"admin": true}}}') as object }).field).toBe(
      'metadata["a"]["__proto__"]',
    );
    let deep: unknown = 'x';
    for (let i = 0; i < 20; i++) deep = { d: deep };
    expect(refused({ metadata: deep }).message).toContain('nested deeper');
    let cyclic: Record<string, unknown> = {};
    cyclic = { self: cyclic };
    (cyclic.self as Record<string, unknown>).self = cyclic;
    expect(() => parseIdentityConfig(input({ metadata: cyclic }))).toThrow(ConfigError);
    const wide = { list: Array.from({ length: 20_000 }, () => 1) };
    expect(refused({ metadata: wide }).message).toContain('more than 10000 values');
  });
});

describe('parseIdentityConfigs', () => {
  it('parses a list and refuses duplicate identity ids', () => {
    const configs = parseIdentityConfigs([input(), input({ identityId: 'other' })]);
    expect(configs.map((c) => c.identityId)).toEqual(['gh-deploy', 'other']);
    try {
      parseIdentityConfigs([input(), input({ identityId: 'other' }), input()]);
      throw new Error('expected a duplicate to be refused');
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as ConfigError).field).toBe('[2].identityId');
      expect((error as ConfigError).message).toContain('unique');
    }
  });

  it('refuses a non-array and reports the first invalid entry', () => {
    expect(() => parseIdentityConfigs(input())).toThrow(ConfigError);
    expect(() => parseIdentityConfigs([input(), input({ boundIssuer: '' })])).toThrow(/boundIssuer/);
  });

  it('types: the input type is accepted', () => {
    const typed: IdentityConfigInput = {
      identityId: 'k8s-payments',
      oidcDiscoveryUrl: 'https://oidc.eks.eu-west-1.amazonaws.com/id/5C3E1A2B9D8F7E6D5C4B3A2918F7E6D5',
      boundIssuer: 'https://oidc.eks.eu-west-1.amazonaws.com/id/5C3E1A2B9D8F7E6D5C4B3A2918F7E6D5',
      boundSubject: 'system:serviceaccount:payments:payments-api',
      boundAudiences: ['https://secrets.example.com'],
      boundClaims: { 'kubernetes.io.serviceaccount.uid': 'e6a8680e-d103-4cce-80ea-03acbbeacf7d' },
    };
    expect(parseIdentityConfigs([typed])[0]?.identityId).toBe('k8s-payments');
  });
});
