/**
 * The CLIP BPE vocabulary that ships with the package (`assets/bpe_simple_vocab_16e6.txt.gz`), and
 * the default tokenizer built from it: the same code in browsers, workers and Node.
 *
 * The file is found with `new URL('../../assets/...', import.meta.url)`, written out literally so
 * that bundlers which understand the pattern (Vite, webpack 5, Parcel) copy the file into the
 * build and rewrite the URL. The relative path is the same from `src/text/` (a checkout) and from
 * `lib/text/` (the package). On Node the URL is a `file:` URL, read through the platform seam;
 * anywhere else it is fetched. Some servers (Vite's dev server among them) answer a `.gz` file with
 * `Content-Encoding: gzip`, so the page receives the text already inflated: both forms are read.
 */
import { nodeFs } from '#platform';
import { ClipTokenizer } from './clip-tokenizer.js';
import { TokenizerError } from './tokenizer-error.js';

export const CLIP_BPE_ASSET = 'bpe_simple_vocab_16e6.txt.gz';

/** Where the shipped vocabulary is: a `file:` URL on Node, the bundler's URL for it in a page. */
export function clipBpeUrl(): URL {
  return new URL('../../assets/bpe_simple_vocab_16e6.txt.gz', import.meta.url);
}

export interface LoadClipTokenizerOptions {
  /** fetch for http(s) URLs (default: the global one). */
  fetch?: (url: string) => Promise<Response>;
}

const BUNDLER_HELP =
  `The vocabulary ships in the package as assets/${CLIP_BPE_ASSET} and is found with new URL(..., import.meta.url); ` +
  'if your bundler does not copy such files (esbuild, for one), serve that file yourself and pass its URL: ' +
  'loadClipTokenizer(url), then { tokenizer } to the model.';

/** A URL string (relative to the page in a browser) as a URL. */
function toUrl(src: string | URL): URL {
  if (src instanceof URL) return src;
  const base = (globalThis as { location?: { href: string } }).location?.href;
  try {
    return base ? new URL(src, base) : new URL(src);
  } catch {
    throw new TokenizerError(`CLIP vocabulary '${src}': not a URL`);
  }
}

const HAS_SCHEME = /^[a-z][a-z0-9+.-]*:\/\//i;

async function readBytes(src: string | URL, opts: LoadClipTokenizerOptions): Promise<{ bytes: Uint8Array; name: string }> {
  // On Node a string without a scheme is a path, relative to the working directory.
  const url = typeof src === 'string' && nodeFs && !HAS_SCHEME.test(src) ? null : toUrl(src);
  if (!url || url.protocol === 'file:') {
    const name = url ? url.href : String(src);
    if (!nodeFs) throw new TokenizerError(`CLIP vocabulary ${name}: a file: URL needs Node. ${BUNDLER_HELP}`);
    try {
      return { bytes: new Uint8Array(await nodeFs.readFile(url ?? name)), name };
    } catch (e) {
      throw new TokenizerError(`CLIP vocabulary ${name}: cannot read: ${(e as Error).message}`);
    }
  }
  const fetchFn = opts.fetch ?? globalThis.fetch?.bind(globalThis);
  if (!fetchFn) throw new TokenizerError(`CLIP vocabulary ${url.href}: no fetch function available; pass { fetch }`);
  let res: Response;
  try {
    res = await fetchFn(url.href);
  } catch (e) {
    throw new TokenizerError(`CLIP vocabulary ${url.href}: fetch failed: ${(e as Error).message}. ${BUNDLER_HELP}`);
  }
  if (!res.ok) throw new TokenizerError(`CLIP vocabulary ${url.href}: HTTP ${res.status}. ${BUNDLER_HELP}`);
  return { bytes: new Uint8Array(await res.arrayBuffer()), name: url.href };
}

/** A tokenizer from a BPE file's bytes: gzipped (as shipped) or already inflated. */
async function fromBpeBytes(bytes: Uint8Array, name: string): Promise<ClipTokenizer> {
  if (bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b) return ClipTokenizer.fromBpeGz(bytes);
  const text = new TextDecoder().decode(bytes);
  // A merges file: a header line, then one "a b" pair per line. An HTML page (a server's fallback
  // answering 200 for a missing file) is not one.
  const lines = text.slice(0, 4096).split('\n');
  if (lines.length < 3 || !/^\S+ \S+$/.test(lines[1]!)) {
    throw new TokenizerError(`CLIP vocabulary ${name}: neither gzip data nor a BPE merges file (starts with ${JSON.stringify(text.slice(0, 40))}). ${BUNDLER_HELP}`);
  }
  return ClipTokenizer.fromBpeText(text);
}

let shipped: Promise<ClipTokenizer> | undefined;

/**
 * The CLIP tokenizer. Without `source`: from the vocabulary shipped in this package, loaded once
 * per page or process. With `source`: a BPE file (gzipped or not) at that URL, or on Node that path.
 */
export function loadClipTokenizer(source?: string | URL, opts: LoadClipTokenizerOptions = {}): Promise<ClipTokenizer> {
  if (source !== undefined) return readBytes(source, opts).then(({ bytes, name }) => fromBpeBytes(bytes, name));
  if (!shipped) {
    const p = readBytes(clipBpeUrl(), opts).then(({ bytes, name }) => fromBpeBytes(bytes, name));
    shipped = p;
    // A failed load should not stick: let the next call try again.
    p.catch(() => {
      if (shipped === p) shipped = undefined;
    });
  }
  return shipped;
}
