/**
 * `samclip classify` with the reference tiny CLIP weights on the dog photo: the probabilities it
 * prints (JSON) are the library's for the same photo and labels, and bad input is refused in one line.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readImage } from '../../src/io/decode.js';
import { loadClip } from '../../src/model/clip/load.js';
import { ClipClassifier } from '../../src/pipelines/clip-classifier.js';
import { SafetensorsFile } from '../../src/weights/safetensors.js';
import { useGpu } from '../helpers/gpu.js';
import { CLIP_TINY, DOG, SAM_TINY, expectOk, expectOneLineError, samclip, CLI_TIMEOUT } from './helpers.js';

const gpu = useGpu();
const tmp = mkdtempSync(join(tmpdir(), 'samclip-classify-'));
// The tiny reference CLIP was built with 4 text heads and QuickGELU (test/fixtures/reference/README.md);
// its file does not record them, so the CLI is told like the library is.
const TINY = ['--weights', CLIP_TINY, '--text-heads', '4', '--act', 'quick_gelu'];

async function libraryResult(labels: string[], templates?: string[]) {
  const file = await SafetensorsFile.open(CLIP_TINY);
  const model = await loadClip(gpu(), file, { textHeads: 4, act: 'quick_gelu' });
  await file.close();
  const c = await ClipClassifier.create(gpu(), model);
  const r = await c.classify(await readImage(DOG), labels, templates ? { templates } : {});
  model.dispose();
  return r;
}

describe('classify', { timeout: CLI_TIMEOUT }, () => {
  it('prints the library probabilities (80 ImageNet templates) as JSON and a ranked table', async () => {
    const labels = ['a dog', 'a cat', 'a truck'];
    const r = await samclip(['classify', DOG, '--labels', 'a dog,a cat', '--labels', 'a truck', ...TINY, '--json']);
    expectOk(r);
    const res = JSON.parse(r.stdout);
    expect(res.labels).toEqual(labels);
    const lib = await libraryResult(labels);
    for (let i = 0; i < labels.length; i++) expect(res.probs[i], labels[i]).toBeCloseTo(lib.probs[i]!, 6);
    expect(res.ranked.map((x: { label: string }) => x.label)).toEqual(lib.ranked.map((x) => x.label));
  });

  it('--raw-labels (template "{}") and --top: the text table shows the library ranking', async () => {
    const r = await samclip(['classify', DOG, '--labels', 'dog, cat, truck', '--raw-labels', '--top', '2', ...TINY, '--quiet']);
    expectOk(r);
    const lib = await libraryResult(['dog', 'cat', 'truck'], ['{}']);
    const rows = r.stdout.trim().split('\n').slice(2);
    expect(rows.length).toBe(2);
    rows.forEach((row, k) => expect(row).toMatch(new RegExp(`^${lib.ranked[k]!.label}\\s+${lib.ranked[k]!.prob.toFixed(4)}\\s+${lib.ranked[k]!.logit.toFixed(3)}$`)));
  });

  it('bad input: wrong-family checkpoint, missing weights, bad labels, unreadable image', async () => {
    const txt = join(tmp, 'notes.png');
    writeFileSync(txt, 'not a picture\n');
    const cases: [string[], number, RegExp][] = [
      [['classify', DOG, '--labels', 'a,b', '--weights', SAM_TINY], 1, /sam_tiny\.weights\.safetensors: this is an official SAM checkpoint, not a CLIP checkpoint/],
      [['classify', DOG, '--labels', 'a,b', '--cache', join(tmp, 'none')], 1, /no CLIP weights: download them with `samclip weights pull clip-vit-b-16`/],
      [['classify', DOG, ...TINY], 2, /give the class names with --labels/],
      [['classify', DOG, '--labels', 'cat,Cat', ...TINY], 2, /duplicate label "Cat"/],
      [['classify', txt, '--labels', 'a,b', ...TINY], 1, /notes\.png: unsupported image format/],
    ];
    const results = await Promise.all(cases.map(([args]) => samclip(args)));
    results.forEach((r, i) => expectOneLineError(r, cases[i]![1], cases[i]![2]));
  });
});
