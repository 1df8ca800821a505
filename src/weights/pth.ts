/**
 * PyTorch `.pth` checkpoints (torch.save zip format): a reader that never executes the pickle, and
 * conversion to safetensors. The code lives in `./pth/`: `zip.ts` (archive access), `pickle.ts`
 * (the allow-listed pickle VM), `reader.ts` (state dicts and tensors), `convert.ts` (safetensors
 * output and dtype changes).
 */
export { PthError, PickleError, PthLimitError } from './pth/errors.js';
export {
  openPth,
  openPthFile,
  PthCheckpoint,
  PTH_DTYPE_BYTES,
  DEFAULT_MAX_EXPANDED_BYTES,
  type PthDType,
  type PthTensorInfo,
  type PthSkipped,
  type PthOpenOptions,
} from './pth/reader.js';
export { memorySource, fileSource, DEFAULT_MAX_INFLATED_BYTES, type PthByteSource } from './pth/zip.js';
export {
  convertPthToSafetensors,
  convertPthBytes,
  convertTensorBytes,
  outputDType,
  type PthConvertDType,
  type ConvertPthOptions,
  type ConvertPthResult,
} from './pth/convert.js';
