export {
  ClipTokenizer,
  CLIP_CONTEXT_LENGTH,
  CLIP_NUM_MERGES,
  START_OF_TEXT,
  END_OF_TEXT,
  splitWords,
  type TokenizeOptions,
  type TokenizedBatch,
  type DecodeOptions,
} from './clip-tokenizer.js';
export { loadClipTokenizer, clipBpeUrl, CLIP_BPE_ASSET, type LoadClipTokenizerOptions } from './clip-vocabulary.js';
export { TokenizerError } from './tokenizer-error.js';
export { identicalAfterTruncation, fillTemplate } from './truncation.js';
export { clipNormalize, basicClean, whitespaceClean } from './text-cleanup.js';
export { fixText } from './ftfy.js';
export { pythonHtmlUnescape } from './html-unescape.js';
