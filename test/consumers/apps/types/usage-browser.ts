// A browser app's use of the package (bundler resolution, DOM lib): the types must flow.
import {
  ClipClassifier,
  GpuContext,
  SamClip,
  SafetensorsFile,
  SamPredictor,
  loadClip,
  loadClipTokenizer,
  type Classification,
  type ImageU8,
  type SamPrediction,
  type SemanticSegmentation,
} from 'samclip-webgpu';

export async function segment(image: ImageU8): Promise<Uint8Array> {
  const ctx: GpuContext = await GpuContext.create({ preferF16: true });
  const device: GPUDevice = ctx.device;
  device.label.toString();
  const predictor = await SamPredictor.load(ctx, '/weights/sam_vit_b.safetensors');
  const embedding = await predictor.encode(image);
  const r: SamPrediction = await predictor.predict(embedding, { points: [[10, 20]], labels: [1] }, { multimaskOutput: true });
  const best = r.iouPredictions.indexOf(Math.max(...r.iouPredictions));
  embedding.dispose();
  return r.masks[best]!;
}

export async function classify(image: ImageU8): Promise<Classification> {
  const ctx = await GpuContext.create();
  const clip = await loadClip(ctx, await SafetensorsFile.fromUrl('https://example.org/open_clip_model.safetensors'), { dtype: 'f16' });
  const classifier = await ClipClassifier.create(ctx, clip, { tokenizer: await loadClipTokenizer() });
  return classifier.classify(image, ['a dog', 'a cat']);
}

export async function semantic(image: ImageU8): Promise<SemanticSegmentation> {
  const ctx = await GpuContext.create();
  const model = await SamClip.load(ctx, '/weights/samclip.safetensors');
  const embedding = await model.embed(image);
  return model.segmentSemantic(embedding, ['dog', 'floor'], { refine: true });
}
