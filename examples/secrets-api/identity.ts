import type { IdentityConfigInput } from '../../src/index.js';
import { AZURE_TOKEN_EXCHANGE_AUDIENCE, DEMO_TENANT_ID, PIPELINE_CLIENT_ID } from './idp.js';

/** The identity the demo pipeline logs in as (Infisical identity ids are UUIDs). */
export const IDENTITY_ID = '2f1e6c1a-8b7d-4c3e-9f10-5a6b7c8d9e0f';

/** The workspace the identity's metadata grants. */
export const WORKSPACE_SLUG = 'payments-api';

/**
 * The identity an admin would configure for the pipeline's service connection: issuer, audience,
 * subject (the client id) and tenant bound, the service principal's `oid` copied into the token's
 * metadata, and `metadata.workspaces` read by the secrets route's authorize predicate.
 *
 * @param issuer The IdP's issuer, also its discovery base URL.
 */
export function pipelineIdentity(
  issuer: string,
  overrides: Partial<IdentityConfigInput> = {},
): IdentityConfigInput {
  return {
    identityId: IDENTITY_ID,
    oidcDiscoveryUrl: issuer,
    boundIssuer: issuer,
    boundAudiences: [AZURE_TOKEN_EXCHANGE_AUDIENCE],
    boundSubject: PIPELINE_CLIENT_ID,
    boundClaims: { tid: DEMO_TENANT_ID, appid: PIPELINE_CLIENT_ID },
    claimMetadataMapping: { servicePrincipal: 'oid' },
    accessTokenTTL: 600,
    accessTokenMaxTTL: 3600,
    // The demo IdP is plain http on 127.0.0.1; a real one is https and needs no flag.
    allowInsecureLoopback: true,
    metadata: { workspaces: [WORKSPACE_SLUG] },
    ...overrides,
  };
}
