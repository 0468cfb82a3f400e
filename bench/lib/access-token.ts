import { SignJWT, type CryptoKey } from 'jose';

/** The audience of the RFC 9068 tokens the verifier benchmarks mint. */
export const AUDIENCE = 'https://api.example';

/** An RFC 9068 access token (EdDSA, `typ: at+jwt`) of `issuer`, valid an hour, for the verifier benchmarks. */
export function mintAccessToken(issuer: string, key: CryptoKey, kid: string): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({
    iss: issuer,
    sub: 'repo:acme/app:ref:refs/heads/main',
    aud: AUDIENCE,
    iat: now,
    exp: now + 3600,
    jti: crypto.randomUUID(),
    client_id: 'ci-deployer',
    scope: 'secrets:read',
  })
    .setProtectedHeader({ alg: 'EdDSA', typ: 'at+jwt', kid })
    .sign(key);
}
