/** Loading models by name: the registry, the downloader and the caches (browser-safe). */
export { REGISTRY, DEFAULT_HF_ENDPOINT, findEntry, registryNames, hfUrl, type RegistryEntry, type ModelKind } from './registry.js';
export type { ModelCache, CachedFile, CacheRecord, PartWriter, PartialInfo, WriterOptions } from './cache.js';
export { ChunkedModelCache, MemoryModelCache, type ChunkStore, type ChunkedCacheOptions } from './chunked-cache.js';
export { BlobSource } from '../weights/blob-source.js';
export { OpfsModelCache, CacheApiModelCache, defaultBrowserCache } from './browser-cache.js';
export {
  ensureCached,
  normaliseSha256,
  DEFAULT_MAX_BYTES,
  type EnsureOptions,
  type EnsureResult,
  type Expected,
  type DownloadProgress,
  type DownloadEvent,
} from './download.js';
export type { HubFetch } from './http.js';
export { Sha256, createSha256, type Hasher } from './sha256.js';
export { setHubDefaults, type HubDefaults } from './platform.js';
export { fetchPretrained, openPretrained, resolveEntry, type PretrainedOptions, type PretrainedName, type FetchedPretrained } from './pretrained.js';
export { HubError, DownloadError, ChecksumError, OfflineError } from './errors.js';
