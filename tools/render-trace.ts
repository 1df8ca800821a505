/**
 * Render a samclip Chrome trace (the JSON `samclip profile` and `Profiler.chromeTrace()` write) as a
 * self-contained HTML timeline, and optionally screenshot it to a PNG with a headless Chromium.
 *
 *   npx tsx tools/render-trace.ts TRACE.json [--html OUT.html] [--png OUT.png]
 *       [--width 1600] [--title TEXT] [--from MS] [--to MS] [--chromium /usr/bin/chromium]
 *
 * Why our own viewer: chrome://tracing is disabled in current Chromium builds ("internal debugging
 * pages") and ui.perfetto.dev needs the network, so neither can make a screenshot offline. This page
 * needs nothing: the events are embedded, drawn on a canvas, with a tooltip per dispatch.
 *
 * Layout: a time axis (GPU time in ms from the first dispatch; the gaps are real: the GPU waited for
 * the host), one row with every dispatch, then one row per top-level stage (`image_encoder`,
 * `mask_decoder`, ...) whose upper strip names the second-level stages (`block0`, `neck`, ...).
 * Each dispatch is a box coloured by kernel; the legend lists kernels by total GPU time.
 */
import { writeFileSync } from 'node:fs';
import { basename } from 'node:path';
import { type TraceEvent, readEvents } from './trace-events.js';

interface Args {
  trace: string;
  html: string | null;
  png: string | null;
  width: number;
  title: string | null;
  from: number | null;
  to: number | null;
  chromium: string;
}

function parseArgs(argv: string[]): Args {
  const a: Args = { trace: '', html: null, png: null, width: 1600, title: null, from: null, to: null, chromium: '/usr/bin/chromium' };
  const num = (flag: string, v: string | undefined): number => {
    const n = Number(v);
    if (v === undefined || !Number.isFinite(n)) throw new Error(`${flag} needs a number, got ${JSON.stringify(v)}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const f = argv[i]!;
    const v = argv[i + 1];
    if (f === '--html') (a.html = v ?? null), i++;
    else if (f === '--png') (a.png = v ?? null), i++;
    else if (f === '--width') (a.width = num(f, v)), i++;
    else if (f === '--title') (a.title = v ?? null), i++;
    else if (f === '--from') (a.from = num(f, v)), i++;
    else if (f === '--to') (a.to = num(f, v)), i++;
    else if (f === '--chromium') (a.chromium = v ?? a.chromium), i++;
    else if (f.startsWith('--')) throw new Error(`unknown option ${f}`);
    else if (!a.trace) a.trace = f;
    else throw new Error(`unexpected argument ${f}`);
  }
  if (!a.trace) throw new Error('usage: npx tsx tools/render-trace.ts TRACE.json [--html OUT.html] [--png OUT.png] [--width PX] [--title T] [--from MS] [--to MS]');
  if (!a.html && !a.png) a.html = a.trace.replace(/\.json$/, '') + '.html';
  return a;
}

/** The page: the events as JSON plus the drawing script below (plain browser JavaScript). */
function page(events: TraceEvent[], title: string, width: number, from: number | null, to: number | null): string {
  const data = events.map((e) => ({
    n: e.name,
    s: e.args?.stage ?? e.cat ?? '',
    t: e.ts / 1000,
    d: e.dur / 1000,
    k: e.args?.key ?? '',
    f: e.args?.flops ?? 0,
  }));
  const payload = JSON.stringify({ title, width, from, to, events: data }).replace(/</g, '\\u003c');
  return `<!doctype html>
<html><head><meta charset="utf-8"><title>${title.replace(/</g, '&lt;')}</title>
<style>
  body { margin: 0; background: #fff; font: 12px system-ui, sans-serif; color: #222; }
  #tip { position: fixed; pointer-events: none; background: #222; color: #fff; padding: 4px 6px;
         border-radius: 3px; font: 11px ui-monospace, monospace; white-space: pre; display: none; }
</style></head>
<body><canvas id="c"></canvas><div id="tip"></div>
<script>const TRACE = ${payload};</script>
<script>${DRAW}</script>
</body></html>
`;
}

// The drawing code runs in the page; kept as a string so this file has no DOM types to check.
const DRAW = String.raw`
(() => {
  const { title, width: W, events: all } = TRACE;
  const end = Math.max(...all.map((e) => e.t + e.d));
  const t0 = TRACE.from ?? 0, t1 = TRACE.to ?? end;
  const ev = all.filter((e) => e.t + e.d >= t0 && e.t <= t1);
  const LEFT = 200, RIGHT = 20, TOP = 54, AXIS = 26, ROW = 30, STRIP = 16, GAP = 8;
  const x = (t) => LEFT + ((t - t0) / (t1 - t0)) * (W - LEFT - RIGHT);

  // Kernels by total time (colours in that order), top-level stages in order of appearance.
  const byKernel = new Map();
  for (const e of ev) byKernel.set(e.n, (byKernel.get(e.n) ?? 0) + e.d);
  const kernels = [...byKernel.entries()].sort((a, b) => b[1] - a[1]);
  const busy = kernels.reduce((s, k) => s + k[1], 0);
  const colour = new Map(kernels.map(([n], i) => [n, 'hsl(' + Math.round((i * 137.5) % 360) + ', 62%, ' + (i % 2 ? 62 : 50) + '%)']));
  const top = (s) => (s ? s.split('/')[0] : '(no stage)');
  const stages = [];
  for (const e of ev) if (!stages.includes(top(e.s))) stages.push(top(e.s));

  const legendCols = 4, legendRows = Math.ceil(kernels.length / legendCols);
  const rowsTop = TOP + AXIS;
  const stageTop = rowsTop + ROW + GAP;
  const stageH = STRIP + ROW + GAP;
  const legendTop = stageTop + stages.length * stageH + 16;
  const H = legendTop + legendRows * 20 + 16;
  const c = document.getElementById('c');
  const dpr = window.devicePixelRatio || 1;
  c.width = W * dpr; c.height = H * dpr; c.style.width = W + 'px'; c.style.height = H + 'px';
  const g = c.getContext('2d');
  g.scale(dpr, dpr);
  g.fillStyle = '#fff'; g.fillRect(0, 0, W, H);

  g.fillStyle = '#222'; g.font = 'bold 15px system-ui, sans-serif';
  g.fillText(title, 12, 22);
  g.font = '12px system-ui, sans-serif'; g.fillStyle = '#555';
  g.fillText(ev.length + ' dispatches, ' + busy.toFixed(1) + ' ms of GPU time over ' + (t1 - t0).toFixed(1) +
    ' ms shown (' + t0.toFixed(1) + ' to ' + t1.toFixed(1) + ' ms). Gaps: the GPU waited for the host.', 12, 42);

  // Axis with "nice" ticks.
  const span = t1 - t0, raw = span / 10, mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw);
  g.strokeStyle = '#ddd'; g.fillStyle = '#666'; g.textAlign = 'center';
  for (let t = Math.ceil(t0 / step) * step; t <= t1 + 1e-9; t += step) {
    const px = Math.round(x(t)) + 0.5;
    g.beginPath(); g.moveTo(px, rowsTop - 6); g.lineTo(px, legendTop - 12); g.stroke();
    g.fillText((step < 1 ? t.toFixed(2) : t.toFixed(0)) + ' ms', px, rowsTop - 10);
  }
  g.textAlign = 'left';

  const boxes = [];
  const drawBoxes = (list, y, h, label) => {
    for (const e of list) {
      const a = Math.max(x(e.t), LEFT), b = Math.min(x(e.t + e.d), W - RIGHT);
      const w = Math.max(b - a, 1);
      g.fillStyle = colour.get(e.n); g.fillRect(a, y, w, h);
      boxes.push({ a, b: a + w, y, h, e });
      if (label && w > g.measureText(e.n).width + 6) {
        g.fillStyle = '#fff'; g.fillText(e.n, a + 3, y + h / 2 + 4);
      }
    }
  };
  const rowLabel = (text, y, bold) => {
    g.fillStyle = '#222'; g.font = (bold ? 'bold ' : '') + '12px system-ui, sans-serif';
    g.fillText(text, 12, y); g.font = '12px system-ui, sans-serif';
  };

  rowLabel('GPU queue (all)', rowsTop + ROW / 2 + 4, true);
  g.fillStyle = '#f4f4f4'; g.fillRect(LEFT, rowsTop, W - LEFT - RIGHT, ROW);
  drawBoxes(ev, rowsTop, ROW, false);

  stages.forEach((s, i) => {
    const y = stageTop + i * stageH;
    const list = ev.filter((e) => top(e.s) === s);
    const ms = list.reduce((a, e) => a + e.d, 0);
    rowLabel(s, y + STRIP + ROW / 2 - 2, true);
    g.fillStyle = '#777'; g.fillText(ms.toFixed(1) + ' ms, ' + list.length + ' dispatches', 12, y + STRIP + ROW / 2 + 12);
    g.fillStyle = '#f7f7f7'; g.fillRect(LEFT, y + STRIP, W - LEFT - RIGHT, ROW);
    // Upper strip: runs of the same second-level stage.
    let run = null;
    const flush = () => {
      if (!run || !run.name) return;
      const a = Math.max(x(run.t), LEFT), b = Math.min(x(run.e), W - RIGHT);
      g.fillStyle = '#dfe4ec'; g.fillRect(a, y + 1, Math.max(b - a - 1, 1), STRIP - 3); // 1 px gap between runs
      if (b - a > g.measureText(run.name).width + 4) { g.fillStyle = '#345'; g.fillText(run.name, a + 2, y + STRIP - 4); }
    };
    for (const e of list) {
      const sub = e.s.split('/')[1] ?? '';
      if (run && run.name === sub) run.e = e.t + e.d;
      else { flush(); run = { name: sub, t: e.t, e: e.t + e.d }; }
    }
    flush();
    drawBoxes(list, y + STRIP, ROW, true);
  });

  // Legend.
  const colW = (W - 24) / legendCols;
  kernels.forEach(([n, ms], i) => {
    const lx = 12 + (i % legendCols) * colW, ly = legendTop + Math.floor(i / legendCols) * 20;
    g.fillStyle = colour.get(n); g.fillRect(lx, ly, 14, 14);
    g.fillStyle = '#222';
    g.fillText(n + '  ' + ms.toFixed(1) + ' ms (' + (100 * ms / busy).toFixed(1) + '%)', lx + 20, ly + 11);
  });

  const tip = document.getElementById('tip');
  c.addEventListener('mousemove', (m) => {
    const r = c.getBoundingClientRect(), px = m.clientX - r.left, py = m.clientY - r.top;
    const hit = boxes.find((b) => px >= b.a && px <= b.b && py >= b.y && py <= b.y + b.h);
    if (!hit) { tip.style.display = 'none'; return; }
    const e = hit.e;
    tip.textContent = e.n + '  ' + e.d.toFixed(3) + ' ms at ' + e.t.toFixed(3) + ' ms\nstage ' + (e.s || '-') +
      (e.f ? '\n' + (e.f / e.d / 1e6).toFixed(2) + ' GFLOP/s' : '') + '\n' + e.k;
    tip.style.display = 'block'; tip.style.left = m.clientX + 12 + 'px'; tip.style.top = m.clientY + 12 + 'px';
  });
  document.body.dataset.done = '1';
})();
`;

async function screenshot(html: string, png: string, width: number, chromium: string): Promise<void> {
  const { chromium: launcher } = await import('playwright-core');
  const browser = await launcher.launch({
    executablePath: chromium,
    args: ['--headless=new', '--no-sandbox', '--disable-background-networking', '--no-first-run'],
  });
  try {
    const p = await browser.newPage({ viewport: { width, height: 600 }, deviceScaleFactor: 1 });
    await p.setContent(html);
    await p.waitForSelector('body[data-done="1"]', { timeout: 30_000 });
    await p.locator('#c').screenshot({ path: png });
  } finally {
    await browser.close();
  }
}

const args = parseArgs(process.argv.slice(2));
const events = readEvents(args.trace);
const html = page(events, args.title ?? `samclip-webgpu GPU trace: ${basename(args.trace)}`, args.width, args.from, args.to);
if (args.html) {
  writeFileSync(args.html, html);
  console.log(`wrote ${args.html} (${events.length} dispatches)`);
}
if (args.png) {
  await screenshot(html, args.png, args.width, args.chromium);
  console.log(`wrote ${args.png}`);
}
