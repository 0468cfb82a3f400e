import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

/**
 * `oidc-machine-auth/verify` must run on Web APIs only (fetch, WebCrypto through jose), so the same
 * module works on Node, Bun, Deno and workers. This reads every source file of `src/verify` with the
 * TypeScript parser and lists what would tie it to Node: an import that is not jose, lru-cache or a
 * sibling file, and any use of a Node-only global. (The Deno and Bun runs in
 * test/runtimes/verify-runtimes.test.ts prove the same by running it.)
 */

const DIR = fileURLToPath(new URL('../../src/verify/', import.meta.url));
const ALLOWED_IMPORTS = /^(jose|lru-cache|\.\/[\w-]+\.js)$/;
const NODE_GLOBALS = new Set([
  'Buffer',
  'process',
  'require',
  'module',
  '__dirname',
  '__filename',
  'global',
  'setImmediate',
  'clearImmediate',
]);

function offences(file: string, text = readFileSync(join(DIR, file), 'utf8')): string[] {
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.ES2022, true);
  const found: string[] = [];
  const visit = (node: ts.Node) => {
    if ((ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) && node.moduleSpecifier) {
      const spec = (node.moduleSpecifier as ts.StringLiteral).text;
      if (!ALLOWED_IMPORTS.test(spec)) found.push(`${file}: import '${spec}'`);
    }
    if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) {
      found.push(`${file}: dynamic import()`);
    }
    if (ts.isIdentifier(node) && NODE_GLOBALS.has(node.text)) {
      const parent = node.parent;
      const isPropertyName =
        (ts.isPropertyAccessExpression(parent) && parent.name === node) ||
        (ts.isPropertyAssignment(parent) && parent.name === node) ||
        (ts.isPropertySignature(parent) && parent.name === node);
      if (!isPropertyName) found.push(`${file}: ${node.text}`);
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}

describe('oidc-machine-auth/verify: Web APIs only', () => {
  const files = readdirSync(DIR).filter((f) => f.endsWith('.ts'));

  it('src/verify imports only jose, lru-cache and its own files, and uses no Node global (Buffer, process, require…)', () => {
    expect(files).toContain('index.ts');
    expect(files.length).toBeGreaterThanOrEqual(5);
    expect(files.flatMap((file) => offences(file))).toEqual([]);
  });

  it('the scan itself finds node: imports, Node globals and core imports', () => {
    const sample =
      "import { x } from 'node:crypto';\nimport '../auth.js';\nexport const b = Buffer.from(process.env.X ?? '');\n";
    expect(offences('sample.ts', sample)).toEqual([
      "sample.ts: import 'node:crypto'",
      "sample.ts: import '../auth.js'",
      'sample.ts: Buffer',
      'sample.ts: process',
    ]);
  });

  it('package.json exports "./verify" with types and default, like the other subpaths', () => {
    const pkg = JSON.parse(
      readFileSync(fileURLToPath(new URL('../../package.json', import.meta.url)), 'utf8'),
    ) as {
      exports: Record<string, unknown>;
      scripts: Record<string, string>;
    };
    expect(pkg.exports['./verify']).toEqual({
      types: './dist/src/verify/index.d.ts',
      default: './dist/src/verify/index.js',
    });
    expect(pkg.scripts.docs).toContain('--entryPoints src/verify/index.ts');
  });
});
