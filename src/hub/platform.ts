/**
 * What the hub uses when the caller passes nothing: the cache, the fetch, the hash and the
 * environment. Browsers get OPFS / the Cache API, `fetch` and the TypeScript SHA-256. Node gets
 * the CLI's file cache, a fetch that honours HTTPS_PROXY and `node:crypto` — but only from
 * `samclip-webgpu/node`, which registers them when it is loaded (src/node/index.ts): the core
 * library never imports a `node:` module, so no bundler can pull one into a browser build.
 * Without that registration, Node asks for `{ cache }` with a message that says how.
 */
import { defaultBrowserCache } from './browser-cache.js';
import type { ModelCache } from './cache.js';
import { HubError } from './errors.js';
import type { HubFetch } from './http.js';
import { type Hasher, createSha256 } from './sha256.js';

export interface HubDefaults {
  cache: () => ModelCache | Promise<ModelCache>;
  fetch: HubFetch;
  createHash: () => Hasher;
  /** Environment variables read: HF_ENDPOINT, HF_TOKEN, HF_HUB_OFFLINE. */
  env: () => Record<string, string | undefined>;
}

let registered: Partial<HubDefaults> | null = null;

/** Replace the defaults (what `samclip-webgpu/node` does on load); null restores the built-in ones. */
export function setHubDefaults(defaults: Partial<HubDefaults> | null): void {
  registered = defaults;
}

interface ProcessLike {
  versions?: { node?: string };
  env?: Record<string, string | undefined>;
}

function runtimeProcess(): ProcessLike | undefined {
  return (globalThis as { process?: ProcessLike }).process;
}

/** Node (or a runtime that claims to be), where the browser stores do not exist. */
export function isNodeLike(): boolean {
  return typeof runtimeProcess()?.versions?.node === 'string' && typeof (globalThis as { window?: unknown }).window === 'undefined';
}

const builtinFetch: HubFetch = (url, init) => {
  const f = (globalThis as { fetch?: typeof fetch }).fetch;
  if (!f) throw new HubError('no fetch function is available here; pass { fetch }');
  return f(url, init);
};

export function hubDefaults(): HubDefaults {
  return {
    cache:
      registered?.cache ??
      (() => {
        if (isNodeLike()) {
          throw new HubError(
            "fromPretrained on Node needs the file cache from 'samclip-webgpu/node': import it once (import 'samclip-webgpu/node', or any of its exports), or pass { cache: new FileModelCache() }",
          );
        }
        return defaultBrowserCache();
      }),
    fetch: registered?.fetch ?? builtinFetch,
    createHash: registered?.createHash ?? createSha256,
    env: registered?.env ?? (() => runtimeProcess()?.env ?? {}),
  };
}
