/**
 * Runs `oidc-machine-auth/verify` on whichever runtime executes this file (Node, Deno, Bun) against
 * a tiny RFC 9068 issuer served by that runtime's own HTTP server (Deno.serve, Bun.serve, or
 * node:http on Node), with tokens minted by jose. Prints one JSON line with every check's result and
 * exits 0 only when each check came out as expected.
 *
 *   deno run --allow-net --allow-read --allow-env --unstable-sloppy-imports test/runtimes/verify-smoke.ts
 *   bun test/runtimes/verify-smoke.ts
 *
 * `VERIFY_MODULE` (a file URL) picks the module under test; default: this checkout's source.
 */
import {
  base64url,
  exportJWK,
  generateKeyPair,
  SignJWT,
  type CryptoKey,
  type JWK,
  type JWTPayload,
} from 'jose';
import type * as VerifyModule from '../../src/verify/index.js';

type Handler = (request: Request) => Response | Promise<Response>;
interface Served {
  port: number;
  close(): Promise<void>;
}

interface DenoLike {
  serve(
    options: { port: number; hostname: string; onListen?: () => void },
    handler: Handler,
  ): { addr: { port: number }; shutdown(): Promise<void> };
  env: { get(name: string): string | undefined };
}
interface BunLike {
  serve(options: { port: number; hostname: string; fetch: Handler }): {
    port: number;
    stop(force?: boolean): void;
  };
  version: string;
  env: Record<string, string | undefined>;
}
const runtime = globalThis as unknown as { Deno?: DenoLike; Bun?: BunLike };

function runtimeName(): string {
  if (runtime.Deno) return 'deno';
  if (runtime.Bun) return 'bun';
  return 'node';
}

async function serve(handler: Handler): Promise<Served> {
  if (runtime.Deno) {
    const server = runtime.Deno.serve({ port: 0, hostname: '127.0.0.1', onListen: () => undefined }, handler);
    return { port: server.addr.port, close: () => server.shutdown() };
  }
  if (runtime.Bun) {
    const server = runtime.Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: handler });
    return { port: server.port, close: async () => server.stop(true) };
  }
  const http = await import('node:http');
  const server = http.createServer(async (req, res) => {
    const chunks: Uint8Array[] = [];
    for await (const chunk of req) chunks.push(chunk as Uint8Array);
    const body = chunks.length > 0 ? new Uint8Array(Buffer.concat(chunks)) : undefined;
    const answer = await handler(
      new Request(`http://127.0.0.1${req.url}`, {
        method: req.method,
        headers: req.headers as Record<string, string>,
        ...(body && req.method !== 'GET' ? { body } : {}),
      }),
    );
    res.writeHead(answer.status, Object.fromEntries(answer.headers));
    res.end(new Uint8Array(await answer.arrayBuffer()));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address() as { port: number };
  return {
    port: address.port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function env(name: string): string | undefined {
  if (runtime.Deno) return runtime.Deno.env.get(name);
  if (runtime.Bun) return runtime.Bun.env[name];
  return (globalThis as unknown as { process: { env: Record<string, string | undefined> } }).process.env[
    name
  ];
}

const PATH = '/api/v1/auth';
const AUDIENCE = 'https://api.example';

async function main(): Promise<boolean> {
  const moduleUrl = env('VERIFY_MODULE');
  const { createVerifier } = (await (moduleUrl
    ? import(moduleUrl)
    : import('../../src/verify/index.js'))) as typeof VerifyModule;

  const hits = new Map<string, number>();
  const revoked = new Set<string>();
  let key: { kid: string; privateKey: CryptoKey; jwk: JWK };
  let generation = 0;
  const rotate = async () => {
    const { privateKey, publicKey } = await generateKeyPair('Ed25519');
    const kid = `k${++generation}`;
    key = { kid, privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg: 'Ed25519', use: 'sig' } };
  };
  await rotate();
  let issuer = '';
  const json = (body: unknown, status = 200) =>
    new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });

  const server = await serve(async (request) => {
    const { pathname } = new URL(request.url);
    hits.set(pathname, (hits.get(pathname) ?? 0) + 1);
    const metadata = (iss: string) => ({
      issuer: iss,
      jwks_uri: `${issuer}/.well-known/jwks.json`,
      introspection_endpoint: `${issuer}/oauth/introspect`,
    });
    if (pathname === `/.well-known/oauth-authorization-server${PATH}`) return json(metadata(issuer));
    if (pathname === `/.well-known/oauth-authorization-server/liar`) return json(metadata(issuer));
    if (pathname === `${PATH}/.well-known/jwks.json`) return json({ keys: [key.jwk] });
    if (pathname === `${PATH}/oauth/introspect` && request.method === 'POST') {
      if (request.headers.get('authorization') !== `Basic ${btoa('rs:secret')}`) return json({}, 401);
      const token = new URLSearchParams(await request.text()).get('token') ?? '';
      const payload = JSON.parse(
        new TextDecoder().decode(base64url.decode(token.split('.')[1]!)),
      ) as JWTPayload;
      return json({ active: !revoked.has(String(payload.jti)) });
    }
    return json({ error: 'not_found' }, 404);
  });
  const origin = `http://127.0.0.1:${server.port}`;
  issuer = `${origin}${PATH}`;

  const mint = (claims: JWTPayload = {}, header: Record<string, unknown> = {}) => {
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT({
      iss: issuer,
      sub: 'svc-a',
      aud: AUDIENCE,
      iat: now,
      exp: now + 300,
      jti: crypto.randomUUID(),
      client_id: 'ci',
      scope: 'read',
      ...claims,
    })
      .setProtectedHeader({ alg: 'Ed25519', typ: 'at+jwt', kid: key.kid, ...header })
      .sign(key.privateKey);
  };
  const options = {
    issuer,
    audience: AUDIENCE,
    allowInsecureLoopback: true,
    jwks: { cooldownSeconds: 0 },
    introspection: { clientId: 'rs', clientSecret: 'secret' },
  };
  const verifier = createVerifier(options);
  const code = (promise: Promise<unknown>) =>
    promise.then(
      () => 'accepted',
      (e: { code?: string }) => e.code ?? `unexpected: ${String(e)}`,
    );

  const results: Record<string, unknown> = {};
  const expected: Record<string, unknown> = {};
  const check = (name: string, actual: unknown, want: unknown) => {
    results[name] = actual;
    expected[name] = want;
  };

  try {
    const good = await mint();
    check('valid', (await verifier.verify(good)).sub, 'svc-a');
    check('idTokenTypJWT', await code(verifier.verify(await mint({}, { typ: 'JWT' }))), 'token_type_invalid');
    const payload = good.split('.')[1];
    const none = `${base64url.encode(JSON.stringify({ alg: 'none', typ: 'at+jwt' }))}.${payload}.`;
    check('algNone', await code(verifier.verify(none)), 'algorithm_not_allowed');
    check(
      'wrongAudience',
      await code(verifier.verify(await mint({ aud: 'https://x.example' }))),
      'audience_mismatch',
    );
    const now = Math.floor(Date.now() / 1000);
    check(
      'expired',
      await code(verifier.verify(await mint({ iat: now - 900, exp: now - 600 }))),
      'token_expired',
    );
    check('nbfFuture', await code(verifier.verify(await mint({ nbf: now + 600 }))), 'token_not_yet_valid');
    check(
      'otherIssuer',
      await code(verifier.verify(await mint({ iss: 'https://idp.example' }))),
      'issuer_mismatch',
    );
    const liar = createVerifier({ ...options, issuer: `${origin}/liar` });
    check(
      'metadataIssuerMismatch',
      await code(liar.verify(await mint({ iss: `${origin}/liar` }))),
      'metadata_issuer_mismatch',
    );

    await rotate();
    const before = hits.get(`${PATH}/.well-known/jwks.json`) ?? 0;
    const rotated = await Promise.all(Array.from({ length: 50 }, () => mint()));
    const accepted = await Promise.all(rotated.map((t) => code(verifier.verify(t))));
    check('rotationAccepted', accepted.filter((c) => c === 'accepted').length, 50);
    check('rotationJwksFetches', (hits.get(`${PATH}/.well-known/jwks.json`) ?? 0) - before, 1);

    const jti = crypto.randomUUID();
    const live = await mint({ jti });
    check('introspectActive', await code(verifier.verify(live, { introspect: true })), 'accepted');
    revoked.add(jti);
    check('introspectRevoked', await code(verifier.verify(live, { introspect: true })), 'token_inactive');
  } finally {
    await server.close();
  }

  const ok = JSON.stringify(results) === JSON.stringify(expected);
  console.log(JSON.stringify({ runtime: runtimeName(), ok, results, ...(ok ? {} : { expected }) }));
  return ok;
}

const ok = await main().catch((error: unknown) => {
  console.log(JSON.stringify({ runtime: runtimeName(), ok: false, error: String(error) }));
  return false;
});
if (!ok) {
  const exit = (globalThis as unknown as { process?: { exit(code: number): never } }).process?.exit;
  if (runtime.Deno) (runtime.Deno as unknown as { exit(code: number): never }).exit(1);
  else exit?.(1);
}
