#!/usr/bin/python3
"""Write small PyTorch `.pth` checkpoints (torch.save zip format) and the values torch itself reads
back, so the TypeScript `.pth` reader can be tested bit for bit without Python at test time.

Usage:
  /usr/bin/python3 tools/make-pth-fixture.py                 # writes test/fixtures/pth/
  /usr/bin/python3 tools/make-pth-fixture.py --sam-vit b OUT.pth   # synthetic full-size checkpoint
                                                                  # (random values, SAM key names and
                                                                  # shapes) for throughput/memory runs;
                                                                  # never committed

Needs Debian's python3-torch (`flock /tmp/apt.lock apt-get install -y python3-torch`).

What the small fixtures cover: F32/F16/BF16/F64/I64/I32/U8/BOOL storages, special values
(NaN, +-Inf, -0, subnormals), a transposed (non-contiguous) tensor, an expanded tensor (stride 0),
three views of one storage with offsets and strides, a 0-d scalar, an empty tensor, a state dict
nested under 'model' and under 'state_dict' next to plain Python values (big ints -> LONG1, floats ->
BINFLOAT, lists, None, bools), a pickle-protocol-4 variant (FRAME, SHORT_BINUNICODE, MEMOIZE,
STACK_GLOBAL) and a legacy (pre-zip) file that the reader must refuse with a clear message.
"""

import argparse
import base64
import collections
import json
import os
import platform
import sys
import zipfile

import numpy
import torch

SEED = 20240613
HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.join(HERE, '..', 'test', 'fixtures', 'pth')

ST_DTYPE = {
    torch.float64: 'F64', torch.float32: 'F32', torch.float16: 'F16', torch.bfloat16: 'BF16',
    torch.int64: 'I64', torch.int32: 'I32', torch.int16: 'I16', torch.int8: 'I8',
    torch.uint8: 'U8', torch.bool: 'BOOL',
}
FLOATS = (torch.float64, torch.float32, torch.float16, torch.bfloat16)


def raw_bytes(t):
    """Contiguous little-endian bytes of t, as torch lays them out (bf16 through an int16 view)."""
    t = t.contiguous()
    if t.dtype == torch.bfloat16:
        t = t.view(torch.int16)
    return t.numpy().tobytes()


def b64(data):
    return base64.b64encode(data).decode('ascii')


def small_state_dict():
    g = torch.Generator().manual_seed(SEED)
    sd = collections.OrderedDict()
    special = [float('nan'), float('inf'), float('-inf'), -0.0, 1e-40, 6e-8, 3e-5, 65504.0, -1e-9, 1.0 / 3.0]

    sd['image_encoder.pos_embed'] = torch.randn(1, 3, 3, 8, generator=g)
    qkv = torch.randn(12, 8, generator=g) * 3
    qkv.view(-1)[:len(special)] = torch.tensor(special)
    sd['image_encoder.blocks.0.attn.qkv.weight'] = qkv
    sd['image_encoder.blocks.0.attn.qkv.bias'] = torch.randn(12, generator=g)
    rel = torch.randn(7, 4, generator=g).half()
    rel.view(-1)[:6] = torch.tensor([float('nan'), float('-inf'), -0.0, 6e-8, 65504.0, -3e-5]).half()
    sd['image_encoder.blocks.0.attn.rel_pos_h'] = rel
    neck = (torch.randn(6, 8, 1, 1, generator=g) * 100).bfloat16()
    neck.view(-1)[:5] = torch.tensor([float('nan'), float('inf'), -0.0, 1e-40, 6.0e4]).bfloat16()
    sd['image_encoder.neck.0.weight'] = neck
    # Non-contiguous: a transposed Linear weight (stride (1, 7)).
    sd['mask_decoder.output_hypernetworks_mlps.0.layers.0.weight'] = torch.randn(5, 7, generator=g).t()
    # Expanded: stride 0 along the first dimension, storage holds only 3 values.
    sd['prompt_encoder.not_a_point_embed.weight'] = torch.randn(3, generator=g).expand(4, 3)
    # Three views of one storage: a row slice (offset 6), a strided column (offset 2, stride 6) and
    # the whole base; torch.save writes the storage once.
    base = torch.randn(4, 6, generator=g)
    sd['prompt_encoder.pe_layer.positional_encoding_gaussian_matrix'] = base[1:3]
    sd['prompt_encoder.point_embeddings.0.weight'] = base[:, 2]
    sd['prompt_encoder.point_embeddings.1.weight'] = base
    sd['mask_decoder.iou_scale'] = torch.tensor(2.5)  # 0-d scalar
    sd['mask_decoder.empty'] = torch.empty(0, 4)  # zero elements
    sd['clip_head.logit_scale'] = torch.tensor([4.6051701859880914], dtype=torch.float64)
    sd['image_encoder.neck.1.num_batches_tracked'] = torch.tensor(7)  # int64 0-d
    sd['text.token_ids'] = torch.tensor([[49406, 320, -5, 2147483647]], dtype=torch.int32)
    sd['text.mask'] = torch.tensor([0, 1, 255, 7], dtype=torch.uint8)
    sd['text.causal'] = torch.tensor([[True, False], [True, True]])
    # nn.Module.state_dict() attaches this attribute; it pickles as a BUILD on the OrderedDict.
    sd._metadata = collections.OrderedDict([('', {'version': 1}), ('image_encoder', {'version': 1})])
    return sd


def describe(sd):
    out = []
    for name, t in sd.items():
        entry = {
            'name': name,
            'dtype': ST_DTYPE[t.dtype],
            'shape': list(t.shape),
            'stride': list(t.stride()),
            'storage_offset': t.storage_offset(),
            'contiguous': t.is_contiguous(),
            'bytes': b64(raw_bytes(t)),
        }
        if t.dtype in FLOATS:
            entry['as_f32'] = b64(raw_bytes(t.float()))
            entry['as_f16'] = b64(raw_bytes(t.half()))
        out.append(entry)
    return out


def zip_names(path):
    with zipfile.ZipFile(path) as z:
        return [(i.filename, i.compress_type, i.file_size) for i in z.infolist()]


def write_small(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    sd = small_state_dict()
    files = {}

    def save(name, obj, **kw):
        path = os.path.join(out_dir, name)
        torch.save(obj, path, **kw)
        files[name] = kw
        return path

    save('state-dict.pth', sd)
    save('nested-model.pth', collections.OrderedDict([
        ('model', sd), ('epoch', 3), ('step', 2 ** 40), ('big_neg', -2 ** 45), ('lr', 1e-4),
        ('flags', [True, False, None]), ('name', 'sam'), ('nested', {'a': (1, 2, 3)}),
    ]))
    save('nested-state-dict.pth', {'state_dict': sd, 'epoch': 300, 'global_step': 123456, 'delta': -5})
    save('protocol4.pth', sd, pickle_protocol=4)
    save('legacy.pth', sd, _use_new_zipfile_serialization=False)

    # Read every file back with torch and check it equals what we saved, so the expected values
    # below are what torch itself loads.
    for name in files:
        loaded = torch.load(os.path.join(out_dir, name))
        inner = loaded.get('model', loaded.get('state_dict', loaded))
        for k, t in sd.items():
            r = inner[k]
            assert r.dtype == t.dtype and r.shape == t.shape and raw_bytes(r) == raw_bytes(t), (name, k)

    expected = {
        'generated_by': 'tools/make-pth-fixture.py',
        'seed': SEED,
        'torch_version': torch.__version__,
        'numpy_version': numpy.__version__,
        'python_version': platform.python_version(),
        'files': {
            name: {
                'save_kwargs': {k: v for k, v in kw.items()},
                'zip_entries': None if kw.get('_use_new_zipfile_serialization') is False else
                [list(e) for e in zip_names(os.path.join(out_dir, name))],
            }
            for name, kw in files.items()
        },
        'nested_prefix': {'nested-model.pth': 'model', 'nested-state-dict.pth': 'state_dict'},
        'tensors': describe(sd),
    }
    with open(os.path.join(out_dir, 'expected.json'), 'w') as f:
        json.dump(expected, f, indent=1)
        f.write('\n')
    print('wrote', sorted(files), 'and expected.json to', os.path.normpath(out_dir))


def sam_state_dict(variant):
    """Random tensors with the official SAM checkpoint's key names and shapes (ViT-B/L/H)."""
    width, depth, heads, glob = {
        'b': (768, 12, 12, (2, 5, 8, 11)),
        'l': (1024, 24, 16, (5, 11, 17, 23)),
        'h': (1280, 32, 16, (7, 15, 23, 31)),
    }[variant]
    head_dim = width // heads
    sd = collections.OrderedDict()

    def p(name, *shape):
        sd[name] = torch.randn(*shape) * 0.02

    p('image_encoder.pos_embed', 1, 64, 64, width)
    p('image_encoder.patch_embed.proj.weight', width, 3, 16, 16)
    p('image_encoder.patch_embed.proj.bias', width)
    for i in range(depth):
        b = f'image_encoder.blocks.{i}.'
        rel = 2 * 64 - 1 if i in glob else 2 * 14 - 1
        p(b + 'norm1.weight', width); p(b + 'norm1.bias', width)
        p(b + 'attn.qkv.weight', 3 * width, width); p(b + 'attn.qkv.bias', 3 * width)
        p(b + 'attn.proj.weight', width, width); p(b + 'attn.proj.bias', width)
        p(b + 'attn.rel_pos_h', rel, head_dim); p(b + 'attn.rel_pos_w', rel, head_dim)
        p(b + 'norm2.weight', width); p(b + 'norm2.bias', width)
        p(b + 'mlp.lin1.weight', 4 * width, width); p(b + 'mlp.lin1.bias', 4 * width)
        p(b + 'mlp.lin2.weight', width, 4 * width); p(b + 'mlp.lin2.bias', width)
    p('image_encoder.neck.0.weight', 256, width, 1, 1)
    p('image_encoder.neck.1.weight', 256); p('image_encoder.neck.1.bias', 256)
    p('image_encoder.neck.2.weight', 256, 256, 3, 3)
    p('image_encoder.neck.3.weight', 256); p('image_encoder.neck.3.bias', 256)
    p('prompt_encoder.pe_layer.positional_encoding_gaussian_matrix', 2, 128)
    for i in range(4):
        p(f'prompt_encoder.point_embeddings.{i}.weight', 1, 256)
    p('prompt_encoder.not_a_point_embed.weight', 1, 256)
    for name, shape in (('0', (4, 1, 2, 2)), ('1', (4,)), ('3', (16, 4, 2, 2)), ('4', (16,)),
                        ('6', (256, 16, 1, 1))):
        p(f'prompt_encoder.mask_downscaling.{name}.weight', *shape)
        p(f'prompt_encoder.mask_downscaling.{name}.bias', shape[0])
    p('prompt_encoder.no_mask_embed.weight', 1, 256)
    t = 'mask_decoder.transformer.'
    for i in range(2):
        l = f'{t}layers.{i}.'
        for proj in 'qkv':
            p(f'{l}self_attn.{proj}_proj.weight', 256, 256); p(f'{l}self_attn.{proj}_proj.bias', 256)
        p(l + 'self_attn.out_proj.weight', 256, 256); p(l + 'self_attn.out_proj.bias', 256)
        for n in range(1, 5):
            p(f'{l}norm{n}.weight', 256); p(f'{l}norm{n}.bias', 256)
        for a in ('cross_attn_token_to_image', 'cross_attn_image_to_token'):
            for proj in 'qkv':
                p(f'{l}{a}.{proj}_proj.weight', 128, 256); p(f'{l}{a}.{proj}_proj.bias', 128)
            p(f'{l}{a}.out_proj.weight', 256, 128); p(f'{l}{a}.out_proj.bias', 256)
        p(l + 'mlp.lin1.weight', 2048, 256); p(l + 'mlp.lin1.bias', 2048)
        p(l + 'mlp.lin2.weight', 256, 2048); p(l + 'mlp.lin2.bias', 256)
    for proj in 'qkv':
        p(f'{t}final_attn_token_to_image.{proj}_proj.weight', 128, 256)
        p(f'{t}final_attn_token_to_image.{proj}_proj.bias', 128)
    p(t + 'final_attn_token_to_image.out_proj.weight', 256, 128)
    p(t + 'final_attn_token_to_image.out_proj.bias', 256)
    p(t + 'norm_final_attn.weight', 256); p(t + 'norm_final_attn.bias', 256)
    p('mask_decoder.iou_token.weight', 1, 256)
    p('mask_decoder.mask_tokens.weight', 4, 256)
    p('mask_decoder.output_upscaling.0.weight', 256, 64, 2, 2); p('mask_decoder.output_upscaling.0.bias', 64)
    p('mask_decoder.output_upscaling.1.weight', 64); p('mask_decoder.output_upscaling.1.bias', 64)
    p('mask_decoder.output_upscaling.3.weight', 64, 32, 2, 2); p('mask_decoder.output_upscaling.3.bias', 32)
    for m in range(4):
        for j, (o, i) in enumerate(((256, 256), (256, 256), (32, 256))):
            p(f'mask_decoder.output_hypernetworks_mlps.{m}.layers.{j}.weight', o, i)
            p(f'mask_decoder.output_hypernetworks_mlps.{m}.layers.{j}.bias', o)
    for j, (o, i) in enumerate(((256, 256), (256, 256), (4, 256))):
        p(f'mask_decoder.iou_prediction_head.layers.{j}.weight', o, i)
        p(f'mask_decoder.iou_prediction_head.layers.{j}.bias', o)
    return sd


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--out', default=DEFAULT_OUT, help='output folder for the small fixtures')
    ap.add_argument('--sam-vit', nargs=2, metavar=('VARIANT', 'PATH'),
                    help='write a synthetic full-size SAM checkpoint (variant b, l or h) to PATH instead')
    args = ap.parse_args()
    if args.sam_vit:
        variant, path = args.sam_vit
        torch.manual_seed(SEED)
        sd = sam_state_dict(variant)
        torch.save(sd, path)
        n = sum(t.numel() for t in sd.values())
        print(f'wrote {path}: {len(sd)} tensors, {n} parameters, {os.path.getsize(path)} bytes '
              f'(torch {torch.__version__}, seed {SEED})')
        return
    write_small(args.out)


if __name__ == '__main__':
    sys.exit(main())
