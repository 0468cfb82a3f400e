import type { TestFunctions } from '../../src/testing/index.js';

/** One case of a suite run by {@link runSuite}. */
export interface CaseResult {
  /** The case's own title. */
  name: string;
  /** Its describe titles and its own, joined by ` > `. */
  path: string;
  ok: boolean;
  error?: unknown;
}

type Hook = () => Promise<void> | void;

interface Group {
  name: string;
  before: Hook[];
  after: Hook[];
  children: Array<Group | { name: string; fn: Hook }>;
}

/**
 * Runs a suite declared with {@link TestFunctions} outside any framework: collects its describes,
 * cases and hooks, then runs every case one after another (hooks around their group) and records
 * which passed. A case that takes longer than `caseTimeoutMs` fails. Never throws for a failing case.
 */
export async function runSuite(
  declare: (test: TestFunctions) => void,
  { caseTimeoutMs = 10_000 }: { caseTimeoutMs?: number } = {},
): Promise<CaseResult[]> {
  const root: Group = { name: '', before: [], after: [], children: [] };
  let current = root;
  const test: TestFunctions = {
    describe(name, fn) {
      const group: Group = { name, before: [], after: [], children: [] };
      current.children.push(group);
      const parent = current;
      current = group;
      try {
        fn();
      } finally {
        current = parent;
      }
    },
    it(name, fn) {
      current.children.push({ name, fn });
    },
    before(fn) {
      current.before.push(fn);
    },
    after(fn) {
      current.after.push(fn);
    },
  };
  declare(test);
  const results: CaseResult[] = [];
  await runGroup(root, [], results, caseTimeoutMs);
  return results;
}

async function runGroup(group: Group, titles: string[], results: CaseResult[], timeoutMs: number) {
  let setupError: unknown;
  try {
    for (const hook of group.before) await hook();
  } catch (error) {
    setupError = error ?? new Error('before hook failed');
  }
  for (const child of group.children) {
    if ('children' in child) {
      await runGroup(child, [...titles, child.name], results, timeoutMs);
      continue;
    }
    const path = [...titles, child.name].join(' > ');
    if (setupError !== undefined) {
      results.push({ name: child.name, path, ok: false, error: setupError });
      continue;
    }
    try {
      await withTimeout(child.fn, timeoutMs);
      results.push({ name: child.name, path, ok: true });
    } catch (error) {
      results.push({ name: child.name, path, ok: false, error });
    }
  }
  for (const hook of group.after) await hook();
}

async function withTimeout(fn: Hook, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      Promise.resolve().then(fn),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`case timed out after ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
