/** The browser SHA-256 (src/hub/sha256.ts) against node:crypto, over block edges and odd feeds. */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { Sha256 } from '../../src/hub/sha256.js';
import { mulberry32 } from '../../src/util/mulberry32.js';

describe('Sha256', () => {
  it('equals node:crypto for lengths around the 64-byte blocks and the padding boundary, fed in random pieces', () => {
    const rnd = mulberry32(12);
    for (const n of [0, 1, 3, 55, 56, 57, 63, 64, 65, 119, 120, 127, 128, 1000, 65_537, 300_001]) {
      const bytes = Uint8Array.from({ length: n }, () => Math.floor(rnd() * 256));
      const h = new Sha256();
      for (let i = 0; i < n; ) {
        const k = Math.min(n - i, 1 + Math.floor(rnd() * 200));
        h.update(bytes.subarray(i, i + k));
        i += k;
      }
      expect(h.digestHex(), `${n} bytes`).toBe(createHash('sha256').update(bytes).digest('hex'));
    }
  });

  it('the FIPS 180-2 example "abc"', () => {
    const h = new Sha256();
    h.update(new TextEncoder().encode('abc'));
    expect(h.digestHex()).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  });
});
