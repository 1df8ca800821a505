/**
 * Debug switches, read once from the environment on Node (and settable from code in browsers).
 * The full table lives in README.md ("Debug flags"); keep the two in sync.
 */
import { nodeFsSync } from '#platform';

type Env = Record<string, string | undefined>;

function readEnv(): Env {
  const p = (globalThis as { process?: { env?: Env } }).process;
  return p?.env ?? {};
}

export interface DebugFlags {
  /** SAMCLIP_DEBUG: 1 = per-kernel timing table after each sync; 2 = also log every dispatch. */
  level: number;
  /** SAMCLIP_PROFILE=1: time every dispatch with timestamp queries. */
  profile: boolean;
  /** SAMCLIP_SYNC=1: submit and validate each dispatch on its own, naming the kernel on error. */
  sync: boolean;
  /** SAMCLIP_PLANS=0: never record or replay dispatch plans (src/gpu/dispatch-plan.ts), e.g. to compare. */
  plans: boolean;
  /** SAMCLIP_DUMP_WGSL=dir: write every generated shader to dir/<key>.wgsl. */
  dumpWgsl: ((key: string, code: string) => void) | null;
}

function makeFlags(env: Env): DebugFlags {
  const dir = env.SAMCLIP_DUMP_WGSL;
  let dumpWgsl: DebugFlags['dumpWgsl'] = null;
  if (dir) {
    dumpWgsl = (key, code) => {
      const fs = nodeFsSync;
      const file = key.replace(/[^A-Za-z0-9_.-]+/g, '_').slice(0, 180) + '.wgsl';
      if (fs) {
        fs.mkdirSync(dir, { recursive: true });
        fs.writeFileSync(`${dir}/${file}`, code);
      } else {
        console.log(`// ${file}\n${code}`);
      }
    };
  }
  const level = Number(env.SAMCLIP_DEBUG ?? 0) || 0;
  return {
    level,
    profile: env.SAMCLIP_PROFILE === '1' || level > 0,
    sync: env.SAMCLIP_SYNC === '1',
    plans: env.SAMCLIP_PLANS !== '0',
    dumpWgsl,
  };
}

export const debugFlags: DebugFlags = makeFlags(readEnv());
