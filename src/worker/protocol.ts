/**
 * The messages between the page (src/worker/client.ts) and the worker (src/worker/host.ts), and
 * the few helpers both sides share: error transport and transfer lists.
 *
 * Page -> worker:  { type: 'call', id, method, args, profile, progress }   |   { type: 'cancel', id }
 * Worker -> page:  { type: 'progress', id, progress } ...  then  { type: 'result', id, value, profile? }  |  { type: 'error', id, error }
 *
 * Every call carries a fresh id; the worker answers each id exactly once (a cancelled call is
 * answered with an AbortError, which the page has already reported to its caller and drops).
 */
import type { ContextOptions } from '../gpu/context.js';
import { SamclipError } from '../gpu/errors.js';
import type { Progress } from '../gpu/pacer.js';
import type { ProfileRecord } from '../gpu/profiler.js';
import type { ImageU8 } from '../image/image.js';
import type { Family } from '../weights/families.js';

/** An image as it crosses to the worker: transferable / cloneable forms only (the client converts the rest). */
export type WireImage = ImageU8 | ImageData | ImageBitmap | VideoFrame | Blob | string;

/** Checkpoint bytes as they cross: an absolute URL (fetched in the worker, HTTP Range), the bytes, or a Blob / File (read lazily). */
export type WireWeights = string | ArrayBuffer | Blob;

export interface CallMessage {
  type: 'call';
  id: number;
  method: string;
  args: unknown[];
  /** Return this call's profiler records (when the context profiles). */
  profile: boolean;
  /** Send progress messages (stage, fraction) while the call runs. */
  progress: boolean;
}

export interface CancelMessage {
  type: 'cancel';
  id: number;
}

export type ToWorker = CallMessage | CancelMessage;

export interface WireError {
  name: string;
  message: string;
  stack?: string;
}

export type FromWorker =
  | { type: 'progress'; id: number; progress: Progress }
  | { type: 'result'; id: number; value: unknown; profile?: ProfileRecord[] }
  | { type: 'error'; id: number; error: WireError };

// ------------------------------------------------------------------ what the methods return

export interface WorkerAdapterInfo {
  description: string;
  vendor: string;
  architecture: string;
  features: { f16: boolean; timestamps: boolean; subgroups: boolean };
  limits: Record<string, number>;
}

export interface WorkerModelInfo {
  /** The checkpoint's name (URL, file name or the name given). */
  name: string;
  family: Family;
  /** What the worker now runs: 'sam', 'sam2', 'samclip' (merged bundle) or 'composite' (the SAM loaded before + this CLIP). */
  role: 'sam' | 'sam2' | 'samclip' | 'composite';
  /** Image encoder: width, depth, input size (SAM 2: Hiera's stage-0 width and total blocks). */
  sam: { embedDim: number; depth: number; imgSize: number };
  /** SAM-CLIP: joint embedding width and the head-only / classification resolutions. */
  samclip?: { embedDim: number; resolutions: { native: number; seg: number; cls: number } };
}

/** An image embedding kept in the worker; pass it back to predict / segment on it again. */
export interface WorkerEmbedding {
  readonly id: number;
  /** [height, width] of the image encoded. */
  readonly originalSize: [number, number];
  /** [height, width] after the longest-side resize to the model input. */
  readonly inputSize: [number, number];
}

export interface WorkerStats {
  /** Embeddings kept in the worker (until released or the model changes). */
  embeddings: number;
  /** Bytes of GPU buffers held by live tensors (weights and embeddings). */
  liveBytes: number;
}

export interface WorkerContextOptions extends Pick<ContextOptions, 'profile' | 'preferF16' | 'powerPreference' | 'plain'> {}

// ------------------------------------------------------------------ errors

/**
 * An error thrown in the worker, re-thrown on the page: same `name` (e.g. 'ImageError',
 * 'PromptError', 'SafetensorsError') and `message`; the worker's stack is kept in `workerStack`.
 */
export class SamWorkerError extends SamclipError {
  constructor(
    name: string,
    message: string,
    readonly workerStack?: string,
  ) {
    super(message);
    this.name = name;
  }
}

export function toWireError(e: unknown): WireError {
  if (e instanceof Error || (e !== null && typeof e === 'object' && 'message' in e)) {
    const err = e as Error;
    return { name: String(err.name ?? 'Error'), message: String(err.message), stack: err.stack };
  }
  return { name: 'Error', message: String(e) };
}

/** The page-side error for a worker's answer: AbortError as a DOMException (what fetch throws), others as SamWorkerError. */
export function fromWireError(w: WireError): Error {
  if (w.name === 'AbortError' && typeof DOMException === 'function') return new DOMException(w.message, 'AbortError');
  return new SamWorkerError(w.name, w.message, w.stack);
}

// ------------------------------------------------------------------ transfers

/**
 * The ArrayBuffers under the typed arrays of a result (masks, logits, label maps), each once.
 * Only for values built for this answer: transferring detaches them on the sending side.
 */
export function buffersOf(value: unknown, out = new Set<ArrayBuffer>(), depth = 0): ArrayBuffer[] {
  if (depth > 4 || value === null || typeof value !== 'object') return [...out];
  if (ArrayBuffer.isView(value)) {
    if (value.buffer instanceof ArrayBuffer) out.add(value.buffer);
  } else if (Array.isArray(value)) {
    for (const v of value) buffersOf(v, out, depth + 1);
  } else if (Object.getPrototypeOf(value) === Object.prototype) {
    for (const v of Object.values(value)) buffersOf(v, out, depth + 1);
  }
  return [...out];
}
