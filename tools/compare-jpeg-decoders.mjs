// The decoder comparison behind docs/images.md: max |delta| of candidate JPEG decoders against
// Pillow 9.4's decode of the photos and of test/fixtures/images/jpeg-variants (stored pixels: the
// expected images are turned back by their EXIF orientation, which readImage applies itself).
// The candidates are not dependencies; install them without saving, then run:
//   npm i --no-save jpeg-js@0.4.4 @jsquash/jpeg@1.6.0 @cwasm/jpeg-turbo@0.1.3 @cornerstonejs/codec-libjpeg-turbo-8bit@1.2.8
//   node tools/compare-jpeg-decoders.mjs
import { readFileSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
const require = createRequire(import.meta.url);
const WT = new URL('../test/fixtures/images', import.meta.url).pathname;

function readST(path) {
  const b = readFileSync(path);
  const n = Number(b.readBigUInt64LE(0));
  const h = JSON.parse(b.subarray(8, 8 + n).toString());
  const out = {};
  for (const [k, v] of Object.entries(h)) {
    if (k === '__metadata__') continue;
    out[k] = { shape: v.shape, data: b.subarray(8 + n + v.data_offsets[0], 8 + n + v.data_offsets[1]) };
  }
  return [out, h.__metadata__];
}
const [photos] = readST(`${WT}/decoded_rgb.safetensors`);
const [vars, meta] = readST(`${WT}/jpeg-variants/expected.safetensors`);
const listing = meta ? JSON.parse(meta.variants) : [];
const cases = [
  { name: 'truck', file: `${WT}/truck.jpg`, ref: photos.truck, orientation: 1 },
  { name: 'dog', file: `${WT}/dog.jpg`, ref: photos.dog, orientation: 1 },
  ...listing.map((v) => ({ name: v.name, file: `${WT}/jpeg-variants/${v.name}.jpg`, ref: vars[v.name], orientation: v.orientation })),
];

// Pillow's CMYK -> RGB after reading with Adobe polarity (stored values inverted).
function muldiv255(a, b) { const t = a * b + 128; return ((t >> 8) + t) >> 8; }
function cmykToRgb(src, invert) {
  const n = src.length / 4; const out = new Uint8Array(n * 3);
  for (let i = 0; i < n; i++) {
    const v = (j) => invert ? 255 - src[4 * i + j] : src[4 * i + j];
    const nk = 255 - v(3);
    for (let c = 0; c < 3; c++) out[3 * i + c] = Math.max(0, Math.min(255, nk - muldiv255(v(c), nk)));
  }
  return out;
}
function toRgb(data, channels) {
  const n = data.length / channels; const out = new Uint8Array(n * 3);
  for (let i = 0; i < n; i++) for (let c = 0; c < 3; c++) out[3 * i + c] = data[i * channels + (channels < 3 ? 0 : c)];
  return out;
}
// Expected pixels are after exif_transpose; undo it for comparison against stored order.
function orient(rgb, w, h, o) {
  if (o === 1) return { data: rgb, w, h };
  const swap = o >= 5; const W = swap ? h : w; const H = swap ? w : h; const out = new Uint8Array(rgb.length);
  for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) {
    let sx, sy;
    switch (o) { case 2: sx = w - 1 - x; sy = y; break; case 3: sx = w - 1 - x; sy = h - 1 - y; break; case 4: sx = x; sy = h - 1 - y; break;
      case 5: sx = y; sy = x; break; case 6: sx = y; sy = h - 1 - x; break; case 7: sx = w - 1 - y; sy = h - 1 - x; break; case 8: sx = w - 1 - y; sy = x; break; }
    for (let c = 0; c < 3; c++) out[3 * (y * W + x) + c] = rgb[3 * (sy * w + sx) + c];
  }
  return { data: out, w: W, h: H };
}

const decoders = {};
const jpegjs = require('jpeg-js');
decoders['jpeg-js 0.4.4 (before)'] = async (buf) => {
  const d = jpegjs.decode(buf, { useTArray: true, formatAsRGBA: false, tolerantDecoding: true });
  return { w: d.width, h: d.height, rgb: d.data };
};
const sharp = (await import('sharp')).default;
decoders['sharp (libvips 8.18, mozjpeg)'] = async (buf) => {
  const { data, info } = await sharp(buf, { failOn: 'none' }).raw().toBuffer({ resolveWithObject: true });
  return { w: info.width, h: info.height, rgb: toRgb(data, info.channels) };
};
decoders['sharp as used (ignoreIcc, failOn truncated, CMYK raw + Pillow formula)'] = async (buf) => {
  const m = await sharp(buf).metadata();
  if (m.space !== 'cmyk') {
    const { data, info } = await sharp(buf, { ignoreIcc: true, failOn: 'truncated' }).raw().toBuffer({ resolveWithObject: true });
    return { w: info.width, h: info.height, rgb: toRgb(data, info.channels) };
  }
  const { data, info } = await sharp(buf, { ignoreIcc: true, failOn: 'truncated' }).pipelineColourspace('cmyk').toColourspace('cmyk').raw().toBuffer({ resolveWithObject: true });
  return { w: info.width, h: info.height, rgb: cmykToRgb(data, false) };
};
const jsq = await import('@jsquash/jpeg/decode.js');
await jsq.init(new WebAssembly.Module(readFileSync(require.resolve('@jsquash/jpeg/codec/dec/mozjpeg_dec.wasm'))));
decoders['@jsquash/jpeg 1.6 (mozjpeg wasm)'] = async (buf) => {
  const img = await jsq.default(buf, { preserveOrientation: true });
  return { w: img.width, h: img.height, rgb: toRgb(img.data, 4) };
};
const cw = require('@cwasm/jpeg-turbo');
decoders['@cwasm/jpeg-turbo 0.1.3'] = async (buf) => {
  const img = cw.decode(buf);
  return { w: img.width, h: img.height, rgb: toRgb(img.data, 4) };
};
const cs = await require('@cornerstonejs/codec-libjpeg-turbo-8bit/decodewasmjs')();
decoders['@cornerstonejs/codec-libjpeg-turbo-8bit 1.2.8'] = async (buf) => {
  const d = new cs.JPEGDecoder();
  d.getEncodedBuffer(buf.length).set(buf);
  d.decode();
  const fi = d.getFrameInfo();
  const out = d.getDecodedBuffer().slice();
  d.delete();
  const rgb = fi.componentCount === 4 ? cmykToRgb(out, true) : toRgb(out, fi.componentCount);
  return { w: fi.width, h: fi.height, rgb };
};

const table = {};
for (const [dname, dec] of Object.entries(decoders)) {
  table[dname] = {};
  for (const c of cases) {
    const buf = readFileSync(c.file);
    let cell;
    try {
      const r = await dec(new Uint8Array(buf));
      const o = orient(r.rgb, r.w, r.h, c.orientation);
      const [H, W] = c.ref.shape;
      if (o.w !== W || o.h !== H) cell = `size ${o.w}x${o.h}`;
      else { let m = 0; for (let i = 0; i < o.data.length; i++) m = Math.max(m, Math.abs(o.data[i] - c.ref.data[i])); cell = m;
      if (c.ref.data.length > 100000) { let s = 0; for (let i = 0; i < o.data.length; i++) s += Math.abs(o.data[i] - c.ref.data[i]); if (m) cell = `${m} (mean ${(s / o.data.length).toFixed(2)})`; } }
    } catch (e) { cell = 'error: ' + String(e.message ?? e).slice(0, 40); }
    table[dname][c.name] = cell;
  }
}
const names = cases.map((c) => c.name);
console.log('| variant | ' + Object.keys(table).join(' | ') + ' |');
console.log('|---|' + Object.keys(table).map(() => '---').join('|') + '|');
for (const n of names) console.log(`| ${n} | ` + Object.keys(table).map((d) => table[d][n]).join(' | ') + ' |');
