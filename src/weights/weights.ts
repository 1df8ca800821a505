/**
 * A model's weights on the GPU under canonical (official) key names, loaded strictly: a missing,
 * unexpected or wrongly shaped tensor is an error naming the key and both shapes.
 *
 * Checkpoint families that use other names or layouts are handled by a declarative rename table
 * (`RenameTable`) applied at load time: each rule maps a source key to a canonical key, optionally
 * transposing it or fusing several source tensors into one (e.g. Hugging Face CLIP's separate
 * q/k/v projections into OpenAI's `in_proj_weight`). Models never see source names.
 */
import type { GpuContext } from '../gpu/context.js';
import { SamclipError, fmtShape } from '../gpu/errors.js';
import type { Tensor } from '../gpu/tensor.js';
import type { SafetensorsFile } from './safetensors.js';

export class WeightError extends SamclipError {
  override name = 'WeightError';
}

/** One rename rule. `from` is matched against source keys; `$1`.. in `to` are its groups. */
export interface RenameRule {
  from: RegExp;
  to: string;
  /** Transpose a 2-D tensor ([in, out] projections stored the other way round). */
  transpose?: boolean;
  /** Reshape after reading (e.g. HF stores a scalar as [1]). */
  reshape?: number[];
}

/** Concatenate several source tensors along dim 0 into one canonical tensor. */
export interface FuseRule {
  /** Source key patterns with one capture group each (the shared part, e.g. the layer index). */
  parts: RegExp[];
  /** Canonical key; `$1` is the shared capture. */
  to: string;
}

/** Split one source tensor along dim 0 into equal parts, one canonical tensor each. */
export interface SplitRule {
  /** Source key pattern (whole key). */
  from: RegExp;
  /** Canonical keys, in row order; the source's rows must divide evenly among them. */
  to: string[];
}

export interface RenameTable {
  /** Family name, for messages. */
  family: string;
  rules: RenameRule[];
  fuse?: FuseRule[];
  /** E.g. Hugging Face SAM 2's `point_embed.weight` [4, C] -> the official four [1, C] embeddings. */
  split?: SplitRule[];
  /** Source keys to drop silently (buffers that carry no information, e.g. position_ids). */
  ignore?: RegExp[];
}

/** Matrix storage for a load: the one asked for, else f16 when the context prefers it, else f32. */
export function weightStorage(ctx: GpuContext, dtype?: 'f32' | 'f16'): 'f32' | 'f16' {
  return dtype ?? (ctx.useF16 ? 'f16' : 'f32');
}

export interface LoadWeightsOptions {
  /**
   * Storage for matrices and convolution kernels; vectors (biases, norms) always stay f32.
   * Default: f16 when the context prefers it (`preferF16` on an adapter with shader-f16), else f32.
   */
  dtype?: 'f32' | 'f16';
  /** Keep only canonical keys for which this returns true (others count as used). */
  include?: (key: string) => boolean;
  /** Prefix added to every canonical key after renaming (e.g. loading a text tower into `text.`). */
  prefix?: string;
}

/**
 * What deriving a configuration reads: a loaded `Weights` set, or the names and shapes a load would
 * produce, planned from a file header before anything is uploaded (`Weights.planShapes`).
 */
export interface WeightShapes {
  readonly file: string;
  readonly family: string;
  readonly metadata: Readonly<Record<string, string>>;
  has(key: string): boolean;
  shape(key: string): readonly number[] | undefined;
  keys(): string[];
}

interface Planned {
  key: string;
  sources: string[];
  transpose: boolean;
  reshape?: number[];
  shape: number[];
  /** Rows [start, end) of the (single) source along dim 0 (split rules). */
  rows?: [number, number];
}

export class Weights {
  private readonly used = new Set<string>();

  private constructor(
    readonly file: string,
    private readonly tensors: Map<string, Tensor>,
    readonly family: string,
    readonly metadata: Readonly<Record<string, string>>,
  ) {}

  /** Canonical keys with their shapes, computed from the header alone (nothing is read). */
  static plan(source: SafetensorsFile, table: RenameTable | null, opts: LoadWeightsOptions = {}): Map<string, Planned> {
    const out = new Map<string, Planned>();
    const prefix = opts.prefix ?? '';
    const claimed = new Set<string>();
    for (const f of table?.fuse ?? []) {
      const groups = new Map<string, string[]>();
      for (const k of source.keys()) {
        f.parts.forEach((re, i) => {
          const m = re.exec(k);
          if (!m) return;
          const id = m[1] ?? '';
          const list = groups.get(id) ?? new Array<string>(f.parts.length);
          list[i] = k;
          groups.set(id, list);
        });
      }
      for (const [id, list] of groups) {
        const missing = f.parts.filter((_, i) => !list[i]);
        if (missing.length) {
          throw new WeightError(`${source.name}: cannot fuse into '${f.to.replace('$1', id)}': no tensor for ${missing.map(String).join(', ')}`);
        }
        const shapes = list.map((k) => source.info(k).shape);
        const rest = shapes[0]!.slice(1);
        for (const [i, s] of shapes.entries()) {
          if (fmtShape(s.slice(1)) !== fmtShape(rest)) {
            throw new WeightError(`${source.name}: cannot fuse '${list[i]}' ${fmtShape(s)} with '${list[0]}' ${fmtShape(shapes[0]!)}`);
          }
        }
        const key = prefix + f.to.replace('$1', id);
        out.set(key, { key, sources: list, transpose: false, shape: [shapes.reduce((a, s) => a + s[0]!, 0), ...rest] });
        list.forEach((k) => claimed.add(k));
      }
    }
    for (const sp of table?.split ?? []) {
      for (const k of source.keys()) {
        if (!sp.from.test(k) || claimed.has(k)) continue;
        const src = source.info(k).shape;
        const n = sp.to.length;
        if (src.length < 1 || src[0]! % n !== 0) {
          throw new WeightError(`${source.name}: cannot split '${k}' ${fmtShape(src)} into ${n} tensors (${sp.to.join(', ')}) along its first dim`);
        }
        const r = src[0]! / n;
        sp.to.forEach((to, i) => {
          const key = prefix + to;
          if (out.has(key)) throw new WeightError(`${source.name}: '${k}' and another tensor both map to '${key}'`);
          out.set(key, { key, sources: [k], transpose: false, shape: [r, ...src.slice(1)], rows: [i * r, (i + 1) * r] });
        });
        claimed.add(k);
      }
    }
    for (const k of source.keys()) {
      if (claimed.has(k)) continue;
      if (table?.ignore?.some((re) => re.test(k))) continue;
      let key = k;
      let transpose = false;
      let reshape: number[] | undefined;
      if (table) {
        const rule = table.rules.find((r) => r.from.test(k));
        if (rule) {
          key = k.replace(rule.from, rule.to);
          transpose = !!rule.transpose;
          reshape = rule.reshape;
        }
      }
      key = prefix + key;
      const src = source.info(k).shape;
      if (transpose && src.length !== 2) throw new WeightError(`${source.name}: '${k}' ${fmtShape(src)} cannot be transposed (not 2-D)`);
      const shape = reshape ?? (transpose ? [src[1]!, src[0]!] : [...src]);
      if (out.has(key)) throw new WeightError(`${source.name}: '${k}' and another tensor both map to '${key}'`);
      out.set(key, { key, sources: [k], transpose, reshape, shape });
    }
    return out;
  }

  /** Read and upload every (included) tensor. */
  static async load(
    ctx: GpuContext,
    source: SafetensorsFile,
    table: RenameTable | null,
    opts: LoadWeightsOptions = {},
  ): Promise<Weights> {
    const plan = Weights.plan(source, table, opts);
    const storage = weightStorage(ctx, opts.dtype);
    const tensors = new Map<string, Tensor>();
    try {
      for (const p of plan.values()) {
        if (opts.include && !opts.include(p.key)) continue;
        const dtype = storage === 'f16' && p.shape.length >= 2 ? 'f16' : 'f32';
        let t: Tensor;
        if (p.sources.length === 1 && !p.transpose && !p.rows) {
          t = await source.upload(ctx, p.sources[0]!, { dtype });
          if (p.reshape) {
            const r = t.reshape(p.reshape);
            t.dispose();
            t = r;
          }
        } else {
          const parts = await Promise.all(p.sources.map((k) => source.readF32(k)));
          let data: Float32Array;
          if (p.rows) {
            const rowSize = p.shape.slice(1).reduce((a, d) => a * d, 1);
            data = parts[0]!.slice(p.rows[0] * rowSize, p.rows[1] * rowSize);
          } else if (p.transpose) {
            const [r, c] = source.info(p.sources[0]!).shape as [number, number];
            data = new Float32Array(r * c);
            const src = parts[0]!;
            for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) data[j * r + i] = src[i * c + j]!;
          } else {
            data = new Float32Array(parts.reduce((a, x) => a + x.length, 0));
            let o = 0;
            for (const x of parts) {
              data.set(x, o);
              o += x.length;
            }
          }
          t = ctx.upload(data, p.shape, dtype);
        }
        t.persistent = true;
        tensors.set(p.key, t);
      }
    } catch (e) {
      for (const t of tensors.values()) t.dispose();
      throw e;
    }
    return new Weights(source.name, tensors, table?.family ?? 'canonical', source.metadata);
  }

  /** Canonical names and shapes a load would produce, read from the header alone (for checks before upload). */
  static planShapes(source: SafetensorsFile, table: RenameTable | null, family: string, include?: (k: string) => boolean): WeightShapes {
    const shapes = new Map<string, readonly number[]>();
    for (const [k, p] of Weights.plan(source, table)) if (!include || include(k)) shapes.set(k, p.shape);
    return {
      file: source.name,
      family,
      metadata: source.metadata,
      has: (k) => shapes.has(k),
      shape: (k) => shapes.get(k),
      keys: () => [...shapes.keys()],
    };
  }

  /** Wrap tensors already on the GPU (tests, composed models). */
  static fromTensors(name: string, tensors: Map<string, Tensor>, family = 'canonical', metadata: Record<string, string> = {}): Weights {
    return new Weights(name, tensors, family, metadata);
  }

  has(key: string): boolean {
    return this.tensors.has(key);
  }

  /** Shape of a tensor, or undefined (for deriving hyper-parameters from a checkpoint). */
  shape(key: string): readonly number[] | undefined {
    return this.tensors.get(key)?.shape;
  }

  keys(): string[] {
    return [...this.tensors.keys()];
  }

  /** The tensor under `key`, checked against `shape` (-1 matches any size). Marks it used. */
  get(key: string, shape?: readonly number[]): Tensor {
    const t = this.tensors.get(key);
    if (!t) {
      throw new WeightError(`${this.file} (${this.family}): missing tensor '${key}'${shape ? ` ${fmtShape(shape)}` : ''}${suggest(key, this.keys())}`);
    }
    if (shape && (shape.length !== t.ndim || shape.some((d, i) => d !== -1 && d !== t.shape[i]))) {
      throw new WeightError(`${this.file} (${this.family}): tensor '${key}' has shape ${fmtShape(t.shape)}, expected ${fmtShape(shape)}`);
    }
    this.used.add(key);
    return t;
  }

  /** Strictness: every tensor the checkpoint holds must have been consumed by the model. */
  assertAllUsed(what = 'the model'): void {
    const extra = this.keys().filter((k) => !this.used.has(k));
    if (extra.length) {
      const shown = extra.slice(0, 8).map((k) => `'${k}' ${fmtShape(this.tensors.get(k)!.shape)}`);
      throw new WeightError(
        `${this.file} (${this.family}): ${extra.length} unexpected tensor(s) not used by ${what}: ${shown.join(', ')}${extra.length > 8 ? ', ...' : ''}`,
      );
    }
  }

  dispose(): void {
    for (const t of this.tensors.values()) t.dispose();
    this.tensors.clear();
  }
}

function suggest(key: string, keys: string[]): string {
  const tail = key.split('.').slice(-2).join('.');
  const near = keys.filter((k) => k.endsWith(tail)).slice(0, 3);
  return near.length ? `; similar keys present: ${near.join(', ')}` : '';
}
