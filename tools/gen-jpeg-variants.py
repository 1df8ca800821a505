#!/usr/bin/python3
"""Small JPEG variants and Pillow's decode of each, for the Node decoder's exactness test
(test/io/decode-exact.test.ts).

Run on Debian 12 with Debian's packages (the versions that made the committed files):

    apt-get install python3-pil python3-numpy libjpeg-turbo-progs libjpeg62-turbo-dev gcc
    /usr/bin/python3 tools/gen-jpeg-variants.py

Pillow 9.4.0 on libjpeg-turbo 2.1.5 (Debian's libjpeg62-turbo, the library Pillow links), cjpeg /
jpegtran 2.1.5 (libjpeg-turbo-progs). The inputs are crops of test/fixtures/images/truck.jpg as
Pillow decodes it, plus a synthetic card of saturated colour edges (where the decoder's clamping and
chroma upsampling show). Each variant is written by Pillow, by cjpeg / jpegtran, or (YCCK, which
neither can write) by tools/jpeg-variants/write-ycck.c compiled here against the system libjpeg.

The expected pixels are what the library promises: `ImageOps.exif_transpose(im).convert('RGB')` -
the EXIF orientation applied like Pillow, then Pillow's conversion to RGB (greys replicated, CMYK
read with Adobe polarity as Pillow always does and converted with its formula).

Writes test/fixtures/images/jpeg-variants/<name>.jpg and expected.safetensors: one U8 (H, W, 3)
tensor per variant, named like the file; `__metadata__` holds the versions and the variant list
(name, how it was made, Pillow's mode and subsampling, EXIF orientation, sha256 of the .jpg).
"""
import hashlib
import json
import os
import platform
import re
import subprocess
import sys
import tempfile

import numpy as np
import PIL
from PIL import Image, ImageOps

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_io import write_safetensors  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRUCK = os.path.join(ROOT, 'test/fixtures/images/truck.jpg')
OUT = os.path.join(ROOT, 'test/fixtures/images/jpeg-variants')
YCCK_SRC = os.path.join(ROOT, 'tools/jpeg-variants/write-ycck.c')

# A 67x45 crop (odd sizes: partial MCUs at the right and bottom edges) of the truck's door, chosen
# for its strong chroma edges (purple stripes against white and dark).
CROP = (1152, 408, 1152 + 67, 408 + 45)


def photo():
    return Image.open(TRUCK).convert('RGB').crop(CROP)


def card(w=67, h=45):
    """Saturated colour bars with one-pixel transitions and a diagonal: chroma upsampling and the
    decoder's range clamping are exercised hardest here."""
    y, x = np.mgrid[0:h, 0:w]
    colours = np.array([[255, 0, 0], [0, 0, 255], [255, 255, 0], [0, 255, 0], [255, 0, 255], [0, 0, 0], [255, 255, 255], [0, 255, 255]])
    idx = ((x // 5) + (y // 7) + ((x + y) // 11)) % len(colours)
    return Image.fromarray(colours[idx].astype(np.uint8), 'RGB')


def to_cmyk(rgb):
    """CMYK with a real black channel (Pillow's own RGB->CMYK leaves K at 0), stored as Adobe
    software writes it: inverted. This is what Pillow's CMYK encoder writes for Image.fromarray(.., 'CMYK')."""
    a = np.asarray(rgb).astype(np.int32)
    k = 255 - a.max(axis=2)
    denom = np.maximum(255 - k, 1)
    cmy = ((255 - a - k[..., None]) * 255 + denom[..., None] // 2) // denom[..., None]
    cmy[k == 255] = 0
    return np.concatenate([cmy, k[..., None]], axis=2).clip(0, 255).astype(np.uint8)


def without_app14(data):
    """The JPEG with its Adobe APP14 segment removed (libjpeg then guesses CMYK from 4 components)."""
    i = 2
    out = bytearray(data[:2])
    while i < len(data):
        assert data[i] == 0xFF, 'marker expected'
        marker = data[i + 1]
        if marker == 0xDA:
            out += data[i:]
            break
        n = int.from_bytes(data[i + 2:i + 4], 'big')
        if not (marker == 0xEE and data[i + 4:i + 9] == b'Adobe'):
            out += data[i:i + 2 + n]
        i += 2 + n
    assert bytes(out) != data, 'no APP14 segment found'
    return bytes(out)


def wide_gamut_icc():
    """A matrix/TRC ICC v2 display profile with Adobe RGB (1998) primaries (D50-adapted) and gamma
    2.2, written here byte by byte: a JPEG carrying it must still decode to its stored RGB, as
    Pillow ignores embedded profiles (a colour-managing decoder would shift the colours)."""
    def s15(v):
        return int(round(v * 65536)).to_bytes(4, 'big', signed=True)

    def xyz(x, y, z):
        return b'XYZ ' + bytes(4) + s15(x) + s15(y) + s15(z)

    text = b'samclip test wide-gamut RGB\0'
    desc = b'desc' + bytes(4) + len(text).to_bytes(4, 'big') + text + bytes(4 + 4 + 2 + 1 + 67)
    curve = b'curv' + bytes(4) + (1).to_bytes(4, 'big') + (563).to_bytes(2, 'big') + bytes(2)  # gamma 563/256
    tags = [
        (b'desc', desc),
        (b'cprt', b'text' + bytes(4) + b'public domain\0'),
        (b'wtpt', xyz(0.9642, 1.0, 0.8249)),
        (b'rXYZ', xyz(0.6097, 0.3111, 0.0195)),
        (b'gXYZ', xyz(0.2053, 0.6257, 0.0609)),
        (b'bXYZ', xyz(0.1492, 0.0632, 0.7446)),
        (b'rTRC', curve), (b'gTRC', curve), (b'bTRC', curve),
    ]
    offset = 128 + 4 + 12 * len(tags)
    table, body = b'', b''
    for sig, data in tags:
        data += bytes((4 - len(data) % 4) % 4)
        table += sig + (offset + len(body)).to_bytes(4, 'big') + len(data).to_bytes(4, 'big')
        body += data
    size = offset + len(body)
    header = (size.to_bytes(4, 'big') + bytes(4) + bytes([2, 0x10, 0, 0]) + b'mntrRGB XYZ ' + bytes(12) + b'acsp'
              + bytes(4 * 4 + 8 + 4) + s15(0.9642) + s15(1.0) + s15(0.8249) + bytes(4 + 44))
    assert len(header) == 128
    return header + len(tags).to_bytes(4, 'big') + table + body


def flip_entropy_bytes(data):
    """Two bytes in the middle of the entropy-coded scan changed (never into or next to a 0xFF, so no
    marker appears or vanishes): libjpeg warns "Corrupt JPEG data: bad Huffman code" and goes on,
    and so does Pillow; the garbage it then decodes is deterministic."""
    sos = data.index(b'\xff\xda')
    m = sos + (len(data) - sos) // 2
    out = bytearray(data)
    for i, x in ((m, 0x55), (m + 1, 0x33)):
        assert 0xFF not in (out[i - 1], out[i], out[i] ^ x, out[i + 1])
        out[i] ^= x
    return bytes(out)


def exif_with_orientation(o):
    exif = Image.Exif()
    exif[0x0112] = o
    return exif.tobytes()


def run(cmd, stdin=None):
    return subprocess.run(cmd, input=stdin, stdout=subprocess.PIPE, check=True).stdout


def pil_bytes(img, **kw):
    path = os.path.join(TMP, 'pil.jpg')
    img.save(path, 'JPEG', **kw)
    with open(path, 'rb') as f:
        return f.read()


def ppm(img):
    path = os.path.join(TMP, 'in.ppm')
    img.save(path)
    return path


def variants():
    p = photo()
    c = card()
    q = {'quality': 90}
    yield 'pil-444', 'Pillow, baseline, 4:4:4, quality 90', pil_bytes(p, subsampling=0, **q)
    yield 'pil-422', 'Pillow, baseline, 4:2:2, quality 90', pil_bytes(p, subsampling=1, **q)
    yield 'pil-420', 'Pillow, baseline, 4:2:0, quality 90', pil_bytes(p, subsampling=2, **q)
    yield 'pil-444-progressive', 'Pillow, progressive, 4:4:4, quality 90', pil_bytes(p, subsampling=0, progressive=True, **q)
    yield 'pil-420-progressive', 'Pillow, progressive, 4:2:0, quality 90', pil_bytes(p, subsampling=2, progressive=True, **q)
    yield 'pil-grey', 'Pillow, baseline, greyscale, quality 90', pil_bytes(p.convert('L'), **q)
    yield 'pil-grey-progressive', 'Pillow, progressive, greyscale, quality 90', pil_bytes(p.convert('L'), progressive=True, **q)
    yield 'card-444', 'Pillow, synthetic saturated bars, 4:4:4, quality 95', pil_bytes(c, subsampling=0, quality=95)
    yield 'card-422', 'Pillow, synthetic saturated bars, 4:2:2, quality 95', pil_bytes(c, subsampling=1, quality=95)
    yield 'card-420', 'Pillow, synthetic saturated bars, 4:2:0, quality 75', pil_bytes(c, subsampling=2, quality=75)
    yield 'icc-wide-gamut', 'Pillow, 4:2:0, quality 90, embedded Adobe-RGB-primaries ICC profile (ignored by Pillow)', pil_bytes(p, subsampling=2, icc_profile=wide_gamut_icc(), **q)
    yield 'corrupt-huffman', 'pil-420 with two entropy-coded bytes changed mid-scan (libjpeg warns, Pillow decodes anyway)', flip_entropy_bytes(pil_bytes(p, subsampling=2, **q))
    yield 'tiny-420', 'Pillow, 17x9 crop (smaller than two MCUs), 4:2:0, quality 90', pil_bytes(p.crop((20, 18, 37, 27)), subsampling=2, **q)
    cmyk = pil_bytes(Image.fromarray(to_cmyk(p), 'CMYK'), **q)
    yield 'cmyk-adobe', 'Pillow, CMYK (Adobe APP14 marker, transform 0, inverted values), quality 90', cmyk
    yield 'cmyk-no-adobe', 'cmyk-adobe with its APP14 segment removed (Pillow still reads Adobe polarity)', without_app14(cmyk)
    raw = os.path.join(TMP, 'in.cmyk')
    with open(raw, 'wb') as f:
        f.write(to_cmyk(p).tobytes())
    ycck = os.path.join(TMP, 'ycck.jpg')
    run([WRITE_YCCK, str(p.width), str(p.height), '90', raw, ycck])
    with open(ycck, 'rb') as f:
        yield 'ycck-adobe', 'write-ycck.c: YCCK (Adobe transform 2, as Photoshop saves CMYK), inverted values, quality 90', f.read()
    src = ppm(p)
    yield 'cjpeg-restart-rows', 'cjpeg -quality 85 -restart 1 (a restart marker every MCU row), 4:2:0', run(['cjpeg', '-quality', '85', '-restart', '1', src])
    yield 'cjpeg-restart-blocks', 'cjpeg -quality 85 -restart 3B (every 3 MCUs), 4:2:0', run(['cjpeg', '-quality', '85', '-restart', '3B', src])
    yield 'cjpeg-progressive-restart', 'cjpeg -quality 85 -progressive -restart 1B, 4:2:0', run(['cjpeg', '-quality', '85', '-progressive', '-restart', '1B', src])
    yield 'cjpeg-440', 'cjpeg -quality 85 -sample 1x2 (4:4:0)', run(['cjpeg', '-quality', '85', '-sample', '1x2', src])
    yield 'cjpeg-411', 'cjpeg -quality 85 -sample 4x1 (4:1:1)', run(['cjpeg', '-quality', '85', '-sample', '4x1', src])
    yield 'cjpeg-arithmetic', 'cjpeg -quality 85 -arithmetic, 4:2:0', run(['cjpeg', '-quality', '85', '-arithmetic', src])
    yield 'cjpeg-rgb', 'cjpeg -quality 85 -rgb (RGB stored without colour transform, Adobe transform 0)', run(['cjpeg', '-quality', '85', '-rgb', src])
    yield 'cjpeg-grey-restart', 'cjpeg -quality 85 -grayscale -restart 1', run(['cjpeg', '-quality', '85', '-grayscale', '-restart', '1', src])
    yield 'jpegtran-422-progressive', 'jpegtran -progressive of pil-422 (lossless re-encode)', run(['jpegtran', '-progressive'], pil_bytes(p, subsampling=1, **q))
    yield 'jpegtran-420-restart', 'jpegtran -restart 2B of pil-420', run(['jpegtran', '-restart', '2B'], pil_bytes(p, subsampling=2, **q))
    for o in range(1, 9):
        yield f'exif-{o}', f'Pillow, baseline 4:2:0, quality 90, EXIF Orientation {o}', pil_bytes(p, subsampling=2, exif=exif_with_orientation(o), **q)


def main():
    global TMP, WRITE_YCCK
    with tempfile.TemporaryDirectory() as TMP:
        WRITE_YCCK = os.path.join(TMP, 'write-ycck')
        run(['gcc', '-O2', '-o', WRITE_YCCK, YCCK_SRC, '-ljpeg'])
        os.makedirs(OUT, exist_ok=True)
        tensors = {}
        listing = []
        for name, how, data in variants():
            path = os.path.join(OUT, f'{name}.jpg')
            with open(path, 'wb') as f:
                f.write(data)
            with Image.open(path) as im:
                mode = im.mode
                layers = [list(x) for x in getattr(im, 'layer', [])]
                progressive = bool(im.info.get('progressive') or im.info.get('progression'))
                orientation = im.getexif().get(0x0112, 1)
                shown = ImageOps.exif_transpose(im).convert('RGB')
            tensors[name] = np.asarray(shown, dtype=np.uint8)
            listing.append({
                'name': name, 'how': how, 'pillow_mode': mode, 'layers': layers, 'progressive': progressive,
                'orientation': orientation, 'sha256': hashlib.sha256(data).hexdigest(),
            })
            print(f'{name:26s} {len(data):6d} B  {mode:5s} {tensors[name].shape}  orientation {orientation}  {how}')
    cjpeg = subprocess.run(['cjpeg', '-version'], capture_output=True, check=True).stderr.decode()
    meta = {
        'script': 'tools/gen-jpeg-variants.py',
        'pillow': PIL.__version__,
        'libjpeg_turbo': re.search(r'version (\S+)', cjpeg).group(1),
        'python': platform.python_version(),
        'numpy': np.__version__,
        'variants': json.dumps(listing),
    }
    write_safetensors(os.path.join(OUT, 'expected.safetensors'), tensors, meta)
    print(f'{len(listing)} variants, metadata {meta["pillow"]} / libjpeg-turbo {meta["libjpeg_turbo"]}')


if __name__ == '__main__':
    main()
