/** `samclip weights inspect FILE`: what a checkpoint holds, without loading it on a GPU. */
import type { Command } from 'commander';
import { intArg, withCommon } from '../common.js';
import type { CliEnv, CommonOptions } from '../env.js';
import { CliError } from '../errors.js';
import { formatBytes, formatCount, formatTable } from '../output.js';
import { checkReadable } from './files.js';

interface InspectOptions extends CommonOptions {
  limit?: number;
  summary?: boolean;
}

interface TensorRow {
  name: string;
  dtype: string;
  shape: number[];
  params: number;
  bytes: number;
}

export function registerInspect(weights: Command, env: CliEnv): void {
  withCommon(
    weights
      .command('inspect')
      .description('list tensors (key, shape, dtype), totals, detected family and metadata of a .safetensors or .pth file')
      .argument('<file>', 'checkpoint (.safetensors, or a PyTorch .pth/.pt zip)')
      .option('--limit <n>', 'show at most n tensors in the text listing', intArg('--limit', 0, 1_000_000))
      .option('--summary', 'totals, family and metadata only'),
  ).action(async (file: string, opts: InspectOptions) => {
    await checkReadable(file, 'checkpoint');
    const { detectFamily } = await import('../../weights/families.js');
    const isPth = /\.(pth|pt|bin|ckpt)$/i.test(file);
    let format: 'safetensors' | 'pth';
    let rows: TensorRow[];
    let metadata: Record<string, string> = {};
    if (isPth) {
      format = 'pth';
      const { openPthFile } = await import('../../weights/pth.js');
      const ckpt = await openPthFile(file);
      try {
        rows = ckpt.tensors.map((t) => ({ name: t.name, dtype: t.dtype, shape: [...t.shape], params: t.numel, bytes: t.byteLength }));
      } finally {
        await ckpt.close();
      }
    } else {
      format = 'safetensors';
      const { SafetensorsFile } = await import('../../weights/safetensors.js');
      const st = await SafetensorsFile.open(file);
      try {
        rows = st.keys().map((k) => {
          const i = st.info(k);
          return { name: k, dtype: i.dtype, shape: [...i.shape], params: i.shape.reduce((a, d) => a * d, 1), bytes: i.byteLength };
        });
        metadata = { ...st.metadata };
      } finally {
        await st.close();
      }
    }
    if (rows.length === 0) throw new CliError(`${file}: holds no tensors`);
    let family: string | null = null;
    let familyNote = '';
    try {
      family = detectFamily(rows.map((r) => r.name), file);
    } catch (e) {
      familyNote = (e as Error).message;
    }
    const params = rows.reduce((a, r) => a + r.params, 0);
    const bytes = rows.reduce((a, r) => a + r.bytes, 0);
    const dtypes: Record<string, number> = {};
    for (const r of rows) dtypes[r.dtype] = (dtypes[r.dtype] ?? 0) + 1;
    const json = { file, format, family, tensors: rows.length, params, bytes, dtypes, metadata, keys: opts.summary ? undefined : rows };
    env.emit(opts, json, () => {
      const lines = [
        `file      ${file} (${format})`,
        `family    ${family ?? `unknown (${familyNote})`}`,
        `tensors   ${rows.length}  (${Object.entries(dtypes).map(([d, n]) => `${n} ${d}`).join(', ')})`,
        `params    ${formatCount(params)} (${params})`,
        `bytes     ${formatBytes(bytes)} (${bytes})`,
      ];
      for (const [k, v] of Object.entries(metadata)) lines.push(`metadata  ${k} = ${v.length > 200 ? `${v.slice(0, 200)}… (${v.length} chars)` : v}`);
      if (!opts.summary) {
        const shown = opts.limit !== undefined ? rows.slice(0, opts.limit) : rows;
        lines.push('', formatTable(['key', 'dtype', 'shape', 'params'], shown.map((r) => [r.name, r.dtype, `[${r.shape.join(', ')}]`, String(r.params)]), new Set([3])));
        if (shown.length < rows.length) lines.push(`... ${rows.length - shown.length} more (--limit)`);
      }
      return lines.join('\n');
    });
  });
}
