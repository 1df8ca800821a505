/**
 * Models by name: resolve a registry name to its Hub URL, make sure the file is in the cache
 * (downloading, resuming and verifying it), and open it as a safetensors file. The facades'
 * `fromPretrained` methods (SamPredictor, ClipClassifier, SamClip) build the model from it.
 */
import { SafetensorsFile } from '../weights/safetensors.js';
import type { ModelCache } from './cache.js';
import type { DownloadEvent, DownloadProgress, EnsureResult } from './download.js';
import { HubError } from './errors.js';
import type { HubFetch } from './http.js';
import { ENTRY_NAME, type ModelKind, type RegistryEntry, findEntry, hfUrl, registryNames } from './registry.js';

export interface PretrainedOptions {
  /** Where models are kept. Default: OPFS / Cache API in browsers; on Node the CLI's cache (via 'samclip-webgpu/node'). */
  cache?: ModelCache;
  /** The fetch to download with (default: the platform's). */
  fetch?: HubFetch;
  signal?: AbortSignal;
  onProgress?: (p: DownloadProgress) => void;
  /** Waits, retries, restarts (for logging). */
  onEvent?: (e: DownloadEvent) => void;
  /** The Hub's address (default $HF_ENDPOINT, else https://huggingface.co). */
  endpoint?: string;
  /** Access token for gated or private repositories (default $HF_TOKEN); sent to the endpoint only. */
  token?: string | null;
  /** Never download: a model not in the cache is an error (default: $HF_HUB_OFFLINE=1). */
  offline?: boolean;
  /** Re-hash the cached file against its record before using it. */
  verify?: boolean;
  /** Download again even if cached. */
  force?: boolean;
  /** Cap when the server declares no length (default 4 GiB). */
  maxBytes?: number;
  retries?: number;
}

/** A registry name (`'sam-vit-b'`), or an entry of your own (any Hub repository and file). */
export type PretrainedName = string | RegistryEntry;

export interface FetchedPretrained {
  entry: RegistryEntry;
  url: string;
  result: EnsureResult;
}

const KIND_NAME: Record<ModelKind, string> = { sam: 'SAM', sam2: 'SAM 2', clip: 'CLIP' };

/** The registry entry of `name`, checked against the kind of model wanted. */
export function resolveEntry(name: PretrainedName, kind: ModelKind | null, who = 'fromPretrained'): RegistryEntry {
  const entry = typeof name === 'string' ? findEntry(name) : name;
  if (!entry) {
    const known = registryNames(kind ?? undefined);
    throw new HubError(`${who}: unknown model '${String(name)}'; known ${kind ? `${KIND_NAME[kind]} ` : ''}models are ${known.join(', ')}`);
  }
  if (!ENTRY_NAME.test(entry.name)) throw new HubError(`${who}: model name '${entry.name}' may only hold letters, digits, '.', '_' and '-'`);
  if (kind && entry.kind !== kind) {
    throw new HubError(`${who}: '${entry.name}' is a ${KIND_NAME[entry.kind]} model, not a ${KIND_NAME[kind]} one; ${KIND_NAME[kind]} models are ${registryNames(kind).join(', ')}`);
  }
  return entry;
}

function truthy(v: string | undefined): boolean {
  return !!v && /^(1|true|yes|on)$/i.test(v.trim());
}

/** Make sure the file of `name` is in the cache; downloads (resumable, verified) when it is not. */
export async function fetchPretrained(name: PretrainedName, kind: ModelKind | null, opts: PretrainedOptions = {}): Promise<FetchedPretrained> {
  const entry = resolveEntry(name, kind);
  // The downloader and the platform caches load on first use: a bundler puts them in a chunk of
  // their own, so an app that loads its weights by URL does not ship them (test/consumers).
  const [{ ensureCached }, { hubDefaults }] = await Promise.all([import('./download.js'), import('./platform.js')]);
  const defaults = hubDefaults();
  const env = defaults.env();
  const endpoint = opts.endpoint ?? env.HF_ENDPOINT ?? undefined;
  const url = hfUrl(entry.repo, entry.file, { endpoint, revision: entry.revision });
  const token = opts.token === undefined ? (env.HF_TOKEN ?? env.HUGGING_FACE_HUB_TOKEN ?? null) : opts.token;
  const result = await ensureCached({
    name: entry.name,
    file: entry.file,
    url,
    cache: opts.cache ?? (await defaults.cache()),
    fetch: opts.fetch ?? defaults.fetch,
    // Redirects to another host (the Hub's CDN) drop it: fetch does, and so does the Node fetch.
    headers: token ? { authorization: `Bearer ${token}` } : {},
    expected: { sha256: entry.sha256, size: entry.size, from: 'registry', label: typeof name === 'string' ? 'the registry' : 'the given entry' },
    signal: opts.signal,
    onProgress: opts.onProgress,
    onEvent: opts.onEvent,
    offline: opts.offline ?? truthy(env.HF_HUB_OFFLINE),
    verify: opts.verify,
    force: opts.force,
    maxBytes: opts.maxBytes,
    retries: opts.retries,
    createHash: defaults.createHash,
  });
  return { entry, url, result };
}

/** As fetchPretrained, then open the cached file (lazily: only the header is read). The caller closes it. */
export async function openPretrained(name: PretrainedName, kind: ModelKind | null, opts: PretrainedOptions = {}): Promise<FetchedPretrained & { file: SafetensorsFile }> {
  const fetched = await fetchPretrained(name, kind, opts);
  const cached = fetched.result.entry;
  const file = cached.path ? await SafetensorsFile.open(cached.path) : await SafetensorsFile.fromSource(await cached.source());
  return { ...fetched, file };
}
