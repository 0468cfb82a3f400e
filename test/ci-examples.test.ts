import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { decodeJwt, type JWTPayload } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validateIdentities } from '../src/cli/validate.js';
import { OidcAuthError, type ReasonCode } from '../src/index.js';
import type { IdentityConfigInput } from '../src/types.js';
import { makeEngine, type TestEngine } from './helpers/engine.js';
import { makeKey, seconds, sign, type TestKey } from './helpers/jwt.js';
import { startStandInServer, type StandInServer } from './client/servers.js';

const EXAMPLES = fileURLToPath(new URL('../examples/ci/', import.meta.url));
const read = (path: string) => readFileSync(EXAMPLES + path, 'utf8');

/** The identity configs of an example file, as written. */
function examples(path: string): IdentityConfigInput[] {
  const data = JSON.parse(read(path)) as IdentityConfigInput | IdentityConfigInput[];
  return Array.isArray(data) ? data : [data];
}

/**
 * The example config with its key source swapped for a local key: the files point at real discovery
 * URLs, which tests never reach. Every binding field stays exactly as written.
 */
function withLocalKey(config: IdentityConfigInput, key: TestKey): IdentityConfigInput {
  expect(config.oidcDiscoveryUrl, 'the example uses discovery, as a user would').toMatch(/^https:\/\//);
  const { oidcDiscoveryUrl: _discovery, jwksUrl: _jwks, caCert: _ca, ...bindings } = config;
  return { ...bindings, publicKeys: [key.publicJwk] };
}

function engineFor(path: string): TestEngine {
  const key = makeKey('RS256');
  return makeEngine({ key, identities: examples(path).map((c) => withLocalKey(c, key)) });
}

/** Token claims with TOKEN-SHAPES offsets shifted to the engine's clock. */
type Shape = (iat: number) => JWTPayload;

async function login(e: TestEngine, identityId: string, shape: Shape, key: TestKey = e.key) {
  const jwt = await sign(key, shape(seconds(e.clock.ms)));
  return e.auth.login({ identityId, jwt, clientIp: '203.0.113.7' });
}

/**
 * The detailed reason a login is refused for, as its `login.failure` event carries it (the answer
 * may be the uniform `invalid_credentials` when the refusal came before the signature verified).
 */
async function refusal(e: TestEngine, identityId: string, shape: Shape): Promise<ReasonCode> {
  const before = e.rec.events.length;
  const error = await login(e, identityId, shape).then(
    () => {
      throw new Error('login unexpectedly succeeded');
    },
    (err: unknown) => err,
  );
  expect(error).toBeInstanceOf(OidcAuthError);
  const event = e.rec.events.slice(before).find((ev) => ev.type === 'login.failure');
  expect(event?.reasonCode).toBeDefined();
  if ((error as OidcAuthError).code !== 'invalid_credentials')
    expect(event?.reasonCode).toBe((error as OidcAuthError).code);
  return event!.reasonCode!;
}

describe('examples/ci: every identity file is valid as written', () => {
  it.each([
    'github-actions/identity.json',
    'azure-devops/identities.json',
    'gitlab-ci/identity.json',
    'kubernetes/identity.json',
  ])('%s validates like login does, with an audience bound', (path) => {
    const results = validateIdentities(examples(path));
    expect(results.every((r) => r.ok)).toBe(true);
    for (const config of examples(path)) expect(config.boundAudiences).toBeTruthy();
  });

  it('the pipeline files ask for the audience their identity binds', () => {
    const audience = (path: string) => [examples(path)[0]?.boundAudiences].flat()[0] as string;
    expect(read('github-actions/deploy.yml')).toContain(`API: ${audience('github-actions/identity.json')}`);
    expect(read('github-actions/deploy.yml')).toContain('audience=$API');
    expect(read('gitlab-ci/gitlab-ci.yml')).toContain(`aud: ${audience('gitlab-ci/identity.json')}`);
    expect(read('kubernetes/deployment.yaml')).toContain(`audience: ${audience('kubernetes/identity.json')}`);
    expect(read('azure-devops/azure-pipelines.yml')).toContain('--resource "api://AzureADTokenExchange"');
    for (const id of ['payments-ado-entra', 'payments-ado-service-connection']) {
      expect(read('azure-devops/azure-pipelines.yml')).toContain(`--arg id ${id} `);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// GitHub Actions (TOKEN-SHAPES B1)

const github: Shape = (iat) => ({
  jti: '7c9a3d1e-2b4f-4c8a-9e6d-1f2a3b4c5d6e',
  sub: 'repo:acme-corp/payments-api:ref:refs/heads/main',
  aud: 'https://secrets.example.com',
  ref: 'refs/heads/main',
  ref_type: 'branch',
  ref_protected: 'true',
  sha: '3f786850e387550fdab836ed7e6dc881de23001b',
  repository: 'acme-corp/payments-api',
  repository_id: '612345678',
  repository_owner: 'acme-corp',
  repository_owner_id: '81234567',
  repository_visibility: 'private',
  run_id: '9876543210',
  run_number: '42',
  run_attempt: '1',
  runner_environment: 'github-hosted',
  actor: 'octodev',
  actor_id: '1234567',
  event_name: 'push',
  head_ref: '',
  base_ref: '',
  workflow: 'Deploy',
  workflow_ref: 'acme-corp/payments-api/.github/workflows/deploy.yml@refs/heads/main',
  job_workflow_ref: 'acme-corp/payments-api/.github/workflows/deploy.yml@refs/heads/main',
  iss: 'https://token.actions.githubusercontent.com',
  nbf: iat - 600,
  iat,
  exp: iat + 300,
});
const githubWith =
  (changes: JWTPayload): Shape =>
  (iat) => ({ ...github(iat), ...changes });

describe('examples/ci/github-actions', () => {
  const ID = 'payments-api-deploy';

  it('a push to protected main of the bound repository logs in, with run metadata', async () => {
    const e = engineFor('github-actions/identity.json');
    const grant = await login(e, ID, github);
    expect(grant.expiresIn).toBe(900);
    const ctx = await e.auth.authenticate(grant.accessToken, { clientIp: '203.0.113.7' });
    expect(ctx.metadata).toEqual({
      role: 'deployer',
      repository: 'acme-corp/payments-api',
      workflow: 'Deploy',
      run_id: '9876543210',
      actor: 'octodev',
    });
  });

  it('a workflow_dispatch run on main logs in', async () => {
    const e = engineFor('github-actions/identity.json');
    await expect(login(e, ID, githubWith({ event_name: 'workflow_dispatch' }))).resolves.toBeDefined();
  });

  it.each<[string, JWTPayload, ReasonCode]>([
    [
      'CLM-10: a pull request',
      {
        sub: 'repo:acme-corp/payments-api:pull_request',
        event_name: 'pull_request',
        ref: 'refs/pull/57/merge',
        head_ref: 'feature/x',
        base_ref: 'main',
      },
      'claim_not_allowed',
    ],
    [
      'CLM-10: a pull_request_target run (base ref, fork code)',
      { event_name: 'pull_request_target' },
      'claim_not_allowed',
    ],
    [
      'ISS-07 / CLM-09: a fork running the workflow on its own main',
      {
        sub: 'repo:mallory/payments-api:ref:refs/heads/main',
        repository: 'mallory/payments-api',
        repository_id: '700000001',
        repository_owner: 'mallory',
        repository_owner_id: '90000001',
      },
      'claim_not_allowed',
    ],
    [
      'another branch',
      { sub: 'repo:acme-corp/payments-api:ref:refs/heads/feature/x', ref: 'refs/heads/feature/x' },
      'claim_not_allowed',
    ],
    [
      'a tag',
      { sub: 'repo:acme-corp/payments-api:ref:refs/tags/v1.0.0', ref: 'refs/tags/v1.0.0', ref_type: 'tag' },
      'claim_not_allowed',
    ],
    ['CLM-10: main without branch protection', { ref_protected: 'false' }, 'claim_not_allowed'],
    ['AUD-06: the default audience', { aud: 'https://github.com/acme-corp' }, 'audience_not_allowed'],
    [
      'ISS-01: an enterprise issuer',
      { iss: 'https://token.actions.githubusercontent.com/acme-enterprise', enterprise: 'acme-enterprise' },
      'issuer_mismatch',
    ],
  ])('refuses %s', async (_name, changes, code) => {
    const e = engineFor('github-actions/identity.json');
    expect(await refusal(e, ID, githubWith(changes))).toBe(code);
  });

  it('CLM-01: refuses a token whose repository_id claim is missing', async () => {
    const e = engineFor('github-actions/identity.json');
    expect(
      await refusal(e, ID, (iat) => {
        const { repository_id: _gone, ...rest } = github(iat);
        return rest;
      }),
    ).toBe('claim_missing');
  });
});

// ---------------------------------------------------------------------------------------------
// Azure DevOps / Entra (TOKEN-SHAPES B2)

const TENANT = '7f3a2c1e-5b4d-4e6f-9a8b-0c1d2e3f4a5b';
const ORG = '5d2c8e1a-3b4f-4a6c-9d8e-7f1a2b3c4d5e';
const SP = '0a1b2c3d-4e5f-4607-8192-a3b4c5d6e7f8';

const entraV1: Shape = (iat) => ({
  aud: 'api://AzureADTokenExchange',
  iss: `https://sts.windows.net/${TENANT}/`,
  iat,
  nbf: iat,
  exp: iat + 5100,
  aio: 'k2BgYGhsaW5reW91cnRva2VuZmFrZQ==',
  appid: 'c3d4e5f6-0718-4293-a4b5-c6d7e8f9a0b1',
  appidacr: '2',
  idp: `https://sts.windows.net/${TENANT}/`,
  idtyp: 'app',
  oid: SP,
  rh: '1.AXYAfakefakefakefakefakefakeAAA.',
  sub: SP,
  tid: TENANT,
  uti: 'ZmFrZS11dGktdmFsdWU',
  ver: '1.0',
});

const entraV2: Shape = (iat) => ({
  aud: 'fb60f99c-7a34-4190-8149-302f77469936',
  iss: `https://login.microsoftonline.com/${TENANT}/v2.0`,
  iat,
  nbf: iat,
  exp: iat + 5100,
  azp: 'c3d4e5f6-0718-4293-a4b5-c6d7e8f9a0b1',
  azpacr: '2',
  idtyp: 'app',
  oid: SP,
  sub: SP,
  tid: TENANT,
  ver: '2.0',
});

const serviceConnection: Shape = (iat) => ({
  jti: '4f3e2d1c-0b9a-4887-a766-554433221100',
  sub: 'sc://acme-corp/Payments/payments-prod-arm',
  aud: 'api://AzureADTokenExchange',
  iss: `https://vstoken.dev.azure.com/${ORG}`,
  nbf: iat - 600,
  iat,
  exp: iat + 600,
});

const serviceConnectionEntra: Shape = (iat) => ({
  aud: 'api://AzureADTokenExchange',
  iss: `https://login.microsoftonline.com/${TENANT}/v2.0`,
  sub: `/eid1/c/pub/t/Hiw6f01bb06aiwwdLj9KWw/a/rISbSSETf0KqFyZ8ppdXmA/sc/${ORG}/8e7d6c5b-4a39-4281-9f0e-d1c2b3a49586`,
  tid: TENANT,
  nbf: iat,
  iat,
  exp: iat + 3600,
});

const pipelineWithoutServiceConnection: Shape = (iat) => ({
  jti: 'a1b2c3d4-e5f6-4789-8abc-def012345678',
  sub: 'p://acme-corp/Payments/payments-ci',
  aud: 'api://AzureADTokenExchange',
  org_id: ORG,
  prj_id: '0e9d8c7b-6a5f-4e3d-2c1b-0a9f8e7d6c5b',
  def_id: '17',
  rpo_ref: 'refs/heads/main',
  run_id: '20431',
  iss: `https://vstoken.dev.azure.com/${ORG}`,
  nbf: iat - 600,
  iat,
  exp: iat + 600,
});

const change =
  (shape: Shape, changes: JWTPayload): Shape =>
  (iat) => ({ ...shape(iat), ...changes });

describe('examples/ci/azure-devops', () => {
  const ENTRA = 'payments-ado-entra';
  const SC = 'payments-ado-service-connection';
  const SC_ENTRA = 'payments-ado-service-connection-entra';

  it.each<[string, string, Shape]>([
    ['ISS-03: a v1 Entra token from az account get-access-token (sts.windows.net issuer)', ENTRA, entraV1],
    ['ISS-03: a v2 Entra token (login.microsoftonline.com/…/v2.0 issuer, app-id audience)', ENTRA, entraV2],
    ['the service connection token with the Azure DevOps issuer and sc:// subject', SC, serviceConnection],
    [
      'the service connection token with the Entra issuer and /eid1/ subject',
      SC_ENTRA,
      serviceConnectionEntra,
    ],
  ])('%s logs in', async (_name, identityId, shape) => {
    const e = engineFor('azure-devops/identities.json');
    const grant = await login(e, identityId, shape);
    expect(grant.expiresIn).toBe(1800);
  });

  it.each<[string, string, Shape, ReasonCode[]]>([
    [
      "ISS-03: another tenant's token",
      ENTRA,
      change(entraV2, {
        iss: 'https://login.microsoftonline.com/11111111-2222-4333-8444-555555555555/v2.0',
        tid: '11111111-2222-4333-8444-555555555555',
      }),
      ['issuer_mismatch'],
    ],
    [
      'another service principal of the tenant',
      ENTRA,
      change(entraV1, {
        sub: '99999999-4e5f-4607-8192-a3b4c5d6e7f8',
        oid: '99999999-4e5f-4607-8192-a3b4c5d6e7f8',
      }),
      ['subject_not_allowed'],
    ],
    [
      'HDR-07: a user token of the principal',
      ENTRA,
      change(entraV2, { idtyp: 'user' }),
      ['claim_not_allowed'],
    ],
    [
      'AUD-06: a token for another resource',
      ENTRA,
      change(entraV1, { aud: 'https://management.azure.com/' }),
      ['audience_not_allowed'],
    ],
    [
      'ISS-03: a multi-tenant "common" issuer',
      ENTRA,
      change(entraV2, { iss: 'https://login.microsoftonline.com/common/v2.0' }),
      ['issuer_mismatch'],
    ],
    [
      'another service connection',
      SC,
      change(serviceConnection, { sub: 'sc://acme-corp/Payments/payments-dev-arm' }),
      ['subject_not_allowed'],
    ],
    [
      'a service connection of another project',
      SC,
      change(serviceConnection, { sub: 'sc://acme-corp/Other/payments-prod-arm' }),
      ['subject_not_allowed'],
    ],
    [
      'a pipeline token without a service connection (p://)',
      SC,
      pipelineWithoutServiceConnection,
      ['subject_not_allowed'],
    ],
    ['the Entra access token presented to the service-connection identity', SC, entraV1, ['issuer_mismatch']],
    ['the sc:// token presented to the Entra identity', ENTRA, serviceConnection, ['issuer_mismatch']],
    [
      'the Entra service connection token presented to the Entra access-token identity',
      ENTRA,
      serviceConnectionEntra,
      ['subject_not_allowed'],
    ],
    [
      'an Entra service connection token for another connection',
      SC_ENTRA,
      change(serviceConnectionEntra, {
        sub: `/eid1/c/pub/t/Hiw6f01bb06aiwwdLj9KWw/a/rISbSSETf0KqFyZ8ppdXmA/sc/${ORG}/00000000-4a39-4281-9f0e-d1c2b3a49586`,
      }),
      ['subject_not_allowed'],
    ],
  ])('refuses %s', async (_name, identityId, shape, codes) => {
    const e = engineFor('azure-devops/identities.json');
    expect(codes).toContain(await refusal(e, identityId, shape));
  });
});

// ---------------------------------------------------------------------------------------------
// GitLab CI (TOKEN-SHAPES B3)

const gitlab: Shape = (iat) => ({
  namespace_id: '72',
  namespace_path: 'acme',
  project_id: '20',
  project_path: 'acme/platform/payments-api',
  user_id: '1',
  user_login: 'octodev',
  user_email: 'octodev@example.com',
  pipeline_id: '574',
  pipeline_source: 'push',
  job_id: '302',
  ref: 'main',
  ref_type: 'branch',
  ref_path: 'refs/heads/main',
  ref_protected: 'true',
  environment: 'production',
  environment_protected: 'true',
  deployment_tier: 'production',
  runner_id: 1,
  runner_environment: 'gitlab-hosted',
  sha: '714a629c0b401fdce83e847fc9589983fc6f46bc',
  ci_config_ref_uri: 'gitlab.com/acme/platform/payments-api//.gitlab-ci.yml@refs/heads/main',
  ci_config_sha: '714a629c0b401fdce83e847fc9589983fc6f46bc',
  job_project_id: '20',
  job_project_path: 'acme/platform/payments-api',
  job_namespace_id: '72',
  job_namespace_path: 'acme',
  jti: '235b3a54-b797-45c7-ae9a-f72d7bc6ef5b',
  iss: 'https://gitlab.com',
  iat,
  nbf: iat - 5,
  exp: iat + 3600,
  sub: 'project_path:acme/platform/payments-api:ref_type:branch:ref:main',
  aud: 'https://secrets.example.com',
});

describe('examples/ci/gitlab-ci', () => {
  const ID = 'payments-gitlab-deploy';

  it('the protected main of a project in a subgroup logs in (subgroup-aware subject)', async () => {
    const e = engineFor('gitlab-ci/identity.json');
    const grant = await login(e, ID, gitlab);
    const ctx = await e.auth.authenticate(grant.accessToken, { clientIp: '203.0.113.7' });
    expect(ctx.metadata).toMatchObject({
      project: 'acme/platform/payments-api',
      pipeline: '574',
      user: 'octodev',
    });
  });

  it('GLOB-08: the example subject matches the project at any depth under the group', async () => {
    const e = engineFor('gitlab-ci/identity.json');
    const report = await e.auth.explain({
      identityId: ID,
      jwt: await sign(
        e.key,
        change(gitlab, { sub: 'project_path:acme/payments-api:ref_type:branch:ref:main' })(
          seconds(e.clock.ms),
        ),
      ),
    });
    expect(report.checks.find((c) => c.check === 'subject')?.pass).toBe(true);
  });

  it.each<[string, JWTPayload, ReasonCode]>([
    ['CLM-10: an unprotected main', { ref_protected: 'false' }, 'claim_not_allowed'],
    [
      'another branch',
      {
        sub: 'project_path:acme/platform/payments-api:ref_type:branch:ref:feature/x',
        ref: 'feature/x',
        ref_path: 'refs/heads/feature/x',
      },
      'subject_not_allowed',
    ],
    [
      'a tag',
      { sub: 'project_path:acme/platform/payments-api:ref_type:tag:ref:main', ref_type: 'tag' },
      'subject_not_allowed',
    ],
    [
      "CLM-10: a fork's merge request pipeline (project_id is the fork, job_project_id ours)",
      {
        sub: 'project_path:acme/platform/payments-api-fork:ref_type:branch:ref:main',
        project_id: '4242',
        project_path: 'acme/platform/payments-api-fork',
        pipeline_source: 'merge_request_event',
        ref_protected: 'false',
      },
      'claim_not_allowed',
    ],
    [
      'a project in another group',
      {
        sub: 'project_path:mallory/payments-api:ref_type:branch:ref:main',
        project_id: '999',
        namespace_id: '998',
        project_path: 'mallory/payments-api',
      },
      'subject_not_allowed',
    ],
    [
      'another project of the same group',
      {
        sub: 'project_path:acme/platform/billing:ref_type:branch:ref:main',
        project_id: '21',
        project_path: 'acme/platform/billing',
      },
      'claim_not_allowed',
    ],
    ['a token for another audience', { aud: 'https://vault.example.com' }, 'audience_not_allowed'],
  ])('refuses %s', async (_name, changes, code) => {
    const e = engineFor('gitlab-ci/identity.json');
    expect(await refusal(e, ID, change(gitlab, changes))).toBe(code);
  });
});

// ---------------------------------------------------------------------------------------------
// Kubernetes (TOKEN-SHAPES B4)

const EKS = 'https://oidc.eks.eu-west-1.amazonaws.com/id/5C3E1A2B9D8F7E6D5C4B3A2918F7E6D5';

const projected: Shape = (iat) => ({
  aud: ['https://secrets.example.com'],
  exp: iat + 3600,
  iat,
  nbf: iat,
  iss: EKS,
  jti: 'e51f1fbc-4733-4b85-a59f-ba80c0523874',
  'kubernetes.io': {
    namespace: 'payments',
    node: { name: 'ip-10-0-12-34.eu-west-1.compute.internal', uid: '517eb86e-b863-451b-bf70-86cb61439a3a' },
    pod: { name: 'payments-api-7d9f8b6c5-x2k4m', uid: '0d8b260e-ef0e-45fb-be8e-ff44f97722e8' },
    serviceaccount: { name: 'payments-api', uid: 'e6a8680e-d103-4cce-80ea-03acbbeacf7d' },
  },
  sub: 'system:serviceaccount:payments:payments-api',
});

const k8s = (iat: number) => projected(iat)['kubernetes.io'] as Record<string, Record<string, unknown>>;

describe('examples/ci/kubernetes', () => {
  const ID = 'payments-k8s';

  it('the projected token logs in, with the pod name in the metadata', async () => {
    const e = engineFor('kubernetes/identity.json');
    const grant = await login(e, ID, projected);
    const ctx = await e.auth.authenticate(grant.accessToken, { clientIp: '203.0.113.7' });
    expect(ctx.metadata).toEqual({ role: 'reader', pod: 'payments-api-7d9f8b6c5-x2k4m' });
  });

  it.each<[string, Shape, ReasonCode]>([
    [
      'another namespace',
      (iat) => ({
        ...projected(iat),
        sub: 'system:serviceaccount:staging:payments-api',
        'kubernetes.io': { ...k8s(iat), namespace: 'staging' },
      }),
      'subject_not_allowed',
    ],
    [
      'the same name in another namespace with the bound subject forged only in sub',
      (iat) => ({ ...projected(iat), 'kubernetes.io': { ...k8s(iat), namespace: 'staging' } }),
      'claim_not_allowed',
    ],
    [
      'another service account',
      (iat) => ({
        ...projected(iat),
        sub: 'system:serviceaccount:payments:default',
        'kubernetes.io': {
          ...k8s(iat),
          serviceaccount: { name: 'default', uid: '11111111-d103-4cce-80ea-03acbbeacf7d' },
        },
      }),
      'subject_not_allowed',
    ],
    [
      'CLM-09: a re-created service account (same name, new uid)',
      (iat) => ({
        ...projected(iat),
        'kubernetes.io': {
          ...k8s(iat),
          serviceaccount: { name: 'payments-api', uid: '22222222-d103-4cce-80ea-03acbbeacf7d' },
        },
      }),
      'claim_not_allowed',
    ],
    [
      'AUD-06: the default in-pod token (apiserver audience)',
      (iat) => ({
        ...projected(iat),
        aud: ['https://kubernetes.default.svc.cluster.local'],
        exp: iat + 3607,
      }),
      'audience_not_allowed',
    ],
    [
      'a projected token living a year (over maxTokenLifetimeSeconds)',
      (iat) => ({ ...projected(iat), exp: iat + 31_536_000 }),
      'token_lifetime_too_long',
    ],
  ])('refuses %s', async (_name, shape, code) => {
    const e = engineFor('kubernetes/identity.json');
    expect(await refusal(e, ID, shape)).toBe(code);
  });

  it('TIME-04: refuses the legacy Secret-based token (no exp, no aud, non-URL issuer)', async () => {
    const e = engineFor('kubernetes/identity.json');
    const code = await refusal(e, ID, () => ({
      iss: 'kubernetes/serviceaccount',
      'kubernetes.io/serviceaccount/namespace': 'payments',
      'kubernetes.io/serviceaccount/secret.name': 'payments-api-token-pnj77',
      'kubernetes.io/serviceaccount/service-account.name': 'payments-api',
      'kubernetes.io/serviceaccount/service-account.uid': 'e6a8680e-d103-4cce-80ea-03acbbeacf7d',
      sub: 'system:serviceaccount:payments:payments-api',
    }));
    expect(['claim_missing', 'issuer_mismatch']).toContain(code);
  });
});

// ---------------------------------------------------------------------------------------------
// The DPoP pipeline steps (RFC 9449), run as the platforms run them: each step's bash script, taken
// from the pipeline file, against a token service that checks DPoP proofs and express-oauth2-jwt-bearer
// in its DPoP mode (test/client/servers.ts), with the platform's token endpoint and `az` faked.

/**
 * The script of a pipeline step: the block scalar of the first `run: |`, `inlineScript: |` or
 * `- bash: |` line at or after the first line matching `step`, dedented, as the runner writes it to
 * a file.
 */
function stepScript(text: string, step: RegExp): string {
  const lines = text.split('\n');
  const named = lines.findIndex((line) => step.test(line));
  expect(named, `a line matching ${step}`).toBeGreaterThanOrEqual(0);
  const at = lines.findIndex((line, i) => i >= named && /^\s*(- )?(run|inlineScript|bash): \|$/.test(line));
  expect(at, `a script block from line ${named + 1}`).toBeGreaterThanOrEqual(0);
  const indent = (line: string) => line.length - line.trimStart().length;
  // The keys of a `- bash: |` sequence item sit two columns right of its dash.
  const own = indent(lines[at]!) + (lines[at]!.trimStart().startsWith('- ') ? 2 : 0);
  const body: string[] = [];
  for (const line of lines.slice(at + 1)) {
    if (line.trim() !== '' && indent(line) <= own) break;
    body.push(line);
  }
  const margin = Math.min(...body.filter((l) => l.trim() !== '').map(indent));
  return body.map((line) => line.slice(margin)).join('\n');
}

/** Run a step script as GitHub's and Azure's bash steps do (`bash --noprofile --norc -eo pipefail`). */
function runStep(
  script: string,
  env: NodeJS.ProcessEnv,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const file = join(stepDir, `step-${randomUUID()}.sh`);
  writeFileSync(file, script);
  return new Promise((resolve) => {
    execFile(
      'bash',
      ['--noprofile', '--norc', '-eo', 'pipefail', file],
      { env, timeout: 60_000 },
      (error, stdout, stderr) => resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr }),
    );
  });
}

let stepDir = '';
const DPOP_SCRIPTS = fileURLToPath(new URL('../examples/ci/dpop', import.meta.url));

describe('examples/ci: the DPoP steps of the GitHub Actions and Azure DevOps pipelines run', () => {
  let server: StandInServer;
  /** GitHub's ACTIONS_ID_TOKEN_REQUEST_URL and Azure DevOps' System.OidcRequestUri, faked. */
  let platform: http.Server;
  let platformUrl = '';
  const asked: string[] = [];

  beforeAll(async () => {
    stepDir = mkdtempSync(join(tmpdir(), 'ci-steps-'));
    server = await startStandInServer();
    for (const id of ['payments-api-deploy', 'payments-ado-entra', 'payments-ado-service-connection']) {
      server.identities.add(id);
    }
    platform = http.createServer((req, res) => {
      asked.push(`${req.method} ${req.url} ${req.headers.authorization}`);
      void server.mintIdpToken().then((jwt) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify(req.method === 'POST' ? { oidcToken: jwt } : { value: jwt }));
      });
    });
    await new Promise<void>((resolve) => platform.listen(0, '127.0.0.1', resolve));
    platformUrl = `http://127.0.0.1:${(platform.address() as AddressInfo).port}`;
    // `az account get-access-token … -o tsv` prints the token; this one asks the fake platform for it.
    writeFileSync(
      join(stepDir, 'az'),
      `#!/usr/bin/env bash\n[ "$*" = 'account get-access-token --resource api://AzureADTokenExchange --query accessToken -o tsv' ] || exit 3\ncurl -sSf "${platformUrl}/entra" | jq -r .value\n`,
      { mode: 0o755 },
    );
  });
  afterAll(async () => {
    await server?.close();
    await new Promise((resolve) => platform?.close(resolve));
    if (stepDir) rmSync(stepDir, { recursive: true, force: true });
  });

  const baseEnv = (): NodeJS.ProcessEnv => ({ PATH: `${stepDir}:${process.env.PATH}`, HOME: stepDir });
  const jktOf = async (keyFile: string) => {
    const script = `bash '${DPOP_SCRIPTS}/dpop-proof.sh' jkt`;
    return (await runStep(script, { ...baseEnv(), DPOP_KEY_FILE: keyFile })).stdout.trim();
  };

  it('GitHub Actions: the login step gets a DPoP-bound token (cnf.jkt of the job key) into GITHUB_ENV; the read step passes the guard with it', async () => {
    const deploy = read('github-actions/deploy.yml');
    const githubEnv = join(stepDir, 'github-env');
    writeFileSync(githubEnv, '');
    const env = {
      ...baseEnv(),
      API: server.url,
      IDENTITY_ID: 'payments-api-deploy',
      DPOP: DPOP_SCRIPTS,
      DPOP_KEY_FILE: join(stepDir, 'gh-key.pem'),
      ACTIONS_ID_TOKEN_REQUEST_URL: `${platformUrl}/github?api-version=2.0`,
      ACTIONS_ID_TOKEN_REQUEST_TOKEN: 'request-token',
      GITHUB_ENV: githubEnv,
    };
    const login = await runStep(
      stepScript(deploy, /^\s+- name: Log in with the job's OIDC token and a DPoP proof$/),
      env,
    );
    expect(login.stderr).toBe('');
    expect(login.code).toBe(0);
    expect(asked.at(-1)).toBe(`GET /github?api-version=2.0&audience=${server.url} bearer request-token`);
    const written = readFileSync(githubEnv, 'utf8').trim();
    expect(written).toMatch(/^DPOP_ACCESS_TOKEN=[\w-]+\.[\w-]+\.[\w-]+$/);
    const token = written.slice('DPOP_ACCESS_TOKEN='.length);
    expect(login.stdout).toContain(`::add-mask::${token}`);
    expect(decodeJwt(token).cnf).toEqual({ jkt: await jktOf(env.DPOP_KEY_FILE) });

    const readStep = stepScript(deploy, /^\s+- name: Read a secret$/);
    expect(await runStep(readStep, { ...env, DPOP_ACCESS_TOKEN: token })).toMatchObject({
      code: 0,
      stderr: '',
    });
    // The same token from another job's key (a leaked token) is refused.
    const stolen = await runStep(readStep, {
      ...env,
      DPOP_ACCESS_TOKEN: token,
      DPOP_KEY_FILE: join(stepDir, 'thief.pem'),
    });
    expect(stolen.code).toBe(22);
    expect(stolen.stderr).toMatch(/HTTP 401/);
  });

  it('GitHub Actions: the login step fails, writing no token, when the server answers a token that is not DPoP-bound', async () => {
    const githubEnv = join(stepDir, 'github-env-bearer');
    writeFileSync(githubEnv, '');
    server.answerBearer = true;
    try {
      const login = await runStep(
        stepScript(
          read('github-actions/deploy.yml'),
          /^\s+- name: Log in with the job's OIDC token and a DPoP proof$/,
        ),
        {
          ...baseEnv(),
          API: server.url,
          IDENTITY_ID: 'payments-api-deploy',
          DPOP: DPOP_SCRIPTS,
          DPOP_KEY_FILE: join(stepDir, 'gh-bearer-key.pem'),
          ACTIONS_ID_TOKEN_REQUEST_URL: `${platformUrl}/github?api-version=2.0`,
          ACTIONS_ID_TOKEN_REQUEST_TOKEN: 'request-token',
          GITHUB_ENV: githubEnv,
        },
      );
      expect(login.code).not.toBe(0);
      expect(login.stderr).toContain('the token is not DPoP-bound');
      expect(readFileSync(githubEnv, 'utf8')).toBe('');
    } finally {
      server.answerBearer = false;
    }
  });

  it.each<[string, RegExp]>([
    ['entra_access_token (AzureCLI@2 inline script)', /^\s+inlineScript: \|$/],
    ['service_connection_token (bash step)', /^\s+- bash: \|$/],
  ])(
    'Azure DevOps %s: logs in with a DPoP proof and reads the secret with Authorization: DPoP',
    async (_name, start) => {
      const pipeline = read('azure-devops/azure-pipelines.yml');
      // Azure DevOps expands $(…) macros before the script runs.
      const script = stepScript(pipeline, start)
        .replaceAll('$(API)', server.url)
        .replaceAll('$(DPOP)', DPOP_SCRIPTS)
        .replaceAll('$(SERVICE_CONNECTION_ID)', '8e7d6c5b-4a39-4281-9f0e-d1c2b3a49586');
      expect(script).not.toMatch(/\$\([A-Za-z_.]+\)/);
      const agentTemp = mkdtempSync(join(stepDir, 'agent-'));
      const result = await runStep(script, {
        ...baseEnv(),
        AGENT_TEMPDIRECTORY: agentTemp,
        SYSTEM_ACCESSTOKEN: 'system-access-token',
        SYSTEM_OIDCREQUESTURI: `${platformUrl}/oidc`,
      });
      expect(result.stderr).toBe('');
      expect(result.code).toBe(0);
      const secret = /##vso\[task\.setvariable variable=DPOP_ACCESS_TOKEN;issecret=true\](\S+)/.exec(
        result.stdout,
      );
      expect(decodeJwt(secret![1]!).cnf).toEqual({ jkt: await jktOf(join(agentTemp, 'dpop-key.pem')) });
    },
  );
});
