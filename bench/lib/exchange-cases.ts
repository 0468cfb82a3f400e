import {
  TOKEN_EXCHANGE_GRANT,
  TOKEN_TYPE,
  createOidcAuth,
  loginAnswer,
  oauthTokenAnswer,
  parseRequestBody,
  type HttpAnswer,
  type OidcAuth,
} from '../../src/index.js';
import {
  benchIdentity,
  IDENTITY_ID,
  makeIdpKey,
  BENCH_RATE_LIMITS,
  SIGNING_KEYS,
  signIdpToken,
} from './fixtures.js';

/** The four calls the token-exchange benchmarks compare (bench/exchange.ts, bench/exchange-seam.ts). */
export type ExchangeCase = 'login' | 'login-form' | 'exchange' | 'exchange-select';

/**
 * One engine (RS256 IdP key, memory stores) and, per case, the framework-neutral answer each adapter
 * calls, with the body as the adapters' parser leaves it (no HTTP): `login` (`loginAnswer`, JSON
 * body, as Infisical's clients send it), `login-form` (the same fields as a form), `exchange`
 * (`oauthTokenAnswer`, naming the identity by `client_id`) and `exchange-select` (the identity
 * selected by the token's issuer and subject).
 */
export async function exchangeCases(): Promise<{
  auth: OidcAuth;
  calls: Record<ExchangeCase, () => Promise<HttpAnswer>>;
}> {
  const key = makeIdpKey('RS256');
  const auth = createOidcAuth({
    identities: [benchIdentity(key)],
    signingKeys: SIGNING_KEYS,
    rateLimits: BENCH_RATE_LIMITS,
  });
  const jwt = await signIdpToken(key);
  const FORM = 'application/x-www-form-urlencoded';
  const form = (fields: Record<string, string>) => new URLSearchParams(fields).toString();
  const exchangeFields = {
    grant_type: TOKEN_EXCHANGE_GRANT,
    subject_token: jwt,
    subject_token_type: TOKEN_TYPE.jwt,
  };
  const json = JSON.stringify({ identityId: IDENTITY_ID, jwt });
  const loginForm = form({ identityId: IDENTITY_ID, jwt });
  const named = form({ ...exchangeFields, client_id: IDENTITY_ID });
  const selected = form(exchangeFields);
  const exchange = (body: string) =>
    oauthTokenAnswer(auth, { contentType: FORM, body: parseRequestBody(FORM, body), clientIp: '127.0.0.1' });
  return {
    auth,
    calls: {
      login: () => loginAnswer(auth, parseRequestBody('application/json', json), '127.0.0.1'),
      'login-form': () => loginAnswer(auth, parseRequestBody(FORM, loginForm), '127.0.0.1'),
      exchange: () => exchange(named),
      'exchange-select': () => exchange(selected),
    },
  };
}
