/** `samclip weights ...`: the weights tooling group, and `weights list`. */
import { existsSync } from 'node:fs';
import type { Command } from 'commander';
import { withCommon } from '../common.js';
import type { CliEnv, CommonOptions } from '../env.js';
import { formatTable } from '../output.js';
import { REGISTRY, cacheDir, cachedPath, hfUrl } from '../weights/registry.js';
import { registerConvert } from './weights-convert.js';
import { registerInspect } from './weights-inspect.js';
import { registerPull } from './weights-pull.js';
import { registerRandom } from './weights-random.js';

export function registerWeights(program: Command, env: CliEnv): void {
  const weights = program.command('weights').description('get, convert, inspect and generate checkpoints');
  registerPull(weights, env);
  withCommon(
    weights
      .command('list')
      .description('known checkpoints and whether they are in the cache')
      .option('--cache <dir>', 'cache directory (default $SAMCLIP_CACHE or ~/.cache/samclip)'),
  ).action((opts: CommonOptions & { cache?: string }) => {
    const cache = cacheDir(opts.cache);
    const rows = REGISTRY.map((e) => {
      const path = cachedPath(cache, e.name, e.file);
      return { name: e.name, kind: e.kind, description: e.description, url: hfUrl(e.repo, e.file), sha256: e.sha256, cached: existsSync(path), path };
    });
    env.emit(opts, { cache, weights: rows }, () =>
      [`cache: ${cache}`, '', formatTable(['name', 'model', 'cached', 'source'], rows.map((r) => [r.name, r.description, r.cached ? 'yes' : 'no', r.url]))].join('\n'),
    );
  });
  registerConvert(weights, env);
  registerInspect(weights, env);
  registerRandom(weights, env);
}
