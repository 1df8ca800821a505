/**
 * Where relative addresses point. In a page a string like `models/sam.safetensors` means what an
 * `<img src>` would: the address resolved against `document.baseURI`; in a worker, against the
 * worker script's `self.location`. Outside a browser (Node) there is no such base and a string that
 * is not an http(s) URL stays what it always was there: a file path.
 */

/** The base URL of the running page or worker; null outside a browser. */
export function browserBaseUrl(): string | null {
  const g = globalThis as { document?: { baseURI?: unknown }; location?: { href?: unknown } };
  if (typeof g.document?.baseURI === 'string') return g.document.baseURI;
  // Workers have no document; their global scope has `location` (WorkerLocation).
  if (typeof g.location?.href === 'string') return g.location.href;
  return null;
}

/**
 * The absolute URL to fetch for `src`, or null when `src` is a file path (not http(s), outside a
 * browser). Throws a TypeError naming `src` when a browser cannot make an address of it.
 */
export function fetchableUrl(src: string, base: string | null = browserBaseUrl()): string | null {
  if (/^https?:\/\//i.test(src)) return src;
  if (base === null) return null;
  try {
    return new URL(src, base).href;
  } catch {
    throw new TypeError(`'${src}' is not a valid address (relative to ${base})`);
  }
}
