import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'coverage/**', 'bench/out/**', 'docs/api/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-restricted-imports': 'off',
    },
  },
  {
    files: ['src/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['express', 'koa', 'hono', 'hono/*', 'fastify', 'ioredis', 'pg', '@koa/*', '@hono/*'],
              message: 'src/ is the framework- and database-free core; put bindings in adapters/.',
            },
          ],
        },
      ],
    },
  },
  {
    // oidc-machine-auth/verify runs on Web APIs only (Node, Bun, Deno, workers): no Node modules or globals.
    files: ['src/verify/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            { group: ['node:*'], message: 'src/verify uses Web APIs only.' },
            { group: ['../*'], message: 'src/verify stands alone: it imports nothing from the core.' },
          ],
        },
      ],
      'no-restricted-globals': [
        'error',
        'Buffer',
        'process',
        'require',
        '__dirname',
        '__filename',
        'global',
        'setImmediate',
      ],
    },
  },
  {
    // oidc-machine-auth/client runs on Web APIs only too (Node, Bun, Deno): no Node modules or globals.
    files: ['src/client/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            { group: ['node:*'], message: 'src/client uses Web APIs only.' },
            { group: ['../*'], message: 'src/client stands alone: it imports nothing from the core.' },
          ],
        },
      ],
      'no-restricted-globals': ['error', 'Buffer', 'process', 'require', '__dirname', '__filename', 'global'],
    },
  },
);
