import { availableParallelism } from 'node:os';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts', 'src/**/*.test.ts', 'adapters/**/*.test.ts'],
    // test/runtimes/ runs oidc-machine-auth/verify on Bun, Deno and other Node majors: it needs them
    // installed (.ci/run installs them from npm and says where with these variables).
    exclude: [
      '**/node_modules/**',
      ...(process.env.RUNTIMES_BIN && process.env.NODE22_BIN && process.env.NODE24_BIN
        ? []
        : ['test/runtimes/**']),
    ],
    // Vitest's default is one worker fewer than the cores: one on a 2-core machine, where most test
    // files mostly wait (servers, child processes, timers). Two files at a time there took the
    // suite from ~7 to ~4.5 minutes with the same results.
    maxWorkers: Math.max(2, availableParallelism() - 1),
    testTimeout: 20_000,
    hookTimeout: 30_000,
    // .ci/run points each runtime's run at its own report.
    reporters: ['default', ['json', { outputFile: process.env.VITEST_JSON_REPORT ?? '.vitest-report.json' }]],
  },
});
