/** Errors the engine throws on purpose. Each names what is wrong so a user can act on it. */

export class SamclipError extends Error {
  override name = 'SamclipError';
}

/** No WebGPU adapter could be obtained; the message says what to install. */
export class GpuUnavailableError extends SamclipError {
  override name = 'GpuUnavailableError';
}

/** The GPU reported a validation/out-of-memory/internal error or the device was lost. */
export class GpuError extends SamclipError {
  override name = 'GpuError';
}

/**
 * The context can no longer run work: `destroy()` was called on it, or the device was lost (driver
 * reset, GPU removed, `device.destroy()`). `reason` is WebGPU's (`'destroyed'` or `'unknown'`).
 * Create a new context and load the models again.
 */
export class DeviceLostError extends GpuError {
  override name = 'DeviceLostError';
  constructor(
    message: string,
    readonly reason: 'destroyed' | 'unknown' | 'context-destroyed',
  ) {
    super(message);
  }
}

/** A long call was cancelled through its AbortSignal; nothing it made is left behind. */
export class AbortError extends SamclipError {
  override name = 'AbortError';
}

/** Throws an AbortError (with the signal's reason) when the signal has fired. */
export function throwIfAborted(signal: AbortSignal | undefined, what: string): void {
  if (!signal?.aborted) return;
  const r: unknown = signal.reason;
  const why = r instanceof Error ? r.message : r === undefined ? 'aborted' : String(r);
  throw new AbortError(`${what}: cancelled (${why})`);
}

/** A WGSL module failed to compile: carries the compiler's messages with line:col and the source. */
export class WgslCompileError extends SamclipError {
  override name = 'WgslCompileError';
  constructor(
    readonly key: string,
    readonly messages: string[],
    readonly source: string,
  ) {
    const numbered = source
      .split('\n')
      .map((l, i) => `${String(i + 1).padStart(4)} | ${l}`)
      .join('\n');
    super(`WGSL compile error in ${key}:\n  ${messages.join('\n  ')}\n--- source ---\n${numbered}`);
  }
}

/** An op was called with shapes/dtypes it cannot take; raised before anything reaches the GPU. */
export class ShapeError extends SamclipError {
  override name = 'ShapeError';
}

export function fmtShape(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

export function check(cond: unknown, message: string | (() => string)): asserts cond {
  if (!cond) throw new ShapeError(typeof message === 'string' ? message : message());
}
