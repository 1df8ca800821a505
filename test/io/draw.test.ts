/** Overlay and label-map drawing: exact pixel values on small canvases. */
import { describe, expect, it } from 'vitest';
import {
  CELL_WIDTH,
  GLYPH_HEIGHT,
  GLYPH_WIDTH,
  type Canvas,
  colorizeLabels,
  drawLegend,
  drawText,
  fillMask,
  glyph,
  maskToGrey,
  outlineMask,
  palette,
  toCanvas,
} from '../../src/io/index.js';

function blank(w: number, h: number, v = 0): Canvas {
  return { width: w, height: h, channels: 3, data: new Uint8Array(w * h * 3).fill(v) };
}

describe('masks', () => {
  it('fillMask blends with alpha only inside the mask', () => {
    const c = blank(4, 1, 100);
    fillMask(c, [1, 0, 1, 0], [200, 0, 50], 0.25);
    expect([...c.data]).toEqual([125, 75, 88, 100, 100, 100, 125, 75, 88, 100, 100, 100]);
  });

  it('outlineMask paints exactly the inner boundary of a square', () => {
    const w = 9;
    const mask = new Uint8Array(w * w);
    for (let y = 2; y <= 6; y++) for (let x = 2; x <= 6; x++) mask[y * w + x] = 1;
    const c = blank(w, w);
    outlineMask(c, mask, [255, 255, 255], 1);
    for (let y = 0; y < w; y++) {
      for (let x = 0; x < w; x++) {
        const ring = mask[y * w + x] === 1 && (x === 2 || x === 6 || y === 2 || y === 6);
        expect(c.data[3 * (y * w + x)], `pixel ${x},${y}`).toBe(ring ? 255 : 0);
      }
    }
  });

  it('maskToGrey writes 255 inside, 0 outside, and checks the size', () => {
    expect([...maskToGrey([0, 1, 2, 0], 2, 2).data]).toEqual([0, 255, 255, 0]);
    expect(() => maskToGrey([0, 1, 0], 2, 2)).toThrow(/3 values, 2×2 needs 4/);
    expect(() => fillMask(blank(2, 2), [1], [0, 0, 0])).toThrow(/mask has 1 values/);
  });

  it('toCanvas replicates grey and composites alpha over black', () => {
    expect([...toCanvas({ width: 1, height: 1, channels: 2, data: new Uint8Array([200, 128]) }).data]).toEqual([100, 100, 100]);
    expect([...toCanvas({ width: 1, height: 1, channels: 4, data: new Uint8Array([10, 20, 30, 255]) }).data]).toEqual([10, 20, 30]);
  });
});

describe('label maps', () => {
  it('palette colours are distinct and neighbours far apart', () => {
    const p = palette(24);
    expect(new Set(p.map((c) => c.join(','))).size).toBe(24);
    for (let i = 1; i < p.length; i++) {
      const d = Math.hypot(p[i]![0] - p[i - 1]![0], p[i]![1] - p[i - 1]![1], p[i]![2] - p[i - 1]![2]);
      expect(d, `colours ${i - 1} and ${i}`).toBeGreaterThan(60);
    }
  });

  it('colorizeLabels maps each index to its colour, out-of-range to black', () => {
    const img = colorizeLabels([0, 1, 2, 7], 2, 2, [[1, 2, 3], [4, 5, 6], [7, 8, 9]]);
    expect([...img.data]).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 0, 0]);
  });
});

describe('text and legend', () => {
  it('every glyph is 7 rows of at most 5 bits; unknown characters draw a box', () => {
    for (let c = 32; c < 127; c++) {
      const g = glyph(String.fromCharCode(c));
      expect(g.length).toBe(GLYPH_HEIGHT);
      for (const row of g) expect(row).toBeLessThan(1 << GLYPH_WIDTH);
    }
    expect([...glyph('€')]).toEqual([0x1f, 0x11, 0x11, 0x11, 0x11, 0x11, 0x1f]);
  });

  it('drawText puts each glyph bit at its pixel, scaled', () => {
    const scale = 2;
    const c = blank(2 * CELL_WIDTH * scale, GLYPH_HEIGHT * scale);
    drawText(c, 0, 0, 'Hi', [255, 0, 0], scale);
    for (const [k, ch] of ['H', 'i'].entries()) {
      const g = glyph(ch);
      for (let y = 0; y < GLYPH_HEIGHT * scale; y++) {
        for (let x = 0; x < GLYPH_WIDTH * scale; x++) {
          const lit = (g[Math.floor(y / scale)]! & (0x10 >> Math.floor(x / scale))) !== 0;
          const px = k * CELL_WIDTH * scale + x;
          expect(c.data[3 * (y * c.width + px)], `${ch} at ${x},${y}`).toBe(lit ? 255 : 0);
        }
      }
    }
  });

  it('drawLegend draws a swatch per entry and stays inside small canvases', () => {
    const c = blank(200, 100, 255);
    const entries = [
      { name: 'sky', color: [10, 20, 250] as const },
      { name: 'road', color: [250, 20, 10] as const },
    ];
    const box = drawLegend(c, entries, 1);
    expect(box.width).toBeGreaterThan(20);
    expect(box.height).toBeGreaterThan(16);
    // Both swatch colours appear exactly (drawn opaque).
    const has = (rgb: readonly number[]) => {
      for (let i = 0; i < c.data.length; i += 3) if (c.data[i] === rgb[0] && c.data[i + 1] === rgb[1] && c.data[i + 2] === rgb[2]) return true;
      return false;
    };
    expect(has(entries[0]!.color)).toBe(true);
    expect(has(entries[1]!.color)).toBe(true);
    // Outside the panel nothing changed.
    expect(c.data[3 * (99 * 200 + 199)]).toBe(255);
    const tiny = blank(8, 8);
    expect(() => drawLegend(tiny, entries)).not.toThrow();
  });
});
