/**
 * The demo page's wiring: DOM events -> Demo operations -> canvases, tables and messages. The
 * engine runs in a web worker (see demo.ts); this thread decodes the photo for display and draws.
 *
 * For automated checks (test/web/demo.test.ts) the page exposes `window.__samclipDemo`: the Demo
 * (last mask, last semantic result, adapter report), the number of operations in flight, the
 * errors shown, and base64 helpers to read the mask and the label map back.
 */
import type { SamclipError } from '../../src/gpu/errors.js';
import { Demo, type DemoImage, type MultimaskMode } from './demo.js';
import { decodeImageBlob, fetchImage, weightsUrl } from './inputs.js';
import { type PromptDrawing, drawOverlay, drawPhoto, labelColor, labelLayer, maskLayer, toImageCoords } from './overlay.js';
import { esc } from './timings.js';

const $ = <T extends HTMLElement>(id: string): T => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`page element #${id} is missing`);
  return el as T;
};

const ui = {
  error: $('error'),
  status: $('status'),
  weightsFile: $<HTMLInputElement>('weights-file'),
  weightsUrl: $<HTMLInputElement>('weights-url'),
  weightsLoad: $<HTMLButtonElement>('weights-load'),
  dtype: $<HTMLSelectElement>('dtype'),
  models: $('models'),
  imageFile: $<HTMLInputElement>('image-file'),
  imageDemo: $<HTMLButtonElement>('image-demo'),
  imageInfo: $('image-info'),
  multimask: $<HTMLSelectElement>('multimask'),
  livePreview: $<HTMLInputElement>('live-preview'),
  undo: $<HTMLButtonElement>('undo-point'),
  clear: $<HTMLButtonElement>('clear-prompts'),
  maskInfo: $('mask-info'),
  semantic: $<HTMLFieldSetElement>('semantic'),
  classes: $<HTMLInputElement>('classes'),
  refine: $<HTMLInputElement>('refine'),
  templates: $<HTMLSelectElement>('templates'),
  segment: $<HTMLButtonElement>('segment-semantic'),
  legend: $('legend'),
  photo: $<HTMLCanvasElement>('image-canvas'),
  overlay: $<HTMLCanvasElement>('overlay-canvas'),
  viewerHint: $('viewer-hint'),
  profile: $<HTMLInputElement>('profile'),
  timings: $('timings').querySelector('tbody')!,
  adapter: $('adapter'),
};

const demo = new Demo();
let layer: ImageData | null = null;
let dragBox: [number, number, number, number] | null = null;
/** The live preview's mask (drawn instead of `layer` while the pointer hovers or drags). */
let previewLayer: ImageData | null = null;
let hoverPoint: { x: number; y: number; label: number } | null = null;

/** What the end-to-end test reads. */
const hooks = {
  demo,
  pending: 0,
  ready: false,
  /** Live previews drawn so far, and whether one is being computed. */
  previews: 0,
  previewBusy: false,
  errors: [] as string[],
  get lastMask() {
    return demo.lastMask;
  },
  get lastSemantic() {
    return demo.lastSemantic;
  },
  get adapter() {
    return demo.adapter;
  },
  /** The last mask's 0/1 bytes as base64. */
  maskBase64(): string | null {
    return demo.lastMask ? toBase64(demo.lastMask.data) : null;
  },
  /** The last semantic label map (one byte per pixel) as base64. */
  labelsBase64(): string | null {
    const l = demo.lastSemantic?.result.labelMap;
    return l ? toBase64(l instanceof Uint8Array ? l : new Uint8Array(l.buffer)) : null;
  },
};
(window as unknown as { __samclipDemo: typeof hooks }).__samclipDemo = hooks;

function toBase64(bytes: Uint8Array | Uint8ClampedArray): string {
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

// ------------------------------------------------------------------ messages

function status(text: string): void {
  ui.status.textContent = text;
}

function showError(e: unknown): void {
  const err = e as Partial<SamclipError> & { name?: string; message?: string };
  const text = `${err.name ?? 'Error'}: ${err.message ?? String(e)}`;
  hooks.errors.push(text);
  ui.error.textContent = text;
  ui.error.hidden = false;
  status('Failed; see the message above.');
  console.error(e);
}

function clearError(): void {
  ui.error.hidden = true;
  ui.error.textContent = '';
}

/** Run a page action: busy counter, status line, errors on the page, timings refreshed. */
async function action(label: string, fn: () => Promise<void>): Promise<void> {
  hooks.pending++;
  clearError();
  status(`${label}…`);
  try {
    await fn();
    status('Ready.');
  } catch (e) {
    showError(e);
  } finally {
    hooks.pending--;
    demo.timings.render(ui.timings);
    refreshControls();
  }
}

// ------------------------------------------------------------------ rendering

function refreshControls(): void {
  ui.semantic.disabled = !demo.hasSemantic;
  ui.dtype.querySelector<HTMLOptionElement>('option[value="f16"]')!.disabled = !demo.adapter?.features.f16;
  ui.models.innerHTML = demo.models.map((m) => `<li><strong>${esc(m.role)}</strong> ${esc(m.name)}<br /><span class="hint">${esc(m.detail)}</span></li>`).join('');
  ui.viewerHint.textContent = !demo.hasSam
    ? 'Load SAM or SAM-CLIP weights.'
    : !demo.image
      ? 'Pick a photo or use the demo photo.'
      : 'Click the image (right / shift-click: background point; drag: box).';
}

function prompts(): PromptDrawing {
  return { points: hoverPoint && previewLayer ? [...demo.points, hoverPoint] : demo.points, box: demo.box, dragBox };
}

function redraw(): void {
  if (demo.image) drawOverlay(ui.overlay, previewLayer ?? layer, prompts());
}

// ------------------------------------------------------------------ live preview

/**
 * Hover / drag previews. Pointer events come far faster than even the decoder runs, so at most
 * one preview is computed at a time and only the latest request waits (older ones are dropped).
 * A committed prompt bumps the generation: previews requested before it are discarded on arrival.
 */
type PreviewRequest = { point?: { x: number; y: number; label: number }; box?: [number, number, number, number] };
let previewWanted: PreviewRequest | null = null;
let previewGen = 0;

function requestPreview(req: PreviewRequest): void {
  if (!ui.livePreview.checked || !demo.encoded || hooks.pending > 0) return;
  previewWanted = req;
  if (!hooks.previewBusy) void pumpPreviews();
}

function cancelPreview(): void {
  previewWanted = null;
  previewGen++;
  hoverPoint = null;
  if (previewLayer) {
    previewLayer = null;
    redraw();
  }
}

async function pumpPreviews(): Promise<void> {
  hooks.previewBusy = true;
  try {
    while (previewWanted) {
      const req = previewWanted;
      const gen = previewGen;
      previewWanted = null;
      let m;
      try {
        m = await demo.previewMask(req);
      } catch (e) {
        // The committed prompt reports errors on the page; a failed preview only logs.
        console.warn('live preview failed:', e);
        continue;
      }
      if (gen !== previewGen || hooks.pending > 0) continue;
      previewLayer = m ? maskLayer(m.data, m.width, m.height) : null;
      hoverPoint = req.point ?? null;
      hooks.previews++;
      redraw();
      demo.timings.render(ui.timings);
    }
  } finally {
    hooks.previewBusy = false;
  }
}

function showMask(): void {
  const t0 = performance.now();
  const m = demo.lastMask;
  layer = m ? maskLayer(m.data, m.width, m.height) : null;
  redraw();
  demo.timings.record('draw mask', performance.now() - t0);
  if (!m) {
    ui.maskInfo.textContent = '';
    return;
  }
  let area = 0;
  for (let i = 0; i < m.data.length; i++) area += m.data[i]!;
  const cand = m.multimaskOutput ? `mask ${m.maskIndex + 1} of ${m.iouPredictions.length}` : 'single mask';
  ui.maskInfo.textContent = `${cand}, predicted IoU ${m.iouPredictions[m.maskIndex]!.toFixed(3)}, ${((100 * area) / m.data.length).toFixed(1)}% of the image`;
}

function showSemantic(): void {
  const s = demo.lastSemantic;
  if (!s) return;
  const t0 = performance.now();
  const r = s.result;
  layer = labelLayer(r.labelMap, r.width, r.height);
  drawOverlay(ui.overlay, layer, { points: [], box: null });
  demo.timings.record('draw label map', performance.now() - t0);
  const total = r.width * r.height;
  ui.legend.innerHTML = r.classes
    .map((name, i) => {
      const [cr, cg, cb] = labelColor(i);
      const pct = ((100 * r.pixelCounts[i]!) / total).toFixed(1);
      return `<li><span class="swatch" style="background: rgb(${cr}, ${cg}, ${cb})"></span>${esc(name)} <span class="hint">${pct}% · max P ${r.scores[i]!.toFixed(2)}</span></li>`;
    })
    .join('');
}

function showAdapter(): void {
  const a = demo.adapter;
  if (!a) return;
  const f = a.features;
  const items: [string, string][] = [
    ['shader-f16', f.f16 ? 'yes' : 'no (f32 path)'],
    ['timestamp-query', f.timestamps ? 'yes' : 'no (wall-clock only)'],
    ['subgroups', f.subgroups ? 'yes' : 'no'],
    ...Object.entries(a.limits).map(([k, v]) => [k, v.toLocaleString('en-US')] as [string, string]),
  ];
  ui.adapter.innerHTML =
    `<dt class="wide">adapter</dt><dd class="wide">${esc(a.description)}</dd>` + items.map(([k, v]) => `<dt>${esc(k)}</dt><dd>${esc(v)}</dd>`).join('');
  if (!f.timestamps) {
    ui.profile.checked = false;
    ui.profile.disabled = true;
  }
}

// ------------------------------------------------------------------ images

async function useImage(loaded: { image: DemoImage; bitmap: ImageBitmap }, name: string): Promise<void> {
  drawPhoto(ui.photo, loaded.bitmap);
  ui.overlay.width = loaded.bitmap.width;
  ui.overlay.height = loaded.bitmap.height;
  loaded.bitmap.close();
  cancelPreview();
  layer = null;
  ui.legend.innerHTML = '';
  ui.maskInfo.textContent = '';
  ui.imageInfo.textContent = `${name}: ${loaded.image.width}x${loaded.image.height}`;
  redraw();
  status(demo.hasSam ? 'Encoding the image…' : 'Image loaded; now load weights.');
  await demo.setImage(loaded.image);
}

// ------------------------------------------------------------------ events

ui.weightsFile.addEventListener('change', () => {
  const f = ui.weightsFile.files?.[0];
  ui.weightsFile.value = '';
  if (f) void action(`Loading ${f.name}`, async () => afterWeights(await demo.loadWeights(f)));
});

ui.weightsLoad.addEventListener('click', () => {
  const url = ui.weightsUrl.value;
  void action(`Loading ${url}`, async () => afterWeights(await demo.loadWeights(weightsUrl(url))));
});

function afterWeights(m: { role: string; name: string }): void {
  status(`Loaded ${m.role}: ${m.name}`);
  if (demo.lastMask === null && demo.points.length + (demo.box ? 1 : 0) > 0) void action('Predicting', predictAndShow);
}

ui.dtype.addEventListener('change', () => {
  demo.dtype = ui.dtype.value === 'f16' ? 'f16' : 'f32';
});

ui.imageFile.addEventListener('change', () => {
  const f = ui.imageFile.files?.[0];
  ui.imageFile.value = '';
  if (f) void action(`Decoding ${f.name}`, async () => useImage(await decodeImageBlob(f, f.name), f.name));
});

ui.imageDemo.addEventListener('click', () => {
  void action('Loading the demo photo', async () => useImage(await fetchImage('./dog.jpg'), 'dog.jpg'));
});

ui.multimask.addEventListener('change', () => {
  demo.multimask = ui.multimask.value as MultimaskMode;
  if (demo.points.length || demo.box) void action('Predicting', predictAndShow);
});

ui.undo.addEventListener('click', () => void action('Predicting', async () => {
  await demo.undoPoint();
  showMask();
}));

ui.clear.addEventListener('click', () => {
  cancelPreview();
  demo.clearPrompts();
  layer = null;
  redraw();
  ui.maskInfo.textContent = '';
});

ui.segment.addEventListener('click', () => {
  cancelPreview();
  void action('Semantic segmentation', async () => {
    await demo.segmentSemantic(ui.classes.value, ui.refine.checked, ui.templates.value as 'ensemble' | 'single' | 'name');
    showSemantic();
  });
});

ui.profile.addEventListener('change', () => {
  if (demo.adapter) demo.setProfiling(ui.profile.checked).catch(showError);
});

async function predictAndShow(): Promise<void> {
  cancelPreview();
  await demo.predict();
  showMask();
}

// Pointer: a click adds a point, a drag draws a box. Coordinates are image pixels, rounded.
let down: { x: number; y: number; cx: number; cy: number; negative: boolean } | null = null;
const DRAG_CSS_PX = 5;

ui.overlay.addEventListener('contextmenu', (e) => e.preventDefault());
ui.overlay.addEventListener('pointerleave', () => {
  if (!down) cancelPreview();
});
ui.livePreview.addEventListener('change', () => cancelPreview());
ui.overlay.addEventListener('pointerdown', (e) => {
  if (!demo.image) return;
  const p = toImageCoords(ui.overlay, e.clientX, e.clientY);
  down = { ...p, cx: e.clientX, cy: e.clientY, negative: e.button === 2 || e.shiftKey };
  ui.overlay.setPointerCapture(e.pointerId);
});
ui.overlay.addEventListener('pointermove', (e) => {
  if (!demo.image) return;
  const p = toImageCoords(ui.overlay, e.clientX, e.clientY);
  if (!down) {
    // Hovering: preview what a click here would give.
    requestPreview({ point: { x: Math.round(p.x), y: Math.round(p.y), label: e.shiftKey ? 0 : 1 } });
    return;
  }
  if (down.negative) return;
  if (Math.hypot(e.clientX - down.cx, e.clientY - down.cy) < DRAG_CSS_PX && !dragBox) return;
  dragBox = [Math.min(down.x, p.x), Math.min(down.y, p.y), Math.max(down.x, p.x), Math.max(down.y, p.y)];
  const b = dragBox.map(Math.round) as [number, number, number, number];
  if (b[2] - b[0] >= 1 && b[3] - b[1] >= 1) requestPreview({ box: b });
  redraw();
});
ui.overlay.addEventListener('pointerup', (e) => {
  if (!down) return;
  const start = down;
  down = null;
  cancelPreview();
  if (dragBox) {
    const b = dragBox.map(Math.round) as [number, number, number, number];
    dragBox = null;
    if (b[2] - b[0] >= 1 && b[3] - b[1] >= 1) void action('Predicting', async () => {
      await demo.setBox(b);
      showMask();
    });
    else redraw();
    return;
  }
  const p = toImageCoords(ui.overlay, e.clientX, e.clientY);
  const label = start.negative ? 0 : 1;
  void action('Predicting', async () => {
    const pending = demo.addPoint(Math.round(p.x), Math.round(p.y), label);
    redraw(); // show the point at once, the mask when it is ready
    await pending;
    showMask();
  });
});

// ------------------------------------------------------------------ start

void action('Starting WebGPU', async () => {
  await demo.init(ui.profile.checked);
  showAdapter();
  hooks.ready = true;
}).then(() => {
  if (!hooks.ready) status('WebGPU is unavailable; see the message above.');
});
