/**
 * What the downloader reads from an HTTP answer: the total size, the range it covers, the server's
 * validator and declared digest, and whether the body is a web page rather than a file.
 */

/** The fetch the hub uses (`globalThis.fetch` fits; Node's default adds proxies, src/node/hub-fetch.ts). */
export type HubFetch = (url: string, init: { headers?: Record<string, string>; method?: string; signal?: AbortSignal; cache?: RequestCache }) => Promise<Response>;

const HEX64 = /^[0-9a-f]{64}$/;

/** `bytes a-b/total` (total may be `*`), or null. */
export function contentRange(h: string | null): { start: number; end: number; total: number | null } | null {
  const m = /^bytes\s+(\d+)-(\d+)\/(\d+|\*)$/i.exec((h ?? '').trim());
  if (!m) return null;
  const start = Number(m[1]);
  const end = Number(m[2]);
  if (end < start) return null;
  return { start, end, total: m[3] === '*' ? null : Number(m[3]) };
}

/** `bytes * /total` of a 416 answer, or null. */
export function unsatisfiedTotal(h: string | null): number | null {
  const m = /^bytes\s+\*\/(\d+)$/i.exec((h ?? '').trim());
  return m ? Number(m[1]) : null;
}

function nonNegativeInt(h: string | null): number | null {
  if (h === null || !/^\s*\d+\s*$/.test(h)) return null;
  const n = Number(h);
  return Number.isSafeInteger(n) ? n : null;
}

export interface Declared {
  /** Content-Length of this answer (its body, not the file, for a 206). */
  contentLength: number | null;
  /** The file's size the server declares for LFS files (X-Linked-Size). */
  linkedSize: number | null;
  /** The SHA-256 the server declares (X-Linked-Etag of Hugging Face LFS files), lower-case hex. */
  sha256: string | null;
  /** A strong validator usable in If-Range: a strong ETag, else Last-Modified. */
  validator: string | null;
  /** The ETag as sent (strong or weak), to notice a changed remote. */
  etag: string | null;
  contentType: string;
}

export function declaredBy(res: Response): Declared {
  const h = res.headers;
  const linked = (h.get('x-linked-etag') ?? '').replace(/^W\//, '').replace(/"/g, '').trim().toLowerCase();
  const etag = h.get('etag');
  const strong = etag && !etag.startsWith('W/') ? etag : null;
  return {
    contentLength: nonNegativeInt(h.get('content-length')),
    linkedSize: nonNegativeInt(h.get('x-linked-size')),
    sha256: HEX64.test(linked) ? linked : null,
    validator: strong ?? h.get('last-modified'),
    etag,
    contentType: (h.get('content-type') ?? '').toLowerCase(),
  };
}

/** Whether the first bytes of a body are an HTML document (an error or login page, a captive portal). */
export function looksLikeHtml(first: Uint8Array): boolean {
  let i = 0;
  while (i < first.length && (first[i] === 0x20 || first[i] === 0x09 || first[i] === 0x0a || first[i] === 0x0d || first[i] === 0xef || first[i] === 0xbb || first[i] === 0xbf)) i++;
  const head = new TextDecoder('latin1').decode(first.subarray(i, i + 15)).toLowerCase();
  return head.startsWith('<!doctype html') || head.startsWith('<html') || head.startsWith('<head') || head.startsWith('<!--');
}

/** What an HTTP status means for a download, with advice in the message. */
export function statusHint(status: number): string {
  if (status === 404) return ' (not found: check the name, the revision or the URL)';
  if (status === 401 || status === 403) return ' (access denied: the repository may be gated or private; set HF_TOKEN or pass { token })';
  if (status === 429) return ' (rate limited)';
  return '';
}

/** Statuses worth retrying (the server may answer differently in a moment). */
export function retryableStatus(status: number): boolean {
  return status === 408 || status === 425 || status === 429 || status >= 500;
}
