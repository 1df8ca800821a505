/**
 * The hub's Node defaults, registered when `samclip-webgpu/node` is loaded (src/node/index.ts):
 * the CLI's file cache, the proxy-aware fetch and node:crypto's SHA-256. Pass `nodeHubOptions()`
 * to fromPretrained to use them explicitly, independent of module loading order or bundling.
 */
import type { HubDefaults } from '../hub/platform.js';
import { setHubDefaults } from '../hub/platform.js';
import { FileModelCache, defaultCacheDir, nodeSha256 } from './hub-cache.js';
import { nodeFetch } from './hub-fetch.js';

export function nodeHubDefaults(): HubDefaults {
  return {
    cache: () => new FileModelCache(defaultCacheDir()),
    fetch: nodeFetch,
    createHash: nodeSha256,
    env: () => process.env,
  };
}

/** Make the Node defaults the hub's defaults (done on load of 'samclip-webgpu/node'). */
export function useNodeHub(): void {
  setHubDefaults(nodeHubDefaults());
}

/** `{ cache, fetch }` for fromPretrained on Node, spelled out. */
export function nodeHubOptions(dir = defaultCacheDir()): { cache: FileModelCache; fetch: typeof nodeFetch } {
  return { cache: new FileModelCache(dir), fetch: nodeFetch };
}
