/**
 * Class names that CLIP cannot tell apart because its tokenizer cuts every prompt to 77 tokens:
 * two long names that differ only after the cut get identical token rows, hence identical
 * embeddings, and a classifier would score them 50/50 without a word. Callers refuse such lists.
 */
import { CLIP_CONTEXT_LENGTH, type ClipTokenizer } from './clip-tokenizer.js';

/** A template filled with a class name (a replacer function: `$&` in a name stays literal). */
export function fillTemplate(template: string, name: string): string {
  return template.replace('{}', () => name);
}

/**
 * The first pair [i, j] (i < j) of `labels` whose prompts tokenize to the same ids under every
 * template once cut to `contextLength`, or null. Only names long enough to fill a row under some
 * template are compared (a row that is not full holds its whole text, and distinct texts encode
 * to distinct ids), so short class lists cost one encode per name.
 */
export function identicalAfterTruncation(
  tokenizer: ClipTokenizer,
  labels: readonly string[],
  templates: readonly string[],
  contextLength = CLIP_CONTEXT_LENGTH,
): [number, number] | null {
  const room = contextLength - 2; // <|startoftext|> and <|endoftext|>
  // Template words are encoded apart from the name (the split pattern cuts at spaces and
  // punctuation); 4 tokens of margin cover merges at the boundary.
  const templateTokens = Math.max(...templates.map((t) => tokenizer.encode(fillTemplate(t, ' ')).length));
  const seen = new Map<string, number>();
  for (let i = 0; i < labels.length; i++) {
    if (tokenizer.encode(labels[i]!).length + templateTokens + 4 < room) continue;
    const rows: string[] = [];
    for (const t of templates) {
      const body = tokenizer.encode(fillTemplate(t, labels[i]!));
      if (body.length < room) break; // this row is not cut: the name is distinguishable in it
      rows.push(body.slice(0, room).join(','));
    }
    if (rows.length < templates.length) continue;
    const key = rows.join('|');
    const j = seen.get(key);
    if (j !== undefined) return [j, i];
    seen.set(key, i);
  }
  return null;
}

/** `name` shortened for an error message. */
export function shortName(name: string, max = 60): string {
  return name.length > max ? `${JSON.stringify(name.slice(0, max))}...` : JSON.stringify(name);
}
