/**
 * Service A on its own:
 *
 *   ISSUER=https://a.example/api/v1/auth AUDIENCE_B=https://b.example AT_KEY_PEM="$(cat ed25519.pem)" \
 *   IDP=https://token.actions.githubusercontent.com SUBJECT=repo:acme/app:ref:refs/heads/main \
 *   IDP_AUDIENCE=https://github.com/acme B_CLIENT_ID=service-b B_CLIENT_SECRET=… \
 *   npx tsx examples/two-services/server-a.ts
 *
 * `AT_KEY_PEM` is an Ed25519 private key (PKCS#8 PEM: `openssl genpkey -algorithm ed25519`). `PORT`
 * (default 8080) and `HOST` (default `127.0.0.1`) say where to listen; `ISSUER` must be the URL
 * clients reach, ending with `/api/v1/auth`.
 */
import { createServiceA } from './service-a.js';

const env = process.env;
const required = [
  'ISSUER',
  'AUDIENCE_B',
  'AT_KEY_PEM',
  'IDP',
  'SUBJECT',
  'IDP_AUDIENCE',
  'B_CLIENT_ID',
  'B_CLIENT_SECRET',
];
const missing = required.filter((name) => !env[name]);
if (missing.length > 0) throw new Error(`set ${missing.join(', ')}`);

const { app, auth } = createServiceA({
  issuer: env.ISSUER!,
  audienceOfB: env.AUDIENCE_B!,
  signingKey: env.AT_KEY_PEM!,
  ciIdentity: {
    oidcDiscoveryUrl: env.IDP!,
    boundIssuer: env.IDP!,
    boundSubject: env.SUBJECT!,
    boundAudiences: env.IDP_AUDIENCE!,
  },
  serviceB: { clientId: env.B_CLIENT_ID!, clientSecret: env.B_CLIENT_SECRET! },
});
const server = app.listen(Number(env.PORT ?? 8080), env.HOST ?? '127.0.0.1', () =>
  console.log(`service A listening, issuer ${env.ISSUER}`),
);
for (const signal of ['SIGINT', 'SIGTERM'] as const)
  process.once(signal, () => server.close(() => void auth.close().then(() => process.exit(0))));
