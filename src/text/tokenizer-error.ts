import { SamclipError } from '../gpu/errors.js';

/** A vocabulary/merges file is malformed, or text cannot be tokenised as asked (too long, unknown id). */
export class TokenizerError extends SamclipError {
  override name = 'TokenizerError';
}
