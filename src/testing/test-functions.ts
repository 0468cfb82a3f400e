/**
 * The test framework's functions the conformance suites declare their cases with. Pass vitest's or
 * Jest's `{ describe, it, before: beforeAll, after: afterAll }`, `node:test`'s or Mocha's
 * `{ describe, it, before, after }` as they are.
 *
 * Cases run one after another (every framework above does by default; do not make them concurrent):
 * the outage cases break the backend the other cases use. A case may take a few seconds (the outage
 * cases wait for recovery): give `it` a timeout above `outage.recoverWithinMs` where the framework
 * has a short default, e.g. `it: (name, fn) => it(name, fn, 30_000)` under vitest.
 */
export interface TestFunctions {
  describe(name: string, fn: () => void): void;
  it(name: string, fn: () => Promise<void> | void): void;
  /**
   * Runs once before the cases of the `describe` it is called in (`node:test` and Mocha name it
   * `before`; vitest and Jest, `beforeAll`). Optional: without it, the stores are created by the
   * first case that needs them.
   */
  before?(fn: () => Promise<void> | void): void;
  /**
   * Runs once after them (`after`, or `afterAll`). Optional: without it, the suite does not call
   * the stores' `close`; close what the factory opened yourself.
   */
  after?(fn: () => Promise<void> | void): void;
}

/**
 * The store instances of one suite: created by the factory on first use (or in `before`), shared by
 * every case, and closed in `after` by their `close` method where they have one (once per distinct
 * object: a factory may hand back one instance every time).
 */
export function storeFixture<S extends object>(
  test: TestFunctions,
  create: () => S | Promise<S>,
  count: number,
): () => Promise<readonly S[]> {
  let stores: Promise<readonly S[]> | undefined;
  const get = () =>
    (stores ??= (async () => {
      const made: S[] = [];
      // One after another: a factory may migrate a schema or open a pool on its first call.
      for (let i = 0; i < count; i++) made.push(await create());
      return made;
    })());
  test.before?.(async () => {
    await get();
  });
  test.after?.(async () => {
    if (!stores) return;
    const made = await stores.catch(() => [] as readonly S[]);
    for (const store of new Set(made)) await (store as { close?(): Promise<void> }).close?.();
  });
  return get;
}
