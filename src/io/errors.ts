/** Errors of the Node image I/O layer: every message starts with the file it is about. */
import { ImageError } from '../image/image.js';

/** An image file that cannot be read, decoded or written. */
export class ImageFileError extends ImageError {
  override name = 'ImageFileError';
  constructor(
    readonly file: string,
    detail: string,
  ) {
    super(`${file}: ${detail}`);
  }
}
