/**
 * The Node TuningStore (src/kernels/tuner.ts): one JSON file, `<dir>/tuning.json`, mapping cache
 * keys (adapter, host, engine version) to the chosen kernels. Written atomically (temp file, then
 * rename); an unreadable or malformed file is treated as empty and replaced, never half-written.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TuningStore } from '../kernels/tuner.js';

export function fileTuningStore(dir: string): TuningStore & { path: string } {
  const path = join(dir, 'tuning.json');
  const load = (): Record<string, string> => {
    try {
      const v = JSON.parse(readFileSync(path, 'utf8')) as unknown;
      return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, string>) : {};
    } catch {
      return {};
    }
  };
  return {
    path,
    get: (key) => load()[key] ?? null,
    set: (key, value) => {
      const all = { ...load(), [key]: value };
      mkdirSync(dir, { recursive: true });
      const tmp = `${path}.${process.pid}.tmp`;
      writeFileSync(tmp, `${JSON.stringify(all, null, 1)}\n`);
      renameSync(tmp, path);
    },
  };
}
