#!/usr/bin/env node
// samclip launcher. An installed package has no sources and runs the compiled CLI (lib/cli/main.js).
// A checkout runs lib/ when it is built and not older than the sources, otherwise the TypeScript
// sources through tsx (a devDependency, present after `npm ci`), so a fresh clone works without a
// build step and an edited checkout never runs a stale build. SAMCLIP_CLI=dist or SAMCLIP_CLI=src
// forces a choice.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { join } from 'node:path';

const root = fileURLToPath(new URL('..', import.meta.url));
const built = join(root, 'lib', 'cli', 'main.js');
const source = join(root, 'src', 'cli', 'main.ts');

/** Newest modification time under `dir` (the sources are a few hundred files: a few ms). */
function newest(dir) {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newest(p) : statSync(p).mtimeMs);
  }
  return t;
}

function choose() {
  const forced = process.env.SAMCLIP_CLI;
  if (forced === 'dist' || forced === 'src') return forced;
  if (!existsSync(source)) return 'dist';
  if (existsSync(built) && statSync(built).mtimeMs >= newest(join(root, 'src'))) return 'dist';
  return 'src';
}

let entry;
if (choose() === 'dist') {
  if (!existsSync(built)) {
    process.stderr.write(`samclip: error: ${built} is missing; run \`npm run build\` (or unset SAMCLIP_CLI)\n`);
    process.exit(1);
  }
  entry = built;
} else {
  try {
    const { register } = await import('tsx/esm/api');
    register();
  } catch (e) {
    process.stderr.write(
      `samclip: error: cannot run the TypeScript sources: tsx is not installed (${e.message.split('\n')[0]}); ` +
        'run `npm ci` (installs tsx) or `npm run build`\n',
    );
    process.exit(1);
  }
  entry = source;
}
const { main } = await import(pathToFileURL(entry).href);
await main();
