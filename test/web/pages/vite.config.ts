/**
 * Vite configuration of the test page driven by test/web/browser-api.test.ts (image inputs and
 * the web-worker wrapper). It imports the engine from
 * ../../../src like the demo, with the demo's browser-only guard (a `node:` import reaching the
 * bundle is a build error).
 */
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';
import { browserOnly } from '../../../examples/web/vite.config.js';

const HERE = dirname(fileURLToPath(import.meta.url));

export default defineConfig({
  root: HERE,
  base: './',
  publicDir: false,
  plugins: [browserOnly()],
  worker: { format: 'es', plugins: () => [browserOnly()] },
  build: {
    target: 'es2022',
    chunkSizeWarningLimit: 4096,
  },
});
