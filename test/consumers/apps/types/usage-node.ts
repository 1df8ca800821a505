// A Node app's use of both entries (node16 resolution): the types must flow.
import { GpuContext, SamPredictor, type SamPrediction } from 'samclip-webgpu';
import { type DecodedImage, colorizeLabels, loadDawn, maskToGrey, palette, readImage, writePng } from 'samclip-webgpu/node';

export async function main(path: string): Promise<void> {
  const dawn = await loadDawn();
  const gpu: GPU = dawn.create([]);
  const ctx = await GpuContext.create({ gpu });
  const predictor = await SamPredictor.load(ctx, 'sam_vit_b.safetensors');
  const photo: DecodedImage = await readImage(path);
  const r: SamPrediction = await predictor.predict(await predictor.encode(photo), { box: [0, 0, 10, 10] });
  await writePng('mask.png', maskToGrey(r.masks[0]!, r.width, r.height));
  await writePng('labels.png', colorizeLabels(r.masks[0]!, r.width, r.height, palette(2)));
}
