import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { afterAll, describe, expect, it } from 'vitest';

/**
 * The README is the first code a user copies: every TypeScript block of it (and of the docs pages
 * written alongside it) must type-check as written, the way a user's project would compile it.
 *
 * Each ```ts / ```typescript block is written to its own module in a scratch folder inside the repo
 * (so `express`, `ioredis`, `pg`… resolve from this checkout's node_modules) and the whole set is
 * type-checked with the compiler API under `module: nodenext`, strict. `oidc-machine-auth` and its
 * subpaths resolve through `paths` built from package.json `exports` (each `types` entry mapped back
 * to its source file), so a snippet can only import what the package exports.
 *
 * A block may use names it does not define when the line right above its fence says which ones:
 * `<!-- ts-check: app auth -->` (invisible on GitHub and npm). Each name is a declaration from
 * {@link CONTEXT}, put before the block; a block without the comment compiles alone.
 */

const ROOT = fileURLToPath(new URL('..', import.meta.url));

/** What a block may take from the surrounding prose, by name. */
const CONTEXT: Record<string, string> = {
  app: "declare const app: import('express').Express;",
  auth: "declare const auth: import('oidc-machine-auth').OidcAuth;",
  identities: "declare const identities: import('oidc-machine-auth').IdentityConfigInput[];",
  logger: "declare const logger: import('oidc-machine-auth').Logger;",
  tokens: "declare const tokens: import('oidc-machine-auth').TokenStore;",
  signingKeys: "declare const signingKeys: import('oidc-machine-auth').SigningKeysInput;",
  onEvent: "declare const onEvent: (event: import('oidc-machine-auth').AuthEvent) => void;",
  audit: "declare const audit: (event: import('oidc-machine-auth').AuthEvent) => void;",
  pino: "declare const pino: () => import('oidc-machine-auth').PinoLike;",
  identityId: 'declare const identityId: string;',
  jwt: 'declare const jwt: string;',
  accessToken: 'declare const accessToken: string;',
  clientIp: 'declare const clientIp: string | undefined;',
};

/** Markdown files whose TypeScript blocks must compile: the README and the docs pages it links. */
const CHECKED_DOCS = ['README.md', 'docs/CONFIG.md', 'docs/PROTOCOL.md', 'docs/OBSERVABILITY.md'];

interface Snippet {
  /** Repo-relative markdown file. */
  file: string;
  /** 1-based line of the block's first code line. */
  line: number;
  code: string;
  /** Names from the `<!-- ts-check: … -->` comment above the fence. */
  context: string[];
}

const FENCE_OPEN = /^```(ts|typescript)\s*$/;
const MARKER = /^<!--\s*ts-check:([^>]*)-->\s*$/;

/** Every ```ts / ```typescript block of a markdown text, with the line it starts on. */
function typescriptBlocks(file: string, text: string): Snippet[] {
  const lines = text.split('\n');
  const out: Snippet[] = [];
  for (let i = 0; i < lines.length; i++) {
    if (!FENCE_OPEN.test(lines[i]!)) continue;
    const end = lines.findIndex((line, j) => j > i && /^```\s*$/.test(line));
    if (end < 0) throw new Error(`${file}:${i + 1}: unclosed code block`);
    const marker = i > 0 ? MARKER.exec(lines[i - 1]!) : null;
    out.push({
      file,
      line: i + 2,
      code: lines.slice(i + 1, end).join('\n'),
      context: marker
        ? marker[1]!
            .trim()
            .split(/[\s,]+/)
            .filter(Boolean)
        : [],
    });
    i = end;
  }
  return out;
}

/** `paths` for the package's own name: every `exports` subpath, mapped from its `.d.ts` to its source. */
function selfPaths(): Record<string, string[]> {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
    name: string;
    exports: Record<string, string | { types?: string }>;
  };
  const paths: Record<string, string[]> = {};
  for (const [subpath, target] of Object.entries(pkg.exports)) {
    const types = typeof target === 'object' ? target.types : undefined;
    if (!types) continue;
    const source = types.replace(/^\.\/dist\//, '').replace(/\.d\.ts$/, '.ts');
    paths[subpath === '.' ? pkg.name : `${pkg.name}/${subpath.slice(2)}`] = [join(ROOT, source)];
  }
  return paths;
}

const OPTIONS: ts.CompilerOptions = {
  module: ts.ModuleKind.NodeNext,
  moduleResolution: ts.ModuleResolutionKind.NodeNext,
  target: ts.ScriptTarget.ES2022,
  lib: ['lib.es2023.d.ts'],
  types: ['node'],
  strict: true,
  // Reported for imports only (see below): a snippet may stop at `const auth = …`, but an import it
  // never uses is rot.
  noUnusedLocals: true,
  skipLibCheck: true,
  noEmit: true,
  paths: selfPaths(),
};

/** Diagnostics about a declaration nobody reads. */
const UNUSED = new Set([6133, 6192, 6196, 6198, 6205]);

function insideImport(file: ts.SourceFile, position: number): boolean {
  return file.statements.some(
    (s) => ts.isImportDeclaration(s) && s.getStart(file) <= position && position < s.getEnd(),
  );
}

interface SnippetError {
  /** `README.md:123` */
  where: string;
  message: string;
}

/** Type-check snippets as one program; errors point at the markdown line. */
function checkSnippets(snippets: Snippet[], scratch: string): SnippetError[] {
  const errors: SnippetError[] = [];
  const byPath = new Map<string, { snippet: Snippet; preludeLines: number }>();
  snippets.forEach((snippet, i) => {
    const unknown = snippet.context.filter((name) => !(name in CONTEXT));
    if (unknown.length > 0) {
      errors.push({
        where: `${snippet.file}:${snippet.line - 1}`,
        message: `unknown ts-check context ${unknown.join(', ')} (known: ${Object.keys(CONTEXT).join(' ')})`,
      });
    }
    const prelude = snippet.context.flatMap((name) => (CONTEXT[name] ? [CONTEXT[name]] : []));
    const path = join(scratch, `${snippet.file.replace(/[^\w]+/g, '-')}-${snippet.line}-${i}.ts`);
    // `export {}` makes every block a module, as a user's file would be.
    writeFileSync(path, [...prelude, snippet.code, 'export {};', ''].join('\n'));
    byPath.set(path, { snippet, preludeLines: prelude.length });
  });

  const program = ts.createProgram({ rootNames: [...byPath.keys()], options: OPTIONS });
  for (const [path, { snippet, preludeLines }] of byPath) {
    const file = program.getSourceFile(path);
    if (!file) throw new Error(`${path} was not part of the program`);
    const diagnostics = [
      ...program.getSyntacticDiagnostics(file),
      ...program.getSemanticDiagnostics(file),
    ].filter((d) => !UNUSED.has(d.code) || (d.start !== undefined && insideImport(file, d.start)));
    for (const d of diagnostics) {
      const line = d.start === undefined ? 0 : file.getLineAndCharacterOfPosition(d.start).line;
      const where =
        line < preludeLines
          ? `${snippet.file}:${snippet.line - 1} (ts-check context)`
          : `${snippet.file}:${snippet.line + line - preludeLines}`;
      errors.push({ where, message: `TS${d.code} ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}` });
    }
  }
  return errors;
}

/** The README's blocks: quickstart, loopback identity, Koa, Hono, Fastify, Redis, PostgreSQL, API. */
const MIN_README_BLOCKS = Number(process.env.MIN_README_BLOCKS ?? 8);

const read = (file: string) => readFileSync(join(ROOT, file), 'utf8');
const readme = read('README.md');
const docs = CHECKED_DOCS.filter((file) => existsSync(join(ROOT, file)));

// Inside the repo so node_modules resolve; under node_modules/.cache so no tool or git sees it.
const cache = join(ROOT, 'node_modules', '.cache');
mkdirSync(cache, { recursive: true });
const scratch = mkdtempSync(join(cache, 'readme-snippets-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

describe('#13.16 README snippets compile as written', () => {
  const snippets = docs.flatMap((file) => typescriptBlocks(file, read(file)));

  it('#13.16 README snippets compile as written: every ts block of the README and its docs pages type-checks under module nodenext, strict', () => {
    expect(snippets.filter((s) => s.file === 'README.md').length).toBeGreaterThanOrEqual(MIN_README_BLOCKS);
    const errors = checkSnippets(snippets, scratch);
    expect(errors.map((e) => `${e.where}: ${e.message}`)).toEqual([]);
  }, 120_000);

  it('#13.16 README snippets compile as written: the checker catches a broken block, at its README line', () => {
    const text = [
      '# x',
      '',
      '```ts',
      "import { nothing } from 'oidc-machine-auth';",
      'router.get();',
      '```',
    ].join('\n');
    const errors = checkSnippets(typescriptBlocks('README.md', text), scratch);
    const found = errors.map((e) => `${e.where}: ${e.message}`);
    expect(found).toContainEqual(expect.stringMatching(/^README\.md:4: TS2305 /));
    expect(found).toContainEqual("README.md:5: TS2304 Cannot find name 'router'.");
  }, 120_000);

  it('#13.16 README snippets compile as written: an unused import fails, an unused const does not', () => {
    const text = [
      '```ts',
      "import { createOidcAuth, type AuthContext } from 'oidc-machine-auth';",
      'const auth = createOidcAuth({ identities: [] });',
      '```',
    ].join('\n');
    const errors = checkSnippets(typescriptBlocks('README.md', text), scratch);
    expect(errors.map((e) => e.where)).toEqual(['README.md:2']);
    expect(errors[0]!.message).toMatch(/AuthContext/);
  }, 120_000);

  it('#13.16 README snippets compile as written: the stores are shown as docs/STORES.md recommends them', () => {
    const redis = snippets.find(
      (s) => s.file === 'README.md' && s.code.includes("'oidc-machine-auth/redis'"),
    );
    expect(redis?.code).toContain("import { Redis } from 'ioredis'");
    expect(redis?.code).toMatch(/enableOfflineQueue: false/);
    expect(redis?.code).toMatch(/redis\.on\('error'/);
    const postgres = snippets.find(
      (s) => s.file === 'README.md' && s.code.includes("'oidc-machine-auth/postgres'"),
    );
    expect(postgres?.code).toMatch(/connectionTimeoutMillis/);
    expect(postgres?.code).toMatch(/statement_timeout/);
    expect(postgres?.code).toMatch(/pool\.on\('error'/);
  });

  it('#13.16 README snippets compile as written: the README says which module resolution TypeScript needs', () => {
    for (const mode of ['node16', 'nodenext', 'bundler'])
      expect(readme.includes(`\`${mode}\``), mode).toBe(true);
  });
});
