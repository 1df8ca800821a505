/**
 * A 5×7 bitmap font for legend text on label maps (ASCII letters, digits and common punctuation;
 * anything else draws as a hollow box). Each glyph is seven rows, most significant of the five bits
 * on the left. Drawn on a 6×8 cell (one column and one row of spacing), scaled by whole pixels.
 */
const GLYPHS: Record<string, string> = {
  ' ': '00 00 00 00 00 00 00',
  '!': '04 04 04 04 04 00 04', '"': '0A 0A 0A 00 00 00 00', '#': '0A 0A 1F 0A 1F 0A 0A',
  '%': '18 19 02 04 08 13 03', '&': '0C 12 14 08 15 12 0D', "'": '04 04 08 00 00 00 00',
  '(': '02 04 08 08 08 04 02', ')': '08 04 02 02 02 04 08', '*': '00 04 15 0E 15 04 00',
  '+': '00 04 04 1F 04 04 00', ',': '00 00 00 00 0C 04 08', '-': '00 00 00 1F 00 00 00',
  '.': '00 00 00 00 00 0C 0C', '/': '00 01 02 04 08 10 00', ':': '00 0C 0C 00 0C 0C 00',
  ';': '00 0C 0C 00 0C 04 08', '<': '02 04 08 10 08 04 02', '=': '00 00 1F 00 1F 00 00',
  '>': '08 04 02 01 02 04 08', '?': '0E 11 01 02 04 00 04', '@': '0E 11 01 0D 15 15 0E',
  '[': '0E 08 08 08 08 08 0E', ']': '0E 02 02 02 02 02 0E', '_': '00 00 00 00 00 00 1F',
  '0': '0E 11 13 15 19 11 0E', '1': '04 0C 04 04 04 04 0E', '2': '0E 11 01 02 04 08 1F',
  '3': '1F 02 04 02 01 11 0E', '4': '02 06 0A 12 1F 02 02', '5': '1F 10 1E 01 01 11 0E',
  '6': '06 08 10 1E 11 11 0E', '7': '1F 01 02 04 08 08 08', '8': '0E 11 11 0E 11 11 0E',
  '9': '0E 11 11 0F 01 02 0C',
  A: '0E 11 11 1F 11 11 11', B: '1E 11 11 1E 11 11 1E', C: '0E 11 10 10 10 11 0E',
  D: '1C 12 11 11 11 12 1C', E: '1F 10 10 1E 10 10 1F', F: '1F 10 10 1E 10 10 10',
  G: '0E 11 10 17 11 11 0F', H: '11 11 11 1F 11 11 11', I: '0E 04 04 04 04 04 0E',
  J: '07 02 02 02 02 12 0C', K: '11 12 14 18 14 12 11', L: '10 10 10 10 10 10 1F',
  M: '11 1B 15 15 11 11 11', N: '11 11 19 15 13 11 11', O: '0E 11 11 11 11 11 0E',
  P: '1E 11 11 1E 10 10 10', Q: '0E 11 11 11 15 12 0D', R: '1E 11 11 1E 14 12 11',
  S: '0F 10 10 0E 01 01 1E', T: '1F 04 04 04 04 04 04', U: '11 11 11 11 11 11 0E',
  V: '11 11 11 11 11 0A 04', W: '11 11 11 15 15 15 0A', X: '11 11 0A 04 0A 11 11',
  Y: '11 11 11 0A 04 04 04', Z: '1F 01 02 04 08 10 1F',
  a: '00 00 0E 01 0F 11 0F', b: '10 10 16 19 11 11 1E', c: '00 00 0E 10 10 11 0E',
  d: '01 01 0D 13 11 11 0F', e: '00 00 0E 11 1F 10 0E', f: '06 09 08 1C 08 08 08',
  g: '00 0F 11 11 0F 01 0E', h: '10 10 16 19 11 11 11', i: '04 00 0C 04 04 04 0E',
  j: '02 00 06 02 02 12 0C', k: '10 10 12 14 18 14 12', l: '0C 04 04 04 04 04 0E',
  m: '00 00 1A 15 15 11 11', n: '00 00 16 19 11 11 11', o: '00 00 0E 11 11 11 0E',
  p: '00 00 1E 11 1E 10 10', q: '00 00 0D 13 0F 01 01', r: '00 00 16 19 10 10 10',
  s: '00 00 0E 10 0E 01 1E', t: '08 08 1C 08 08 09 06', u: '00 00 11 11 11 13 0D',
  v: '00 00 11 11 11 0A 04', w: '00 00 11 11 15 15 0A', x: '00 00 11 0A 04 0A 11',
  y: '00 00 11 11 0F 01 0E', z: '00 00 1F 02 04 08 1F',
};

const UNKNOWN = '1F 11 11 11 11 11 1F';
const parsed = new Map<string, Uint8Array>();

export const GLYPH_WIDTH = 5;
export const GLYPH_HEIGHT = 7;
/** Advance per character and per line, in unscaled pixels. */
export const CELL_WIDTH = 6;
export const CELL_HEIGHT = 8;

/** Seven row bitmasks for a character. */
export function glyph(ch: string): Uint8Array {
  let g = parsed.get(ch);
  if (!g) {
    g = new Uint8Array((GLYPHS[ch] ?? UNKNOWN).split(' ').map((h) => parseInt(h, 16)));
    parsed.set(ch, g);
  }
  return g;
}

export function measureText(text: string, scale = 1): { width: number; height: number } {
  const n = [...text].length;
  return { width: n === 0 ? 0 : (n * CELL_WIDTH - 1) * scale, height: GLYPH_HEIGHT * scale };
}

/** Calls `plot(x, y)` for every lit pixel of `text` drawn with its top-left corner at (x, y). */
export function rasterizeText(text: string, x: number, y: number, scale: number, plot: (px: number, py: number) => void): void {
  let cx = x;
  for (const ch of text) {
    const g = glyph(ch);
    for (let row = 0; row < GLYPH_HEIGHT; row++) {
      const bits = g[row]!;
      for (let col = 0; col < GLYPH_WIDTH; col++) {
        if (!(bits & (0x10 >> col))) continue;
        for (let sy = 0; sy < scale; sy++) for (let sx = 0; sx < scale; sx++) plot(cx + col * scale + sx, y + row * scale + sy);
      }
    }
    cx += CELL_WIDTH * scale;
  }
}
