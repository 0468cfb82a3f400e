import { execFile } from 'node:child_process';
import {
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/**
 * `oidc-machine-auth/verify` on other runtimes: test/runtimes/verify-smoke.ts runs on Deno and Bun
 * (installed from npm, see RUNTIMES below) and on Node, each serving the issuer with its own HTTP
 * server, once against the TypeScript source and once against the JavaScript the build emits for
 * src/verify (what the package ships), and must print every check as expected and exit 0.
 */

const exec = promisify(execFile);
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const SMOKE = join(ROOT, 'test', 'runtimes', 'verify-smoke.ts');
/** Where Bun and Deno are (.ci/run installs them from npm; vitest.config.ts runs this file only when set). */
const RUNTIMES_BIN = process.env.RUNTIMES_BIN!;
/** Other Node majors, installed from npm beside Deno and Bun. */
const NODE_BIN = (major: 'n22' | 'n24') => process.env[major === 'n22' ? 'NODE22_BIN' : 'NODE24_BIN']!;

const EXPECTED = {
  valid: 'svc-a',
  idTokenTypJWT: 'token_type_invalid',
  algNone: 'algorithm_not_allowed',
  wrongAudience: 'audience_mismatch',
  expired: 'token_expired',
  nbfFuture: 'token_not_yet_valid',
  otherIssuer: 'issuer_mismatch',
  metadataIssuerMismatch: 'metadata_issuer_mismatch',
  rotationAccepted: 50,
  rotationJwksFetches: 1,
  introspectActive: 'accepted',
  introspectRevoked: 'token_inactive',
};

/**
 * How each runtime runs the smoke script. Deno uses the project's npm-installed node_modules
 * (`--node-modules-dir=manual`, as Deno's docs say for package.json projects); only the TypeScript
 * source needs `--unstable-sloppy-imports` (its `./x.js` specifiers name `.ts` files), the built
 * JavaScript runs with the command docs/VERIFY.md gives.
 */
const RUNTIMES: Record<string, (script: string, variant: 'source' | 'built') => [string, string[]]> = {
  deno: (script, variant) => [
    join(RUNTIMES_BIN, 'deno'),
    [
      'run',
      '--node-modules-dir=manual',
      '--allow-net',
      '--allow-read',
      '--allow-env',
      ...(variant === 'source' ? ['--unstable-sloppy-imports'] : []),
      script,
    ],
  ],
  bun: (script) => [join(RUNTIMES_BIN, 'bun'), [script]],
  node: (script) => [process.execPath, ['--import', 'tsx', script]],
  'node 22': (script) => [NODE_BIN('n22'), ['--import', 'tsx', script]],
  'node 24': (script) => [NODE_BIN('n24'), ['--import', 'tsx', script]],
};

let scratch = '';
let built = '';

beforeAll(() => {
  // The build's JavaScript for src/verify, emitted file by file as tsc does (isolatedModules), in a
  // scratch package whose node_modules is this checkout's, so `jose` and `lru-cache` resolve.
  scratch = mkdtempSync(join(tmpdir(), 'oidc-verify-rt-'));
  writeFileSync(join(scratch, 'package.json'), JSON.stringify({ name: 'rt-scratch', type: 'module' }));
  symlinkSync(join(ROOT, 'node_modules'), join(scratch, 'node_modules'), 'dir');
  const out = join(scratch, 'verify');
  mkdirSync(out);
  const source = join(ROOT, 'src', 'verify');
  for (const file of readdirSync(source).filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts'))) {
    const { outputText } = ts.transpileModule(readFileSync(join(source, file), 'utf8'), {
      compilerOptions: {
        module: ts.ModuleKind.ES2022,
        target: ts.ScriptTarget.ES2022,
        verbatimModuleSyntax: true,
      },
      fileName: file,
    });
    writeFileSync(join(out, file.replace(/\.ts$/, '.js')), outputText);
  }
  built = pathToFileURL(join(out, 'index.js')).href;
});

afterAll(() => {
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

describe('oidc-machine-auth/verify on Node 20/22/24, Deno and Bun (RFC 9068 checks, RFC 8414 discovery, rotation, RFC 7662)', () => {
  for (const [runtime, command] of Object.entries(RUNTIMES)) {
    for (const variant of ['source', 'built'] as const) {
      it(`${runtime}: the ${variant === 'source' ? 'TypeScript source' : 'built JavaScript'} verifies, refuses with the same codes, rotates and introspects`, async () => {
        const [file, args] = command(SMOKE, variant);
        const env = {
          ...process.env,
          ...(variant === 'built' ? { VERIFY_MODULE: built } : {}),
          NO_COLOR: '1',
        };
        const { stdout } = await exec(file, args, { cwd: ROOT, env, timeout: 60_000 });
        const report = JSON.parse(stdout.trim().split('\n').at(-1)!) as {
          runtime: string;
          ok: boolean;
          results: unknown;
        };
        expect(report).toEqual({ runtime: runtime.split(' ')[0], ok: true, results: EXPECTED });
      }, 60_000);
    }
  }
});
