/**
 * The default CLIP tokenizer finds the vocabulary shipped in the package by itself
 * (`new URL(..., import.meta.url)`: a file: URL on Node, fetched elsewhere), takes a path or a URL,
 * accepts the file gzipped or already inflated (servers that send .gz with Content-Encoding: gzip),
 * and refuses what is not a merges file with an error that names the URL and what to do.
 * Chromium and the Vite dev server: test/consumers/vite-app.test.ts.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { beforeAll, describe, expect, it } from 'vitest';
import type { ClipTokenizer } from '../../src/text/clip-tokenizer.js';
import { CLIP_BPE_ASSET, clipBpeUrl, loadClipTokenizer } from '../../src/text/clip-vocabulary.js';
import { TokenizerError } from '../../src/text/tokenizer-error.js';

const TEXTS = ['a photo of a dog', 'Ünïcode, naïve café!'];
const gz = () => new Uint8Array(readFileSync(clipBpeUrl()));

/** A fetch that answers every URL with `body` and `status`, recording the URLs asked for. */
function fakeFetch(body: Uint8Array | string, status = 200): { fetch: (url: string) => Promise<Response>; urls: string[] } {
  const urls: string[] = [];
  return {
    urls,
    fetch: async (url: string) => {
      urls.push(url);
      return new Response(typeof body === 'string' ? body : new Uint8Array(body), { status });
    },
  };
}

describe('loadClipTokenizer', () => {
  let shipped: ClipTokenizer;
  let ids: number[];
  beforeAll(async () => {
    shipped = await loadClipTokenizer();
    ids = Array.from(shipped.tokenize(TEXTS).ids);
  });

  it('finds the shipped vocabulary by itself (a file: URL next to the package), once per process', async () => {
    const url = clipBpeUrl();
    expect(url.protocol).toBe('file:');
    expect(fileURLToPath(url).endsWith(`assets/${CLIP_BPE_ASSET}`)).toBe(true);
    expect(await loadClipTokenizer()).toBe(shipped);
    expect(ids.slice(0, 7)).toEqual([49406, 320, 1125, 539, 320, 1929, 49407]);
  });

  it('reads a path, and a URL fetched gzipped or already inflated, to the same tokenizer', async () => {
    const byPath = await loadClipTokenizer(fileURLToPath(clipBpeUrl()));
    expect(Array.from(byPath.tokenize(TEXTS).ids)).toEqual(ids);
    const zipped = fakeFetch(gz());
    const inflated = fakeFetch(new Uint8Array(gunzipSync(gz())));
    for (const f of [zipped, inflated]) {
      const tok = await loadClipTokenizer('https://example.org/vocab.txt.gz', { fetch: f.fetch });
      expect(Array.from(tok.tokenize(TEXTS).ids)).toEqual(ids);
      expect(f.urls).toEqual(['https://example.org/vocab.txt.gz']);
    }
  });

  it('an HTML page (a server fallback), an HTTP error or a missing file: an error naming the URL and what to do', async () => {
    const html = fakeFetch('<!doctype html><html><body>app</body></html>');
    await expect(loadClipTokenizer('https://example.org/vocab.txt.gz', { fetch: html.fetch })).rejects.toThrow(
      /CLIP vocabulary https:\/\/example\.org\/vocab\.txt\.gz: neither gzip data nor a BPE merges file.*serve that file yourself and pass its URL/,
    );
    const missing = fakeFetch('not found', 404);
    const e = await loadClipTokenizer('https://example.org/vocab.txt.gz', { fetch: missing.fetch }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(TokenizerError);
    expect((e as Error).message).toMatch(/HTTP 404\. The vocabulary ships in the package as assets\/bpe_simple_vocab_16e6\.txt\.gz/);
    await expect(loadClipTokenizer('/nonexistent/vocab.txt.gz')).rejects.toThrow(/CLIP vocabulary \/nonexistent\/vocab\.txt\.gz: cannot read: ENOENT/);
  });
});
