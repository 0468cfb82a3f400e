import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

/**
 * `oidc-machine-auth/client` runs in pipeline steps on whatever JavaScript runtime the job has, so it
 * uses Web APIs only (fetch, Web Crypto through jose). This reads every source file of `src/client`
 * with the TypeScript parser and lists what would tie it to Node or to the server core: an import
 * that is not jose or a sibling file, and any use of a Node-only global.
 */

const DIR = fileURLToPath(new URL('../../src/client/', import.meta.url));
const ALLOWED_IMPORTS = /^(jose|\.\/[\w-]+\.js)$/;
const NODE_GLOBALS = new Set([
  'Buffer',
  'process',
  'require',
  'module',
  '__dirname',
  '__filename',
  'global',
  'setImmediate',
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

describe('oidc-machine-auth/client: Web APIs only', () => {
  it('src/client imports only jose and its own files, and uses no Node global (Buffer, process, require…)', () => {
    const files = readdirSync(DIR).filter((f) => f.endsWith('.ts'));
    expect(files).toContain('index.ts');
    expect(files.length).toBeGreaterThanOrEqual(5);
    expect(files.flatMap((file) => offences(file))).toEqual([]);
  });

  it('the scan itself finds node: imports, core imports and Node globals', () => {
    const sample =
      "import { x } from 'node:crypto';\nimport '../auth.js';\nexport const b = Buffer.from(process.env.X ?? '');\n";
    expect(offences('sample.ts', sample)).toEqual([
      "sample.ts: import 'node:crypto'",
      "sample.ts: import '../auth.js'",
      'sample.ts: Buffer',
      'sample.ts: process',
    ]);
  });

  it('package.json exports "./client" with types and default, like the other subpaths, and typedoc documents it', () => {
    const pkg = JSON.parse(
      readFileSync(fileURLToPath(new URL('../../package.json', import.meta.url)), 'utf8'),
    ) as {
      exports: Record<string, unknown>;
      scripts: Record<string, string>;
    };
    expect(pkg.exports['./client']).toEqual({
      types: './dist/src/client/index.d.ts',
      default: './dist/src/client/index.js',
    });
    expect(pkg.scripts.docs).toContain('--entryPoints src/client/index.ts');
  });
});
