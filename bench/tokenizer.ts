/**
 * CLIP tokenizer throughput: `npx tsx bench/tokenizer.ts`.
 *
 * Corpora (deterministic, generated here): the 80 ImageNet prompt templates x 1000 class-like
 * names (the zero-shot workload), and ~2 MB of English-like paragraphs. Prints MB/s of UTF-8
 * input through `tokenize` (clean-up + split + BPE + packing), with a cold word cache (first
 * pass) and a warm one (second pass).
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ClipTokenizer } from '../src/text/clip-tokenizer.js';
import { clipBpeUrl } from '../src/text/clip-vocabulary.js';
import { mulberry32 } from '../src/util/mulberry32.js';

const here = dirname(fileURLToPath(import.meta.url));
const templates: string[] = JSON.parse(readFileSync(join(here, '../test/fixtures/clip/imagenet_templates.json'), 'utf8'));


const SYLLABLES = ['ka', 'ro', 'tel', 'min', 'sha', 'ver', 'lo', 'quin', 'bar', 'dor', 'el', 'ix', 'tra', 'pen', 'gu', 'mo', 'sta', 'fer', 'ly', 'ne'];
const WORDS = ('the of and to in is was for on that with as by at from his her it an were which are this be or has had ' +
  'not but have they their one all new more two been first after who its also other than time many some into only ' +
  'year most over city such used would school may between world known both where during under part three later ' +
  'small large house water river animal dog cat bird tree flower car truck photo picture painting people man woman').split(' ');

function className(r: () => number): string {
  const words = 1 + Math.floor(r() * 3);
  const out: string[] = [];
  for (let w = 0; w < words; w++) {
    let s = '';
    const n = 2 + Math.floor(r() * 3);
    for (let k = 0; k < n; k++) s += SYLLABLES[Math.floor(r() * SYLLABLES.length)];
    out.push(s);
  }
  return out.join(r() < 0.2 ? '-' : ' ');
}

function paragraph(r: () => number): string {
  const sentences: string[] = [];
  const nSent = 2 + Math.floor(r() * 4);
  for (let s = 0; s < nSent; s++) {
    const n = 6 + Math.floor(r() * 14);
    const words: string[] = [];
    for (let i = 0; i < n; i++) {
      const x = r();
      words.push(x < 0.05 ? String(Math.floor(r() * 2000)) : x < 0.1 ? className(r) : WORDS[Math.floor(r() * WORDS.length)]!);
      if (r() < 0.08) words[words.length - 1] += ',';
    }
    const first = words[0]!;
    words[0] = first[0]!.toUpperCase() + first.slice(1);
    sentences.push(words.join(' ') + (r() < 0.1 ? '!' : r() < 0.1 ? '?' : '.'));
  }
  return sentences.join(' ');
}

function buildPrompts(): string[] {
  const r = mulberry32(1);
  const names = Array.from({ length: 1000 }, () => className(r));
  const prompts: string[] = [];
  for (const name of names) for (const t of templates) prompts.push(t.replace('{}', name));
  return prompts;
}

function buildParagraphs(targetBytes: number): string[] {
  const r = mulberry32(2);
  const out: string[] = [];
  let bytes = 0;
  while (bytes < targetBytes) {
    const p = paragraph(r);
    out.push(p);
    bytes += p.length;
  }
  return out;
}

const utf8Bytes = (texts: string[]): number => texts.reduce((n, t) => n + new TextEncoder().encode(t).length, 0);

function timeTokenize(tok: ClipTokenizer, texts: string[]): number {
  const batch = 1024;
  const t0 = performance.now();
  for (let i = 0; i < texts.length; i += batch) tok.tokenize(texts.slice(i, i + batch));
  return (performance.now() - t0) / 1000;
}

async function main(): Promise<void> {
  const gz = new Uint8Array(readFileSync(clipBpeUrl()));
  const t0 = performance.now();
  await ClipTokenizer.fromBpeGz(gz);
  console.log(`load (gunzip + parse ${gz.length} B BPE file): ${(performance.now() - t0).toFixed(0)} ms`);

  const corpora: [string, string[]][] = [
    ['80 templates x 1000 class names', buildPrompts()],
    ['English-like paragraphs', buildParagraphs(2_000_000)],
  ];
  console.log('corpus                            texts     MB   cold MB/s  warm MB/s');
  for (const [label, texts] of corpora) {
    const mb = utf8Bytes(texts) / 1e6;
    const tok = await ClipTokenizer.fromBpeGz(gz); // fresh word cache
    const cold = timeTokenize(tok, texts);
    const warm = timeTokenize(tok, texts);
    console.log(
      `${label.padEnd(32)} ${String(texts.length).padStart(7)} ${mb.toFixed(2).padStart(6)} ${(mb / cold).toFixed(2).padStart(10)} ${(mb / warm).toFixed(2).padStart(10)}`,
    );
  }
}

await main();
