#!/usr/bin/python3
"""Reference outputs of Pillow's Image.resize for test/image/pil-resize-pillow.test.ts.

Run with Debian's Pillow (python3-pil; the reference fixtures were made with Pillow 9.4.0, and so is
this file when run on Debian 12):

    /usr/bin/python3 tools/gen-pil-resize-fixtures.py

Needs only Pillow (no numpy). Reads the decoded photos from test/fixtures/images/decoded_rgb.safetensors
and writes test/fixtures/images/pil-resize-cases.safetensors:
  in.<name>   (H, W, C) U8 input images (seeded synthetic ones, the photos are referenced, not copied)
  out.<case>  (H, W, C) U8 Pillow output; for large outputs only every `row_stride`-th row is stored,
              and the sha256 of the full output is in the case list
  __metadata__: pillow / python versions, seed, and "cases" (JSON list: name, input, size, filter,
              box, row_stride, sha256).
"""
import hashlib
import json
import os
import platform
import random
import struct
import sys

import PIL
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PHOTOS = os.path.join(ROOT, "test/fixtures/images/decoded_rgb.safetensors")
OUT = os.path.join(ROOT, "test/fixtures/images/pil-resize-cases.safetensors")
SEED = 20240611
MODES = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}
FILTERS = {
    "box": Image.Resampling.BOX,
    "bilinear": Image.Resampling.BILINEAR,
    "hamming": Image.Resampling.HAMMING,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}


def read_safetensors(path):
    with open(path, "rb") as f:
        blob = f.read()
    n = struct.unpack("<Q", blob[:8])[0]
    header = json.loads(blob[8 : 8 + n])
    out = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        a, b = v["data_offsets"]
        out[k] = (v["dtype"], v["shape"], blob[8 + n + a : 8 + n + b])
    return out


def write_safetensors(path, tensors, metadata):
    header = {"__metadata__": metadata}
    offset = 0
    for name, (shape, data) in tensors.items():
        header[name] = {"dtype": "U8", "shape": shape, "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
    hbytes = json.dumps(header, separators=(",", ":")).encode()
    hbytes += b" " * ((8 - len(hbytes) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hbytes)))
        f.write(hbytes)
        for _, data in tensors.values():
            f.write(data)


def make_inputs(rng):
    """Synthetic inputs: (width, height, channels, bytes). Noise and hard edges make every tap count
    and push bicubic/lanczos past [0, 255] so the clipping is exercised."""
    ims = {}

    def noise(w, h, c):
        return bytes(rng.randrange(256) for _ in range(w * h * c))

    ims["rgb37x23"] = (37, 23, 3, noise(37, 23, 3))
    ims["l19x31"] = (19, 31, 1, noise(19, 31, 1))
    rgba = bytearray(noise(29, 17, 4))
    for x in range(29):  # fully transparent first row, opaque last row, the rest random alpha
        rgba[(0 * 29 + x) * 4 + 3] = 0
        rgba[(16 * 29 + x) * 4 + 3] = 255
    ims["rgba29x17"] = (29, 17, 4, bytes(rgba))
    ims["la13x11"] = (13, 11, 2, noise(13, 11, 2))
    ims["px1x1"] = (1, 1, 3, bytes([200, 10, 77]))
    ims["strip1x9"] = (1, 9, 3, noise(1, 9, 3))
    checker = bytearray()
    for y in range(40):
        for x in range(40):
            on = (x + y) % 2 == 0
            checker += bytes([255 if on else 0, 255 if on else 20, 230 if on else 0])
    ims["checker40x40"] = (40, 40, 3, bytes(checker))
    return ims


# (case, input, (w, h), filter, box, row_stride)
CASES = [
    ("rgb_up_bilinear", "rgb37x23", (100, 61), "bilinear", None, 1),
    ("rgb_up_bicubic", "rgb37x23", (100, 61), "bicubic", None, 1),
    ("rgb_up_lanczos", "rgb37x23", (100, 61), "lanczos", None, 1),
    ("rgb_up_hamming", "rgb37x23", (100, 61), "hamming", None, 1),
    ("rgb_up_box", "rgb37x23", (100, 61), "box", None, 1),
    ("rgb_up2x_bilinear", "rgb37x23", (74, 46), "bilinear", None, 1),
    ("rgb_down_bilinear", "rgb37x23", (7, 5), "bilinear", None, 1),
    ("rgb_down_bicubic", "rgb37x23", (7, 5), "bicubic", None, 1),
    ("rgb_down_lanczos", "rgb37x23", (7, 5), "lanczos", None, 1),
    ("rgb_down_box", "rgb37x23", (7, 5), "box", None, 1),
    ("rgb_to1x1_bilinear", "rgb37x23", (1, 1), "bilinear", None, 1),
    ("rgb_to1x1_bicubic", "rgb37x23", (1, 1), "bicubic", None, 1),
    ("rgb_vertical_only", "rgb37x23", (37, 11), "bicubic", None, 1),
    ("rgb_horizontal_only", "rgb37x23", (13, 23), "bilinear", None, 1),
    ("rgb_mixed_bicubic", "rgb37x23", (80, 9), "bicubic", None, 1),
    ("rgb_box_bilinear", "rgb37x23", (16, 9), "bilinear", (2.5, 1.25, 30.75, 20.5), 1),
    ("rgb_box_bicubic", "rgb37x23", (16, 9), "bicubic", (2.5, 1.25, 30.75, 20.5), 1),
    ("rgb_box_up_bicubic", "rgb37x23", (50, 40), "bicubic", (0.3, 0.7, 10.1, 8.9), 1),
    ("rgb_box_same_size", "rgb37x23", (37, 23), "bilinear", (0.5, 0.0, 36.5, 23.0), 1),
    ("rgb_box_crop", "rgb37x23", (10, 10), "bicubic", (3, 4, 13, 14), 1),
    ("rgb_box_int_up", "rgb37x23", (20, 20), "bilinear", (3, 4, 13, 14), 1),
    ("l_down_bicubic", "l19x31", (8, 13), "bicubic", None, 1),
    ("l_up_bilinear", "l19x31", (40, 70), "bilinear", None, 1),
    ("l_up_lanczos", "l19x31", (40, 70), "lanczos", None, 1),
    ("rgba_down_bilinear", "rgba29x17", (11, 7), "bilinear", None, 1),
    ("rgba_down_bicubic", "rgba29x17", (11, 7), "bicubic", None, 1),
    ("rgba_up_bicubic", "rgba29x17", (60, 40), "bicubic", None, 1),
    ("rgba_box_crop", "rgba29x17", (10, 8), "bilinear", (4, 5, 14, 13), 1),
    ("la_down_bilinear", "la13x11", (5, 4), "bilinear", None, 1),
    ("la_up_bicubic", "la13x11", (30, 20), "bicubic", None, 1),
    ("px_up_bilinear", "px1x1", (5, 3), "bilinear", None, 1),
    ("px_up_bicubic", "px1x1", (5, 3), "bicubic", None, 1),
    ("strip_up_bicubic", "strip1x9", (4, 20), "bicubic", None, 1),
    ("strip_down_bilinear", "strip1x9", (3, 2), "bilinear", None, 1),
    ("checker_down_bicubic", "checker40x40", (17, 17), "bicubic", None, 1),
    ("checker_down_lanczos", "checker40x40", (17, 17), "lanczos", None, 1),
    ("checker_down_bilinear", "checker40x40", (7, 7), "bilinear", None, 1),
    ("checker_up_bicubic", "checker40x40", (97, 53), "bicubic", None, 1),
    # The photos: extreme downscales, SAM's 1024 path, SAM-CLIP's squares, CLIP's 224 path.
    ("truck_to7x5_bilinear", "photo:truck", (7, 5), "bilinear", None, 1),
    ("truck_to7x5_bicubic", "photo:truck", (7, 5), "bicubic", None, 1),
    ("truck_sam1024_bilinear", "photo:truck", (1024, 683), "bilinear", None, 4),
    ("dog_sam1024_bilinear", "photo:dog", (1024, 683), "bilinear", None, 4),
    ("truck_sq448_bilinear", "photo:truck", (448, 448), "bilinear", None, 2),
    ("dog_sq224_bilinear", "photo:dog", (224, 224), "bilinear", None, 1),
    ("truck_clip224_bicubic", "photo:truck", (336, 224), "bicubic", None, 2),
    ("dog_clip224_bicubic", "photo:dog", (335, 224), "bicubic", None, 1),
    ("dog_box_lanczos", "photo:dog", (123, 77), "lanczos", (10.5, 20.25, 700.75, 500.5), 1),
]


def main():
    rng = random.Random(SEED)
    inputs = make_inputs(rng)
    photos = read_safetensors(PHOTOS)
    tensors = {}
    for name, (w, h, c, data) in inputs.items():
        tensors["in." + name] = ([h, w, c], data)
    cases = []
    for case, src, (ow, oh), filt, box, stride in CASES:
        if src.startswith("photo:"):
            _, shape, data = photos[src[6:]]
            h, w, c = shape
        else:
            w, h, c, data = inputs[src]
        im = Image.frombytes(MODES[c], (w, h), data)
        out = im.resize((ow, oh), FILTERS[filt], box=box).tobytes()
        assert len(out) == ow * oh * c, case
        rows = b"".join(out[y * ow * c : (y + 1) * ow * c] for y in range(0, oh, stride))
        tensors["out." + case] = ([len(range(0, oh, stride)), ow, c], rows)
        cases.append(
            {
                "name": case,
                "input": src,
                "size": [ow, oh],
                "filter": filt,
                "box": list(box) if box is not None else None,
                "row_stride": stride,
                "sha256": hashlib.sha256(out).hexdigest(),
            }
        )
    meta = {
        "generator": "tools/gen-pil-resize-fixtures.py",
        "pillow": PIL.__version__,
        "python": platform.python_version(),
        "seed": str(SEED),
        "photos": "test/fixtures/images/decoded_rgb.safetensors (keys truck, dog)",
        "cases": json.dumps(cases),
    }
    write_safetensors(OUT, tensors, meta)
    print(f"wrote {OUT}: {len(cases)} cases, Pillow {PIL.__version__}", file=sys.stderr)


if __name__ == "__main__":
    main()
