"""Minimal safetensors reading and writing with numpy, shared by the fixture and export scripts in tools/.

(The engine has its own strict TypeScript reader; these scripts only need the plain format.)
"""
import json
import struct

import numpy as np

DTYPES = {'F32': '<f4', 'F16': '<f2', 'I32': '<i4', 'I64': '<i8', 'U8': 'u1'}


def read_safetensors(path, float32=False):
    """(tensors, metadata), arrays in their stored dtype (BF16 widened to float32; unknown dtypes skipped).
    float32=True: only the float tensors, all as float32."""
    with open(path, 'rb') as f:
        n = struct.unpack('<Q', f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    meta = header.pop('__metadata__', {})
    out = {}
    for k, e in header.items():
        b, end = e['data_offsets']
        raw = data[b:end]
        if e['dtype'] == 'BF16':
            a = (np.frombuffer(raw, dtype='<u2').astype(np.uint32) << 16).view(np.float32)
        elif e['dtype'] in DTYPES and (e['dtype'] in ('F32', 'F16') or not float32):
            a = np.frombuffer(raw, dtype=DTYPES[e['dtype']])
            if float32:
                a = a.astype(np.float32)
        else:
            continue
        out[k] = a.reshape(e['shape']).copy()
    return out, meta


def write_safetensors(path, tensors, metadata, dtype=None):
    """Tensors in name order; dtype='F32' converts every array to float32, None keeps each array's dtype."""
    names = {np.dtype(v): k for k, v in DTYPES.items()}
    header = {'__metadata__': metadata}
    blobs = []
    off = 0
    for k in sorted(tensors):
        a = np.ascontiguousarray(tensors[k], dtype=DTYPES[dtype] if dtype else None)
        header[k] = {'dtype': names[a.dtype], 'shape': list(a.shape), 'data_offsets': [off, off + a.nbytes]}
        blobs.append(a.tobytes())
        off += a.nbytes
    text = json.dumps(header, separators=(',', ':')).encode()
    text += b' ' * ((8 - len(text) % 8) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)
