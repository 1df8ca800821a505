/**
 * Weight-loading throughput: open a safetensors file and upload every tensor to the GPU, as f32 and
 * as f16, then wait for the queue to drain. Also times a CPU-only pass (readRaw of every tensor)
 * and the in-memory path (fromBytes), so disk, conversion and upload costs can be told apart.
 *
 *   node --import tsx bench/load-weights.ts [file.safetensors] [--mb 400] [--keep]
 *
 * Without a file, writes a ~400 MB F32 file shaped like ViT-B blocks to the temp folder (deleted
 * afterwards unless --keep). The file was just written, so it is read from the page cache: the
 * numbers measure the loader, not the disk.
 */
import { open as openFile, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GpuContext } from '../src/gpu/context.js';
import { loadDawn } from '../src/gpu/device.js';
import type { Tensor } from '../src/gpu/tensor.js';
import { SafetensorsFile } from '../src/weights/safetensors.js';

process.env.XDG_RUNTIME_DIR ??= '/tmp';

const args = process.argv.slice(2);
const flag = (name: string): string | undefined => {
  const i = args.indexOf(name);
  return i >= 0 ? args.splice(i, 2)[1] : undefined;
};
const keep = args.includes('--keep');
const targetMB = Number(flag('--mb') ?? 400);
const given = args.find((a) => !a.startsWith('--'));

/** One ViT-B block (width 768, MLP 3072): about 28 MB of F32. */
function vitBBlock(i: number): [string, number[]][] {
  const p = `blocks.${i}`;
  return [
    [`${p}.norm1.weight`, [768]],
    [`${p}.norm1.bias`, [768]],
    [`${p}.attn.qkv.weight`, [2304, 768]],
    [`${p}.attn.qkv.bias`, [2304]],
    [`${p}.attn.proj.weight`, [768, 768]],
    [`${p}.attn.proj.bias`, [768]],
    [`${p}.norm2.weight`, [768]],
    [`${p}.norm2.bias`, [768]],
    [`${p}.mlp.lin1.weight`, [3072, 768]],
    [`${p}.mlp.lin1.bias`, [3072]],
    [`${p}.mlp.lin2.weight`, [768, 3072]],
    [`${p}.mlp.lin2.bias`, [768]],
  ];
}

async function writeBenchFile(path: string, mb: number): Promise<void> {
  const tensors: [string, number[]][] = [];
  let bytes = 0;
  for (let i = 0; bytes < mb * 1e6; i++) {
    for (const t of vitBBlock(i)) {
      tensors.push(t);
      bytes += 4 * t[1].reduce((a, b) => a * b, 1);
    }
  }
  const header: Record<string, unknown> = { __metadata__: { generator: 'bench/load-weights.ts' } };
  let off = 0;
  for (const [name, shape] of tensors) {
    const n = 4 * shape.reduce((a, b) => a * b, 1);
    header[name] = { dtype: 'F32', shape, data_offsets: [off, off + n] };
    off += n;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((8 + json.length) % 8)) % 8);
  const fh = await openFile(path, 'w');
  try {
    const len = new Uint8Array(8);
    new DataView(len.buffer).setBigUint64(0, BigInt(json.length), true);
    await fh.write(len);
    await fh.write(new TextEncoder().encode(json));
    let seed = 12345;
    for (const [, shape] of tensors) {
      const v = new Float32Array(shape.reduce((a, b) => a * b, 1));
      for (let i = 0; i < v.length; i++) {
        seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
        v[i] = (seed / 2 ** 32 - 0.5) * 0.1;
      }
      await fh.write(new Uint8Array(v.buffer));
    }
  } finally {
    await fh.close();
  }
}

const fmt = (x: number, d = 2): string => x.toFixed(d);

async function main(): Promise<void> {
  const path = given ?? join(tmpdir(), `samclip-bench-weights-${targetMB}mb.safetensors`);
  if (!given) {
    const t0 = performance.now();
    await writeBenchFile(path, targetMB);
    console.log(`wrote ${path} in ${fmt((performance.now() - t0) / 1000)} s`);
  }
  const fileBytes = (await stat(path)).size;
  // Keep Dawn's GPU object referenced for the whole run (see the report on src/gpu/device.ts).
  const gpu = (await loadDawn()).create(['disable-dawn-features=timestamp_quantization']);
  const ctx = await GpuContext.create({ gpu });
  console.log(`adapter: ${ctx.description}; file ${fmt(fileBytes / 1e6, 1)} MB`);
  const rows: string[] = [];
  const row = (what: string, srcBytes: number, seconds: number, extra = ''): void => {
    rows.push(`${what.padEnd(44)} ${fmt(srcBytes / 1e6, 1).padStart(8)} MB ${fmt(seconds, 3).padStart(8)} s ${fmt(srcBytes / seconds / 1e9, 3).padStart(7)} GB/s  ${extra}`);
  };

  {
    const t0 = performance.now();
    const f = await SafetensorsFile.open(path);
    for (const k of f.keys()) await f.readRaw(k);
    const s = (performance.now() - t0) / 1000;
    row('CPU only: open + readRaw all', f.dataBytes, s);
    await f.close();
  }

  // lavapipe (and other drivers) fault in a buffer's pages on first write, so the first upload into
  // fresh buffers is much slower than into buffers the pool hands back. Report both.
  const targets: ('f32' | 'f16')[] = ctx.features.f16 ? ['f32', 'f16'] : ['f32'];
  for (const dtype of targets) {
    await ctx.sync();
    ctx.pool.trim();
    for (const [source, pool] of [['file', 'fresh buffers'], ['file', 'pooled buffers'], ['memory', 'pooled buffers']] as const) {
      let t0 = performance.now();
      let bytes: Uint8Array | null = null;
      if (source === 'memory') {
        bytes = await readFile(path);
        row('readFile (whole file into memory)', bytes.length, (performance.now() - t0) / 1000);
        t0 = performance.now();
      }
      const f = bytes ? SafetensorsFile.fromBytes(bytes, path) : await SafetensorsFile.open(path);
      const out: Tensor[] = [];
      for (const k of f.keys()) out.push(await f.upload(ctx, k, { dtype }));
      const tHost = performance.now();
      await ctx.sync();
      const s = (performance.now() - t0) / 1000;
      const st = f.loadStats;
      row(
        `${source === 'file' ? 'open(path)' : 'fromBytes'} + upload → ${dtype}, ${pool}`,
        f.dataBytes,
        s,
        `(host ${fmt((tHost - t0) / 1000, 3)} s, loader ${fmt(st.seconds, 3)} s, ${fmt(st.bytesUploaded / 1e6, 1)} MB to the GPU)`,
      );
      for (const t of out) t.dispose();
      await f.close();
    }
  }
  console.log(`${'what'.padEnd(44)} ${'source'.padStart(11)} ${'time'.padStart(10)} ${'rate'.padStart(12)}`);
  for (const r of rows) console.log(r);
  ctx.destroy();
  void gpu;
  if (!given && !keep) await rm(path);
}

await main();
