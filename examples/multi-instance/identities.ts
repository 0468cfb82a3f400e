import type { IdentityConfigInput } from '../../src/index.js';
import { pipelineIdentity } from '../secrets-api/identity.js';

/** An identity whose access tokens allow three uses in total, whichever instances serve them. */
export const LIMITED_IDENTITY_ID = '6b0c1f52-3d4e-4a8b-9c7d-2e1f0a9b8c7d';

/**
 * The identities every instance of the demo fleet is given: the secrets API's pipeline identity,
 * and the same binding with `accessTokenNumUsesLimit: 3` under {@link LIMITED_IDENTITY_ID}.
 *
 * @param issuer The IdP's issuer, also its discovery base URL.
 */
export function fleetIdentities(issuer: string): IdentityConfigInput[] {
  return [
    pipelineIdentity(issuer),
    pipelineIdentity(issuer, { identityId: LIMITED_IDENTITY_ID, accessTokenNumUsesLimit: 3 }),
  ];
}
