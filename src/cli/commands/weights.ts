/** `samclip weights ...`: the weights tooling group, and `weights list [--verify]`. */
import { createReadStream } from 'node:fs';
import type { Command } from 'commander';
import { FileModelCache, nodeSha256 } from '../../node/hub-cache.js';
import { withCommon } from '../common.js';
import type { CliEnv, CommonOptions } from '../env.js';
import { CliError } from '../errors.js';
import { formatTable } from '../output.js';
import { REGISTRY, cacheDir, cachedPath, entryUrl } from '../weights/cache.js';
import { registerConvert } from './weights-convert.js';
import { registerInspect } from './weights-inspect.js';
import { registerPull } from './weights-pull.js';
import { registerRandom } from './weights-random.js';

interface ListOptions extends CommonOptions {
  cache?: string;
  verify?: boolean;
}

/** What `list` says about one cache entry. */
type State = 'no' | 'yes' | 'verified' | 'unrecorded' | 'truncated' | 'corrupt';

interface Row {
  name: string;
  kind: string;
  description: string;
  url: string | null;
  sha256: string | null;
  cached: boolean;
  state: State;
  path: string;
  problem?: string;
}

async function sha256Of(path: string, onBytes: (n: number) => void): Promise<string> {
  const h = nodeSha256();
  let n = 0;
  for await (const c of createReadStream(path, { highWaterMark: 1 << 20 })) {
    h.update(c as Buffer);
    onBytes((n += (c as Buffer).length));
  }
  return h.digestHex();
}

export function registerWeights(program: Command, env: CliEnv): void {
  const weights = program.command('weights').description('get, convert, inspect and generate checkpoints');
  registerPull(weights, env);
  withCommon(
    weights
      .command('list')
      .description('known checkpoints and whether they are in the cache')
      .option('--cache <dir>', 'cache directory (default $SAMCLIP_CACHE or ~/.cache/samclip)')
      .option('--verify', 're-hash every cached file against its record and the registry pin (exit 1 if one fails)'),
  ).action(async (opts: ListOptions) => {
    const dir = cacheDir(opts.cache);
    const files = await new FileModelCache(dir).list();
    const rows: Row[] = REGISTRY.map((e) => ({
      name: e.name,
      kind: e.kind,
      description: e.description,
      url: entryUrl(e),
      sha256: e.sha256,
      cached: false,
      state: 'no',
      path: cachedPath(dir, e.name, e.file),
    }));
    // Files pulled with --url under names of their own.
    for (const f of files) {
      if (rows.some((r) => r.path === f.path)) continue;
      rows.push({ name: f.name, kind: '-', description: `(pulled: ${f.file})`, url: f.record?.url ?? null, sha256: null, cached: false, state: 'no', path: f.path });
    }
    for (const r of rows) {
      const f = files.find((x) => x.path === r.path);
      if (!f) continue;
      if (!f.record) {
        r.state = 'unrecorded';
        r.problem = 'no record of its download (interrupted, or an older cache): not used; pull it again';
      } else if (f.record.bytes !== f.size) {
        r.state = 'truncated';
        r.problem = `${f.size} bytes, its record says ${f.record.bytes}: not used; pull it again`;
      } else {
        r.cached = true;
        r.state = 'yes';
        if (opts.verify) {
          const bar = env.progress(opts, `verifying ${r.name}`, f.size, true);
          const sha = await sha256Of(f.path, (n) => bar.update(n));
          bar.finish();
          const pin = r.sha256;
          if (sha !== f.record.sha256 || (pin && sha !== pin)) {
            r.state = 'corrupt';
            r.cached = false;
            r.problem = `SHA-256 ${sha}, ${sha !== f.record.sha256 ? `its record says ${f.record.sha256}` : `the registry pins ${pin}`}`;
          } else r.state = 'verified';
        }
      }
    }
    env.emit(opts, { cache: dir, weights: rows }, () =>
      [`cache: ${dir}`, '', formatTable(['name', 'model', 'cached', 'source'], rows.map((r) => [r.name, r.description, r.state, r.url ?? '-']))].join('\n'),
    );
    const bad = rows.filter((r) => opts.verify && r.problem);
    if (bad.length > 0) {
      throw new CliError(`${bad.length} cached file(s) failed verification: ${bad.map((r) => `${r.name} (${r.problem})`).join('; ')}; run \`samclip weights pull NAME --force\``);
    }
  });
  registerConvert(weights, env);
  registerInspect(weights, env);
  registerRandom(weights, env);
}
