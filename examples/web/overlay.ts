/**
 * Drawing on the two stacked canvases: the photo below, and above it the mask / label map with the
 * prompts. Both canvases have the image's pixel size; CSS scales them to the page, so pointer
 * positions are mapped back to image pixels with `toImageCoords`.
 */

export interface PromptDrawing {
  points: readonly { x: number; y: number; label: number }[];
  box: readonly [number, number, number, number] | null;
  /** A box being dragged (not yet a prompt). */
  dragBox?: readonly [number, number, number, number] | null;
}

/** Mask colour (RGBA) over the photo. */
const MASK_RGBA = [30, 144, 255, 150] as const;

/** Label colours: distinct hues, the same class always the same colour. */
export function labelColor(i: number): [number, number, number] {
  const h = (i * 137.508) % 360;
  const s = 0.65;
  const l = 0.5;
  const k = (n: number) => (n + h / 30) % 12;
  const a = s * Math.min(l, 1 - l);
  const f = (n: number) => l - a * Math.max(-1, Math.min(k(n) - 3, Math.min(9 - k(n), 1)));
  return [Math.round(255 * f(0)), Math.round(255 * f(8)), Math.round(255 * f(4))];
}

export function drawPhoto(canvas: HTMLCanvasElement, bitmap: ImageBitmap): void {
  canvas.width = bitmap.width;
  canvas.height = bitmap.height;
  canvas.getContext('2d')!.drawImage(bitmap, 0, 0);
}

/** Pointer position over a canvas -> image pixel coordinates (clamped inside the image). */
export function toImageCoords(canvas: HTMLCanvasElement, clientX: number, clientY: number): { x: number; y: number } {
  const r = canvas.getBoundingClientRect();
  const x = ((clientX - r.left) / r.width) * canvas.width;
  const y = ((clientY - r.top) / r.height) * canvas.height;
  return { x: Math.min(Math.max(x, 0), canvas.width), y: Math.min(Math.max(y, 0), canvas.height) };
}

/** Image pixels per CSS pixel, so markers keep their on-screen size whatever the image size. */
function pixelScale(canvas: HTMLCanvasElement): number {
  const r = canvas.getBoundingClientRect();
  return r.width > 0 ? canvas.width / r.width : 1;
}

/** Redraw the overlay: optional mask or label colours, then the prompts. */
export function drawOverlay(canvas: HTMLCanvasElement, layer: ImageData | null, prompts: PromptDrawing): void {
  const g = canvas.getContext('2d')!;
  g.clearRect(0, 0, canvas.width, canvas.height);
  if (layer) g.putImageData(layer, 0, 0);
  const s = pixelScale(canvas);
  const box = prompts.dragBox ?? prompts.box;
  if (box) {
    g.lineWidth = 2 * s;
    g.strokeStyle = prompts.dragBox ? 'rgba(255, 255, 255, 0.9)' : 'rgb(0, 200, 90)';
    g.setLineDash(prompts.dragBox ? [6 * s, 4 * s] : []);
    g.strokeRect(box[0], box[1], box[2] - box[0], box[3] - box[1]);
    g.setLineDash([]);
  }
  for (const p of prompts.points) {
    g.beginPath();
    g.arc(p.x, p.y, 6 * s, 0, 2 * Math.PI);
    g.fillStyle = p.label === 1 ? 'rgb(0, 200, 90)' : 'rgb(230, 40, 40)';
    g.fill();
    g.lineWidth = 1.5 * s;
    g.strokeStyle = 'white';
    g.stroke();
  }
}

/** A 0/1 mask as translucent colour. */
export function maskLayer(mask: Uint8Array, width: number, height: number): ImageData {
  const img = new ImageData(width, height);
  const d = img.data;
  for (let i = 0; i < mask.length; i++) {
    if (!mask[i]) continue;
    d[4 * i] = MASK_RGBA[0];
    d[4 * i + 1] = MASK_RGBA[1];
    d[4 * i + 2] = MASK_RGBA[2];
    d[4 * i + 3] = MASK_RGBA[3];
  }
  return img;
}

/** A label map as translucent class colours. */
export function labelLayer(labels: Uint8Array | Uint16Array, width: number, height: number, alpha = 140): ImageData {
  const img = new ImageData(width, height);
  const d = img.data;
  const colors = new Map<number, [number, number, number]>();
  for (let i = 0; i < labels.length; i++) {
    const l = labels[i]!;
    let c = colors.get(l);
    if (!c) colors.set(l, (c = labelColor(l)));
    d[4 * i] = c[0];
    d[4 * i + 1] = c[1];
    d[4 * i + 2] = c[2];
    d[4 * i + 3] = alpha;
  }
  return img;
}
