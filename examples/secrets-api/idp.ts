import { generateKeyPairSync } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { JWK } from 'jose';
import type Provider from 'oidc-provider';

/** The audience `az account get-access-token --resource api://AzureADTokenExchange` asks for. */
export const AZURE_TOKEN_EXCHANGE_AUDIENCE = 'api://AzureADTokenExchange';

/** The demo service connection's client (app) id; client-credentials tokens carry it as `sub`. */
export const PIPELINE_CLIENT_ID = 'c3d4e5f6-0718-4293-a4b5-c6d7e8f9a0b1';
/** The demo client's secret (client_secret_basic at the token endpoint). */
export const PIPELINE_CLIENT_SECRET = 'demo-service-connection-secret-not-for-production';

/** Tenant id put into every token as `tid`, like an Entra token (TOKEN-SHAPES B2d). */
export const DEMO_TENANT_ID = '7f3a2c1e-5b4d-4e6f-9a8b-0c1d2e3f4a5b';

/** Lifetime of the IdP's access tokens, in seconds. */
export const TOKEN_TTL_SECONDS = 3600;

/** Requests that reached the IdP, by path. */
export interface IdpRequestCounts {
  /** `GET /.well-known/openid-configuration`. */
  discovery: number;
  /** `GET /jwks`. */
  jwks: number;
  /** `POST /token`. */
  token: number;
}

/** A running OpenID provider on loopback. */
export interface DemoIdp {
  /** The issuer (`iss` of its tokens, base of its discovery URL). */
  readonly issuer: string;
  /** Where it actually listens (differs from `issuer` for a provider impersonating another one). */
  readonly url: string;
  /** The `kid` currently signing tokens. */
  readonly signingKid: string;
  /** Requests that reached it, by path, since start or the last {@link DemoIdp.resetCounts}. */
  readonly counts: Readonly<IdpRequestCounts>;
  resetCounts(): void;
  /**
   * A client-credentials access token (a JWT, RS256) for `audience`.
   * @param audience The resource indicator, which becomes `aud`. Default `api://AzureADTokenExchange`.
   */
  token(audience?: string): Promise<string>;
  /** Sign with a fresh key from now on; the JWKS then publishes the new key first and the old one after it. */
  rotateKeys(): Promise<void>;
  close(): Promise<void>;
}

/** Options of {@link startIdp}. */
export interface StartIdpOptions {
  /**
   * The issuer to claim. Default: its own `http://127.0.0.1:<port>`. Give another provider's issuer to
   * start a rogue provider that impersonates it with its own keys.
   */
  issuer?: string;
}

interface RsaKey {
  kid: string;
  jwk: JWK;
}

function newKey(kid: string): RsaKey {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { kid, jwk: { ...(privateKey.export({ format: 'jwk' }) as JWK), kid, alg: 'RS256', use: 'sig' } };
}

let providerClass: Promise<typeof Provider> | undefined;

/**
 * oidc-provider prints notices when imported on Node 20 and for development defaults; the demo must
 * print only its own steps, so its `oidc-provider …` console lines are dropped while it loads.
 */
function loadProvider(): Promise<typeof Provider> {
  providerClass ??= (async () => {
    const { warn, info } = console;
    const quiet =
      (write: (...args: unknown[]) => void) =>
      (...args: unknown[]) => {
        if (typeof args[0] === 'string' && args[0].includes('oidc-provider ')) return;
        write(...args);
      };
    console.warn = quiet(warn);
    console.info = quiet(info);
    try {
      return (await import('oidc-provider')).default;
    } finally {
      console.warn = warn;
      console.info = info;
    }
  })();
  return providerClass;
}

/** A Map-backed oidc-provider adapter (the bundled one warns that it is for development only). */
function memoryAdapter() {
  const store = new Map<string, Record<string, unknown>>();
  return (model: string) => ({
    async upsert(id: string, payload: Record<string, unknown>) {
      store.set(`${model}:${id}`, payload);
    },
    async find(id: string) {
      return store.get(`${model}:${id}`);
    },
    async findByUid() {
      return undefined;
    },
    async findByUserCode() {
      return undefined;
    },
    async consume(id: string) {
      const payload = store.get(`${model}:${id}`);
      if (payload) payload.consumed = Math.floor(Date.now() / 1000);
    },
    async destroy(id: string) {
      store.delete(`${model}:${id}`);
    },
    async revokeByGrantId() {},
  });
}

async function buildProvider(issuer: string, keys: readonly RsaKey[]): Promise<Provider> {
  const ProviderClass = await loadProvider();
  const provider = new ProviderClass(issuer, {
    adapter: memoryAdapter(),
    clients: [
      {
        client_id: PIPELINE_CLIENT_ID,
        client_secret: PIPELINE_CLIENT_SECRET,
        grant_types: ['client_credentials'],
        redirect_uris: [],
        response_types: [],
        token_endpoint_auth_method: 'client_secret_basic',
      },
    ],
    jwks: { keys: keys.map((key) => key.jwk) },
    cookies: { keys: ['demo-idp-cookie-key-not-for-production'] },
    // Entra access tokens live 60-90 min; one hour, fixed, keeps the demo deterministic.
    ttl: { ClientCredentials: TOKEN_TTL_SECONDS },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => AZURE_TOKEN_EXCHANGE_AUDIENCE,
        getResourceServerInfo: (_ctx: unknown, resource: string) => ({
          scope: '',
          audience: resource,
          accessTokenFormat: 'jwt',
          accessTokenTTL: TOKEN_TTL_SECONDS,
          jwt: { sign: { alg: 'RS256' } },
        }),
      },
    },
    // Claims an Entra app-only token carries (TOKEN-SHAPES B2d), so bindings look like the real ones.
    extraTokenClaims: () => ({
      tid: DEMO_TENANT_ID,
      appid: PIPELINE_CLIENT_ID,
      oid: '0a1b2c3d-4e5f-4607-8192-a3b4c5d6e7f8',
      idtyp: 'app',
      ver: '1.0',
    }),
  });
  provider.silent = true;
  return provider;
}

/**
 * Start a real OpenID provider (oidc-provider) on `127.0.0.1`, random port, with one
 * client-credentials client whose tokens are RS256 JWT access tokens for the requested resource,
 * like Entra's answer to `az account get-access-token --resource api://AzureADTokenExchange`.
 */
export async function startIdp(options: StartIdpOptions = {}): Promise<DemoIdp> {
  const counts: IdpRequestCounts = { discovery: 0, jwks: 0, token: 0 };
  let handler: ((req: http.IncomingMessage, res: http.ServerResponse) => void) | undefined;
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '').split('?', 1)[0];
    if (path === '/.well-known/openid-configuration') counts.discovery++;
    else if (path === '/jwks') counts.jwks++;
    else if (path === '/token') counts.token++;
    if (!handler) {
      res.writeHead(503).end();
      return;
    }
    handler(req, res);
  });
  server.keepAliveTimeout = 1000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const issuer = options.issuer ?? url;

  let generation = 1;
  let keys: RsaKey[] = [newKey('idp-key-1')];
  handler = (await buildProvider(issuer, keys)).callback();

  async function token(audience = AZURE_TOKEN_EXCHANGE_AUDIENCE): Promise<string> {
    const basic = Buffer.from(`${PIPELINE_CLIENT_ID}:${PIPELINE_CLIENT_SECRET}`).toString('base64');
    const response = await fetch(`${url}/token`, {
      method: 'POST',
      headers: { authorization: `Basic ${basic}`, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'client_credentials', resource: audience }),
    });
    const body = (await response.json()) as { access_token?: unknown; error?: unknown };
    if (!response.ok || typeof body.access_token !== 'string') {
      throw new Error(`the IdP refused the token request (${response.status} ${String(body.error)})`);
    }
    return body.access_token;
  }

  return {
    issuer,
    url,
    get signingKid() {
      return keys[0]!.kid;
    },
    counts,
    resetCounts() {
      counts.discovery = counts.jwks = counts.token = 0;
    },
    token,
    async rotateKeys() {
      keys = [newKey(`idp-key-${++generation}`), keys[0]!];
      handler = (await buildProvider(issuer, keys)).callback();
    },
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((error) => (error ? reject(error) : resolve()));
        server.closeAllConnections();
      }),
  };
}
