/**
 * `samclip-webgpu/node`: the Node-only parts of the library, never reachable from the browser entry.
 * Loading it registers the Node defaults of fromPretrained (the CLI's file cache, a fetch that
 * honours HTTPS_PROXY, node:crypto), see src/node/hub.ts.
 */
import { useNodeHub } from './hub.js';

export { FileModelCache, defaultCacheDir, nodeSha256, type FileCacheOptions } from './hub-cache.js';
export { createNodeFetch, nodeFetch, proxyFor, type NodeFetchOptions } from './hub-fetch.js';
export { nodeHubDefaults, nodeHubOptions, useNodeHub } from './hub.js';

useNodeHub();
