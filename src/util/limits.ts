/**
 * Resource limits on untrusted inputs (checkpoints, images, HTTP bodies): what every "too large"
 * error carries, so a caller can tell which limit fired, by how much, and which option raises it.
 * Each reader has its own error class (SafetensorsLimitError, PthLimitError, ImageLimitError) that
 * extends the reader's usual error and implements `LimitExceeded`.
 */

export interface LimitExceeded {
  /** What was measured, e.g. 'header entries', 'inflated bytes'. */
  readonly quantity: string;
  /** The value found (or a lower bound of it, when reading stopped at the limit). */
  readonly value: number;
  /** The limit in force. */
  readonly limit: number;
  /** How to raise the limit (an option name), or null when it is a hard limit of the format. */
  readonly option: string | null;
}

const GiB = 2 ** 30;
const MiB = 2 ** 20;

/** `1073741824` -> `1073741824 (1 GiB)`, for byte counts. */
export function fmtBytes(n: number): string {
  if (n >= GiB) return `${n} (${+(n / GiB).toFixed(2)} GiB)`;
  if (n >= MiB) return `${n} (${+(n / MiB).toFixed(2)} MiB)`;
  return String(n);
}

/** The sentence every limit error ends with. */
export function limitText(d: LimitExceeded, unit = ''): string {
  const u = unit ? ` ${unit}` : '';
  const value = unit === 'bytes' ? fmtBytes(d.value) : String(d.value);
  const limit = unit === 'bytes' ? fmtBytes(d.limit) : String(d.limit);
  const raise = d.option ? `; raise it with the ${d.option} option if this input is genuine` : '';
  return `${d.quantity}: ${value}${u} is over the limit of ${limit}${u}${raise}`;
}
