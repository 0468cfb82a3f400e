/**
 * `npm start`: the whole flow over real HTTP on loopback. A real OpenID provider (oidc-provider)
 * issues an Azure-like token, the secrets API exchanges it for its own access token, and the token
 * reads, renews and revokes; then the refusals a pipeline author meets, and the secrets-api README's pipeline
 * step run as is with curl and jq. Exits 0 only when every step behaved as expected.
 */
import { decodeJwt, decodeProtectedHeader } from 'jose';
import { createOidcAuth, type OidcAuth } from '../../src/index.js';
import { createSecretsApp, listen, type RunningServer } from './app.js';
import { IDENTITY_ID, WORKSPACE_SLUG as WORKSPACE, pipelineIdentity } from './identity.js';
import { AZURE_TOKEN_EXCHANGE_AUDIENCE, PIPELINE_CLIENT_ID, startIdp, type DemoIdp } from './idp.js';
import { hasPipelineTools, runPipelineStep } from './pipeline.js';

/** The value of DATABASE_URL in workspace payments-api, environment prod, of secrets.json. */
const EXPECTED_SECRET = 'postgres://payments:demo-only@db.prod.internal:5432/payments';

const tty = process.stdout.isTTY === true;
const paint = (code: number, text: string) => (tty ? `\x1b[${code}m${text}\x1b[0m` : text);
const say = (line = '') => console.log(line);
const indent = (text: string) => text.replace(/^/gm, '    ');
const show = (value: unknown) => say(indent(JSON.stringify(value, null, 2)));

/** A token shown without being usable: its first characters and its length. */
function mask(token: unknown): string {
  return typeof token === 'string' ? `${token.slice(0, 10)}…(${token.length} chars)` : String(token);
}

/** An answer body with every token in it masked. */
function masked(body: unknown): unknown {
  if (typeof body !== 'object' || body === null) return body;
  const copy: Record<string, unknown> = { ...(body as Record<string, unknown>) };
  if ('accessToken' in copy) copy.accessToken = mask(copy.accessToken);
  return copy;
}

class StepFailed extends Error {}

let checks = 0;
function check(ok: boolean, what: string): void {
  checks++;
  say(`  ${ok ? paint(32, '✔') : paint(31, '✘')} ${what}`);
  if (!ok) throw new StepFailed(what);
}

let stepNumber = 0;
let skipped = 0;
function step(title: string): void {
  say();
  say(paint(1, `[${++stepNumber}] ${title}`));
}

interface Answer {
  status: number;
  body: Record<string, unknown>;
}

async function call(url: string, init: RequestInit = {}): Promise<Answer> {
  const response = await fetch(url, init);
  const text = await response.text();
  let body: Record<string, unknown>;
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch {
    body = { text };
  }
  return { status: response.status, body };
}

const postForm = (url: string, fields: Record<string, string>) =>
  call(url, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(fields),
  });

const postJson = (url: string, body: unknown) =>
  call(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

const getSecrets = (app: string, token: string, workspace = WORKSPACE) =>
  call(`${app}/api/v3/secrets/raw?environment=prod&workspaceSlug=${workspace}`, {
    headers: { authorization: `Bearer ${token}` },
  });

async function flow(idp: DemoIdp, app: string): Promise<void> {
  const login = `${app}/api/v1/auth/oidc-auth/login`;

  step(
    'The pipeline asks its IdP for a token (az account get-access-token --resource api://AzureADTokenExchange)',
  );
  const idpToken = await idp.token();
  say(`    token: ${mask(idpToken)}`);
  say('    header:');
  show(decodeProtectedHeader(idpToken));
  say('    claims:');
  const claims = decodeJwt(idpToken);
  show(claims);
  check(claims.aud === AZURE_TOKEN_EXCHANGE_AUDIENCE, `aud is ${AZURE_TOKEN_EXCHANGE_AUDIENCE}`);
  check(
    claims.iss === idp.issuer && claims.sub === PIPELINE_CLIENT_ID,
    'iss is the IdP, sub is the client id',
  );

  step(`Login: POST /api/v1/auth/oidc-auth/login (form-urlencoded, identityId=${IDENTITY_ID})`);
  const granted = await postForm(login, { identityId: IDENTITY_ID, jwt: idpToken });
  say(`    ${granted.status}`);
  show(masked(granted.body));
  check(granted.status === 200, 'answered 200');
  check(
    granted.body.tokenType === 'Bearer' &&
      granted.body.expiresIn === 600 &&
      granted.body.accessTokenMaxTTL === 3600,
    'a Bearer token for 600 s, renewable up to 3600 s',
  );
  const accessToken = String(granted.body.accessToken);

  step(`Read secrets: GET /api/v3/secrets/raw?environment=prod&workspaceSlug=${WORKSPACE}`);
  const read = await getSecrets(app, accessToken);
  say(`    ${read.status}`);
  const secrets = Array.isArray(read.body.secrets)
    ? (read.body.secrets as Array<Record<string, unknown>>)
    : [];
  for (const secret of secrets) say(`    ${String(secret.secretKey)} = ${String(secret.secretValue)}`);
  check(read.status === 200, 'answered 200');
  check(
    secrets.some((s) => s.secretKey === 'DATABASE_URL' && s.secretValue === EXPECTED_SECRET),
    'DATABASE_URL is among them',
  );

  step('Read another workspace: GET /api/v3/secrets/raw?environment=prod&workspaceSlug=billing-worker');
  const other = await getSecrets(app, accessToken, 'billing-worker');
  say(`    ${other.status}`);
  show(other.body);
  check(
    other.status === 403 && other.body.reasonCode === 'forbidden',
    "403 forbidden: the identity's metadata grants payments-api only",
  );

  step('Renew: POST /api/v1/auth/token/renew {accessToken}');
  const renewed = await postJson(`${app}/api/v1/auth/token/renew`, { accessToken });
  say(`    ${renewed.status}`);
  show(masked(renewed.body));
  check(renewed.status === 200 && typeof renewed.body.accessToken === 'string', 'answered 200 with a token');
  const renewedToken = String(renewed.body.accessToken);
  check((await getSecrets(app, renewedToken)).status === 200, 'the renewed token reads the secrets');

  step('Revoke: POST /api/v1/auth/token/revoke {accessToken} (the renewed token)');
  const revoked = await postJson(`${app}/api/v1/auth/token/revoke`, { accessToken: renewedToken });
  say(`    ${revoked.status}`);
  show(revoked.body);
  check(revoked.status === 200, 'answered 200');

  step('Read secrets after revoke, with the first token of the same grant');
  const refused = await getSecrets(app, accessToken);
  say(`    ${refused.status}`);
  show(refused.body);
  check(
    refused.status === 401 && refused.body.reasonCode === 'token_revoked',
    '401 token_revoked: revoking one token string revokes its whole grant',
  );

  step('Login with a token for another audience (--resource https://management.azure.com/)');
  const wrongToken = await idp.token('https://management.azure.com/');
  say(`    token: ${mask(wrongToken)}, aud: ${String(decodeJwt(wrongToken).aud)}`);
  const wrong = await postForm(login, { identityId: IDENTITY_ID, jwt: wrongToken });
  say(`    ${wrong.status}`);
  show(wrong.body);
  check(
    wrong.status === 401 && wrong.body.reasonCode === 'audience_not_allowed',
    '401 audience_not_allowed (the signature verified, so the reason is told)',
  );

  step("The secrets-api README's pipeline step (pipeline-step.sh: az → curl login → curl secrets | jq)");
  if (!hasPipelineTools()) {
    skipped++;
    say(paint(33, '    SKIPPED: curl and jq are needed for this step and are not both installed here.'));
    return;
  }
  const pipeline = await runPipelineStep({
    appUrl: app,
    idpUrl: idp.url,
    identityId: IDENTITY_ID,
    workspaceSlug: WORKSPACE,
  });
  say(indent(pipeline.stdout.trimEnd()));
  if (pipeline.status !== 0) say(indent(pipeline.stderr.trimEnd()));
  check(pipeline.status === 0, 'the script exited 0');
  check(
    pipeline.stdout.includes(`##vso[task.setvariable variable=DATABASE_URL;issecret=true]${EXPECTED_SECRET}`),
    'it set DATABASE_URL as a secret pipeline variable',
  );
}

async function main(): Promise<number> {
  let idp: DemoIdp | undefined;
  let auth: OidcAuth | undefined;
  let server: RunningServer | undefined;
  try {
    idp = await startIdp();
    say(paint(1, 'oidc-machine-auth walkthrough: an Azure-like pipeline reads secrets from an Express app'));
    say(`  IdP (oidc-provider): ${idp.issuer}`);
    const identity = pipelineIdentity(idp.issuer);
    auth = createOidcAuth({ identities: [identity] });
    server = await listen(createSecretsApp({ auth }));
    say(`  secrets API:         ${server.url}`);
    say('  identity config:');
    show(identity);
    await flow(idp, server.url);
    say();
    const ran = stepNumber - skipped;
    const note = skipped ? `; ${skipped} skipped, see above` : '';
    say(paint(32, `All ${ran} steps run behaved as expected (${checks} checks${note}).`));
    return 0;
  } catch (error) {
    say();
    if (error instanceof StepFailed)
      say(paint(31, `Step ${stepNumber} did not behave as expected: ${error.message}`));
    else
      say(paint(31, `Step ${stepNumber} failed: ${error instanceof Error ? error.message : String(error)}`));
    return 1;
  } finally {
    await server?.close();
    await auth?.close();
    await idp?.close();
  }
}

process.exitCode = await main();
// Everything is closed; if a handle still kept the process alive it would be a bug: say so, never hang.
setTimeout(() => {
  console.error('walkthrough: open handles kept the process alive after shutdown');
  process.exit(process.exitCode || 1);
}, 5000).unref();
