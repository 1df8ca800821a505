/**
 * Assemble a SAM-CLIP bundle (docs/samclip-bundle.md) from a SAM checkpoint, a CLIP checkpoint
 * (its text tower and logit scale) and a CLIP-head checkpoint; validate it; or validate a bundle.
 *
 *   npx tsx tools/assemble-samclip-bundle.ts --sam sam_vit_b.safetensors --clip open_clip_model.safetensors \
 *       --head clip_head.safetensors out.safetensors [--text-heads N] [--text-act gelu|quick_gelu]
 *       [--dtype F32|F16] [--model NAME] [--seg 448] [--cls 224] [--overwrite]
 *   npx tsx tools/assemble-samclip-bundle.ts --sam ... --clip ... --random-head [--head-seed N] [--head-mlp 768,768,512] out.safetensors
 *   npx tsx tools/assemble-samclip-bundle.ts --validate bundle.safetensors
 *
 * Sources are safetensors files (convert .pth checkpoints first with tools/pth-to-safetensors.ts).
 * The SAM source may use official or Hugging Face names; the CLIP source OpenAI / OpenCLIP or
 * Hugging Face names (only the text tower and logit_scale are taken). `--random-head` generates a
 * CLIP head of seeded random weights shaped for the SAM backbone (3 global blocks of its width,
 * MLP widths `--head-mlp`, default width,width,text-embed-dim): for benchmarks, not for use.
 */
import { pathToFileURL } from 'node:url';
import { type SamclipConfig, validateSamclipBundle } from '../src/model/samclip/bundle.js';
import { planBundle, randomClipHead } from '../src/model/samclip/assemble.js';
import { samEncoderConfigFromWeights } from '../src/model/sam/config.js';
import { plannedShapes } from '../src/model/sam/load.js';
import { SafetensorsFile } from '../src/weights/safetensors.js';
import { writeSafetensorsFile } from '../src/weights/safetensors-writer.js';
import { detectFamily } from '../src/weights/families.js';
import { samHfRenameTable } from '../src/weights/families/sam-hf.js';

const USAGE = `usage:
  npx tsx tools/assemble-samclip-bundle.ts --sam SAM.safetensors --clip CLIP.safetensors (--head HEAD.safetensors | --random-head) OUT.safetensors
      [--text-heads N] [--text-act gelu|quick_gelu] [--dtype F32|F16] [--model NAME] [--seg PX] [--cls PX]
      [--head-seed N] [--head-mlp W1,W2,...] [--overwrite]
  npx tsx tools/assemble-samclip-bundle.ts --validate BUNDLE.safetensors`;

export function describeConfig(c: SamclipConfig): string {
  const s = c.sam;
  const h = c.clipHead;
  const t = c.text;
  return [
    `backbone: SAM ViT ${s.embedDim} wide, ${s.depth} blocks, ${s.numHeads} heads, window ${s.windowSize}, global blocks [${s.globalAttnIndexes.join(', ')}], ${s.imgSize} px`,
    `SAM head: prompt encoder ${s.promptEmbedDim}, decoder depth ${s.decoderDepth}, ${s.decoderHeads} heads`,
    `CLIP head: ${h.depth} blocks (${h.numHeads} heads, MLP ${h.mlpDim}, rel-pos for ${h.relPosSize}x${h.relPosSize}), projection MLP [${h.mlpWidths.join(', ')}]`,
    `text tower: width ${t.width}, ${t.layers} layers, ${t.heads} heads, ${t.act}, context ${t.contextLength}, vocabulary ${t.vocabSize}`,
    `embedding ${c.embedDim}; inputs native ${c.resolutions.native}, segmentation ${c.resolutions.seg}, classification ${c.resolutions.cls}`,
  ].join('\n  ');
}

export async function main(argv: readonly string[]): Promise<number> {
  const opt: Record<string, string | boolean> = {};
  const positional: string[] = [];
  const flags = new Set(['--random-head', '--overwrite', '-h', '--help']);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (flags.has(a)) opt[a] = true;
    else if (a.startsWith('--')) {
      const v = argv[++i];
      if (v === undefined) {
        console.error(`${a} needs a value\n${USAGE}`);
        return 2;
      }
      opt[a] = v;
    } else positional.push(a);
  }
  if (opt['-h'] || opt['--help']) {
    console.log(USAGE);
    return 0;
  }
  const str = (k: string) => (typeof opt[k] === 'string' ? (opt[k] as string) : undefined);
  const int = (k: string) => {
    const v = str(k);
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0) throw new Error(`${k} must be a non-negative integer, got ${v}`);
    return n;
  };
  const opened: SafetensorsFile[] = [];
  try {
    const validate = str('--validate');
    if (validate) {
      const f = await SafetensorsFile.open(validate);
      opened.push(f);
      const cfg = validateSamclipBundle(f);
      console.log(`${validate}: valid SAM-CLIP bundle, ${f.keys().length} tensors\n  ${describeConfig(cfg)}`);
      return 0;
    }
    const samPath = str('--sam');
    const clipPath = str('--clip');
    const headPath = str('--head');
    if (!samPath || !clipPath || (!headPath && !opt['--random-head']) || positional.length !== 1) {
      console.error(USAGE);
      return 2;
    }
    const act = str('--text-act');
    if (act !== undefined && act !== 'gelu' && act !== 'quick_gelu') throw new Error(`--text-act must be gelu or quick_gelu, got ${act}`);
    const dtype = (str('--dtype') ?? 'F32').toUpperCase();
    if (dtype !== 'F32' && dtype !== 'F16') throw new Error(`--dtype must be F32 or F16, got ${dtype}`);
    const sam = await SafetensorsFile.open(samPath);
    opened.push(sam);
    const clip = await SafetensorsFile.open(clipPath);
    opened.push(clip);
    let head: SafetensorsFile;
    if (headPath) {
      head = await SafetensorsFile.open(headPath);
      opened.push(head);
    } else {
      const fam = detectFamily(sam.keys(), sam.name);
      const enc = samEncoderConfigFromWeights(plannedShapes(sam, fam, fam === 'sam-hf' ? samHfRenameTable(sam.keys()) : null));
      const textEmbed = clip.has('text_projection') ? clip.info('text_projection').shape[1]! : clip.has('text_projection.weight') ? clip.info('text_projection.weight').shape[0]! : NaN;
      if (!Number.isFinite(textEmbed)) throw new Error(`${clip.name}: no text_projection to size the random head's output`);
      const widths = str('--head-mlp')?.split(',').map(Number) ?? [enc.embedDim, enc.embedDim, textEmbed];
      const seed = int('--head-seed') ?? 0;
      head = SafetensorsFile.fromBytes(
        randomClipHead({ depth: 3, dim: enc.embedDim, numHeads: enc.numHeads, mlpDim: enc.mlpDim, relPosSize: enc.posEmbedGrid, blockEps: 1e-6, normEps: 1e-5, mlpWidths: [enc.embedDim, ...widths] }, seed),
        `random CLIP head (seed ${seed})`,
      );
    }
    const seg = int('--seg');
    const cls = int('--cls');
    const plan = planBundle(
      { sam, clip, head },
      {
        textHeads: int('--text-heads'),
        textAct: act as 'gelu' | 'quick_gelu' | undefined,
        dtype,
        model: str('--model'),
        resolutions: seg !== undefined || cls !== undefined ? { ...(seg !== undefined ? { seg } : {}), ...(cls !== undefined ? { cls } : {}) } : undefined,
      },
    );
    const out = positional[0]!;
    const r = await writeSafetensorsFile(out, plan.entries, { metadata: plan.metadata, overwrite: !!opt['--overwrite'] });
    const check = await SafetensorsFile.open(out);
    opened.push(check);
    const cfg = validateSamclipBundle(check);
    console.log(`${out}: ${r.tensors} tensors, ${(r.bytes / 1e6).toFixed(1)} MB (${dtype}) in ${r.seconds.toFixed(1)} s; validated\n  ${describeConfig(cfg)}`);
    return 0;
  } catch (e) {
    console.error(`error: ${(e as Error).message}`);
    return 1;
  } finally {
    for (const f of opened) await f.close().catch(() => undefined);
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  process.exitCode = await main(process.argv.slice(2));
}
