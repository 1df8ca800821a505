/**
 * Terminal output helpers: byte and duration formatting, plain-text tables, and a progress bar on
 * stderr (redrawn in place on a terminal; a few milestone lines when stderr is a file or a pipe, so
 * logs stay short).
 */
export function formatBytes(n: number): string {
  if (!Number.isFinite(n)) return '?';
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let u = 0;
  let v = n;
  while (v >= 1000 && u < units.length - 1) {
    v /= 1000;
    u++;
  }
  return `${u === 0 ? v : v.toFixed(v >= 100 ? 0 : v >= 10 ? 1 : 2)} ${units[u]}`;
}

export function formatCount(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)} B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)} M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} K`;
  return String(n);
}

export function formatSeconds(s: number): string {
  if (!Number.isFinite(s)) return '?';
  if (s < 60) return `${s.toFixed(s < 10 ? 1 : 0)}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(Math.round(s % 60)).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}

/** Columns padded to their widest cell; `right` lists the right-aligned (numeric) columns. */
export function formatTable(head: string[], rows: string[][], right: ReadonlySet<number> = new Set()): string {
  const widths = head.map((h, c) => Math.max(h.length, ...rows.map((r) => (r[c] ?? '').length)));
  const line = (cells: string[]) =>
    cells.map((s, c) => (right.has(c) ? s.padStart(widths[c]!) : s.padEnd(widths[c]!))).join('  ').trimEnd();
  return [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

export interface ProgressSink {
  write(s: string): void;
  isTTY: boolean;
}

/** A progress bar for `total` units (bytes when `bytes` is set); total 0 or NaN = unknown. */
export class Progress {
  private done = 0;
  private readonly t0 = performance.now();
  private lastDraw = 0;
  private lastMilestone = -1;
  private finished = false;

  constructor(
    private readonly sink: ProgressSink | null,
    private readonly label: string,
    private total: number,
    private readonly bytes = false,
    /** Units already present before this run (a resumed download): excluded from the rate. */
    private readonly start = 0,
  ) {
    this.done = start;
  }

  setTotal(total: number): void {
    this.total = total;
  }

  /** Text shown instead of the amount and rate (a long computation's current stage). */
  detail: string | null = null;

  update(done: number): void {
    this.done = done;
    if (!this.sink || this.finished) return;
    const now = performance.now();
    if (this.sink.isTTY) {
      if (now - this.lastDraw < 100) return;
      this.lastDraw = now;
      this.sink.write(`\r${this.render(now)}\x1b[K`);
      return;
    }
    // Non-terminal: one line per quarter.
    if (this.total > 0) {
      const q = Math.floor((4 * done) / this.total);
      if (q > this.lastMilestone && q < 4) {
        this.lastMilestone = q;
        this.sink.write(`${this.render(now)}\n`);
      }
    }
  }

  add(n: number): void {
    this.update(this.done + n);
  }

  finish(note = ''): void {
    if (!this.sink || this.finished) return;
    this.finished = true;
    const text = this.render(performance.now()) + (note ? ` ${note}` : '');
    this.sink.write(this.sink.isTTY ? `\r${text}\x1b[K\n` : `${text}\n`);
  }

  private render(now: number): string {
    const secs = (now - this.t0) / 1000;
    const rate = secs > 0 ? (this.done - this.start) / secs : 0;
    const fmt = (v: number) => (this.bytes ? formatBytes(v) : String(v));
    const known = this.total > 0 && Number.isFinite(this.total);
    const frac = known ? Math.min(1, this.done / this.total) : 0;
    const width = 24;
    const bar = known ? '#'.repeat(Math.round(frac * width)).padEnd(width, '.') : '?'.repeat(3).padEnd(width, '.');
    const pct = known ? `${(100 * frac).toFixed(0).padStart(3)}%` : '  ?%';
    const amount = this.detail ?? (known ? `${fmt(this.done)}/${fmt(this.total)}` : fmt(this.done));
    const speed = rate > 0 && this.detail === null ? ` ${this.bytes ? `${formatBytes(rate)}/s` : `${rate.toFixed(1)}/s`}` : '';
    const eta = known && rate > 0 && frac < 1 ? ` ETA ${formatSeconds((this.total - this.done) / rate)}` : '';
    return `${this.label} [${bar}] ${pct} ${amount}${speed}${eta}`;
  }
}
