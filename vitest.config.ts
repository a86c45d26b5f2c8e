import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Installs (Debian, root) or names what the machine lacks: Chromium, redis-server, coturn;
    // and gives the tests that install the packed package one tarball per run.
    globalSetup: ['test/global-setup.ts', 'test/global-tarball.ts'],
    pool: 'forks',
    testTimeout: 30_000,
    hookTimeout: 30_000
  }
})
