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
 * `<!-- ts-check: app auth -->` (invisible on GitHub and npm; blank lines may separate the two). Each name is a declaration from
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
const CHECKED_DOCS = [
  'README.md',
  'docs/CONFIG.md',
  'docs/PROTOCOL.md',
  'docs/OBSERVABILITY.md',
  'docs/STORES.md',
  'docs/UPGRADING.md',
  'docs/NESTJS.md',
  'docs/PASSPORT.md',
  'docs/VERIFY.md',
  'docs/TOKENS.md',
  'docs/DPOP-CLIENT.md',
  'docs/DPOP.md',
  'docs/RATE-LIMITS.md',
];

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
    let above = i - 1; // Prettier puts a blank line between the comment and the fence.
    while (above >= 0 && lines[above]!.trim() === '') above--;
    const marker = above >= 0 ? MARKER.exec(lines[above]!) : null;
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
  // Legacy decorators, as every NestJS project compiles them (docs/NESTJS.md, docs/PASSPORT.md).
  experimentalDecorators: true,
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
        where: `${snippet.file}:${snippet.line - 1} (ts-check context)`,
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

/** The README's `## ` sections, each with its text. */
function sections(markdown: string): Array<{ title: string; text: string }> {
  const parts = markdown.split(/^## /m).slice(1);
  return parts.map((part) => ({ title: part.slice(0, part.indexOf('\n')), text: part }));
}

/** Words outside code blocks. */
const proseWords = (markdown: string) =>
  markdown
    .replace(/^```[^\n]*\n[\s\S]*?^```\s*$/gm, '')
    .split(/\s+/)
    .filter(Boolean).length;

describe("#13.18 README reads in a user's order", () => {
  const all = sections(readme);
  const section = (title: RegExp) => all.find((s) => title.test(s.title))?.text ?? '';

  it("#13.18 README reads in a user's order: the two commands, quickstart, GitHub Actions then Azure DevOps, other frameworks, many instances, config, explain, security, performance, API", () => {
    const order = [
      /^Try it$/,
      /^Quickstart \(Express\)$/,
      /GitHub Actions/,
      /Azure DevOps/,
      /^Koa, Hono and Fastify$/,
      /many instances/i,
      /^Identity config$/,
      /`explain`/,
      /^Security$/,
      /^Performance$/,
      /^API$/,
    ];
    const titles = all.map((s) => s.title);
    const positions = order.map((title) => titles.findIndex((t) => title.test(t)));
    expect(positions.map((p, i) => (p < 0 ? `missing: ${order[i]}` : p))).toEqual(
      [...positions].sort((a, b) => a - b),
    );
    // What it is comes first, before any section.
    expect(readme.indexOf('## ')).toBeGreaterThan(readme.indexOf('workload'));
  });

  it("#13.18 README reads in a user's order: depth lives in docs/ (no benchmark table, config reference or full Azure pipeline; under 2,200 words of prose)", () => {
    expect(proseWords(readme)).toBeLessThan(2200);
    expect(readme).not.toMatch(/^\| comparison/m); // the benchmark table: docs/PERFORMANCE.md
    expect(readme).not.toMatch(/^\| `maxTokenLifetimeSeconds`/m); // the field reference: docs/CONFIG.md
    expect(readme).not.toContain('inlineScript:'); // the whole AzureCLI@2 step: examples/secrets-api
  });

  it("#13.18 README reads in a user's order: the quickstart has the two commands to start and the loopback-IdP flags for a local try", () => {
    expect(section(/^Try it$/)).toContain('npm install && npm start');
    expect(section(/^Try it$/)).toContain('npm test');
    const quickstart = section(/^Quickstart/);
    expect(quickstart).toContain('openssl rand -base64 32');
    expect(quickstart).toContain('allowInsecureLoopback: true');
    expect(quickstart).toContain('allowPrivateNetwork');
  });

  it("#13.18 README reads in a user's order: the GitHub Actions workflow asks for an id token with the audience and identity of the quickstart", () => {
    const github = section(/GitHub Actions/);
    const workflow = /```yaml\n([\s\S]*?)```/.exec(github)?.[1] ?? '';
    expect(workflow).toMatch(/^permissions:\n {2}id-token: write/m);
    expect(workflow).toContain('"$ACTIONS_ID_TOKEN_REQUEST_URL&audience=$API"');
    expect(workflow).toContain('Authorization: bearer $ACTIONS_ID_TOKEN_REQUEST_TOKEN');
    expect(workflow).toContain('/api/v1/auth/oidc-auth/login');
    const quickstart = section(/^Quickstart/);
    const audience = /boundAudiences: '([^']+)'/.exec(quickstart)?.[1];
    const identityId = /identityId: '([^']+)'/.exec(quickstart)?.[1];
    const branch = /boundSubject: 'repo:[^:]+:ref:refs\/heads\/([^']+)'/.exec(quickstart)?.[1];
    expect(workflow).toMatch(new RegExp(`^ +API: ${audience} `, 'm'));
    expect(workflow).toMatch(new RegExp(`^ +IDENTITY_ID: ${identityId}$`, 'm'));
    expect(workflow).toMatch(new RegExp(`branches: \\[${branch}\\]`));
  });

  it("#13.18 README reads in a user's order: the Azure DevOps excerpt is lines of the step npm start runs (pipeline-step.sh)", () => {
    const script = read('examples/secrets-api/pipeline-step.sh').split('\n');
    const excerpt = /```sh\n([\s\S]*?)```/.exec(section(/Azure DevOps/))?.[1] ?? '';
    const lines = excerpt.split('\n').filter((line) => line.trim() !== '');
    expect(lines.join('\n')).toContain('az account get-access-token --resource api://AzureADTokenExchange');
    expect(lines.join('\n')).toContain('/api/v1/auth/oidc-auth/login');
    for (const line of lines) expect(script).toContain(line);
  });
});
