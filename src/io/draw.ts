/**
 * Drawing on RGB canvases for the CLI's pictures: translucent mask fills with outlines, prompt
 * markers, boxes, colour-coded label maps and a legend. Everything works in place on an 8-bit RGB
 * `Canvas`; `toCanvas` makes one (a copy) from any decoded image.
 */
import { type ImageU8, ImageError, checkImage } from '../image/image.js';
import { CELL_HEIGHT, measureText, rasterizeText } from './font.js';

export type Rgb = readonly [number, number, number];

export interface Canvas extends ImageU8 {
  readonly channels: 3;
  readonly data: Uint8Array;
}

/** An RGB copy of `img` (grey replicated, alpha composited over black). */
export function toCanvas(img: ImageU8): Canvas {
  checkImage(img);
  const n = img.width * img.height;
  const c = img.channels;
  const out = new Uint8Array(n * 3);
  const s = img.data;
  for (let i = 0; i < n; i++) {
    const a = c === 2 || c === 4 ? s[i * c + c - 1]! / 255 : 1;
    for (let k = 0; k < 3; k++) out[3 * i + k] = Math.round((c <= 2 ? s[i * c]! : s[i * c + k]!) * a);
  }
  return { width: img.width, height: img.height, channels: 3, data: out };
}

function checkMask(canvas: Canvas, mask: ArrayLike<number>, what: string): void {
  if (mask.length !== canvas.width * canvas.height) {
    throw new ImageError(`${what}: mask has ${mask.length} values, the ${canvas.width}×${canvas.height} image needs ${canvas.width * canvas.height}`);
  }
}

function blendPixel(d: Uint8Array, i: number, color: Rgb, alpha: number): void {
  d[i] = Math.round(d[i]! * (1 - alpha) + color[0] * alpha);
  d[i + 1] = Math.round(d[i + 1]! * (1 - alpha) + color[1] * alpha);
  d[i + 2] = Math.round(d[i + 2]! * (1 - alpha) + color[2] * alpha);
}

/** Blend `color` over every pixel where `mask` is non-zero. */
export function fillMask(canvas: Canvas, mask: ArrayLike<number>, color: Rgb, alpha = 0.5): void {
  checkMask(canvas, mask, 'fillMask');
  const d = canvas.data;
  for (let i = 0; i < mask.length; i++) if (mask[i]) blendPixel(d, 3 * i, color, alpha);
}

/** Paint the mask's boundary (inside pixels with an outside 4-neighbour), `thickness` pixels wide. */
export function outlineMask(canvas: Canvas, mask: ArrayLike<number>, color: Rgb, thickness = 1): void {
  checkMask(canvas, mask, 'outlineMask');
  const { width: w, height: h, data: d } = canvas;
  const inside = (x: number, y: number) => x >= 0 && y >= 0 && x < w && y < h && !!mask[y * w + x];
  const edge = new Uint8Array(w * h);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      if (inside(x, y) && (!inside(x - 1, y) || !inside(x + 1, y) || !inside(x, y - 1) || !inside(x, y + 1))) edge[y * w + x] = 1;
    }
  }
  const r = Math.max(0, Math.floor(thickness / 2));
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      if (!edge[y * w + x]) continue;
      for (let yy = Math.max(0, y - r); yy <= Math.min(h - 1, y + r); yy++) {
        for (let xx = Math.max(0, x - r); xx <= Math.min(w - 1, x + r); xx++) {
          const i = 3 * (yy * w + xx);
          d[i] = color[0];
          d[i + 1] = color[1];
          d[i + 2] = color[2];
        }
      }
    }
  }
}

export function fillRect(canvas: Canvas, x0: number, y0: number, x1: number, y1: number, color: Rgb, alpha = 1): void {
  const { width: w, height: h, data: d } = canvas;
  const xa = Math.max(0, Math.floor(Math.min(x0, x1)));
  const xb = Math.min(w - 1, Math.ceil(Math.max(x0, x1)));
  const ya = Math.max(0, Math.floor(Math.min(y0, y1)));
  const yb = Math.min(h - 1, Math.ceil(Math.max(y0, y1)));
  for (let y = ya; y <= yb; y++) for (let x = xa; x <= xb; x++) blendPixel(d, 3 * (y * w + x), color, alpha);
}

/** Rectangle outline with corners (x0, y0) and (x1, y1), inclusive. */
export function drawRect(canvas: Canvas, x0: number, y0: number, x1: number, y1: number, color: Rgb, thickness = 2): void {
  const t = Math.max(1, thickness) - 1;
  fillRect(canvas, x0, y0, x1, y0 + t, color);
  fillRect(canvas, x0, y1 - t, x1, y1, color);
  fillRect(canvas, x0, y0, x0 + t, y1, color);
  fillRect(canvas, x1 - t, y0, x1, y1, color);
}

/** A filled disc with a white rim (a clicked point); `radius` in pixels. */
export function drawMarker(canvas: Canvas, x: number, y: number, color: Rgb, radius = 5): void {
  const { width: w, height: h, data: d } = canvas;
  const rim = radius + Math.max(1, Math.round(radius / 4));
  for (let yy = Math.floor(y - rim); yy <= Math.ceil(y + rim); yy++) {
    for (let xx = Math.floor(x - rim); xx <= Math.ceil(x + rim); xx++) {
      if (xx < 0 || yy < 0 || xx >= w || yy >= h) continue;
      const r2 = (xx - x) ** 2 + (yy - y) ** 2;
      if (r2 > rim * rim) continue;
      const c = r2 <= radius * radius ? color : ([255, 255, 255] as const);
      const i = 3 * (yy * w + xx);
      d[i] = c[0];
      d[i + 1] = c[1];
      d[i + 2] = c[2];
    }
  }
}

/**
 * `n` well-separated colours: hues stepped by the golden angle, alternating two brightness levels,
 * so neighbouring class indexes never look alike.
 */
export function palette(n: number): Rgb[] {
  const out: Rgb[] = [];
  for (let i = 0; i < n; i++) {
    const hue = (i * 137.508) % 360;
    out.push(hsvToRgb(hue, i % 2 === 0 ? 0.75 : 0.55, i % 4 < 2 ? 0.95 : 0.75));
  }
  return out;
}

function hsvToRgb(h: number, s: number, v: number): Rgb {
  const c = v * s;
  const x = c * (1 - Math.abs(((h / 60) % 2) - 1));
  const m = v - c;
  const [r, g, b] = h < 60 ? [c, x, 0] : h < 120 ? [x, c, 0] : h < 180 ? [0, c, x] : h < 240 ? [0, x, c] : h < 300 ? [x, 0, c] : [c, 0, x];
  return [Math.round((r + m) * 255), Math.round((g + m) * 255), Math.round((b + m) * 255)];
}

/** A label map (one class index per pixel) as an RGB picture; indexes outside `colors` are black. */
export function colorizeLabels(labels: ArrayLike<number>, width: number, height: number, colors: readonly Rgb[]): Canvas {
  if (labels.length !== width * height) {
    throw new ImageError(`colorizeLabels: ${labels.length} labels for a ${width}×${height} image (${width * height} needed)`);
  }
  const out = new Uint8Array(width * height * 3);
  for (let i = 0; i < labels.length; i++) {
    const c = colors[labels[i]!];
    if (!c) continue;
    out[3 * i] = c[0];
    out[3 * i + 1] = c[1];
    out[3 * i + 2] = c[2];
  }
  return { width, height, channels: 3, data: out };
}

/** Blend each pixel towards its label's colour; indexes outside `colors` are left as they are. */
export function blendLabels(canvas: Canvas, labels: ArrayLike<number>, colors: readonly Rgb[], alpha = 0.5): void {
  checkMask(canvas, labels, 'blendLabels');
  for (let i = 0; i < labels.length; i++) {
    const c = colors[labels[i]!];
    if (c) blendPixel(canvas.data, 3 * i, c, alpha);
  }
}

export function drawText(canvas: Canvas, x: number, y: number, text: string, color: Rgb, scale = 1): void {
  const { width: w, height: h, data: d } = canvas;
  rasterizeText(text, x, y, scale, (px, py) => {
    if (px < 0 || py < 0 || px >= w || py >= h) return;
    const i = 3 * (py * w + px);
    d[i] = color[0];
    d[i + 1] = color[1];
    d[i + 2] = color[2];
  });
}

export interface LegendEntry {
  name: string;
  color: Rgb;
}

/** Font scale that keeps legend text readable: 1 up to 400 px on the short side, then +1 per 400 px. */
export function legendScale(canvas: ImageU8): number {
  return Math.max(1, Math.floor(Math.min(canvas.width, canvas.height) / 400) + 1);
}

/**
 * A legend box in the top-left corner: a swatch and a name per entry on a dark translucent panel.
 * Returns the panel's size so callers can test or place other things around it.
 */
export function drawLegend(canvas: Canvas, entries: readonly LegendEntry[], scale = legendScale(canvas)): { width: number; height: number } {
  if (entries.length === 0) return { width: 0, height: 0 };
  const pad = 3 * scale;
  const line = CELL_HEIGHT * scale + 2 * scale;
  const swatch = CELL_HEIGHT * scale - scale;
  const textW = Math.max(...entries.map((e) => measureText(e.name, scale).width));
  const width = pad + swatch + pad + textW + pad;
  const height = pad + entries.length * line - 2 * scale + pad;
  fillRect(canvas, 0, 0, width - 1, height - 1, [0, 0, 0], 0.65);
  entries.forEach((e, i) => {
    const y = pad + i * line;
    fillRect(canvas, pad, y, pad + swatch - 1, y + swatch - 1, e.color);
    drawText(canvas, pad + swatch + pad, y, e.name, [255, 255, 255], scale);
  });
  return { width: Math.min(width, canvas.width), height: Math.min(height, canvas.height) };
}
