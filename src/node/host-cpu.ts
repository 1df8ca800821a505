/**
 * The host CPU as CPU adapters see it (lavapipe, SwiftShader run shaders on it): model, cores and
 * the widest SIMD the kernels can be compiled to. Recorded with bench results and used in the
 * tuning cache key, since choices measured on one host do not carry to another (Node only).
 */
import { readFileSync } from 'node:fs';
import { arch, cpus } from 'node:os';

export interface HostCpu {
  model: string;
  cores: number;
  arch: string;
  /** Widest vector registers: 512 (AVX-512F), 256 (AVX2/AVX), 128 (SSE/NEON), or 0 when unknown. */
  vectorBits: number;
  avx512: boolean;
  /** Compact form for keys and table headers, e.g. `AMD EPYC 7B13 x2 avx2`. */
  summary: string;
}

function cpuFlags(): Set<string> {
  try {
    const text = readFileSync('/proc/cpuinfo', 'utf8');
    const line = /^(?:flags|Features)\s*:\s*(.*)$/m.exec(text);
    return new Set((line?.[1] ?? '').split(/\s+/).filter(Boolean));
  } catch {
    return new Set();
  }
}

export function hostCpu(): HostCpu {
  const list = cpus();
  const model = (list[0]?.model ?? 'unknown CPU').replace(/\s+/g, ' ').trim();
  const flags = cpuFlags();
  const avx512 = flags.has('avx512f');
  const a = arch();
  const vectorBits = avx512 ? 512 : flags.has('avx2') || flags.has('avx') ? 256 : flags.has('sse2') || flags.has('asimd') || a === 'arm64' ? 128 : 0;
  const isa = avx512 ? 'avx512' : flags.has('avx2') ? 'avx2' : vectorBits ? `${vectorBits}-bit` : a;
  return { model, cores: list.length, arch: a, vectorBits, avx512, summary: `${model} x${list.length} ${isa}` };
}
