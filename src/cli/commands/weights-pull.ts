/** `samclip weights pull NAME`: download a known (or any) safetensors file into the cache. */
import { existsSync } from 'node:fs';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { basename } from 'node:path';
import type { Command } from 'commander';
import { intArg, withCommon } from '../common.js';
import type { CliEnv, CommonOptions } from '../env.js';
import { UsageError } from '../errors.js';
import { formatBytes, type Progress } from '../output.js';
import { ChecksumError, download, normaliseSha256, sha256File } from '../weights/download.js';
import { type PullRecord, REGISTRY, cacheDir, cachedPath, findEntry, hfUrl, recordPath } from '../weights/registry.js';

interface PullOptions extends CommonOptions {
  cache?: string;
  url?: string;
  sha256?: string;
  retries: number;
  force?: boolean;
}

async function readRecord(file: string): Promise<PullRecord | null> {
  try {
    return JSON.parse(await readFile(recordPath(file), 'utf8')) as PullRecord;
  } catch {
    return null;
  }
}

export function registerPull(weights: Command, env: CliEnv): void {
  withCommon(
    weights
      .command('pull')
      .description('download weights into the cache (resumable, SHA-256 checked)')
      .argument('<name>', `a known name (${REGISTRY.map((e) => e.name).join(', ')}) or your own name with --url`)
      .option('--cache <dir>', 'cache directory (default $SAMCLIP_CACHE or ~/.cache/samclip)')
      .option('--url <url>', 'download from this URL instead of the registry one')
      .option('--sha256 <hex>', 'expected SHA-256 of the file')
      .option('--retries <n>', 'extra attempts after a dropped connection', intArg('--retries'), 3)
      .option('--force', 'download again even if the file is in the cache'),
  ).action(async (name: string, opts: PullOptions) => {
    const entry = findEntry(name);
    if (!entry && !opts.url) {
      throw new UsageError(`unknown weights '${name}': known names are ${REGISTRY.map((e) => e.name).join(', ')} (or give --url URL)`);
    }
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name)) throw new UsageError(`weights name '${name}' may only hold letters, digits, '.', '_' and '-'`);
    const url = opts.url ?? hfUrl(entry!.repo, entry!.file);
    let file = entry && !opts.url ? entry.file : basename(safeUrl(url).pathname);
    if (!file || file === '/') file = 'weights.safetensors';
    const cache = cacheDir(opts.cache);
    const dest = cachedPath(cache, name, file);
    const user = opts.sha256 ? normaliseSha256(opts.sha256, '--sha256') : null;
    const registry = entry && (!opts.url || opts.url === hfUrl(entry.repo, entry.file)) ? entry.sha256 : null;
    const record = await readRecord(dest);
    const recorded = record && record.url === url ? record.sha256 : null;
    const expected = user ?? registry ?? recorded;
    const expectedFrom = user ? '--sha256' : registry ? 'the registry' : 'the digest recorded at the first download';

    if (existsSync(dest) && !opts.force) {
      let sha: string | null = null;
      if (expected) {
        const p = env.progress(opts, `verifying ${name}`, 0);
        sha = await sha256File(dest);
        p.finish();
        if (sha !== expected) {
          await rm(dest, { force: true });
          await rm(recordPath(dest), { force: true });
          throw new ChecksumError(`${dest}: cached file is corrupt (SHA-256 ${sha}, ${expectedFrom} says ${expected}); it was deleted, run the command again to download it`);
        }
      }
      const result = { name, status: 'cached', path: dest, sha256: sha ?? record?.sha256 ?? null, verified: !!expected };
      env.emit(opts, result, () => `${name}: already in the cache${expected ? ' (SHA-256 verified)' : ''}: ${dest}`);
      return;
    }
    if (opts.force) {
      await rm(dest, { force: true });
      await rm(`${dest}.part`, { force: true });
    }

    let bar: Progress | null = null;
    const res = await download({
      url,
      dest,
      expectedSha256: expected,
      expectedFrom,
      retries: opts.retries,
      onStart: ({ total, resumeFrom }) => {
        if (resumeFrom > 0) env.note(opts, `resuming ${name} at ${formatBytes(resumeFrom)}`);
        bar = env.progress(opts, name, total ?? 0, true, resumeFrom);
      },
      onProgress: (done) => bar?.update(done),
      onRetry: (n, e, bytes) => {
        bar?.finish('(interrupted)');
        env.note(opts, `${name}: ${e.message}; retry ${n}/${opts.retries} from ${formatBytes(bytes)}`);
      },
    });
    (bar as Progress | null)?.finish();
    const verified: PullRecord['verified'] = user ? 'user' : registry ? 'registry' : recorded ? 'first-download' : res.serverSha256 ? 'server' : 'first-download';
    const rec: PullRecord = { name, url, bytes: res.bytes, sha256: res.sha256, verified, downloadedAt: new Date().toISOString() };
    await writeFile(recordPath(dest), `${JSON.stringify(rec, null, 2)}\n`);
    if (res.verifiedAgainst === 'none') {
      env.note(opts, `note: no published SHA-256 for ${name}; recorded ${res.sha256} in ${recordPath(dest)} (later pulls check the file against it)`);
    }
    const out = { name, status: 'downloaded', path: dest, url, bytes: res.bytes, sha256: res.sha256, verified: res.verifiedAgainst, resumedFrom: res.resumedFrom, attempts: res.attempts };
    env.emit(opts, out, () =>
      `${name}: ${formatBytes(res.bytes)} -> ${dest}\nsha256 ${res.sha256} (${res.verifiedAgainst === 'none' ? 'not verified: no published digest' : `verified against ${res.verifiedAgainst === 'server' ? 'the server' : expectedFrom}`})`,
    );
  });
}

function safeUrl(url: string): URL {
  try {
    return new URL(url);
  } catch {
    throw new UsageError(`--url: not a valid URL: '${url}'`);
  }
}
