/**
 * Known checkpoints `samclip weights pull NAME` can fetch, and the cache they land in.
 *
 * SHA-256 digests: none of these could be checked from the machine this table was written on (no
 * network), so every `sha256` is null rather than a number copied from memory. A pull then checks
 * the digest Hugging Face declares for the file (X-Linked-Etag), and records what it downloaded in
 * `<cache>/<name>/<file>.json`; later pulls verify the cached file against that record. Fill a
 * digest in here once it has been verified against the Hub's file page.
 */
import { homedir } from 'node:os';
import { join } from 'node:path';

export type ModelKind = 'sam' | 'clip';

export interface RegistryEntry {
  /** The name given to `weights pull`. */
  name: string;
  kind: ModelKind;
  description: string;
  /** Hugging Face repository and file. */
  repo: string;
  file: string;
  /** Verified SHA-256 of the file (lower-case hex), or null when not verified yet (see above). */
  sha256: string | null;
  /** Checkpoint family the engine detects in it (src/weights/families.ts). */
  family: 'sam-hf' | 'clip-hf' | 'clip';
  /** CLIP activation when the file does not record it (OpenCLIP DataComp: exact GELU). */
  act?: 'gelu' | 'quick_gelu';
}

export function hfUrl(repo: string, file: string): string {
  return `https://huggingface.co/${repo}/resolve/main/${file}`;
}

export const REGISTRY: readonly RegistryEntry[] = [
  { name: 'sam-vit-b', kind: 'sam', description: 'SAM ViT-B (Hugging Face SamModel)', repo: 'facebook/sam-vit-base', file: 'model.safetensors', sha256: null, family: 'sam-hf' },
  { name: 'sam-vit-l', kind: 'sam', description: 'SAM ViT-L (Hugging Face SamModel)', repo: 'facebook/sam-vit-large', file: 'model.safetensors', sha256: null, family: 'sam-hf' },
  { name: 'sam-vit-h', kind: 'sam', description: 'SAM ViT-H (Hugging Face SamModel)', repo: 'facebook/sam-vit-huge', file: 'model.safetensors', sha256: null, family: 'sam-hf' },
  { name: 'clip-vit-b-16', kind: 'clip', description: 'OpenAI CLIP ViT-B/16 (Hugging Face CLIPModel)', repo: 'openai/clip-vit-base-patch16', file: 'model.safetensors', sha256: null, family: 'clip-hf' },
  { name: 'openclip-vit-b-16-datacomp', kind: 'clip', description: 'OpenCLIP ViT-B/16 DataComp-XL (s13B b90K)', repo: 'laion/CLIP-ViT-B-16-DataComp.XL-s13B-b90K', file: 'open_clip_model.safetensors', sha256: null, family: 'clip', act: 'gelu' },
  { name: 'openclip-vit-l-14-datacomp', kind: 'clip', description: 'OpenCLIP ViT-L/14 DataComp-XL (s13B b90K)', repo: 'laion/CLIP-ViT-L-14-DataComp.XL-s13B-b90K', file: 'open_clip_model.safetensors', sha256: null, family: 'clip', act: 'gelu' },
];

export function findEntry(name: string): RegistryEntry | undefined {
  return REGISTRY.find((e) => e.name === name);
}

/** `--cache`, else `$SAMCLIP_CACHE`, else `$XDG_CACHE_HOME/samclip`, else `~/.cache/samclip`. */
export function cacheDir(option?: string): string {
  if (option) return option;
  const env = process.env;
  if (env.SAMCLIP_CACHE) return env.SAMCLIP_CACHE;
  if (env.XDG_CACHE_HOME) return join(env.XDG_CACHE_HOME, 'samclip');
  return join(homedir(), '.cache', 'samclip');
}

/** Where a pulled file lives: `<cache>/<name>/<file>`. */
export function cachedPath(cache: string, name: string, file: string): string {
  return join(cache, name, file);
}

/** The record written next to a pulled file. */
export interface PullRecord {
  name: string;
  url: string;
  bytes: number;
  sha256: string;
  /** How the digest was established. */
  verified: 'registry' | 'user' | 'server' | 'first-download';
  downloadedAt: string;
}

export function recordPath(file: string): string {
  return `${file}.json`;
}
