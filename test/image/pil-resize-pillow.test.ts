/**
 * pilResize against Pillow 9.4 itself: 47 cases written by tools/gen-pil-resize-fixtures.py (every
 * filter, upscales, extreme downscales, odd sizes, 1-pixel images, float and integer boxes, L / LA /
 * RGB / RGBA, and the photos at the sizes SAM, SAM-CLIP and CLIP use).
 *
 * Tolerance, per case: byte-exact (max |Δ| = 0). Pillow's LANCZOS and HAMMING weights go through
 * the C library's sin/cos, which may differ from V8's in the last bit; those cases allow 1 step.
 */
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { pilResize, type PilFilter, type PilBox } from '../../src/image/pil-resize.js';
import type { ImageU8 } from '../../src/image/image.js';
import { readSafetensorsSimple } from '../helpers/read-safetensors-simple.js';
import { describeBytes, diffBytes } from './image-compare.js';

const fixture = (p: string): string => fileURLToPath(new URL(`../fixtures/${p}`, import.meta.url));
const cases = readSafetensorsSimple(fixture('images/pil-resize-cases.safetensors'));
const photos = readSafetensorsSimple(fixture('images/decoded_rgb.safetensors'));

interface Case {
  name: string;
  input: string;
  size: [number, number];
  filter: PilFilter;
  box: PilBox | null;
  row_stride: number;
  sha256: string;
}

const list = JSON.parse(cases.metadata['cases']!) as Case[];

function loadInput(name: string): ImageU8 {
  const t = name.startsWith('photo:') ? photos.get(name.slice(6)) : cases.get(`in.${name}`);
  const [h, w, c] = t.shape as [number, number, number];
  return { width: w, height: h, channels: c, data: t.bytes };
}

describe(`pilResize vs Pillow ${cases.metadata['pillow']}`, () => {
  it('the fixture was made with Pillow 9.4, the version behind the reference fixtures', () => {
    expect(cases.metadata['pillow']).toBe('9.4.0');
    expect(list.length).toBeGreaterThanOrEqual(40);
  });

  const summary: string[] = [];
  for (const c of list) {
    const tolerance = c.filter === 'lanczos' || c.filter === 'hamming' ? 1 : 0;
    it(`${c.name}: ${c.input} → ${c.size[0]}×${c.size[1]} ${c.filter}${c.box ? ` box [${c.box.join(', ')}]` : ''} (max |Δ| ≤ ${tolerance})`, () => {
      const img = loadInput(c.input);
      const [ow, oh] = c.size;
      const out = pilResize(img, ow, oh, { filter: c.filter, ...(c.box ? { box: c.box } : {}) });
      expect([out.width, out.height, out.channels]).toEqual([ow, oh, img.channels]);
      const ch = img.channels;
      // Pillow's rows 0, s, 2s, … were stored; compare those, and the whole output by hash.
      const ref = cases.get(`out.${c.name}`).bytes;
      const rowBytes = ow * ch;
      const picked = new Uint8Array(ref.length);
      for (let r = 0, y = 0; y < oh; y += c.row_stride, r++) {
        picked.set(out.data.subarray(y * rowBytes, (y + 1) * rowBytes), r * rowBytes);
      }
      const d = diffBytes(picked, ref);
      const msg = describeBytes(c.name, d, ow, ch);
      summary.push(msg);
      expect(d.maxAbs, msg).toBeLessThanOrEqual(tolerance);
      if (tolerance === 0) {
        const hash = createHash('sha256').update(out.data).digest('hex');
        expect(hash, `${c.name}: sha256 of the full output differs from Pillow's (${msg})`).toBe(c.sha256);
      }
    });
  }

  it('summary', () => {
    // Printed so the exact-match figures show up in the test log.
    console.log(summary.join('\n'));
    expect(summary.length).toBe(list.length);
  });
});
