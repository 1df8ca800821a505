/**
 * Image-input checks of the test page (test/web/pages/main.ts): every browser form of the
 * same picture goes through toImageU8 and through the pipelines, and is compared with the ImageU8
 * made from the reference bytes. The page only measures and reports; the test asserts.
 *
 * Assets (written by the test): pictures/dog.png (the Pillow-decoded dog photo, RGB, lossless),
 * pictures/dog.rgb (the same pixels, raw), pictures/alpha.png + alpha.rgba (a small RGBA picture with
 * every alpha level). The models are the repository's tiny random-weight fixtures, loaded by
 * relative URL (which is what the loaders must resolve against the page).
 */
import type { ImageU8 } from '../../../src/image/image.js';
import { EXACT_BITMAP_OPTIONS, type ImageInput, toImageU8 } from '../../../src/image/image-input.js';
import { readTensor } from '../../../src/kernels/copy.js';
import { loadClip } from '../../../src/model/clip/load.js';
import { SamAutomaticMaskGenerator } from '../../../src/pipelines/automatic-mask-generator.js';
import { ClipClassifier } from '../../../src/pipelines/clip-classifier.js';
import { SamPredictor } from '../../../src/pipelines/sam-predictor.js';
import { openSafetensors } from '../../../src/weights/safetensors.js';
import { PROMPT, type PageModels, countDiff, fetchBlob, fetchBytes, maxAbsDiff, stamp } from './shared.js';

export interface PixelReport {
  form: string;
  width: number;
  height: number;
  channels: number;
  /** Largest |page - reference| over the RGB channels, and how many channel values differ. */
  maxDelta: number;
  meanDelta: number;
  differing: number;
  /** Smallest alpha seen (255: opaque as expected). */
  alphaMin: number;
  error?: string;
}

export interface PipelineReport {
  form: string;
  /** max |embedding - ImageU8 path's| */
  embeddingMaxDiff: number;
  /** Mask pixels and IoU predictions that differ from the ImageU8 path's. */
  maskDiff: number;
  iouMaxDiff: number;
  error?: string;
}


function comparePixels(form: string, img: ImageU8, ref: Uint8Array, refChannels: number): PixelReport {
  const n = img.width * img.height;
  let maxDelta = 0;
  let sum = 0;
  let differing = 0;
  let alphaMin = 255;
  const c = img.channels;
  for (let i = 0; i < n; i++) {
    for (let k = 0; k < 3; k++) {
      const d = Math.abs(img.data[i * c + k]! - ref[i * refChannels + k]!);
      if (d > maxDelta) maxDelta = d;
      sum += d;
      if (d) differing++;
    }
    if (c === 4) alphaMin = Math.min(alphaMin, img.data[i * 4 + 3]!);
  }
  return { form, width: img.width, height: img.height, channels: c, maxDelta, meanDelta: sum / (3 * n), differing, alphaMin };
}

async function videoOf(bitmap: ImageBitmap): Promise<HTMLVideoElement> {
  const canvas = document.createElement('canvas');
  canvas.width = bitmap.width;
  canvas.height = bitmap.height;
  canvas.getContext('2d')!.drawImage(bitmap, 0, 0);
  const video = document.createElement('video');
  video.muted = true;
  video.srcObject = canvas.captureStream(0);
  (video.srcObject.getVideoTracks()[0] as CanvasCaptureMediaStreamTrack).requestFrame();
  await video.play();
  while (video.readyState < 2) await new Promise((r) => setTimeout(r, 20));
  return video;
}

/** Each browser form of the picture at `url`, made the way an app would, created when asked for. */
function formsOf(url: string, name: string): [string, () => Promise<ImageInput>][] {
  const blob = () => fetchBlob(url);
  const bitmap = async () => createImageBitmap(await blob());
  return [
    ['Blob', blob],
    ['File', async () => new File([await blob()], name, { type: 'image/png' })],
    ['URL string (relative)', async () => url],
    ['URL object', async () => new URL(url, location.href)],
    // Not awaited: toImageU8 must wait for the decode itself.
    ['HTMLImageElement', async () => Object.assign(new Image(), { src: url })],
    ['ImageBitmap', bitmap],
    ['ImageData', async () => {
      const b = await bitmap();
      const g = new OffscreenCanvas(b.width, b.height).getContext('2d')!;
      g.drawImage(b, 0, 0);
      return g.getImageData(0, 0, b.width, b.height);
    }],
    ['HTMLCanvasElement', async () => {
      const b = await bitmap();
      const c = document.createElement('canvas');
      c.width = b.width;
      c.height = b.height;
      c.getContext('2d')!.drawImage(b, 0, 0);
      return c;
    }],
    ['OffscreenCanvas', async () => {
      const b = await bitmap();
      const c = new OffscreenCanvas(b.width, b.height);
      c.getContext('2d')!.drawImage(b, 0, 0);
      return c;
    }],
    ['VideoFrame', async () => new VideoFrame(await bitmap(), { timestamp: 0 })],
  ];
}

function closeInput(x: ImageInput): void {
  if (typeof VideoFrame === 'function' && x instanceof VideoFrame) x.close();
  if (x instanceof ImageBitmap) x.close();
}

async function pixels(url: string, name: string, ref: Uint8Array, refChannels: number): Promise<PixelReport[]> {
  const out: PixelReport[] = [];
  for (const [form, make] of formsOf(url, name)) {
    try {
      const input = await make();
      out.push(comparePixels(form, await toImageU8(input), ref, refChannels));
      closeInput(input);
    } catch (e) {
      out.push({ form, width: 0, height: 0, channels: 0, maxDelta: -1, meanDelta: -1, differing: -1, alphaMin: -1, error: `${(e as Error).name}: ${(e as Error).message}` });
    }
  }
  return out;
}

const SINGLE = { multimaskOutput: false };

export async function imageInputs(m: PageModels) {
  const { ctx, tokenizer, samclip: sc } = m;
  const { refImage } = m;
  const rgb = refImage.data as Uint8Array;
  // dog.rgb is Pillow's decode of dog.jpg (decoded_rgb.safetensors); dog.png holds the same pixels.
  const jpegRef = rgb;
  const alphaRgba = await fetchBytes('pictures/alpha.rgba');
  const pngPixels = await pixels('pictures/dog.png', 'dog.png', rgb, 3);
  const alphaPixels = await pixels('pictures/alpha.png', 'alpha.png', alphaRgba, 4);
  // The alpha channel itself, and the colour where alpha < 255 (2D canvases premultiply).
  const alphaDetail = await (async () => {
    const img = await toImageU8(await fetchBlob('pictures/alpha.png'));
    let alphaMax = 0;
    let opaqueMax = 0;
    let translucentMax = 0;
    for (let i = 0; i < img.width * img.height; i++) {
      const a = alphaRgba[i * 4 + 3]!;
      alphaMax = Math.max(alphaMax, Math.abs(img.data[i * 4 + 3]! - a));
      for (let k = 0; k < 3; k++) {
        const d = Math.abs(img.data[i * 4 + k]! - alphaRgba[i * 4 + k]!);
        if (a === 255) opaqueMax = Math.max(opaqueMax, d);
        else if (a > 0) translucentMax = Math.max(translucentMax, d);
      }
    }
    return { alphaMax, opaqueMax, translucentMax };
  })();
  const jpeg: PixelReport[] = [];
  for (const [form, make] of [
    ['Blob', () => fetchBlob('pictures/dog.jpg')],
    ['URL string (relative)', async () => 'pictures/dog.jpg'],
    ['HTMLImageElement', async () => Object.assign(new Image(), { src: 'pictures/dog.jpg' })],
    ['ImageBitmap (default options)', async () => createImageBitmap(await fetchBlob('pictures/dog.jpg'))],
    ['ImageBitmap (exact options)', async () => createImageBitmap(await fetchBlob('pictures/dog.jpg'), EXACT_BITMAP_OPTIONS)],
  ] as [string, () => Promise<ImageInput>][]) {
    const input = await make();
    jpeg.push(comparePixels(form, await toImageU8(input), jpegRef, 3));
    closeInput(input);
  }
  let video: PixelReport | { error: string };
  try {
    const v = await videoOf(await createImageBitmap(await fetchBlob('pictures/dog.png')));
    video = comparePixels('HTMLVideoElement (canvas capture)', await toImageU8(v), rgb, 3);
    (v.srcObject as MediaStream).getTracks().forEach((t) => t.stop());
  } catch (e) {
    video = { error: `${(e as Error).name}: ${(e as Error).message}` };
  }

  stamp('image inputs: pixels');
  // Relative URL: resolved against the page, fetched with HTTP Range.
  const sam = await SamPredictor.load(ctx, 'fixtures/reference/sam_tiny.weights.safetensors');
  const ref = await sam.encode(refImage);
  const refEmb = await readTensor(ctx, ref.tensor);
  // One mask per prediction: post-processing at 800x534 is most of a predict's time on SwiftShader.
  const refPred = await sam.predict(ref, PROMPT, SINGLE);
  ref.dispose();
  stamp('image inputs: SAM loaded, reference encoded');
  const pipeline: PipelineReport[] = [];
  for (const [form, make] of formsOf('pictures/dog.png', 'dog.png')) {
    try {
      const input = await make();
      const emb = await sam.encode(input);
      const e = await readTensor(ctx, emb.tensor);
      const p = await sam.predict(emb, PROMPT, SINGLE);
      emb.dispose();
      closeInput(input);
      pipeline.push({ form, embeddingMaxDiff: maxAbsDiff(e, refEmb), maskDiff: p.masks.reduce((s, m, i) => s + countDiff(m, refPred.masks[i]!), 0), iouMaxDiff: maxAbsDiff(p.iouPredictions, refPred.iouPredictions) });
    } catch (e) {
      pipeline.push({ form, embeddingMaxDiff: -1, maskDiff: -1, iouMaxDiff: -1, error: `${(e as Error).name}: ${(e as Error).message}` });
    }
  }

  // Every other facade's image-taking call, each with one browser form against the ImageU8 path.
  stamp('image inputs: every form encoded');
  const facades: Record<string, number> = {};
  // Thresholds off: random weights predict low IoUs, and every mask is wanted here.
  const amg = new SamAutomaticMaskGenerator(sam, { pointsPerSide: 2, predIouThresh: 0, stabilityScoreThresh: 0, boxNmsThresh: 1 });
  const amgRef = await amg.generate(refImage);
  const amgUrl = await amg.generate('pictures/dog.png');
  facades['SamAutomaticMaskGenerator.generate (URL string): masks differing'] =
    amgRef.length === amgUrl.length ? amgRef.filter((m, i) => m.area !== amgUrl[i]!.area || m.predictedIou !== amgUrl[i]!.predictedIou).length : Infinity;
  facades['SamAutomaticMaskGenerator: masks'] = amgRef.length;

  stamp('image inputs: AMG');
  const { file: clipFile } = await openSafetensors('fixtures/reference/clip_tiny.weights.safetensors');
  const clip = await loadClip(ctx, clipFile, { textHeads: 4, act: 'quick_gelu' });
  await clipFile.close();
  const classifier = await ClipClassifier.create(ctx, clip, { tokenizer });
  const clipRef = await classifier.encodeImage(refImage);
  facades['ClipClassifier.encodeImage (Blob): max diff'] = maxAbsDiff(await classifier.encodeImage(await fetchBlob('pictures/dog.png')), clipRef);
  // classify converts through encodeImage; its text tower (another compile) is left out.
  facades['ClipClassifier.encodeImages (HTMLImageElement, ImageU8): max diff'] = Math.max(
    ...(await classifier.encodeImages([Object.assign(new Image(), { src: 'pictures/dog.png' }), refImage])).map((e) => maxAbsDiff(e, clipRef)),
  );
  clip.dispose();

  stamp('image inputs: CLIP');
  const classes = ['dog', 'grass', 'sky'];
  const semRef = await sc.segmentSemantic(refImage, classes, { templates: 'single' });
  const semBmp = await sc.segmentSemantic(await createImageBitmap(await fetchBlob('pictures/dog.png')), classes, { templates: 'single' });
  facades['SamClip.segmentSemantic (ImageBitmap): label pixels differing'] = countDiff(semBmp.labelMap, semRef.labelMap);
  const embRef = await sc.embed(refImage);
  const embFile = await sc.embed(new File([await fetchBlob('pictures/dog.png')], 'dog.png'));
  facades['SamClip.embed (File): max diff'] = maxAbsDiff(await readTensor(ctx, embFile.sam.tensor), await readTensor(ctx, embRef.sam.tensor));
  const txtRef = await sc.segmentText(embRef, 'dog');
  const canvas = document.createElement('canvas');
  canvas.width = 800;
  canvas.height = 534;
  canvas.getContext('2d')!.drawImage(await createImageBitmap(await fetchBlob('pictures/dog.png')), 0, 0);
  const txtCanvas = await sc.segmentText(canvas, 'dog');
  facades['SamClip.segmentText (HTMLCanvasElement): mask pixels differing'] = countDiff(txtCanvas.best, txtRef.best);
  const scClsRef = await sc.classify(refImage, ['dog', 'cat'], { templates: 'single' });
  const frame = new VideoFrame(await createImageBitmap(await fetchBlob('pictures/dog.png')), { timestamp: 0 });
  const scClsFrame = await sc.classify(frame, ['dog', 'cat'], { templates: 'single' });
  frame.close();
  facades['SamClip.classify (VideoFrame): max prob diff'] = maxAbsDiff(scClsFrame.probs, scClsRef.probs);
  embRef.dispose();
  embFile.dispose();

  stamp('image inputs: SAM-CLIP');
  // Errors a page can hit.
  const errors: Record<string, string> = {};
  for (const [what, input] of [
    ['missing URL', 'pictures/no-such.png'],
    ['not an image', new Blob(['hello'], { type: 'text/plain' })],
    ['closed ImageBitmap', await (async () => { const b = await createImageBitmap(await fetchBlob('pictures/dog.png')); b.close(); return b; })()],
    ['a plain object', { width: 2, height: 2, data: new Uint8Array(16) }],
  ] as [string, ImageInput][]) {
    try {
      await sam.encode(input);
      errors[what] = '(no error)';
    } catch (e) {
      errors[what] = `${(e as Error).name}: ${(e as Error).message}`;
    }
  }
  sam.model.dispose();
  return { pngPixels, alphaPixels, alphaDetail, jpeg, video, pipeline, facades, errors, adapter: ctx.description };
}
