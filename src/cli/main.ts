import { randomBytes } from 'node:crypto';
import { readFile, readdir, realpath } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { createOidcAuth } from '../engine/auth.js';
import { parseIdentityConfig } from '../trust/config.js';
import { ConfigError } from '../errors.js';
import type { HttpGet } from '../trust/fetch.js';
import { MemoryIdentityStore } from '../stores/memory.js';
import { TrustRegistry, type TrustEntryInput } from '../trust/entries.js';
import { decodeToken, DecodeError, formatDecoded } from './decode.js';
import { formatExplain, type FetchRecord } from './explain-text.js';
import { POLICY_TEST_LIMITS, formatPolicyTests, runPolicyTests } from './test.js';
import { FAIL, type Output } from './text.js';
import { formatValidation, validateIdentities } from './validate.js';
import type { IdentityConfig, Logger } from '../types.js';

/** What the CLI reads and writes; tests pass their own. Defaults: the process's streams, real fetches. */
export interface CliIo {
  stdout?: Output;
  stderr?: Output;
  /** Where a JWT is read from when `--jwt` is absent or `-`. Default `process.stdin`. */
  stdin?: AsyncIterable<string | Uint8Array> & { isTTY?: boolean };
  /** Read a file as UTF-8. Default `fs.readFile`. */
  readFile?: (path: string) => Promise<string>;
  /** The file names in a folder (`test`). Default `fs.readdir`. */
  readDir?: (path: string) => Promise<string[]>;
  /** Outbound GET for discovery and JWKS. Default: the library's hardened `httpGet`. */
  httpGet?: HttpGet;
  /** Epoch-ms clock. Default `Date.now`. */
  clock?: () => number;
}

/** Exit codes: 0 success, 1 the check failed (login would fail, invalid config, undecodable token), 2 usage. */
export const EXIT = { ok: 0, failed: 1, usage: 2 } as const;

const MAX_INPUT_BYTES = 1024 * 1024;

export const USAGE = `Usage: oidc-machine-auth <command> [options]

Commands:
  explain   Run every login check for a token against an identity and say why it passes or fails
            --config FILE     identities file (JSON: an array of identity configs, {"identities": [...]}, or one config)
            --identity ID     the identity to log in as
            --jwt TOKEN       the IdP token; without it (or with "-") the token is read from stdin
            --client-ip IP    the address the login would come from (checked against accessTokenTrustedIps)
            --json            machine-readable report
  validate  Check an identities file; every error names the identity and the field
            --config FILE  [--json]
  decode    Print a token's header and claims WITHOUT verifying anything
            [--jwt TOKEN | stdin]  [--json]
  test      Run a policy file against a folder of test cases, for CI: test POLICY_FILE CASES_FOLDER [--json]
            POLICY_FILE   identities (as for --config), with their rules
            CASES_FOLDER  *.json files: {"identity", "claims" or "jwt", "expect": "allow"|"deny", "reason"?, "rule"?}
            Cases are evaluated on claims only: no signature, time or network check is made (the issuer
            must be one of boundIssuer). Exit 1 on any case that does not go as expected.

Exit codes: 0 login would succeed / file valid / decoded, 1 login would fail / invalid / undecodable, 2 usage error.
Prefer stdin for tokens (shell history and process lists show --jwt):  oidc-machine-auth explain ... < token.jwt
`;

class UsageError extends Error {
  override name = 'UsageError';
}

/**
 * Run the CLI in-process: `argv` without the node and script paths. Resolves to the exit code; never
 * calls `process.exit` and never prints a token.
 */
export async function runCli(argv: readonly string[], io: CliIo = {}): Promise<number> {
  const stdout = io.stdout ?? process.stdout;
  const stderr = io.stderr ?? process.stderr;
  let values: Record<string, string | boolean | undefined>;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args: [...argv],
      allowPositionals: true,
      strict: true,
      options: {
        config: { type: 'string', short: 'c' },
        identity: { type: 'string', short: 'i' },
        jwt: { type: 'string' },
        'client-ip': { type: 'string' },
        json: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }));
  } catch (error) {
    stderr.write(`${FAIL} ${(error as Error).message}\n\n${USAGE}`);
    return EXIT.usage;
  }
  const command = positionals[0];
  if (values.help || command === undefined || command === 'help') {
    (command === undefined && !values.help ? stderr : stdout).write(USAGE);
    return command === undefined && !values.help ? EXIT.usage : EXIT.ok;
  }
  try {
    const maxPositionals = command === 'test' ? 3 : 1;
    if (positionals.length > maxPositionals) {
      throw new UsageError(`unexpected argument ${JSON.stringify(positionals[maxPositionals])}`);
    }
    switch (command) {
      case 'explain':
        return await explainCommand(values, io, stdout);
      case 'validate':
        return await validateCommand(values, io, stdout);
      case 'decode':
        return await decodeCommand(values, io, stdout);
      case 'test':
        return await testCommand(positionals.slice(1), values, io, stdout);
      default:
        throw new UsageError(`unknown command ${JSON.stringify(command)}`);
    }
  } catch (error) {
    if (error instanceof UsageError) {
      stderr.write(`${FAIL} ${error.message}\n\n${USAGE}`);
      return EXIT.usage;
    }
    throw error;
  }
}

type Values = Record<string, string | boolean | undefined>;

async function explainCommand(values: Values, io: CliIo, stdout: Output): Promise<number> {
  const path = required(values, 'config');
  const identityId = required(values, 'identity');
  const clientIp = typeof values['client-ip'] === 'string' ? values['client-ip'] : undefined;
  const { identities: entries, trust } = await loadPolicy(path, io);
  const jwt = await readToken(values, io);

  const entry = entries.find((e) => (e as { identityId?: unknown } | null)?.identityId === identityId);
  if (entry === undefined) {
    const known = entries
      .map((e) => (e as { identityId?: unknown } | null)?.identityId)
      .filter((id): id is string => typeof id === 'string');
    return failBeforeExplain(values, stdout, identityId, 'identity_not_found', {
      message: `no identity ${JSON.stringify(identityId)} in ${path} (it has: ${known.map((id) => JSON.stringify(id)).join(', ') || 'none'})`,
    });
  }
  let stored: IdentityConfig;
  let config: IdentityConfig;
  try {
    config = stored = parseIdentityConfig(entry);
    // An identity naming a trust entry of the file: checked here, and shown with its issuers.
    if (config.trust !== undefined && trust !== undefined) {
      config = new TrustRegistry(trust as readonly TrustEntryInput[]).resolve(config);
    }
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    return failBeforeExplain(values, stdout, identityId, 'invalid_config', {
      message: `the config in ${path} is invalid, so every login would fail: ${error.message}`,
      field: error.field,
    });
  }

  const fetches: FetchRecord[] = [];
  const auth = createOidcAuth({
    identities: new MemoryIdentityStore([stored]),
    signingKeys: { cli: randomBytes(32) },
    ...(trust ? { trust: trust as readonly TrustEntryInput[] } : {}),
    ...(io.httpGet ? { httpGet: io.httpGet } : {}),
    ...(io.clock ? { clock: io.clock } : {}),
    keys: { onFetch: (info) => void fetches.push(info) },
    logger: fetchFailureLogger(fetches),
  });
  try {
    const report = await auth.explain({ identityId, jwt, clientIp });
    if (values.json) {
      stdout.write(`${JSON.stringify({ ...report, fetches }, null, 2)}\n`);
    } else {
      stdout.write(formatExplain(report, config, { source: path, fetches, clientIp }));
    }
    return report.ok ? EXIT.ok : EXIT.failed;
  } finally {
    await auth.close();
  }
}

/** Attach the cause a failed fetch logged (DNS, TLS, HTTP status…) to its record: the operator needs it. */
function fetchFailureLogger(fetches: FetchRecord[]): Logger {
  const ignore = () => undefined;
  return {
    debug: ignore,
    info: ignore,
    error: ignore,
    warn(obj: object) {
      const { event, url, kind, cause } = obj as Record<string, unknown>;
      if (event !== 'keys.fetch.failure' || typeof cause !== 'string') return;
      const record = fetches.findLast((f) => !f.ok && f.url === url && f.kind === kind && !f.detail);
      if (record) record.detail = cause;
    },
  };
}

function failBeforeExplain(
  values: Values,
  stdout: Output,
  identityId: string,
  reasonCode: 'identity_not_found' | 'invalid_config',
  problem: { message: string; field?: string },
): number {
  if (values.json) {
    const check = {
      check: 'identity',
      pass: false,
      reason: problem.message,
      ...(problem.field ? { field: problem.field } : {}),
    };
    stdout.write(`${JSON.stringify({ ok: false, identityId, reasonCode, checks: [check] }, null, 2)}\n`);
  } else {
    stdout.write(
      `  ${FAIL} identity        ${problem.message}\n\n${FAIL} Login would FAIL with reason ${reasonCode}.\n`,
    );
  }
  return EXIT.failed;
}

async function validateCommand(values: Values, io: CliIo, stdout: Output): Promise<number> {
  const path = required(values, 'config');
  const { identities: entries, trust } = await loadPolicy(path, io);
  const results = validateIdentities(entries, trust);
  const ok = results.every((r) => r.ok);
  if (values.json) stdout.write(`${JSON.stringify({ ok, identities: results }, null, 2)}\n`);
  else stdout.write(formatValidation(results, path));
  return ok ? EXIT.ok : EXIT.failed;
}

async function decodeCommand(values: Values, io: CliIo, stdout: Output): Promise<number> {
  const jwt = await readToken(values, io);
  let decoded;
  try {
    decoded = decodeToken(jwt);
  } catch (error) {
    if (!(error instanceof DecodeError)) throw error;
    if (values.json) stdout.write(`${JSON.stringify({ verified: false, error: error.message })}\n`);
    else stdout.write(`${FAIL} cannot decode: ${error.message}\n`);
    return EXIT.failed;
  }
  const now = Math.floor((io.clock ?? Date.now)() / 1000);
  if (values.json) stdout.write(`${JSON.stringify(decoded, null, 2)}\n`);
  else stdout.write(formatDecoded(decoded, now));
  return EXIT.ok;
}

async function testCommand(args: string[], values: Values, io: CliIo, stdout: Output): Promise<number> {
  const [policy, folder] = args;
  if (policy === undefined || folder === undefined)
    throw new UsageError('test needs POLICY_FILE and CASES_FOLDER');
  const { identities: entries, trust } = await loadPolicy(policy, io);
  let names: string[];
  try {
    names = await (io.readDir ?? ((p: string) => readdir(p)))(folder);
  } catch (error) {
    throw new UsageError(`cannot read ${folder}: ${(error as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  const files = names.filter((n) => n.endsWith('.json')).sort();
  if (files.length === 0) throw new UsageError(`${folder} holds no *.json case files`);
  if (files.length > POLICY_TEST_LIMITS.maxCases) {
    throw new UsageError(`${folder} holds more than ${POLICY_TEST_LIMITS.maxCases} case files`);
  }
  const read = io.readFile ?? ((p: string) => readFile(p, 'utf8'));
  const cases: Array<[string, string]> = [];
  for (const file of files) {
    const text = await read(join(folder, file)).catch((error: NodeJS.ErrnoException) => {
      throw new UsageError(`cannot read ${join(folder, file)}: ${error.code ?? 'error'}`);
    });
    cases.push([file, text.length > POLICY_TEST_LIMITS.maxCaseBytes ? '' : text]);
  }
  const outcome = runPolicyTests(entries, cases, trust);
  if ('error' in outcome) {
    stdout.write(
      values.json ? `${JSON.stringify({ ok: false, error: outcome.error })}\n` : `${FAIL} ${outcome.error}\n`,
    );
    return EXIT.failed;
  }
  const ok = outcome.results.every((r) => r.ok);
  if (values.json) stdout.write(`${JSON.stringify({ ok, cases: outcome.results }, null, 2)}\n`);
  else stdout.write(formatPolicyTests(outcome.results, { policy, cases: folder }));
  return ok ? EXIT.ok : EXIT.failed;
}

function required(values: Values, name: string): string {
  const value = values[name];
  if (typeof value !== 'string' || value === '') throw new UsageError(`--${name} is required`);
  return value;
}

/** The identities file as a list of raw entries: an array, `{ identities: [...] }`, or one config. */
/**
 * A policy file: its identities (an array, `{ "identities": [...] }` or one config) and, in the
 * `{ "identities": [...], "trust": [...] }` form, the trust entries they may name.
 */
async function loadPolicy(path: string, io: CliIo): Promise<{ identities: unknown[]; trust?: unknown[] }> {
  let text: string;
  try {
    text = await (io.readFile ?? ((p: string) => readFile(p, 'utf8')))(path);
  } catch (error) {
    throw new UsageError(`cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (error) {
    throw new UsageError(`${path} is not valid JSON: ${(error as Error).message}`);
  }
  if (Array.isArray(data)) return { identities: data };
  if (data !== null && typeof data === 'object') {
    const { identities: list, trust } = data as { identities?: unknown; trust?: unknown };
    if (trust !== undefined && !Array.isArray(trust)) {
      throw new UsageError(`${path}: "trust" must be an array of trust entries`);
    }
    if (Array.isArray(list)) return trust === undefined ? { identities: list } : { identities: list, trust };
    if ('identityId' in data) return { identities: [data] };
  }
  throw new UsageError(
    `${path} must hold an array of identity configs, {"identities": [...], "trust"?: [...]}, or one config`,
  );
}

/** The token from `--jwt`, or stdin when it is absent or `-`; surrounding space and `Bearer ` dropped. */
async function readToken(values: Values, io: CliIo): Promise<string> {
  let text = typeof values.jwt === 'string' && values.jwt !== '-' ? values.jwt : undefined;
  if (text === undefined) {
    const stdin = io.stdin ?? process.stdin;
    if (stdin.isTTY) throw new UsageError('pass --jwt TOKEN or pipe the token on stdin');
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of stdin) {
      const buffer = typeof chunk === 'string' ? Buffer.from(chunk) : Buffer.from(chunk);
      size += buffer.length;
      if (size > MAX_INPUT_BYTES) throw new UsageError('stdin holds more than 1 MiB: that is not a token');
      chunks.push(buffer);
    }
    text = Buffer.concat(chunks).toString('utf8');
  }
  const token = text.trim().replace(/^Bearer\s+/i, '');
  if (token === '') throw new UsageError('the token is empty');
  return token;
}

async function isEntryPoint(): Promise<boolean> {
  const script = process.argv[1];
  if (!script) return false;
  try {
    return import.meta.url === pathToFileURL(await realpath(script)).href;
  } catch {
    return false;
  }
}

void isEntryPoint().then(async (main) => {
  if (!main) return;
  try {
    process.exitCode = await runCli(process.argv.slice(2));
  } catch (error) {
    process.stderr.write(`${FAIL} ${(error as Error)?.message ?? String(error)}\n`);
    process.exitCode = EXIT.usage;
  }
});
