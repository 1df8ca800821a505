/**
 * Vite configuration of the test pages driven by test/web/browser-api.test.ts: image inputs
 * (image-inputs.html) and the web-worker wrapper (worker.html). They import the engine from
 * ../../../src like the demo, with the demo's browser-only guard (a `node:` import reaching the
 * bundle is a build error).
 */
import { dirname, join } from 'node:path';
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
    rollupOptions: { input: { 'image-inputs': join(HERE, 'image-inputs.html'), worker: join(HERE, 'worker.html') } },
  },
});
