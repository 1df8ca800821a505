/**
 * Checkpoints known by name: `SamPredictor.fromPretrained('sam-vit-b')`, `samclip weights pull NAME`.
 *
 * Pinned digests: an entry's `sha256` is filled in only where the digest was read from the Hub's
 * own page for that exact file (the "Git LFS Details" of `huggingface.co/<repo>/blob/<rev>/<file>`,
 * cited next to it). The Hub's pages give sizes only rounded ("375 MB"), so every `size` is null and
 * the length is checked against what the server declares (`Content-Length`, `X-Linked-Size`).
 * Where `sha256` is null the download is checked against the digest the Hub declares for its LFS
 * files (`X-Linked-Etag`, as huggingface_hub does), and the digest of what was stored is recorded in
 * the cache entry; later loads check the entry against its record.
 */

export type ModelKind = 'sam' | 'sam2' | 'clip';

export interface RegistryEntry {
  /** The name given to `fromPretrained` / `weights pull`. */
  name: string;
  kind: ModelKind;
  description: string;
  /** Hugging Face repository, revision and file. */
  repo: string;
  revision?: string;
  file: string;
  /** Verified SHA-256 of the file (lower-case hex), or null when none was established (see above). */
  sha256: string | null;
  /** Exact size in bytes, or null when not established. */
  size: number | null;
  /** Checkpoint family the engine detects in it (src/weights/families.ts). */
  family: 'sam-hf' | 'sam2' | 'sam2-hf' | 'clip-hf' | 'clip';
  /** CLIP activation when the file does not record it (OpenCLIP DataComp: exact GELU). */
  act?: 'gelu' | 'quick_gelu';
}

export const DEFAULT_HF_ENDPOINT = 'https://huggingface.co';

/** `<endpoint>/<repo>/resolve/<revision>/<file>` (the Hub's download URL; HF_ENDPOINT changes the host). */
export function hfUrl(repo: string, file: string, opts: { endpoint?: string; revision?: string } = {}): string {
  const endpoint = (opts.endpoint || DEFAULT_HF_ENDPOINT).replace(/\/+$/, '');
  const path = file.split('/').map(encodeURIComponent).join('/');
  return `${endpoint}/${repo}/resolve/${encodeURIComponent(opts.revision ?? 'main')}/${path}`;
}

const SAM2_PT_SHA256: Partial<Record<string, string>> = {
  tiny: '7402e0d864fa82708a20fbd15bc84245c2f26dff0eb43a4b5b93452deb34be69',
};

export const REGISTRY: readonly RegistryEntry[] = [
  {
    name: 'sam-vit-b',
    kind: 'sam',
    description: 'SAM ViT-B (Hugging Face SamModel)',
    repo: 'facebook/sam-vit-base',
    file: 'model.safetensors',
    // https://huggingface.co/facebook/sam-vit-base/blob/d0d9250bd6a38ebbb901aa29e8d37787e366f7be/model.safetensors
    // (the commit that added the file; later commits on main left it unchanged).
    sha256: '892c410e496344e527255ccdcb2cb7244a609acb5389c7c4fdba1288f861c579',
    size: null,
    family: 'sam-hf',
  },
  {
    name: 'sam-vit-l',
    kind: 'sam',
    description: 'SAM ViT-L (Hugging Face SamModel)',
    repo: 'facebook/sam-vit-large',
    file: 'model.safetensors',
    // https://huggingface.co/facebook/sam-vit-large/blob/main/model.safetensors (commit 7d7381d).
    sha256: 'a57e1b13cd1545938dfcbc9fb26df7f60de6650237a9383382a874a623564b81',
    size: null,
    family: 'sam-hf',
  },
  {
    name: 'sam-vit-h',
    kind: 'sam',
    description: 'SAM ViT-H (Hugging Face SamModel)',
    repo: 'facebook/sam-vit-huge',
    file: 'model.safetensors',
    // https://huggingface.co/facebook/sam-vit-huge/blob/main/model.safetensors (commit 6758797).
    sha256: 'edfb0462392541fca9af44ff039bfb32dbd0c939997f3abb77a26e23af7afd7c',
    size: null,
    family: 'sam-hf',
  },
  // SAM 2.1 (facebookresearch/sam2): each Hub repository holds the official checkpoint (.pt, read
  // through the pickle-free .pth reader) and, since transformers added Sam2Model, its conversion
  // (model.safetensors). Pinned: sam2.1_hiera_tiny.pt from
  // https://huggingface.co/facebook/sam2.1-hiera-tiny/blob/main/sam2.1_hiera_tiny.pt (commit 36f406a).
  // The other digests could not be established from a page of their own repository.
  ...(['tiny', 'small', 'base-plus', 'large'] as const).flatMap((size): RegistryEntry[] => {
    const short = { tiny: 't', small: 's', 'base-plus': 'b-plus', large: 'l' }[size];
    const label = { tiny: 'T', small: 'S', 'base-plus': 'B+', large: 'L' }[size];
    const repo = `facebook/sam2.1-hiera-${size}`;
    return [
      { name: `sam2.1-hiera-${short}`, kind: 'sam2', description: `SAM 2.1 Hiera-${label} (official sam2.1_hiera_${size.replace('-', '_')}.pt)`, repo, file: `sam2.1_hiera_${size.replace('-', '_')}.pt`, sha256: SAM2_PT_SHA256[size] ?? null, size: null, family: 'sam2' },
      { name: `sam2.1-hiera-${short}-hf`, kind: 'sam2', description: `SAM 2.1 Hiera-${label} (Hugging Face Sam2Model)`, repo, file: 'model.safetensors', sha256: null, size: null, family: 'sam2-hf' },
    ];
  }),
  // The CLIP files' digests on main could not be established from a page of their own repository.
  { name: 'clip-vit-b-16', kind: 'clip', description: 'OpenAI CLIP ViT-B/16 (Hugging Face CLIPModel)', repo: 'openai/clip-vit-base-patch16', file: 'model.safetensors', sha256: null, size: null, family: 'clip-hf' },
  { name: 'openclip-vit-b-16-datacomp', kind: 'clip', description: 'OpenCLIP ViT-B/16 DataComp-XL (s13B b90K)', repo: 'laion/CLIP-ViT-B-16-DataComp.XL-s13B-b90K', file: 'open_clip_model.safetensors', sha256: null, size: null, family: 'clip', act: 'gelu' },
  { name: 'openclip-vit-l-14-datacomp', kind: 'clip', description: 'OpenCLIP ViT-L/14 DataComp-XL (s13B b90K)', repo: 'laion/CLIP-ViT-L-14-DataComp.XL-s13B-b90K', file: 'open_clip_model.safetensors', sha256: null, size: null, family: 'clip', act: 'gelu' },
];

export function findEntry(name: string): RegistryEntry | undefined {
  return REGISTRY.find((e) => e.name === name);
}

/** Names of the entries of `kind` (all when omitted), for messages. */
export function registryNames(kind?: ModelKind): string[] {
  return REGISTRY.filter((e) => !kind || e.kind === kind).map((e) => e.name);
}

/** Cache-entry names must be safe as one path segment everywhere (file systems, cache keys). */
export const ENTRY_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
