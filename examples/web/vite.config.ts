/**
 * Vite configuration of the browser demo.
 *
 *   npm run demo:web     dev server on http://127.0.0.1:5173/ (a loopback origin is a secure context)
 *   npm run build:web    static build into dist/web (serve it with `npx tsx tools/serve-demo.ts`)
 *
 * The page imports the engine's modules from ../../src directly. The core library is browser-safe:
 * its Node-only capabilities (files, Dawn) come through the platform seam `#platform`
 * (package.json "imports"), which a browser build resolves to platform/browser.js. Any `node:` /
 * built-in import reaching the bundle is a build error naming the importer.
 *
 * The dev server also serves the repository's test fixtures at /fixtures/ (tiny random-weight
 * models) and, when SAMCLIP_WEIGHTS_DIR is set, that folder at /weights/, both with HTTP Range.
 */
import { builtinModules } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Plugin, defineConfig } from 'vite';
import { staticHandler } from '../../tools/serve-demo.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const REPO = resolve(HERE, '..', '..');
const BUILTINS = new Set(builtinModules.flatMap((m) => [m, `node:${m}`]));

/** Exported for the test pages (test/web/pages/vite.config.ts), which import the engine the same way. */
export function browserOnly(): Plugin {
  return {
    name: 'samclip-browser-only',
    enforce: 'pre',
    resolveId(source, importer) {
      if (source.startsWith('node:') || BUILTINS.has(source)) {
        this.error(`'${source}' imported by ${importer ?? '(entry)'}: Node-only modules must not reach the browser bundle`);
      }
      return null;
    },
  };
}

function devMounts(): Plugin {
  const mounts: Record<string, string> = { '/fixtures/': join(REPO, 'test', 'fixtures') };
  if (process.env.SAMCLIP_WEIGHTS_DIR) mounts['/weights/'] = resolve(process.env.SAMCLIP_WEIGHTS_DIR);
  return {
    name: 'samclip-dev-mounts',
    configureServer(server) {
      server.middlewares.use(staticHandler(mounts));
    },
  };
}

export default defineConfig({
  root: HERE,
  base: './',
  publicDir: join(HERE, 'public'),
  plugins: [browserOnly(), devMounts()],
  // The engine's worker (src/worker) is a module worker and imports the engine like the page does.
  worker: { format: 'es', plugins: () => [browserOnly()] },
  build: {
    outDir: join(REPO, 'dist', 'web'),
    emptyOutDir: true,
    target: 'es2022',
    sourcemap: true,
    // The engine is one ~0.5 MB module graph; splitting it buys nothing for a demo.
    chunkSizeWarningLimit: 2048,
  },
  server: { host: '127.0.0.1', port: 5173, fs: { allow: [REPO] } },
  preview: { host: '127.0.0.1', port: 4173 },
});
