/** What the bench needs from any ONNX Runtime flavour: named f32 tensors in, named f32 tensors out. */

export interface Feed {
  data: Float32Array;
  dims: readonly number[];
}

export type Feeds = Record<string, Feed>;

export interface Outputs {
  [name: string]: { data: Float32Array; dims: number[] };
}

export interface BenchSession {
  /** Which runtime and provider, with the device it landed on. */
  readonly label: string;
  /** One inference with host (CPU) tensors in and out. */
  run(feeds: Feeds): Promise<Outputs>;
  release(): Promise<void>;
}

export function feedNames(feeds: Feeds): string {
  return Object.entries(feeds)
    .map(([k, f]) => `${k}[${f.dims.join('x')}]`)
    .join(', ');
}
