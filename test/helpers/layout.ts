/** Plain-array layout changes between NCHW and NHWC for image-shaped test data. */

/** NCHW [N, C, H, W] -> NHWC. */
export function nchwToNhwc(a: ArrayLike<number>, [N, C, H, W]: readonly number[]): Float32Array {
  const out = new Float32Array(a.length);
  for (let n = 0; n < N!; n++)
    for (let c = 0; c < C!; c++)
      for (let y = 0; y < H!; y++) for (let x = 0; x < W!; x++) out[((n * H! + y) * W! + x) * C! + c] = a[((n * C! + c) * H! + y) * W! + x]!;
  return out;
}

/** NHWC -> NCHW, for a logical NCHW shape [N, C, H, W]. */
export function nhwcToNchw(a: ArrayLike<number>, [N, C, H, W]: readonly number[]): Float32Array {
  const out = new Float32Array(a.length);
  for (let n = 0; n < N!; n++)
    for (let c = 0; c < C!; c++)
      for (let y = 0; y < H!; y++) for (let x = 0; x < W!; x++) out[((n * C! + c) * H! + y) * W! + x] = a[((n * H! + y) * W! + x) * C! + c]!;
  return out;
}
