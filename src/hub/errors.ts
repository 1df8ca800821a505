/** Errors of loading models by name: downloads, the cache, the registry. */
import { SamclipError } from '../gpu/errors.js';

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

/** The error an aborted signal carries (its reason when that is an Error). */
export function abortError(signal: AbortSignal): Error {
  const r: unknown = signal.reason;
  if (r instanceof Error) return r;
  const e = new Error(typeof r === 'string' ? r : 'the download was aborted');
  e.name = 'AbortError';
  return e;
}
