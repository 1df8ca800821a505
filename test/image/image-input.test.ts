/**
 * The parts of image inputs and relative URLs that run without a browser: ImageU8 passes through,
 * every other form is refused on Node with a message pointing at the Node decoder, bad objects are
 * named; relative addresses resolve against a page or worker base and stay paths on Node; the
 * loaders fetch a relative checkpoint URL in a (simulated) browser. The browser forms themselves
 * are tested in Chromium (test/web/browser-api.test.ts).
 */
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ImageError } from '../../src/image/image.js';
import { isImageU8, toImageU8 } from '../../src/image/image-input.js';
import { browserBaseUrl, fetchableUrl } from '../../src/util/url.js';
import { SafetensorsFile, openSafetensors } from '../../src/weights/safetensors.js';
import { type StaticServer, startStaticServer } from '../../tools/serve-demo.js';

const FIXTURES = join(import.meta.dirname, '..', 'fixtures');

describe('toImageU8 outside a browser', () => {
  it('returns an ImageU8 as it is, checked', async () => {
    const img = { width: 2, height: 1, channels: 3, data: new Uint8Array(6) };
    expect(await toImageU8(img)).toBe(img);
    expect(isImageU8(img)).toBe(true);
    await expect(toImageU8({ ...img, channels: 5 }, { what: 'SamPredictor.encode' })).rejects.toThrow(/^SamPredictor\.encode: channels must be 1/);
    await expect(toImageU8({ ...img, data: new Uint8Array(5) })).rejects.toThrow(/data has 5 bytes but 2×1×3 needs 6/);
  });

  it('takes an ImageData-like object only when it is a real ImageData', async () => {
    // A plain object with RGBA bytes has no channel count: it is named, not guessed at.
    const err = await toImageU8({ width: 1, height: 1, data: new Uint8ClampedArray(4) } as never, { what: 'embed' }).catch((e) => e);
    expect(err).toBeInstanceOf(ImageError);
    expect(err.message).toBe(
      'embed: expected an ImageU8 ({ width, height, channels, data }), ImageData, ImageBitmap, HTMLImageElement, HTMLCanvasElement, OffscreenCanvas, HTMLVideoElement, VideoFrame, Blob / File, or a URL; got an object with {width, height, data}',
    );
  });

  it('refuses paths, URLs and Blobs on Node, pointing at readImage', async () => {
    for (const input of ['photo.jpg', 'https://example.org/a.png', new URL('https://example.org/a.png'), new Blob([new Uint8Array([0xff, 0xd8, 0xff])])]) {
      const err = await toImageU8(input as never, { what: 'encode' }).catch((e) => e);
      expect(err, String(input)).toBeInstanceOf(ImageError);
      expect(err.message).toMatch(/^encode: decoding .* needs a browser's createImageBitmap, .*readImage\(path\) from 'samclip-webgpu\/node'/);
    }
  });

  it('names what it got for other values', async () => {
    await expect(toImageU8(null as never)).rejects.toThrow(/got null$/);
    await expect(toImageU8(42 as never)).rejects.toThrow(/got number$/);
    await expect(toImageU8(new Map() as never)).rejects.toThrow(/got a Map$/);
  });

  it('throws the signal\'s reason when already aborted', async () => {
    const img = { width: 1, height: 1, channels: 1, data: new Uint8Array(1) };
    await expect(toImageU8(img, { signal: AbortSignal.abort() })).rejects.toMatchObject({ name: 'AbortError' });
  });
});

describe('relative URLs', () => {
  afterEach(() => vi.unstubAllGlobals());

  it('resolve against the page (document.baseURI) or the worker (self.location), and stay paths on Node', () => {
    expect(browserBaseUrl()).toBeNull();
    expect(fetchableUrl('models/sam.safetensors')).toBeNull();
    expect(fetchableUrl('/abs/path.safetensors')).toBeNull();
    expect(fetchableUrl('https://hf.co/x.safetensors')).toBe('https://hf.co/x.safetensors');
    vi.stubGlobal('location', { href: 'https://app.example/assets/worker-123.js' });
    expect(browserBaseUrl()).toBe('https://app.example/assets/worker-123.js');
    expect(fetchableUrl('models/sam.safetensors')).toBe('https://app.example/assets/models/sam.safetensors');
    vi.stubGlobal('document', { baseURI: 'https://app.example/demo/index.html' });
    expect(fetchableUrl('models/sam.safetensors')).toBe('https://app.example/demo/models/sam.safetensors');
    expect(fetchableUrl('/w/sam.safetensors')).toBe('https://app.example/w/sam.safetensors');
    expect(fetchableUrl('blob:https://app.example/1234')).toBe('blob:https://app.example/1234');
    expect(() => fetchableUrl('a', 'not a base')).toThrow(/'a' is not a valid address \(relative to not a base\)/);
  });

  describe('loaders', () => {
    let server: StaticServer;
    afterEach(async () => {
      await server?.close();
    });

    it('open a relative checkpoint URL in a browser (HTTP Range), a path on Node', async () => {
      server = await startStaticServer({ '/fixtures/': FIXTURES });
      const onNode = await openSafetensors(join(FIXTURES, 'reference', 'sam_tiny.weights.safetensors'));
      expect(onNode.owned).toBe(true);
      vi.stubGlobal('document', { baseURI: `${server.url}app/index.html` });
      const inPage = await openSafetensors('../fixtures/reference/sam_tiny.weights.safetensors');
      try {
        expect(inPage.file.name).toBe(`${server.url}fixtures/reference/sam_tiny.weights.safetensors`);
        expect(inPage.file.keys()).toEqual(onNode.file.keys());
        const reads = server.log.filter((r) => r.path === '/fixtures/reference/sam_tiny.weights.safetensors');
        expect(reads.length).toBeGreaterThan(0);
        expect(reads.every((r) => r.status === 206)).toBe(true);
      } finally {
        await inPage.file.close();
        await onNode.file.close();
      }
      const given = SafetensorsFile.fromBytes(new Uint8Array([8, 0, 0, 0, 0, 0, 0, 0, ...new TextEncoder().encode('{}      ')]));
      expect(await openSafetensors(given)).toEqual({ file: given, owned: false });
      await expect(openSafetensors('../fixtures/missing.safetensors')).rejects.toThrow(/fixtures\/missing\.safetensors: HTTP 404/);
    });
  });
});
