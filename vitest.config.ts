import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Each file gets its own process (Dawn is a native addon; threads add nothing on 2 cores).
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // Tests force their kernel variants; the CLI's per-adapter micro-benchmark would only cost time
    // (test/kernels/tuner.test.ts runs it on purpose).
    env: { XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? '/tmp', SAMCLIP_TUNING: process.env.SAMCLIP_TUNING ?? 'default' },
  },
});
