/**
 * The hostile inputs of issue 12, generated on the fly (none is committed: some are large), each
 * the smallest file that used to cost seconds, gigabytes or a crash:
 *  - a safetensors header of 1.4 M valid zero-size entries (~97 MB of JSON);
 *  - `.pth` archives whose one storage is a deflate stream of zeros, with its true size declared
 *    or with a small size declared (a bomb);
 *  - `.pth` archives holding a stride-0 view of one element that expands to 1 GiB or to 4 TiB;
 *  - a `.pth` pickle with 300 k items in one APPENDS;
 *  - a 14000 x 14000 PNG of zeros (~570 KB) and a JPEG header declaring the same size;
 *  - HTTP answers that ignore Range and send far more than was asked (served by `hostileServer`).
 */
import { createWriteStream } from 'node:fs';
import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createDeflate, createDeflateRaw } from 'node:zlib';
import { crc32 } from '../../src/weights/pth/zip.js';
import { type FakeTensor, enc, stateDictPickle } from '../helpers/pth-build.js';
import { buildSafetensors, f32Tensor } from '../helpers/safetensors-build.js';

const MiB = 1 << 20;

/** A safetensors file whose header lists `entries` zero-size F32 tensors (valid, just huge). */
export async function writeHugeHeader(path: string, entries: number): Promise<number> {
  const entry = (i: number) => `${i ? ',' : ''}"weights.${String(i).padStart(9, '0')}":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}`;
  let length = 2; // braces
  for (let i = 0; i < entries; i++) length += entry(i).length;
  const out = createWriteStream(path);
  const write = (s: string | Uint8Array) => new Promise<void>((ok, bad) => out.write(s, (e) => (e ? bad(e) : ok())));
  const len = new Uint8Array(8);
  new DataView(len.buffer).setUint32(0, length, true);
  await write(len);
  let chunk = '{';
  for (let i = 0; i < entries; i++) {
    chunk += entry(i);
    if (chunk.length > MiB) {
      await write(chunk);
      chunk = '';
    }
  }
  await write(`${chunk}}`);
  await new Promise<void>((ok) => out.end(ok));
  return 8 + length;
}

/** Raw deflate of `bytes` zeros, compressed as generated (1 MiB at a time), and their CRC-32. */
async function deflatedZeros(bytes: number): Promise<{ data: Uint8Array; crc: number }> {
  const zeros = new Uint8Array(MiB);
  let crc = 0;
  const data = await new Promise<Uint8Array>((ok, bad) => {
    const z = createDeflateRaw({ level: 9 });
    const parts: Buffer[] = [];
    z.on('data', (c: Buffer) => parts.push(c));
    z.on('end', () => ok(Buffer.concat(parts)));
    z.on('error', bad);
    let done = 0;
    const pump = (): void => {
      while (done < bytes) {
        const piece = zeros.subarray(0, Math.min(MiB, bytes - done));
        crc = crc32(piece, crc);
        done += piece.length;
        if (!z.write(piece)) return void z.once('drain', pump);
      }
      z.end();
    };
    pump();
  });
  return { data, crc };
}

/**
 * A torch.save archive whose single F32 tensor `w` ([n]) is stored deflate-compressed (zeros).
 * `declaredBytes` (default: the true size) is written into the central directory and the pickle:
 * smaller than the truth, it makes a deflate bomb behind an innocent size.
 */
export async function deflatePth(trueBytes: number, declaredBytes = trueBytes): Promise<Uint8Array> {
  const numel = declaredBytes / 4;
  const pkl = stateDictPickle([{ name: 'w', key: '0', numel, shape: [numel] }]);
  const { data, crc } = await deflatedZeros(trueBytes);
  return zipEntries([
    { name: 'archive/data.pkl', data: pkl },
    { name: 'archive/data/0', data, deflated: { size: declaredBytes, crc } },
    { name: 'archive/version', data: enc.encode('3\n') },
  ]);
}

/** A stored archive holding `w`: one F32 element viewed with stride 0 as `shape`. */
export function stride0Pth(shape: number[]): Uint8Array {
  const t: FakeTensor = { name: 'w', key: '0', numel: 1, shape, stride: shape.map(() => 0) };
  return storedArchive(stateDictPickle([t]), { '0': new Uint8Array(4) });
}

/** A state dict with a tensor and, next to it, a list built by one APPENDS of `n` ints. */
export function longAppendsPth(n: number): Uint8Array {
  // {'state_dict': <the dict>, 'history': [0, 1, ...]}: EMPTY_DICT MARK ... EMPTY_LIST MARK ints APPENDS SETITEMS
  const pkl = stateDictPickle([{ name: 'w', key: '0', numel: 1, shape: [1] }], (p, body) => {
    p.op(0x7d).mark().str('state_dict');
    body();
    p.str('history').op(0x5d).mark();
    for (let i = 0; i < n; i++) p.int(i % 256);
    p.op(0x65, 0x75);
  });
  return storedArchive(pkl, { '0': new Uint8Array(4) });
}

/** A stored (uncompressed) torch.save zip, like torch writes. */
function storedArchive(pkl: Uint8Array, storages: Record<string, Uint8Array>): Uint8Array {
  return zipEntries([
    { name: 'archive/data.pkl', data: pkl },
    ...Object.entries(storages).map(([k, data]) => ({ name: `archive/data/${k}`, data })),
    { name: 'archive/version', data: enc.encode('3\n') },
  ]);
}

interface ZipItem {
  name: string;
  /** The bytes as stored in the archive. */
  data: Uint8Array;
  /** Present when `data` is a raw deflate stream: the uncompressed size to declare, and its CRC. */
  deflated?: { size: number; crc: number };
}

/** A minimal zip writer: stored entries, or pre-deflated ones with whatever size they declare. */
function zipEntries(items: ZipItem[]): Uint8Array {
  const parts: Uint8Array[] = [];
  const central: Uint8Array[] = [];
  let offset = 0;
  for (const { name, data, deflated } of items) {
    const n = enc.encode(name);
    const crc = deflated?.crc ?? crc32(data);
    const size = deflated?.size ?? data.length;
    const method = deflated ? 8 : 0;
    const local = new Uint8Array(30 + n.length);
    const lv = new DataView(local.buffer);
    lv.setUint32(0, 0x04034b50, true);
    lv.setUint16(4, 20, true);
    lv.setUint16(8, method, true);
    lv.setUint32(14, crc, true);
    lv.setUint32(18, data.length, true);
    lv.setUint32(22, size, true);
    lv.setUint16(26, n.length, true);
    local.set(n, 30);
    const c = new Uint8Array(46 + n.length);
    const cv = new DataView(c.buffer);
    cv.setUint32(0, 0x02014b50, true);
    cv.setUint16(4, 20, true);
    cv.setUint16(6, 20, true);
    cv.setUint16(10, method, true);
    cv.setUint32(16, crc, true);
    cv.setUint32(20, data.length, true);
    cv.setUint32(24, size, true);
    cv.setUint16(28, n.length, true);
    cv.setUint32(42, offset, true);
    c.set(n, 46);
    parts.push(local, data);
    central.push(c);
    offset += local.length + data.length;
  }
  const cdSize = central.reduce((a, c) => a + c.length, 0);
  const eocd = new Uint8Array(22);
  const ev = new DataView(eocd.buffer);
  ev.setUint32(0, 0x06054b50, true);
  ev.setUint16(8, items.length, true);
  ev.setUint16(10, items.length, true);
  ev.setUint32(12, cdSize, true);
  ev.setUint32(16, offset, true);
  return Buffer.concat([...parts, ...central, eocd]);
}

function pngChunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, data.length);
  out.set(enc.encode(type), 4);
  out.set(data, 8);
  dv.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
  return out;
}

/** A valid RGB PNG of `w` x `h` black pixels, its IDAT deflated as it is generated (row by row). */
export async function blackPng(w: number, h: number): Promise<Uint8Array> {
  const ihdr = new Uint8Array(13);
  const dv = new DataView(ihdr.buffer);
  dv.setUint32(0, w);
  dv.setUint32(4, h);
  ihdr.set([8, 2, 0, 0, 0], 8); // 8-bit RGB, no interlace
  const idat = await new Promise<Uint8Array>((ok, bad) => {
    const z = createDeflate({ level: 9 });
    const parts: Buffer[] = [];
    z.on('data', (c: Buffer) => parts.push(c));
    z.on('end', () => ok(Buffer.concat(parts)));
    z.on('error', bad);
    const row = new Uint8Array(1 + 3 * w); // filter byte 0 + zeros
    let y = 0;
    const pump = (): void => {
      while (y < h) {
        y++;
        if (!z.write(row)) return void z.once('drain', pump);
      }
      z.end();
    };
    pump();
  });
  const sig = Uint8Array.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  return Buffer.concat([sig, pngChunk('IHDR', ihdr), pngChunk('IDAT', idat), pngChunk('IEND', new Uint8Array(0))]);
}

/** A JPEG that is only headers: SOI, a baseline frame header of `w` x `h`, EOI. */
export function jpegHeaderOnly(w: number, h: number): Uint8Array {
  const sof = [0xff, 0xc0, 0, 17, 8, h >> 8, h & 0xff, w >> 8, w & 0xff, 3, 1, 0x11, 0, 2, 0x11, 0, 3, 0x11, 0];
  return Uint8Array.from([0xff, 0xd8, ...sof, 0xff, 0xd9]);
}

/** A tiny valid safetensors file (one F32 tensor of 4 values). */
export function smallSafetensors(): Uint8Array {
  return buildSafetensors([f32Tensor('w', [4], [0, 0, 0, 0])]);
}

/** The header of a safetensors file holding one F32 tensor of `bytes` bytes (data not included). */
export function bigSafetensorsHeader(bytes: number): Uint8Array {
  const header = enc.encode(JSON.stringify({ w: { dtype: 'F32', shape: [bytes / 4], data_offsets: [0, bytes] } }));
  const out = new Uint8Array(8 + header.length);
  new DataView(out.buffer).setUint32(0, header.length, true);
  out.set(header, 8);
  return out;
}

/**
 * A loopback server whose every answer ignores what was asked:
 *   /junk-after    200, chunked: a small valid file, then `bodyBytes` of zeros;
 *   /big           200 with Content-Length: a header for a `bodyBytes` tensor, then its zeros;
 *   /big-chunked   the same without Content-Length;
 *   /range-liar    206 with a Content-Range for the asked range, then `bodyBytes` of zeros.
 * Bodies are streamed from one zero buffer with backpressure; a client that hangs up stops them.
 */
export async function hostileServer(bodyBytes: number): Promise<{ url: string; sent: () => number; close: () => Promise<void> }> {
  let sent = 0;
  const zeros = new Uint8Array(MiB);
  const server: Server = createServer((req, res) => {
    const stream = (prefix: Uint8Array, total: number) => {
      let left = total;
      let stopped = false;
      res.on('close', () => void (stopped = true));
      res.write(prefix);
      sent += prefix.length;
      const pump = (): void => {
        while (left > 0 && !stopped) {
          const n = Math.min(left, zeros.length);
          left -= n;
          sent += n;
          if (!res.write(zeros.subarray(0, n))) return void res.once('drain', pump);
        }
        res.end();
      };
      pump();
    };
    const head = bigSafetensorsHeader(bodyBytes);
    switch (req.url) {
      case '/junk-after':
        res.writeHead(200);
        return stream(smallSafetensors(), bodyBytes);
      case '/big':
        res.writeHead(200, { 'content-length': head.length + bodyBytes });
        return stream(head, bodyBytes);
      case '/big-chunked':
        res.writeHead(200);
        return stream(head, bodyBytes);
      case '/range-liar': {
        const m = /bytes=(\d+)-(\d+)/.exec(req.headers.range ?? '');
        const total = head.length + bodyBytes;
        res.writeHead(206, { 'content-range': `bytes ${m?.[1] ?? 0}-${m?.[2] ?? total - 1}/${total}` });
        return stream(head, bodyBytes);
      }
      default:
        res.writeHead(404);
        res.end();
    }
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    sent: () => sent,
    close: () =>
      new Promise<void>((ok) => {
        server.closeAllConnections();
        server.close(() => ok());
      }),
  };
}
