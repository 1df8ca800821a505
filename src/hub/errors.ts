/** Errors of loading models by name: downloads, the cache, the registry. */
import { AbortError, SamclipError, throwIfAborted } from '../gpu/errors.js';

/** A model name, a cache or a download problem. */
export class HubError extends SamclipError {
  override name = 'HubError';
}

/** A download failed or was refused; nothing was promoted into the cache. */
export class DownloadError extends HubError {
  override name = 'DownloadError';
}

/** The downloaded bytes do not hash to the expected SHA-256 (they were deleted). */
export class ChecksumError extends DownloadError {
  override name = 'ChecksumError';
}

/** The network could not be reached (or offline mode is on) and the model is not in the cache. */
export class OfflineError extends DownloadError {
  override name = 'OfflineError';
}

/** A download (or a wait for one) cancelled by its AbortSignal: the library's AbortError. */
export function abortError(signal: AbortSignal, what = 'download'): AbortError {
  try {
    throwIfAborted(signal, what);
  } catch (e) {
    return e as AbortError;
  }
  return new AbortError(`${what}: cancelled`);
}
