import { createHash, timingSafeEqual, type KeyObject } from 'node:crypto';
import express, { type Express, type RequestHandler } from 'express';
import {
  oauthMetadataHandler,
  oidcAuthRouter,
  oidcIntrospectionRouter,
} from '../../adapters/express/index.js';
import { createOidcAuth, type IdentityConfigInput, type OidcAuth } from '../../src/index.js';

/** Where service A mounts its auth routes; the issuer URL ends with it. */
export const AUTH_PREFIX = '/api/v1/auth';

/** Options of {@link createServiceA}. */
export interface ServiceAOptions {
  /** A's issuer URL, exactly as clients see it: `https://a.example/api/v1/auth`. */
  issuer: string;
  /** B's audience: the `aud` A puts in tokens for B. */
  audienceOfB: string;
  /** The Ed25519 key that signs A's JWT access tokens (PEM, JWK or `KeyObject`). */
  signingKey: string | KeyObject;
  /** How A trusts the CI job's IdP token (discovery URL, bound issuer/subject/audience, …). */
  ciIdentity: Pick<
    IdentityConfigInput,
    'oidcDiscoveryUrl' | 'boundIssuer' | 'boundSubject' | 'boundAudiences' | 'allowInsecureLoopback'
  >;
  /** B's client credentials for introspection (RFC 7662 section 2.1), sent as HTTP Basic. */
  serviceB: { clientId: string; clientSecret: string };
}

/**
 * RFC 6749 section 2.3.1: the client id and secret are form-urlencoded, joined by `:`, base64 in an
 * HTTP Basic header. Accepts exactly B's credentials; everything else is 401 `invalid_client`.
 */
export function basicClientGuard(clientId: string, clientSecret: string): RequestHandler {
  const digest = (text: string) => createHash('sha256').update(text).digest();
  const expected = digest(`${clientId}:${clientSecret}`);
  const decode = (text: string) => decodeURIComponent(text.replace(/\+/g, ' '));
  return (req, res, next) => {
    const match = /^Basic ([A-Za-z0-9+/]+=*)$/i.exec(req.headers.authorization ?? '');
    const [id = '', secret = ''] = match ? Buffer.from(match[1]!, 'base64').toString('utf8').split(':') : [];
    let given = '';
    try {
      given = `${decode(id)}:${decode(secret)}`;
    } catch {
      given = ''; // malformed percent-encoding
    }
    // Compare digests in constant time, so the answer's timing says nothing about the secret.
    if (match && timingSafeEqual(digest(given), expected)) return next();
    res.status(401).set('www-authenticate', 'Basic').json({ error: 'invalid_client' });
  };
}

/**
 * Service A: exchanges CI/workload OIDC tokens (RFC 8693) for RFC 9068 JWT access tokens that
 * service B verifies with nothing but A's issuer URL. A publishes its RFC 8414 metadata and JWKS, and
 * lets B, by its client credentials, introspect (RFC 7662) and revoke (RFC 7009) tokens.
 */
export function createServiceA(options: ServiceAOptions): { app: Express; auth: OidcAuth } {
  const auth = createOidcAuth({
    issuer: options.issuer,
    accessTokens: { signingKeys: [{ kid: 'a-1', privateKey: options.signingKey }] },
    identities: [
      {
        identityId: 'ci',
        ...options.ciIdentity,
        accessTokenFormat: 'jwt',
        accessTokenTTL: 300, // JWTs are checked elsewhere without A: keep them short-lived
        accessTokenAudiences: [options.audienceOfB],
        scopes: ['reports:read', 'reports:write'],
      },
    ],
  });

  const app = express();
  // RFC 8414 section 3.1: /.well-known/oauth-authorization-server/api/v1/auth at the host root.
  app.use(oauthMetadataHandler(auth));
  // Login, POST /oauth/token (token exchange), the JWKS and the appended metadata location.
  app.use(AUTH_PREFIX, oidcAuthRouter(auth));
  // POST /oauth/introspect and /oauth/revoke, for B only (the metadata lists them once this is built).
  const guard = basicClientGuard(options.serviceB.clientId, options.serviceB.clientSecret);
  app.use(AUTH_PREFIX, oidcIntrospectionRouter(auth, { guard }));
  return { app, auth };
}
