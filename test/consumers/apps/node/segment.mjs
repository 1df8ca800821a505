// A Node app using the installed package as the README shows: the browser-safe library from
// 'samclip-webgpu' (Dawn found by itself on Node), file I/O from 'samclip-webgpu/node'.
//   node segment.mjs WEIGHTS IMAGE X Y OUT.mask
// writes the 0/1 mask (one byte per pixel) to OUT.mask and prints a JSON summary.
import { writeFile } from 'node:fs/promises';
import { GpuContext, SamPredictor } from 'samclip-webgpu';
import { readImage, maskToGrey, writePng } from 'samclip-webgpu/node';

const [weights, image, x, y, out] = process.argv.slice(2);
const ctx = await GpuContext.create();
const predictor = await SamPredictor.load(ctx, weights);
const photo = await readImage(image);
const embedding = await predictor.encode(photo);
const result = await predictor.predict(embedding, { points: [[Number(x), Number(y)]], labels: [1] }, { multimaskOutput: false });
await writeFile(out, result.masks[0]);
await writePng(`${out}.png`, maskToGrey(result.masks[0], photo.width, photo.height));
console.log(JSON.stringify({ adapter: ctx.description, width: photo.width, height: photo.height, iouPredictions: Array.from(result.iouPredictions) }));
embedding.dispose();
predictor.dispose();
ctx.destroy();
