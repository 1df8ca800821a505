/**
 * `samclip-webgpu/node`: the Node-only half of the library, never reachable from the browser entry
 * (`samclip-webgpu`): image files (JPEG / PNG decoding with EXIF orientation, PNG writing), drawing
 * helpers for masks and label maps, files on disk, Dawn, and the hub's Node defaults. Loading it
 * registers the Node defaults of fromPretrained (the CLI's file cache, a fetch that honours
 * HTTPS_PROXY, node:crypto), see src/node/hub.ts; package.json "sideEffects" names this file for
 * that. See docs/api.md, "Installing, Node and browsers".
 *
 * Keep this file a plain list of re-exports, grouped by what they are for.
 */
import { useNodeHub } from './hub.js';

// Image files (JPEG / PNG decoding with EXIF orientation, PNG writing) and the drawing helpers
// for masks, boxes, points and label maps that the CLI's overlays use: see src/io/index.ts.
export * from '../io/index.js';

// Dawn (the `webgpu` package): GpuContext.create() loads it by itself on Node; this is for code
// that wants Dawn's GPU object directly.
export { loadDawn } from '../gpu/device.js';

// Files on disk: positioned reads of safetensors files, atomic safetensors writing.
export { NodeFileSource } from '../weights/safetensors-source.js';
export { writeSafetensorsFile, type WriteSafetensorsOptions, type WriteSafetensorsResult } from '../weights/safetensors-writer.js';

// The hub on Node: the file cache, the proxy-aware fetch, the defaults fromPretrained uses.
export { FileModelCache, defaultCacheDir, nodeSha256, type FileCacheOptions } from './hub-cache.js';
export { createNodeFetch, nodeFetch, proxyFor, type NodeFetchOptions } from './hub-fetch.js';
export { nodeHubDefaults, nodeHubOptions, useNodeHub } from './hub.js';
export { fileTuningStore } from './tuning-store.js';
export { hostCpu, type HostCpu } from './host-cpu.js';

useNodeHub();
