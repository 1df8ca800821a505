#!/usr/bin/python3
"""pycocotools' compressed RLE, area and bbox of fixed masks, for test/pipelines/coco-rle.test.ts.

Needs numpy and pycocotools (its own C implementation of encode / rleToString / area / toBbox is
the reference). Debian has no pycocotools package; the committed file was made with pycocotools
2.0.11 (the cp311 manylinux wheel, unzipped onto PYTHONPATH) and Debian's Python 3.11.2 / numpy
1.24.2:

    PYTHONPATH=/path/to/pycocotools-wheel /usr/bin/python3 tools/gen-coco-rle-fixtures.py

Writes test/fixtures/coco/rle-cases.safetensors: per case `mask.<name>`, the row-major H x W mask
packed 8 pixels a byte (np.packbits, big-endian bit order); `__metadata__.cases` is a JSON list of
{name, size: [h, w], counts (the string pycocotools.mask.encode returns for
np.asfortranarray(mask)), area (mask.area), bbox (mask.toBbox)}. Seed 20241107.
"""
import json
import os
import platform
import sys

import numpy as np
from pycocotools import mask as mask_utils

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_io import write_safetensors  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, 'test/fixtures/coco/rle-cases.safetensors')
SEED = 20241107


def cases(rng):
    def z(h, w):
        return np.zeros((h, w), np.uint8)

    yield 'empty', z(5, 7)
    yield 'full', z(5, 7) + 1
    yield 'one-pixel', z(1, 1) + 1
    yield 'one-pixel-empty', z(1, 1)
    m = z(6, 9); m[0, 0] = 1
    yield 'top-left', m
    m = z(6, 9); m[5, 8] = 1
    yield 'bottom-right', m
    m = z(6, 9); m[3, 4] = 1
    yield 'middle-pixel', m
    m = z(1, 17); m[0, 3:11] = 1
    yield 'row', m
    m = z(17, 1); m[3:11, 0] = 1
    yield 'column', m
    m = z(5, 7); m[1:3, 2:5] = 1
    yield 'box', m
    # A run of 1s that goes from the bottom of one column into the top of the next.
    m = z(6, 9); m[4:, 2] = 1; m[:2, 3] = 1
    yield 'wrapping-run', m
    yield 'checkerboard', (np.indices((9, 11)).sum(0) % 2).astype(np.uint8)
    yield 'stripes', (np.arange(13)[None, :].repeat(8, 0) % 3 == 0).astype(np.uint8)
    for h, w, p in ((37, 53, 0.1), (37, 53, 0.5), (48, 64, 0.9), (3, 200, 0.5)):
        yield f'random-{h}x{w}-p{p}', (rng.random((h, w)) < p).astype(np.uint8)
    # Long runs (counts past 2^5, 2^10, 2^15: multi-character numbers) and large negative differences.
    m = z(480, 640)
    m[40:400, 100:600] = 1
    m[200:210, :] = 0
    m[:, 300:302] = 1
    yield 'large-boxes', m
    y, x = np.indices((480, 640))
    yield 'large-disc-and-line', (((x - 320) ** 2 + (y - 240) ** 2 < 150 ** 2) | (abs(x - y) < 2)).astype(np.uint8)
    m = z(300, 200)
    m[rng.integers(0, 300, 40), rng.integers(0, 200, 40)] = 1
    yield 'sparse-points', m


def main():
    rng = np.random.default_rng(SEED)
    tensors = {}
    listing = []
    for name, m in cases(rng):
        rle = mask_utils.encode(np.asfortranarray(m))
        listing.append({
            'name': name,
            'size': [int(v) for v in rle['size']],
            'counts': rle['counts'].decode('ascii'),
            'area': int(mask_utils.area(rle)),
            'bbox': [float(v) for v in mask_utils.toBbox(rle)],
        })
        tensors[f'mask.{name}'] = np.packbits(m.reshape(-1))
        print(f"{name:24s} {m.shape}  area {listing[-1]['area']:6d}  bbox {listing[-1]['bbox']}  counts {listing[-1]['counts'][:40]}")
    import pycocotools
    meta = {
        'script': 'tools/gen-coco-rle-fixtures.py',
        'pycocotools': getattr(pycocotools, '__version__', None) or _dist_version('pycocotools'),
        'numpy': np.__version__,
        'python': platform.python_version(),
        'seed': str(SEED),
        'cases': json.dumps(listing),
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    write_safetensors(OUT, tensors, meta)
    print(f'{len(listing)} cases, pycocotools {meta["pycocotools"]} -> {OUT}')


def _dist_version(name):
    from importlib.metadata import version
    return version(name)


if __name__ == '__main__':
    main()
