import {defineConfig} from 'vitest/config'

// Tests run against the built packages (npm run build first) and a real Docker engine.
// Files run one at a time: the end-to-end tests share one engine and this machine has 2 cores.
export default defineConfig({
  test: {
    include: ['packages/*/test/**/*.test.ts', 'plugins/*/test/**/*.test.ts', 'test/**/*.test.ts'],
    fileParallelism: false,
    testTimeout: 120_000,
    hookTimeout: 180_000,
    reporters: ['default'],
  },
})
