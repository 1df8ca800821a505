// The default CLIP tokenizer in a page: the vocabulary shipped in the package, found by the
// bundler through new URL(..., import.meta.url). The result lands in window.__samclip.
import { loadClipTokenizer } from 'samclip-webgpu';

const result = (window.__samclip = { done: false });
try {
  const tokenizer = await loadClipTokenizer();
  const { ids, shape } = tokenizer.tokenize(['a photo of a dog', 'Ünïcode, naïve café!']);
  Object.assign(result, { ids: Array.from(ids), shape });
} catch (e) {
  result.error = String(e?.stack ?? e);
}
result.done = true;
