/**
 * The CLI's side of the model cache: the library's registry (src/hub/registry.ts) and file cache
 * (src/node/hub-cache.ts), which `fromPretrained` shares, plus the `--cache` option.
 */
import { join } from 'node:path';
import { hfUrl, type RegistryEntry } from '../../hub/registry.js';
import { FileModelCache, defaultCacheDir } from '../../node/hub-cache.js';

export { REGISTRY, findEntry, type ModelKind, type RegistryEntry } from '../../hub/registry.js';

/** `--cache`, else `$SAMCLIP_CACHE`, else `$XDG_CACHE_HOME/samclip`, else `~/.cache/samclip`. */
export function cacheDir(option?: string): string {
  return option || defaultCacheDir();
}

/** Where a pulled file lives: `<cache>/<name>/<file>`. */
export function cachedPath(cache: string, name: string, file: string): string {
  return join(cache, name, file);
}

/** Pulled and complete: the file and its record agree (a truncated or unrecorded file does not count). */
export function isCached(cache: string, name: string, file: string): boolean {
  return new FileModelCache(cache).hasSync(name, file);
}

/** The registry URL of an entry, on $HF_ENDPOINT when set. */
export function entryUrl(e: RegistryEntry): string {
  return hfUrl(e.repo, e.file, { endpoint: process.env.HF_ENDPOINT, revision: e.revision });
}
