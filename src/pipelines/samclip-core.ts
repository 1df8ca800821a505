/**
 * What the SAM-CLIP pipelines (zero-shot classification, semantic segmentation, text-prompted
 * masks) need from the SAM-CLIP facade, declared below it so that the facade (./samclip.ts) imports
 * the pipelines and never the other way round; and the embedding object those calls share.
 */
import type { GpuContext } from '../gpu/context.js';
import type { Pacer } from '../gpu/pacer.js';
import type { Tensor } from '../gpu/tensor.js';
import type { ImageU8 } from '../image/image.js';
import type { SamClipBackend } from '../model/samclip/backends.js';
import type { TemplateChoice } from '../text/imagenet-templates.js';
import type { SamImageEmbedding, SamPredictor } from './sam-predictor.js';

/** The inputs of one native-size pass, on the GPU, shared by the SAM head and the CLIP side. */
export class SamClipImageEmbedding {
  constructor(
    /** The SAM head's input (use with `SamClip.predictor`). */
    readonly sam: SamImageEmbedding,
    /** CLIP-side unit-norm features on the native token grid [1, g, g, D] (owned). */
    readonly dense: Tensor,
  ) {
    dense.persistent = true;
  }

  get originalSize(): readonly [number, number] {
    return this.sam.originalSize;
  }

  get inputSize(): readonly [number, number] {
    return this.sam.inputSize;
  }

  get disposed(): boolean {
    return this.dense.isDisposed || this.sam.disposed;
  }

  dispose(): void {
    this.dense.dispose();
    this.sam.dispose();
  }
}

/** The SAM-CLIP model as its pipelines see it (implemented by `SamClip`). */
export interface SamClipModel {
  readonly ctx: GpuContext;
  readonly backend: SamClipBackend;
  /** The SAM head. */
  readonly predictor: SamPredictor;
  readonly resolutions: { native: number; seg: number; cls: number };
  readonly embedDim: number;
  /** exp(logit_scale). */
  readonly logitScale: number;
  /** An RGB copy of an input image, checked (size, channels). */
  checkImage(image: ImageU8, what: string): ImageU8;
  /** Class embeddings T [C, D] (unit norm, host). */
  classEmbeddings(classes: readonly string[], opts?: { templates?: TemplateChoice; pacer?: Pacer | null }): Promise<Float32Array>;
  /** One native-size pass: the SAM head's embedding and the CLIP features on the same grid. */
  embedPaced(image: ImageU8, pacer: Pacer | null): Promise<SamClipImageEmbedding>;
}
