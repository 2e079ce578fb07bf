import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Native addons (onnxruntime-node, sharp) are safest in child processes, not worker threads.
    pool: 'forks',
    poolOptions: { forks: { maxForks: 2, minForks: 1 } },
    // Generous: CI machines are shared; speed is measured by the bench, never by a test.
    testTimeout: 300_000,
    hookTimeout: 300_000,
  },
});
