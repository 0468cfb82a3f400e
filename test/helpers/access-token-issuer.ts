import http from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  exportJWK,
  generateKeyPair,
  SignJWT,
  type CryptoKey,
  type JWK,
  type JWTPayload,
  type JWTHeaderParameters,
} from 'jose';

/**
 * A stand-in for our token service, as `oidc-machine-auth/verify` sees it: RFC 8414 metadata, a
 * JWKS and an RFC 7662 introspection endpoint on a real HTTP server at 127.0.0.1, and RFC 9068
 * access tokens minted with jose.
 *
 * The verifier tests only use the {@link AccessTokenIssuer} interface, so once the `token` branch
 * lands they can run against the real minting side too: implement the interface with
 * `createOidcAuth({ issuer, accessTokens: … })` mounted behind `http.createServer`, and pass it
 * where these tests call {@link startJoseIssuer}.
 */
export interface AccessTokenIssuer {
  /** The issuer URL, e.g. `http://127.0.0.1:<port>/api/v1/auth`. */
  readonly issuer: string;
  /** Mint an access token for `claims` (merged over iss/sub/aud/exp/iat/jti/client_id/scope defaults). */
  mint(claims?: JWTPayload, header?: Partial<JWTHeaderParameters>): Promise<string>;
  /** Publish a new signing key and sign with it from now on (the old one is dropped from the JWKS). */
  rotate(): Promise<void>;
  /** Make the introspection endpoint answer `active: false` for this `jti`. */
  revoke(jti: string): void;
  /** Requests served per path (`/.well-known/jwks.json`, …). */
  hits(path: string): number;
  close(): Promise<void>;
}

export interface JoseIssuerOptions {
  /** The issuer path. Default `/api/v1/auth`. */
  path?: string;
  /** Signing algorithm. Default `EdDSA` (Ed25519). */
  alg?: 'EdDSA' | 'ES256' | 'RS256';
  /** Which RFC 8414 metadata locations answer. Default both. */
  metadataAt?: 'inserted' | 'appended' | 'both';
  /** The `issuer` the metadata claims. Default: the real issuer. */
  metadataIssuer?: (issuer: string) => string;
  /** The Basic credentials the introspection endpoint requires. Default `verifier:s3cret`. */
  introspectionClient?: { id: string; secret: string };
}

interface Key {
  kid: string;
  privateKey: CryptoKey;
  publicJwk: JWK;
}

const ACCESS_TOKEN_TTL = 300;

export async function startJoseIssuer(options: JoseIssuerOptions = {}): Promise<AccessTokenIssuer> {
  const path = options.path ?? '/api/v1/auth';
  const alg = options.alg ?? 'EdDSA';
  const client = options.introspectionClient ?? { id: 'verifier', secret: 's3cret' };
  const metadataAt = options.metadataAt ?? 'both';
  const hits = new Map<string, number>();
  const revoked = new Set<string>();
  let generation = 0;
  const newKey = async (): Promise<Key> => {
    const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
    const kid = `k${++generation}`;
    return { kid, privateKey, publicJwk: { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' } };
  };
  let key = await newKey();
  let issuer = '';

  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    hits.set(url.pathname, (hits.get(url.pathname) ?? 0) + 1);
    const json = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
      res.end(JSON.stringify(body));
    };
    const metadata = () => ({
      issuer: options.metadataIssuer ? options.metadataIssuer(issuer) : issuer,
      jwks_uri: `${issuer}/.well-known/jwks.json`,
      token_endpoint: `${issuer}/oauth/token`,
      introspection_endpoint: `${issuer}/oauth/introspect`,
      grant_types_supported: ['urn:ietf:params:oauth:grant-type:token-exchange'],
    });
    if (
      req.method === 'GET' &&
      ((url.pathname === `/.well-known/oauth-authorization-server${path}` && metadataAt !== 'appended') ||
        (url.pathname === `${path}/.well-known/oauth-authorization-server` && metadataAt !== 'inserted'))
    ) {
      return json(200, metadata());
    }
    if (req.method === 'GET' && url.pathname === `${path}/.well-known/jwks.json`) {
      return json(200, { keys: [key.publicJwk] });
    }
    if (req.method === 'POST' && url.pathname === `${path}/oauth/introspect`) {
      const expected = `Basic ${Buffer.from(`${client.id}:${client.secret}`).toString('base64')}`;
      if (req.headers.authorization !== expected) return json(401, { error: 'invalid_client' });
      let body = '';
      req.on('data', (chunk: Buffer) => (body += chunk.toString()));
      req.on('end', () => {
        const token = new URLSearchParams(body).get('token') ?? '';
        const payload = JSON.parse(
          Buffer.from(token.split('.')[1] ?? '', 'base64url').toString() || '{}',
        ) as JWTPayload;
        const active = typeof payload.jti === 'string' && !revoked.has(payload.jti);
        json(
          200,
          active
            ? { active, sub: payload.sub, client_id: payload.client_id, exp: payload.exp }
            : { active: false },
        );
      });
      return;
    }
    json(404, { error: 'not_found' });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}${path}`;

  return {
    issuer,
    async mint(claims = {}, header = {}) {
      const now = Math.floor(Date.now() / 1000);
      return new SignJWT({
        iss: issuer,
        sub: 'repo:acme/app:ref:refs/heads/main',
        aud: 'https://api.example',
        iat: now,
        exp: now + ACCESS_TOKEN_TTL,
        jti: crypto.randomUUID(),
        client_id: 'ci-deployer',
        scope: 'secrets:read',
        ...claims,
      })
        .setProtectedHeader({ alg, typ: 'at+jwt', kid: key.kid, ...header })
        .sign(key.privateKey);
    },
    async rotate() {
      key = await newKey();
    },
    revoke(jti) {
      revoked.add(jti);
    },
    hits: (p) => hits.get(p) ?? 0,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
