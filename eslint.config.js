// One linter for the whole tree. The `no-restricted-imports` blocks keep the layers of
// docs/architecture.md pointing one way: core → storage → services → api → app/main.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const layer = (files, patterns) => ({
  files,
  rules: { '@typescript-eslint/no-restricted-imports': ['error', { patterns }] },
});

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'data/**', 'bench/results/**', 'bench/.cache/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { ecmaVersion: 2023, sourceType: 'module' },
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
      eqeqeq: ['error', 'always'],
    },
  },
  {
    files: ['**/*.mjs'],
    languageOptions: { globals: { process: 'readonly', console: 'readonly', URL: 'readonly' } },
  },
  layer(
    ['src/core/**'],
    [
      {
        group: ['**/storage/**', '**/services/**', '**/api/**', '**/http/**', '**/config/**'],
        message: 'core/ is pure protocol code and imports nothing of ours.',
      },
      {
        group: ['fastify', 'fastify/*', '@fastify/*', 'kysely', 'pg', 'better-sqlite3'],
        message: 'core/ does no I/O.',
      },
    ],
  ),
  layer(
    ['src/storage/**'],
    [
      {
        group: ['**/services/**', '**/api/**', '**/http/**'],
        message: 'storage/ imports only core types.',
      },
      { group: ['fastify', 'fastify/*', '@fastify/*'], message: 'storage/ never knows HTTP.' },
    ],
  ),
  layer(
    ['src/services/**'],
    [
      { group: ['**/api/**', '**/http/**'], message: 'services/ never see HTTP.' },
      {
        group: ['fastify', 'fastify/*', '@fastify/*', 'kysely', 'pg', 'better-sqlite3'],
        message: 'services/ never touch Fastify or a SQL dialect.',
      },
      {
        group: ['**/storage/**'],
        allowTypeImports: true,
        message: 'services/ use store interfaces (type imports) only; main.ts wires the stores.',
      },
    ],
  ),
  layer(
    ['src/api/**', 'src/http/**'],
    [
      {
        group: ['**/storage/**', 'kysely', 'pg', 'better-sqlite3'],
        message: 'routes never touch SQL: call a service.',
      },
    ],
  ),
);
