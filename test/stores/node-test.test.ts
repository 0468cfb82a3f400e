import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { MemoryIdentityStore, MemoryTokenStore } from '../../src/stores/memory.js';
import { identityStoreConformance, tokenStoreConformance } from '../../src/testing/index.js';
import { runSuite } from './suite-runner.js';

/**
 * The exported suites need no vitest: test/stores/conformance.node.ts declares them with node:test's
 * describe/it/before/after, and node's own runner runs it in a child process.
 */

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const FILE = 'test/stores/conformance.node.ts';

interface Run {
  code: number;
  tap: string;
}

function nodeTest(env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', '--test', '--test-reporter=tap', FILE],
      { cwd: ROOT, env: { ...process.env, ...env }, timeout: 60_000, maxBuffer: 16 * 1024 * 1024 },
      (error, stdout) =>
        resolve({ code: error ? ((error as { code?: number }).code ?? -1) : 0, tap: stdout }),
    );
  });
}

/** A `# name N` line of the TAP summary. */
function summary(tap: string, name: string): number {
  const match = new RegExp(`^# ${name} (\\d+)$`, 'm').exec(tap);
  if (!match) throw new Error(`no "# ${name}" line in the TAP output:\n${tap.slice(-2000)}`);
  return Number(match[1]);
}

/** How many cases the two suites declare on memory stores (no outage hook), counted without node:test. */
async function declaredCases(): Promise<number> {
  const tokens = new MemoryTokenStore({ sweepIntervalMs: 0 });
  const identities = new MemoryIdentityStore();
  const results = await runSuite((test) => {
    tokenStoreConformance({ name: 'MemoryTokenStore', test, create: () => tokens });
    identityStoreConformance({ name: 'MemoryIdentityStore', test, create: () => identities });
  });
  return results.length;
}

describe('#18 the conformance suites run under node:test', () => {
  it('#18 the conformance suites run under node:test: node --import tsx --test passes every case on the memory stores, and counts them all', async () => {
    const [run, expected] = await Promise.all([nodeTest(), declaredCases()]);
    expect(run.code, run.tap.slice(-3000)).toBe(0);
    expect(expected).toBeGreaterThan(50);
    expect(summary(run.tap, 'tests')).toBe(expected);
    expect(summary(run.tap, 'pass')).toBe(expected);
    expect(summary(run.tap, 'fail')).toBe(0);
    expect(run.tap).toMatch(
      /^ *ok \d+ - TOK-04: 50 parallel uses of a 1-use token give exactly one success$/m,
    );
    expect(run.tap).toMatch(/^ *ok \d+ - MemoryIdentityStore: IdentityStore conformance$/m);
  }, 90_000);

  it('#18 the conformance suites run under node:test: a broken store fails there too (exit 1, the TOK-04 cases not ok)', async () => {
    const run = await nodeTest({ CONFORMANCE_FLAW: 'nonAtomicConsume' });
    expect(run.code).toBe(1);
    expect(summary(run.tap, 'fail')).toBeGreaterThanOrEqual(3);
    expect(run.tap).toMatch(
      /^ *not ok \d+ - TOK-04: 50 parallel uses of a 1-use token give exactly one success$/m,
    );
    expect(run.tap).toMatch(/one atomic step/);
  }, 90_000);
});
