import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts', 'src/**/*.test.ts', 'adapters/**/*.test.ts'],
    testTimeout: 20_000,
    hookTimeout: 30_000,
    // .ci/run points each runtime's run at its own report.
    reporters: ['default', ['json', { outputFile: process.env.VITEST_JSON_REPORT ?? '.vitest-report.json' }]],
  },
});
