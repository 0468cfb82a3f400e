import { execFile } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/**
 * The package as users get it: built once (`npm run build`), packed once (`npm pack`), and the
 * tarball checked by publint and @arethetypeswrong/cli, installed by hand into a scratch
 * node_modules and loaded from CommonJS and ESM, and its CLI run.
 *
 * attw runs with the `esm-only` profile: the package ships ESM only (`"type": "module"`, no `require`
 * condition), so the node10 resolution (no `exports` support) and TypeScript's node16-from-CJS view
 * (which models `require()` of ESM as impossible) do not apply; on every Node of `engines`
 * `require(esm)` works at run time, which the CommonJS test below proves.
 */

const exec = promisify(execFile);

/** Whether `version` is in an `engines` range made of `^x.y.z` and `>=x[.y.z]` alternatives. */
function inEngines(range: string, version: string): boolean {
  const v = version.split('.').map(Number);
  const atLeast = (floor: number[]) => {
    for (let i = 0; i < 3; i++) if ((v[i] ?? 0) !== (floor[i] ?? 0)) return (v[i] ?? 0) > (floor[i] ?? 0);
    return true;
  };
  return range.split('||').some((alternative) => {
    const m = /^\s*(\^|>=)(\d+(?:\.\d+){0,2})\s*$/.exec(alternative);
    if (!m) throw new Error(`engines alternative not understood: ${alternative}`);
    const floor = m[2]!.split('.').map(Number);
    return atLeast(floor) && (m[1] === '>=' || v[0] === floor[0]);
  });
}
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const bin = (name: string) => join(ROOT, 'node_modules', '.bin', name);
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
  name: string;
  license: string;
  repository: { type: string; url: string };
  homepage: string;
  bugs: { url: string };
  engines: { node: string };
  dependencies: Record<string, string>;
  peerDependencies: Record<string, string>;
  bin: Record<string, string>;
};

/** Where the README's links to this repository's files point (they are not all in the pack). */
const REPOSITORY = 'https://github.com/oidc-machine-auth/oidc-machine-auth';

/**
 * Every link target of a markdown text: inline links and images `[text](target "title")`, reference
 * definitions `[id]: target`, and HTML `href`/`src`. Code blocks and inline code are not links.
 */
function markdownLinks(markdown: string): string[] {
  const text = markdown.replace(/^```[^\n]*\n[\s\S]*?^```\s*$/gm, '').replace(/`[^`\n]*`/g, '');
  const links: string[] = [];
  for (const m of text.matchAll(/\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)) links.push(m[1]!);
  for (const m of text.matchAll(/^ {0,3}\[[^\]]+\]:\s*<?([^\s>]+)>?/gm)) links.push(m[1]!);
  for (const m of text.matchAll(/\b(?:href|src)\s*=\s*["']([^"']+)["']/g)) links.push(m[1]!);
  return links;
}

let scratch = '';
let tarball = '';
let files: string[] = [];
let consumer = '';

async function run(command: string, args: string[], cwd = ROOT) {
  return exec(command, args, { cwd, encoding: 'utf8', timeout: 90_000, maxBuffer: 16 * 1024 * 1024 });
}

beforeAll(async () => {
  scratch = mkdtempSync(join(tmpdir(), 'oidc-pack-'));
  await run('npm', ['run', 'build']);
  const { stdout } = await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', scratch]);
  const [packed] = JSON.parse(stdout) as Array<{ filename: string; files: Array<{ path: string }> }>;
  tarball = join(scratch, packed!.filename);
  files = packed!.files.map((f) => f.path);

  // A consumer project with the tarball "installed" and the dependencies linked from this checkout.
  consumer = join(scratch, 'consumer');
  const modules = join(consumer, 'node_modules');
  mkdirSync(join(modules, pkg.name), { recursive: true });
  await run('tar', ['-xzf', tarball, '-C', join(modules, pkg.name), '--strip-components=1']);
  for (const dep of [...Object.keys(pkg.dependencies), 'express', '@opentelemetry/api']) {
    mkdirSync(dirname(join(modules, dep)), { recursive: true }); // @scope/ of a scoped name
    symlinkSync(join(ROOT, 'node_modules', dep), join(modules, dep), 'dir');
  }
}, 180_000);

afterAll(() => {
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

describe('packaging', () => {
  it('npm pack --dry-run lists the built code, the CLI and the README, and no tests, examples or bench', async () => {
    const { stdout } = await run('npm', ['pack', '--dry-run', '--json', '--ignore-scripts']);
    const dryRun = (JSON.parse(stdout) as Array<{ files: Array<{ path: string }> }>)[0]!.files.map(
      (f) => f.path,
    );
    expect(dryRun.sort()).toEqual([...files].sort());
    for (const path of files) {
      expect(path).toMatch(
        /^(dist\/(src|adapters)\/.+\.(js|d\.ts)|bin\/oidc-machine-auth\.js|README\.md|package\.json|LICENSE)$/,
      );
      expect(path).not.toMatch(/(^|\/)(test|tests|examples|bench)\/|\.test\.|\.spec\./);
    }
    expect(files).toContain('dist/src/index.js');
    expect(files).toContain('dist/src/index.d.ts');
    expect(files).toContain('dist/src/cli/main.js');
    expect(files).toContain(pkg.bin['oidc-machine-auth']!.replace(/^\.\//, ''));
  });

  it('publint --strict passes on the tarball', async () => {
    const { stdout } = await run(bin('publint'), ['run', tarball, '--strict']);
    expect(stdout).toContain('All good');
  });

  it('@arethetypeswrong/cli passes on the tarball (esm-only profile): ESM and bundler resolution are clean', async () => {
    // exec rejects on a non-zero exit, which attw gives for any problem the profile does not ignore.
    const { stdout } = await run(bin('attw'), [tarball, '--profile', 'esm-only', '--format', 'json']);
    const { analysis } = JSON.parse(stdout) as {
      analysis: { problems: Array<{ kind: string; resolutionKind?: string }> };
    };
    // What the profile ignores, listed so that nothing else can hide in it.
    for (const problem of analysis.problems) {
      expect(['node10', 'node16-cjs']).toContain(problem.resolutionKind);
    }
  });

  it(`require('${pkg.name}') works from CommonJS on this Node (${process.version}, engines ${pkg.engines.node})`, async () => {
    expect(inEngines(pkg.engines.node, process.versions.node), 'engines covers the Node running this').toBe(
      true,
    );
    // require(esm) is unflagged from 20.19, 22.12 and 23.0: the range leaves out Node 21 and 22 before 22.12.
    expect([inEngines(pkg.engines.node, '21.7.3'), inEngines(pkg.engines.node, '22.11.0')]).toEqual([
      false,
      false,
    ]);
    const script = join(consumer, 'consumer.cjs');
    writeFileSync(
      script,
      `const lib = require('${pkg.name}');
const express = require('${pkg.name}/express');
const config = lib.parseIdentityConfig({
  identityId: 'x', jwksUrl: 'https://idp.example.com/jwks', boundIssuer: 'https://idp.example.com', boundSubject: 'a',
});
const auth = lib.createOidcAuth({ identities: [config], signingKeys: { k1: 'a-test-signing-secret-of-at-least-32-bytes!!' } });
console.log(JSON.stringify({
  createOidcAuth: typeof lib.createOidcAuth,
  login: typeof auth.login,
  router: typeof express.oidcAuthRouter,
  error: new lib.ConfigError('f', 'p') instanceof lib.OidcAuthError,
}));
`,
    );
    const { stdout } = await run(process.execPath, [script], consumer);
    expect(JSON.parse(stdout.trim().split('\n').at(-1)!)).toEqual({
      createOidcAuth: 'function',
      login: 'function',
      router: 'function',
      error: true,
    });
  });

  it('import() works from ESM', async () => {
    const script = join(consumer, 'consumer.mjs');
    writeFileSync(
      script,
      `const lib = await import('${pkg.name}');\nconsole.log(typeof lib.createOidcAuth);\n`,
    );
    const { stdout } = await run(process.execPath, [script], consumer);
    expect(stdout.trim()).toBe('function');
  });

  it('oidc-machine-auth/opentelemetry loads from ESM beside @opentelemetry/api; the core imports no OpenTelemetry module', async () => {
    const script = join(consumer, 'consumer-otel.mjs');
    writeFileSync(
      script,
      `const otel = await import('${pkg.name}/opentelemetry');
const instrumentation = otel.instrumentOidcAuth();
console.log(JSON.stringify({ startSpan: typeof instrumentation.startSpan, scope: otel.INSTRUMENTATION_SCOPE }));
`,
    );
    const { stdout } = await run(process.execPath, [script], consumer);
    expect(JSON.parse(stdout.trim())).toEqual({ startSpan: 'function', scope: 'oidc-machine-auth' });
    const core = files.filter((path) => path.startsWith('dist/src/') && path.endsWith('.js'));
    expect(core.length).toBeGreaterThan(10);
    for (const path of core) {
      const text = readFileSync(join(consumer, 'node_modules', pkg.name, path), 'utf8');
      expect(text, path).not.toMatch(/(from|import)\s*\(?\s*['"]@opentelemetry/);
    }
  });

  it('oidc-machine-auth/client loads from ESM; it imports jose and its own files only (Web APIs, no node: modules)', async () => {
    const script = join(consumer, 'consumer-client.mjs');
    writeFileSync(
      script,
      `const client = await import('${pkg.name}/client');
const key = await client.generateDpopKey();
const proof = await client.createDpopProof({ key, method: 'GET', url: 'https://api.example/x' });
console.log(JSON.stringify({ createDpopClient: typeof client.createDpopClient, parts: proof.split('.').length }));
`,
    );
    const { stdout } = await run(process.execPath, [script], consumer);
    expect(JSON.parse(stdout.trim())).toEqual({ createDpopClient: 'function', parts: 3 });
    const own = files.filter((path) => path.startsWith('dist/src/client/') && path.endsWith('.js'));
    expect(own.length).toBeGreaterThan(3);
    for (const path of own) {
      const text = readFileSync(join(consumer, 'node_modules', pkg.name, path), 'utf8');
      for (const m of text.matchAll(/(?:from|import)\s*\(?\s*['"]([^'"]+)['"]/g)) {
        expect(m[1], path).toMatch(/^(jose|\.\/[\w-]+\.js)$/);
      }
    }
  });

  it('the packed bin runs: validate an example identity file', async () => {
    const cli = join(consumer, 'node_modules', pkg.name, pkg.bin['oidc-machine-auth']!);
    const example = join(ROOT, 'examples', 'ci', 'github-actions', 'identity.json');
    const { stdout } = await run(process.execPath, [cli, 'validate', '--config', example], consumer);
    expect(stdout).toContain('✔ all valid');
    const usage = await run(process.execPath, [cli, 'nope'], consumer).catch(
      (error: { code: number; stderr: string }) => error,
    );
    expect(usage).toMatchObject({ code: 2 });
  });
  it('#13.17 packaging: LICENSE (MIT) is in npm pack --dry-run --json', async () => {
    const { stdout } = await run('npm', ['pack', '--dry-run', '--json', '--ignore-scripts']);
    const dryRun = (JSON.parse(stdout) as Array<{ files: Array<{ path: string }> }>)[0]!.files.map(
      (f) => f.path,
    );
    expect(dryRun).toContain('LICENSE');
    expect(files).toContain('LICENSE');
    const license = readFileSync(join(ROOT, 'LICENSE'), 'utf8');
    expect(license).toMatch(/^MIT License\n\nCopyright \(c\) 2026 The oidc-machine-auth authors\n/);
    expect(license).toContain('THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND');
    expect(pkg.license).toBe('MIT');
  });

  it('#13.17 packaging: package.json names the repository, homepage and issue tracker', () => {
    expect(pkg.repository).toEqual({ type: 'git', url: `git+${REPOSITORY}.git` });
    expect(pkg.homepage).toBe(`${REPOSITORY}#readme`);
    expect(pkg.bugs).toEqual({ url: `${REPOSITORY}/issues` });
  });

  it('#13.17 packaging: every README link is absolute or points at a file in the pack, and links into the repository name paths that exist', () => {
    const links = markdownLinks(readFileSync(join(ROOT, 'README.md'), 'utf8'));
    expect(links.length).toBeGreaterThan(10);
    const broken: string[] = [];
    for (const link of links) {
      if (link.startsWith('#')) continue; // an anchor of the README itself
      if (!/^[a-z][a-z0-9+.-]*:/i.test(link)) {
        // Relative: must resolve inside the published package, where npm and node_modules readers look.
        const path = decodeURIComponent(link.replace(/[?#].*$/, '')).replace(/^\.\//, '');
        if (!files.includes(path)) broken.push(`${link}: relative, and not a file of the pack`);
        continue;
      }
      const inRepo = new RegExp(`^${REPOSITORY}/(blob|tree)/main/([^?#]+)`).exec(link);
      if (!inRepo) continue;
      const path = join(ROOT, decodeURIComponent(inRepo[2]!));
      const isDir = existsSync(path) && statSync(path).isDirectory();
      if (!existsSync(path)) broken.push(`${link}: no such path in the repository`);
      else if (inRepo[1] === 'blob' && isDir) broken.push(`${link}: a directory, link it with /tree/`);
      else if (inRepo[1] === 'tree' && !isDir) broken.push(`${link}: a file, link it with /blob/`);
    }
    expect(broken).toEqual([]);
  });

  it('#13.17 packaging: the README link reader finds inline, titled and reference links, and skips code', () => {
    expect(markdownLinks('[a](docs/STORES.md) `[b](x)` [c](https://x.test/ "t")\n\n[d]: ./LICENSE')).toEqual([
      'docs/STORES.md',
      'https://x.test/',
      './LICENSE',
    ]);
    expect(files).not.toContain('docs/STORES.md');
  });
});
