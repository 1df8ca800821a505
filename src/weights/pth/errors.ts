import { SamclipError } from '../../gpu/errors.js';
import { type LimitExceeded, limitText } from '../../util/limits.js';

/**
 * A `.pth` checkpoint that cannot be read: not a torch.save zip, damaged, truncated, or holding
 * something other than tensors (a pickle that would need arbitrary Python to rebuild).
 */
export class PthError extends SamclipError {
  override name = 'PthError';
  constructor(
    /** The file (path or the name given with the bytes). */
    readonly file: string,
    detail: string,
    /** The zip entry or state-dict key concerned, when there is one. */
    readonly key?: string,
  ) {
    super(`pth ${file}: ${detail}`);
  }
}

/** The pickle inside a checkpoint uses an opcode or a global outside the allow-list. */
export class PickleError extends PthError {
  override name = 'PickleError';
}

/** A checkpoint that would need more memory than a limit allows (named limit, value found, limit). */
export class PthLimitError extends PthError implements LimitExceeded {
  override name = 'PthLimitError';
  constructor(
    file: string,
    context: string,
    readonly quantity: string,
    readonly value: number,
    readonly limit: number,
    readonly option: string | null,
    key?: string,
  ) {
    super(file, `${context}: ${limitText({ quantity, value, limit, option }, 'bytes')}`, key);
  }
}
