import { describe, expect, it } from 'vitest';
import {
  authorizationServerMetadata,
  createOidcAuth,
  jwksAnswer,
  metadataAnswer,
  parseIdentityConfig,
  rootMetadataPath,
} from '../../src/index.js';
import { oauthMetadataHandler } from '../../adapters/express/index.js';
import { githubIdentity } from '../helpers/engine.js';
import { makeKey } from '../helpers/jwt.js';

const ISSUER = 'https://app.example/api/v1/auth';

describe('RFC 8414 metadata and the JWKS answer', () => {
  it('RFC 8414 §2: issuer, jwks_uri, response_types_supported; OAuth endpoints only when mounted', () => {
    expect(authorizationServerMetadata(ISSUER)).toEqual({
      issuer: ISSUER,
      jwks_uri: `${ISSUER}/.well-known/jwks.json`,
      response_types_supported: [],
    });
    expect(
      authorizationServerMetadata(ISSUER, { token: true, introspection: true, revocation: true }),
    ).toEqual({
      issuer: ISSUER,
      jwks_uri: `${ISSUER}/.well-known/jwks.json`,
      response_types_supported: [],
      token_endpoint: `${ISSUER}/oauth/token`,
      grant_types_supported: ['urn:ietf:params:oauth:grant-type:token-exchange'],
      token_endpoint_auth_methods_supported: ['none'],
      introspection_endpoint: `${ISSUER}/oauth/introspect`,
      revocation_endpoint: `${ISSUER}/oauth/revoke`,
    });
  });

  it('RFC 8414 §3.1: the root path inserts the well-known suffix before the issuer path', () => {
    expect(rootMetadataPath({ issuer: ISSUER })).toBe('/.well-known/oauth-authorization-server/api/v1/auth');
    expect(rootMetadataPath({ issuer: 'https://app.example' })).toBe(
      '/.well-known/oauth-authorization-server',
    );
    expect(rootMetadataPath({ issuer: undefined })).toBeUndefined();
  });

  it('without an issuer: the JWKS and metadata routes answer 404, the root handler refuses to mount', () => {
    const auth = createOidcAuth({ identities: [] });
    expect(jwksAnswer(auth).status).toBe(404);
    expect(metadataAnswer(auth)).toMatchObject({ status: 404, body: { reasonCode: 'invalid_config' } });
    expect(() => oauthMetadataHandler(auth)).toThrow(/issuer/);
  });

  it('the JWKS lists every key, the signing one first, public members only', () => {
    const auth = createOidcAuth({
      identities: [],
      issuer: ISSUER,
      accessTokens: {
        signingKeys: [
          { privateKey: makeKey('EdDSA').privateKey, kid: 'a' },
          { publicKey: makeKey('ES256').publicKey, kid: 'b' },
        ],
      },
    });
    const { body, headers } = jwksAnswer(auth);
    expect(headers['cache-control']).toBe('public, max-age=300');
    const keys = (body as { keys: Record<string, unknown>[] }).keys;
    expect(keys.map((k) => [k.kid, k.alg, k.use])).toEqual([
      ['a', 'EdDSA', 'sig'],
      ['b', 'ES256', 'sig'],
    ]);
    expect(keys.some((k) => 'd' in k)).toBe(false);
  });
});

describe('identity fields accessTokenFormat and accessTokenAudiences', () => {
  const key = makeKey('RS256');
  it('parse, default to absent, and refuse bad values naming the field', () => {
    const plain = parseIdentityConfig(githubIdentity(key));
    expect(plain.accessTokenFormat).toBeUndefined();
    expect(plain.accessTokenAudiences).toBeUndefined();
    const jwt = parseIdentityConfig(
      githubIdentity(key, {
        accessTokenFormat: 'jwt',
        accessTokenAudiences: 'https://a.example, https://b.example',
      }),
    );
    expect(jwt.accessTokenFormat).toBe('jwt');
    expect(jwt.accessTokenAudiences).toEqual(['https://a.example', 'https://b.example']);
    expect(() => parseIdentityConfig(githubIdentity(key, { accessTokenFormat: 'JWT' as 'jwt' }))).toThrow(
      /accessTokenFormat: must be "opaque" or "jwt"/,
    );
    expect(() => parseIdentityConfig(githubIdentity(key, { accessTokenAudiences: ['a\u0000b'] }))).toThrow(
      /accessTokenAudiences\[0\]/,
    );
    // Idempotent: a parsed config parses to an equal one (JSON round trip, as stores do).
    expect(parseIdentityConfig(JSON.parse(JSON.stringify(jwt)))).toEqual(jwt);
  });
});
