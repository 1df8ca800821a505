/** `samclip weights convert FILE.pth`: PyTorch checkpoint → safetensors (never runs the pickle). */
import type { Command } from 'commander';
import type { PthConvertDType } from '../../weights/pth.js';
import { withCommon } from '../common.js';
import type { CliEnv, CommonOptions } from '../env.js';
import { UsageError } from '../errors.js';
import { formatBytes } from '../output.js';
import { checkReadable, checkWritable } from './files.js';

interface ConvertOptions extends CommonOptions {
  out?: string;
  dtype: string;
  force?: boolean;
}

export function registerConvert(weights: Command, env: CliEnv): void {
  withCommon(
    weights
      .command('convert')
      .description('convert a PyTorch .pth checkpoint (e.g. sam_vit_b_01ec64.pth) to .safetensors, keeping its key names')
      .argument('<file>', '.pth / .pt file (torch.save zip format)')
      .option('-o, --out <file>', 'output file (default: the input name with .safetensors)')
      .option('--dtype <dtype>', 'float storage: keep, f32 or f16', 'keep')
      .option('--force', 'overwrite an existing output file'),
  ).action(async (file: string, opts: ConvertOptions) => {
    if (!['keep', 'f32', 'f16'].includes(opts.dtype)) throw new UsageError(`--dtype must be keep, f32 or f16, got '${opts.dtype}'`);
    const out = opts.out ?? `${file.replace(/\.(pth|pt)$/i, '')}.safetensors`;
    if (out === file) throw new UsageError(`--out ${out} is the input file`);
    await checkReadable(file, 'checkpoint');
    await checkWritable(out, !!opts.force);
    const { convertPthToSafetensors } = await import('../../weights/pth.js');
    const bar = env.progress(opts, 'converting', 0);
    const r = await convertPthToSafetensors(file, out, {
      dtype: opts.dtype as PthConvertDType,
      overwrite: !!opts.force,
      onTensor: (_name, _bytes, i, n) => {
        bar.setTotal(n);
        bar.update(i + 1);
      },
    });
    bar.finish();
    const json = { input: r.input, output: r.output, tensors: r.tensors, skipped: r.skipped, stateDictKey: r.stateDictKey, inputBytes: r.inputBytes, outputBytes: r.outputBytes, seconds: r.seconds, dtypes: r.dtypes };
    env.emit(opts, json, () => {
      const lines = [`${r.output}: ${r.tensors} tensors, ${formatBytes(r.outputBytes)} (${Object.entries(r.dtypes).map(([d, n]) => `${n} ${d}`).join(', ')}) in ${r.seconds.toFixed(1)} s`];
      if (r.stateDictKey) lines.push(`tensors were nested under '${r.stateDictKey}'`);
      for (const s of r.skipped) lines.push(`skipped ${s.key}: ${s.reason}`);
      return lines.join('\n');
    });
  });
}
