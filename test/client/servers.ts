import type { AddressInfo } from 'node:net';
import express, { type ErrorRequestHandler, type Request } from 'express';
import { auth } from 'express-oauth2-jwt-bearer';
import {
  calculateJwkThumbprint,
  EmbeddedJWK,
  exportJWK,
  generateKeyPair,
  jwtVerify,
  SignJWT,
  type CryptoKey,
  type JWK,
} from 'jose';

/**
 * A stand-in for a DPoP-enabled token service and resource server, built from parts nobody here
 * wrote: express-oauth2-jwt-bearer in its DPoP mode (`dpop: { required: true }`) guards
 * `/resource` and `/secrets/:name`, reading RFC 9068 access tokens signed with a local ES256 key from a JWKS on the same
 * 127.0.0.1 server. The login routes (`/api/v1/auth/oidc-auth/login`, `/api/v1/auth/oauth/token`)
 * check the IdP JWT against a local IdP key and the DPoP proof with jose's `EmbeddedJWK`
 * (RFC 9449 §4.3: typ, asymmetric alg, public jwk, htm, htu, iat, no ath), then mint a token whose
 * `cnf.jkt` is the proof key's RFC 7638 thumbprint (§6.1).
 */
export interface StandInServer {
  url: string;
  authUrl: string;
  issuer: string;
  audience: string;
  /** An IdP JWT the login routes take (subject `repo:acme/app`). */
  mintIdpToken(): Promise<string>;
  /** An access token bound to `jkt` (or unbound when undefined), as the login routes mint them. */
  mintAccessToken(jkt: string | undefined): Promise<string>;
  /** When set, the login routes refuse a proof without this nonce (RFC 9449 §8): 400 on /oauth/token, 401 on the login. */
  requireNonce: string | undefined;
  /** The identities the login route takes (default `deployer`). */
  identities: Set<string>;
  /** When true, the login routes answer `token_type: "Bearer"` (a server that ignored the proof). */
  answerBearer: boolean;
  /** DPoP proofs the login routes received, decoded (header and claims). */
  proofs: Array<{ header: Record<string, unknown>; claims: Record<string, unknown> }>;
  close(): Promise<void>;
}

const PROOF_WINDOW_SECONDS = 60;

export async function startStandInServer(): Promise<StandInServer> {
  const signing = await generateKeyPair('ES256');
  const idp = await generateKeyPair('ES256');
  const jwk: JWK = { ...(await exportJWK(signing.publicKey)), kid: 'as-1', alg: 'ES256', use: 'sig' };
  const app = express();
  app.set('trust proxy', false);
  const server = app.listen(0, '127.0.0.1');
  await new Promise<void>((resolve) => server.once('listening', () => resolve()));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const issuer = `${url}/api/v1/auth`;
  const audience = 'https://api.example';

  const state: StandInServer = {
    url,
    authUrl: issuer,
    issuer,
    audience,
    requireNonce: undefined,
    identities: new Set(['deployer']),
    answerBearer: false,
    proofs: [],
    mintIdpToken: () =>
      new SignJWT({ sub: 'repo:acme/app' })
        .setProtectedHeader({ alg: 'ES256' })
        .setIssuer('https://idp.example')
        .setAudience(audience)
        .setIssuedAt()
        .setExpirationTime('5m')
        .sign(idp.privateKey),
    mintAccessToken: (jkt) => mintAccessToken(signing.privateKey, issuer, audience, jkt),
    // Keep-alive connections a client still holds would keep close() waiting (Deno's fetch keeps
    // them longer than a test's timeout): they are closed with the server.
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections?.();
      }),
  };

  app.get('/api/v1/auth/.well-known/jwks.json', (_req, res) => {
    res.json({ keys: [jwk] });
  });

  /** The proof's key thumbprint, or an error answer per RFC 9449 §4.3 / §8. */
  async function checkProof(
    req: Request,
    nonceStatus: 400 | 401,
  ): Promise<{ jkt: string } | { status: number; error: string }> {
    const proof = req.headers.dpop;
    if (typeof proof !== 'string') return { status: 400, error: 'invalid_dpop_proof' };
    try {
      const { payload, protectedHeader } = await jwtVerify(proof, EmbeddedJWK, {
        typ: 'dpop+jwt',
        algorithms: ['ES256', 'ES384', 'ES512', 'EdDSA', 'PS256', 'PS384', 'PS512', 'RS256'],
      });
      state.proofs.push({ header: { ...protectedHeader }, claims: { ...payload } });
      const now = Math.floor(Date.now() / 1000);
      const ok =
        payload.htm === req.method &&
        payload.htu === `${req.protocol}://${req.get('host')}${req.path}` &&
        typeof payload.iat === 'number' &&
        Math.abs(payload.iat - now) <= PROOF_WINDOW_SECONDS &&
        typeof payload.jti === 'string' &&
        payload.ath === undefined &&
        !('d' in protectedHeader.jwk!);
      if (!ok) return { status: 400, error: 'invalid_dpop_proof' };
      if (state.requireNonce !== undefined && payload.nonce !== state.requireNonce) {
        return { status: nonceStatus, error: 'use_dpop_nonce' };
      }
      return { jkt: await calculateJwkThumbprint(protectedHeader.jwk!) };
    } catch {
      return { status: 400, error: 'invalid_dpop_proof' };
    }
  }

  async function idpTokenValid(token: unknown): Promise<boolean> {
    if (typeof token !== 'string') return false;
    return jwtVerify(token, idp.publicKey, { issuer: 'https://idp.example', audience }).then(
      () => true,
      () => false,
    );
  }

  app.post('/api/v1/auth/oidc-auth/login', express.json(), async (req, res) => {
    const proof = await checkProof(req, 401);
    if ('error' in proof) {
      if (proof.error === 'use_dpop_nonce') {
        res.set('DPoP-Nonce', state.requireNonce!);
        res.set('WWW-Authenticate', 'DPoP error="use_dpop_nonce", error_description="Resend with the nonce"');
      }
      res
        .status(proof.status)
        .json({ statusCode: proof.status, reasonCode: proof.error, message: 'refused' });
      return;
    }
    const body = req.body as { identityId?: unknown; jwt?: unknown };
    if (
      typeof body.identityId !== 'string' ||
      !state.identities.has(body.identityId) ||
      !(await idpTokenValid(body.jwt))
    ) {
      res.status(401).json({ statusCode: 401, reasonCode: 'invalid_credentials', message: 'refused' });
      return;
    }
    res.json({
      accessToken: await state.mintAccessToken(state.answerBearer ? undefined : proof.jkt),
      expiresIn: 600,
      accessTokenMaxTTL: 3600,
      tokenType: state.answerBearer ? 'Bearer' : 'DPoP',
    });
  });

  app.post('/api/v1/auth/oauth/token', express.urlencoded({ extended: false }), async (req, res) => {
    res.set('cache-control', 'no-store');
    const proof = await checkProof(req, 400);
    if ('error' in proof) {
      if (proof.error === 'use_dpop_nonce') res.set('DPoP-Nonce', state.requireNonce!);
      res.status(400).json({ error: proof.error, error_description: 'refused' });
      return;
    }
    const body = req.body as Record<string, unknown>;
    if (
      body.grant_type !== 'urn:ietf:params:oauth:grant-type:token-exchange' ||
      body.subject_token_type !== 'urn:ietf:params:oauth:token-type:jwt' ||
      !(await idpTokenValid(body.subject_token))
    ) {
      res.status(400).json({ error: 'invalid_grant', error_description: 'refused' });
      return;
    }
    res.json({
      access_token: await state.mintAccessToken(proof.jkt),
      issued_token_type: 'urn:ietf:params:oauth:token-type:access_token',
      token_type: 'DPoP',
      expires_in: 600,
    });
  });

  const guard = auth({
    issuer,
    audience,
    jwksUri: `${issuer}/.well-known/jwks.json`,
    tokenSigningAlg: 'ES256',
    strict: true,
    dpop: { enabled: true, required: true },
  });
  const answer = (req: Request, res: express.Response) => {
    // express-oauth2-jwt-bearer puts its result on req.auth (our express adapter types that name too).
    const result = (req as unknown as { auth?: { payload: { sub?: string } } }).auth;
    res.json({ sub: result?.payload.sub, method: req.method });
  };
  app.get('/resource', guard, answer);
  app.post('/resource', express.json(), guard, answer);
  app.get('/secrets/:name', guard, answer);
  const renderError: ErrorRequestHandler = (
    err: { status?: number; headers?: Record<string, string>; code?: string },
    _req,
    res,
    _next,
  ) => {
    res
      .status(err.status ?? 500)
      .set(err.headers ?? {})
      .json({ error: err.code ?? 'server_error' });
  };
  app.use(renderError);
  return state;
}

async function mintAccessToken(
  key: CryptoKey,
  issuer: string,
  audience: string,
  jkt: string | undefined,
): Promise<string> {
  return new SignJWT({ client_id: 'deployer', ...(jkt ? { cnf: { jkt } } : {}) })
    .setProtectedHeader({ alg: 'ES256', kid: 'as-1', typ: 'at+jwt' })
    .setIssuer(issuer)
    .setAudience(audience)
    .setSubject('deployer')
    .setJti(crypto.randomUUID())
    .setIssuedAt()
    .setExpirationTime('10m')
    .sign(key);
}
