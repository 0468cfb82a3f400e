import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { createOidcAuth, type OidcAuth, type OidcAuthOptions } from '../../src/index.js';
import type { HttpGet } from '../../src/trust/fetch.js';
import { FetchError } from '../../src/trust/fetch.js';
import { FakeClock, SIGNING_KEYS } from '../helpers/engine.js';
import { makeKey, seconds, sign, type TestKey } from '../helpers/jwt.js';
import { TenantIdp } from './tenant-idp.js';

/** The JSON block under `<!-- example: name -->` in docs/TRUST.md, parsed: the exact config the doc shows. */
function example(name: string): Pick<OidcAuthOptions, 'trust' | 'identities'> {
  const doc = readFileSync(new URL('../../docs/TRUST.md', import.meta.url), 'utf8');
  const match = new RegExp(`<!-- example: ${name} -->\\s*\`\`\`json\\n([\\s\\S]*?)\\n\`\`\``).exec(doc);
  if (!match) throw new Error(`docs/TRUST.md has no example ${name}`);
  return JSON.parse(match[1]!) as Pick<OidcAuthOptions, 'trust' | 'identities'>;
}

function engine(name: string, httpGet: HttpGet, clock: FakeClock): OidcAuth {
  return createOidcAuth({ ...example(name), httpGet, signingKeys: SIGNING_KEYS, clock: clock.now });
}

const refused = { code: 'invalid_credentials' };

describe('docs/TRUST.md examples, run as written', () => {
  it('Kubernetes namespaces across three clusters: each cluster’s tokens verify with its own keys only', async () => {
    const clusters = ['prod-eu', 'prod-us', 'staging'].map((c) => `https://oidc.${c}.k8s.acme.example`);
    // Two clusters by discovery (JWKS at /openid/v1/jwks, as Kubernetes serves it), one by jwksUrl.
    const idp = new TenantIdp((issuer) => clusters.includes(issuer), '/openid/v1/jwks');
    const clock = new FakeClock(Date.now());
    const auth = engine('kubernetes', idp.httpGet, clock);
    const claims = { sub: 'system:serviceaccount:payments:api', aud: 'https://vault.acme.example' };
    for (const issuer of clusters) {
      await expect(
        auth.login({ identityId: 'payments', jwt: await idp.token(issuer, clock.ms, claims) }),
      ).resolves.toMatchObject({ identityId: 'payments' });
    }
    // prod-eu's issuer, signed with prod-us's key: never verified with another cluster's keys.
    const iat = seconds(clock.ms);
    const forged = await sign(idp.keyOf(clusters[1]!), { iss: clusters[0], iat, exp: iat + 300, ...claims });
    await expect(auth.login({ identityId: 'payments', jwt: forged })).rejects.toMatchObject(refused);
    // Another namespace: refused by the identity's own binding.
    await expect(
      auth.login({
        identityId: 'payments',
        jwt: await idp.token(clusters[0]!, clock.ms, {
          ...claims,
          sub: 'system:serviceaccount:kube-system:x',
        }),
      }),
    ).rejects.toMatchObject({ code: 'subject_not_allowed' });
  });

  it('Azure v1 and v2 issuers of one tenant, both live', async () => {
    const tenant = '8f2b6f4a-3c1d-4e5f-9a7b-1c2d3e4f5a6b';
    const v1 = `https://sts.windows.net/${tenant}/`;
    const v2 = `https://login.microsoftonline.com/${tenant}/v2.0`;
    const key = makeKey('RS256', 'azure-1');
    const documents: Record<string, unknown> = {
      [`https://login.microsoftonline.com/${tenant}/.well-known/openid-configuration`]: {
        issuer: v1,
        jwks_uri: `https://login.microsoftonline.com/${tenant}/discovery/keys`,
      },
      [`https://login.microsoftonline.com/${tenant}/v2.0/.well-known/openid-configuration`]: {
        issuer: v2,
        jwks_uri: `https://login.microsoftonline.com/${tenant}/discovery/v2.0/keys`,
      },
      [`https://login.microsoftonline.com/${tenant}/discovery/keys`]: { keys: [key.publicJwk] },
      [`https://login.microsoftonline.com/${tenant}/discovery/v2.0/keys`]: { keys: [key.publicJwk] },
    };
    const httpGet: HttpGet = async (url) => {
      if (!(url in documents)) throw new FetchError('http_status', url);
      return { status: 200, body: JSON.stringify(documents[url]), headers: {} };
    };
    const clock = new FakeClock(Date.now());
    const auth = engine('azure', httpGet, clock);
    const token = (iss: string, k: TestKey = key) => {
      const iat = seconds(clock.ms);
      return sign(k, {
        iss,
        sub: '2c4f6e1a-9b8d-4c3e-8f7a-6b5c4d3e2f1a',
        aud: 'api://acme-deployer',
        iat,
        exp: iat + 3600,
      });
    };
    for (const iss of [v1, v2]) {
      await expect(
        auth.login({ identityId: 'azure-deployer', jwt: await token(iss) }),
      ).resolves.toMatchObject({});
    }
    // Another tenant's issuer: no source names it.
    await expect(
      auth.login({ identityId: 'azure-deployer', jwt: await token('https://sts.windows.net/other-tenant/') }),
    ).rejects.toMatchObject(refused);
    // The right issuer, a key the tenant never published.
    await expect(
      auth.login({ identityId: 'azure-deployer', jwt: await token(v2, makeKey('RS256', 'azure-1')) }),
    ).rejects.toMatchObject(refused);
  });

  it('A GitHub trust entry shared by many identities: one fetch, each identity its own bindings and settings', async () => {
    const github = 'https://token.actions.githubusercontent.com';
    const idp = new TenantIdp((issuer) => issuer === github, '/.well-known/jwks');
    const clock = new FakeClock(Date.now());
    const auth = engine('github', idp.httpGet, clock);
    const gh = (sub: string, extra: Record<string, unknown> = {}) =>
      idp.token(github, clock.ms, { sub, aud: 'https://github.com/acme-corp', ...extra });
    await expect(
      auth.login({
        identityId: 'deploy-payments-api',
        jwt: await gh('repo:acme-corp/payments-api:ref:refs/heads/main', { repository_id: '612345678' }),
      }),
    ).resolves.toMatchObject({});
    const web = await auth.login({
      identityId: 'deploy-web',
      jwt: await gh('repo:acme-corp/web:ref:refs/heads/main'),
    });
    expect(web.expiresIn).toBe(600);
    await expect(
      auth.login({ identityId: 'release-cli', jwt: await gh('repo:acme-corp/cli:ref:refs/tags/v2.1.0') }),
    ).resolves.toMatchObject({});
    // The entry's audience binds every identity using it.
    await expect(
      auth.login({
        identityId: 'deploy-web',
        jwt: await gh('repo:acme-corp/web:ref:refs/heads/main', { aud: 'https://github.com/other-org' }),
      }),
    ).rejects.toMatchObject({ code: 'audience_not_allowed' });
    await expect(
      auth.login({ identityId: 'release-cli', jwt: await gh('repo:acme-corp/cli:ref:refs/heads/main') }),
    ).rejects.toMatchObject({ code: 'subject_not_allowed' });
    expect(idp.count('discovery')).toBe(1);
    expect(idp.count('jwks')).toBe(1);
  });

  it('An EKS cluster fleet by issuer pattern: any matching cluster, its own keys, nothing wider', async () => {
    const idp = new TenantIdp((issuer) =>
      /^https:\/\/oidc\.eks\.[a-z0-9-]+\.amazonaws\.com\/id\/[A-Z0-9]+$/.test(issuer),
    );
    const clock = new FakeClock(Date.now());
    const auth = engine('eks', idp.httpGet, clock);
    const claims = { sub: 'system:serviceaccount:payments:api', aud: 'sts.amazonaws.com' };
    for (const issuer of [
      'https://oidc.eks.us-east-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE',
      'https://oidc.eks.eu-west-1.amazonaws.com/id/A1B2C3D4E5F6A7B8C9D0E1F2A3B4C5D6',
    ]) {
      await expect(
        auth.login({ identityId: 'payments', jwt: await idp.token(issuer, clock.ms, claims) }),
      ).resolves.toMatchObject({ identityId: 'payments' });
    }
    await expect(
      auth.login({
        identityId: 'ledger',
        jwt: await idp.token(
          'https://oidc.eks.us-east-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE',
          clock.ms,
          {
            ...claims,
            sub: 'system:serviceaccount:ledger:api',
          },
        ),
      }),
    ).resolves.toMatchObject({ identityId: 'ledger' });
    // Outside the pattern (another domain behind the host): refused, nothing fetched for it.
    const before = idp.fetches.length;
    await expect(
      auth.login({
        identityId: 'payments',
        jwt: await idp.token('https://oidc.eks.us-east-1.amazonaws.com.evil.example/id/X', clock.ms, claims),
      }),
    ).rejects.toMatchObject(refused);
    expect(idp.fetches.length).toBe(before);
  });

  it('SPIFFE: a bundle’s jwt-svid keys verify, its x509-svid keys do not', async () => {
    const jwtKey = makeKey('ES256', 'spire-jwt');
    const x509Key = makeKey('ES256', 'spire-x509');
    const httpGet: HttpGet = async (url) => {
      if (url !== 'https://spire.acme.example/bundle') throw new FetchError('http_status', url);
      const keys = [
        { ...jwtKey.publicJwk, use: 'jwt-svid' },
        { ...x509Key.publicJwk, use: 'x509-svid' },
      ];
      return {
        status: 200,
        body: JSON.stringify({ spiffe_sequence: 3, spiffe_refresh_hint: 300, keys }),
        headers: {},
      };
    };
    const clock = new FakeClock(Date.now());
    const auth = engine('spiffe', httpGet, clock);
    const svid = (key: TestKey) => {
      const iat = seconds(clock.ms);
      return sign(key, {
        iss: 'https://spire.acme.example',
        sub: 'spiffe://acme.example/ns/payments/sa/api',
        aud: ['https://vault.acme.example'],
        iat,
        exp: iat + 300,
      });
    };
    await expect(
      auth.login({ identityId: 'spiffe-payments', jwt: await svid(jwtKey) }),
    ).resolves.toMatchObject({});
    await expect(
      auth.login({ identityId: 'spiffe-payments', jwt: await svid(x509Key) }),
    ).rejects.toMatchObject(refused);
  });
});
