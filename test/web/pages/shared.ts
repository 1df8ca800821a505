/**
 * What the test page's checks share: the page-thread GPU context and SAM-CLIP model (compiled once:
 * SwiftShader compiles slowly), the reference picture, and small comparison helpers.
 */
import { GpuContext } from '../../../src/gpu/context.js';
import type { ImageU8 } from '../../../src/image/image.js';
import { SamClip } from '../../../src/pipelines/samclip.js';
import { ClipTokenizer } from '../../../src/text/clip-tokenizer.js';

/** Relative URLs: the loaders must resolve them against the page. */
export const BUNDLE = 'fixtures/reference/samclip/samclip_tiny.safetensors';
export const BPE = 'repo-assets/bpe_simple_vocab_16e6.txt.gz';
export const PROMPT = { points: [[400, 300]] as [number, number][], labels: [1] };

const t0 = performance.now();
/** Progress, printed by the test (where the time goes on a slow adapter). */
export const stamp = (what: string) => console.info(`[page] ${((performance.now() - t0) / 1000).toFixed(1)} s  ${what}`);

export async function fetchBytes(url: string): Promise<Uint8Array> {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
  return new Uint8Array(await res.arrayBuffer());
}

export async function fetchBlob(url: string): Promise<Blob> {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
  return res.blob();
}

export function countDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Infinity;
  let n = 0;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) n++;
  return n;
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Infinity;
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

export interface PageModels {
  ctx: GpuContext;
  tokenizer: ClipTokenizer;
  samclip: SamClip;
  /** Pillow's decode of dog.jpg (decoded_rgb.safetensors), 800x534 RGB. */
  refImage: ImageU8;
}

export async function loadPageModels(): Promise<PageModels> {
  const ctx = await GpuContext.create();
  const tokenizer = await ClipTokenizer.fromBpeGz(await fetchBytes(BPE));
  const samclip = await SamClip.load(ctx, BUNDLE, { tokenizer });
  const refImage: ImageU8 = { width: 800, height: 534, channels: 3, data: await fetchBytes('pictures/dog.rgb') };
  return { ctx, tokenizer, samclip, refImage };
}
