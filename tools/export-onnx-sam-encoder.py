#!/usr/bin/python3
"""Export SAM's image encoder to ONNX (opset 17) from a safetensors checkpoint (official names).

A PyTorch re-implementation of segment_anything/modeling/image_encoder.py (ImageEncoderViT, Block,
Attention, window_partition / window_unpartition, get_rel_pos, add_decomposed_rel_pos) and
common.py (LayerNorm2d, MLPBlock) at facebookresearch/segment-anything commit
dca509fe793f601edb92606367a655c15ac00fdf, written from a reading of that code (the official package
is not installable here). Two deliberate differences in *form*, not in arithmetic:
  * the decomposed relative-position terms use batched MatMul instead of einsum (the same sums),
    so every runtime's WebGPU provider has the op;
  * inputs of another size than the model's are accepted: the absolute position table is resized
    with F.interpolate(bicubic, align_corners=False) to the token grid, as the engine does
    (DESIGN.md section 5), and global blocks' tables with get_rel_pos's linear resize.
The graph has two outputs: `image_embedding` (NCHW, after the neck) and `tokens` (BHWC, before it).

Usage:
  tools/export-onnx-sam-encoder.py fixtures        # the committed test fixtures (tiny models)
  tools/export-onnx-sam-encoder.py export W.safetensors OUT.onnx [--size 1024] [--io IO.safetensors]

`fixtures` writes test/fixtures/onnx/sam-encoder/: `sam_tiny_encoder_256.onnx` (sam_tiny weights, 256 px),
`samclip_tiny_backbone_160.onnx` (the SAM-CLIP bundle's backbone at 160 px: resized tables, padded
windows), `io.safetensors` (seeded inputs and the PyTorch outputs) and `export.json` (versions, seeds,
and the check of this re-implementation against the reference fixtures, which must pass).
"""
import json
import math
import os
import sys

import numpy as np
import torch
import onnx_legacy_export  # noqa: F401  (TorchScript exporter on torch >= 2.9 too)
import torch.nn as nn
import torch.nn.functional as F

from safetensors_io import read_safetensors, write_safetensors

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
REF = os.path.join(ROOT, 'test', 'fixtures', 'reference')
OUT = os.path.join(ROOT, 'test', 'fixtures', 'onnx', 'sam-encoder')
OPSET = 17
EPS = 1e-6


# ---------------------------------------------------------------------------- safetensors

# ---------------------------------------------------------------------------- the model

def rel_table(table, size):
    """Rows R[i - j + size - 1] for query i and key j (equal query/key sizes): [size, size, D]."""
    rows = 2 * size - 1
    if table.shape[0] != rows:
        t = table.reshape(1, table.shape[0], -1).permute(0, 2, 1)
        table = F.interpolate(t, size=rows, mode='linear').reshape(-1, rows).permute(1, 0)
    idx = torch.arange(size)[:, None] - torch.arange(size)[None, :] + (size - 1)
    return table[idx]


class Attention(nn.Module):
    def __init__(self, dim, heads, rel_size):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.rel_pos_h = nn.Parameter(torch.zeros(2 * rel_size - 1, dim // heads))
        self.rel_pos_w = nn.Parameter(torch.zeros(2 * rel_size - 1, dim // heads))

    def forward(self, x):
        B, H, W, C = x.shape
        nh, hd = self.heads, C // self.heads
        qkv = self.qkv(x).reshape(B, H * W, 3, nh, hd).permute(2, 0, 3, 1, 4).reshape(3, B * nh, H * W, hd)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = (q * hd ** -0.5) @ k.transpose(-2, -1)
        # Decomposed relative position from the unscaled q, as batched MatMuls over query rows / columns.
        Rh = rel_table(self.rel_pos_h, H)  # [H, Hk, D]
        Rw = rel_table(self.rel_pos_w, W)  # [W, Wk, D]
        r = q.reshape(B * nh, H, W, hd)
        rel_h = (r.permute(1, 0, 2, 3).reshape(H, B * nh * W, hd) @ Rh.transpose(1, 2)).reshape(H, B * nh, W, H).permute(1, 0, 2, 3)
        rel_w = (r.permute(2, 0, 1, 3).reshape(W, B * nh * H, hd) @ Rw.transpose(1, 2)).reshape(W, B * nh, H, W).permute(1, 2, 0, 3)
        attn = attn.view(B * nh, H, W, H, W) + rel_h[:, :, :, :, None] + rel_w[:, :, :, None, :]
        attn = attn.view(B * nh, H * W, H * W).softmax(dim=-1)
        out = (attn @ v).view(B, nh, H, W, hd).permute(0, 2, 3, 1, 4).reshape(B, H, W, C)
        return self.proj(out)


def window_partition(x, ws):
    B, H, W, C = x.shape
    ph, pw = (ws - H % ws) % ws, (ws - W % ws) % ws
    if ph or pw:
        x = F.pad(x, (0, 0, 0, pw, 0, ph))
    Hp, Wp = H + ph, W + pw
    x = x.view(B, Hp // ws, ws, Wp // ws, ws, C).permute(0, 1, 3, 2, 4, 5).reshape(-1, ws, ws, C)
    return x, (Hp, Wp)


def window_unpartition(w, ws, pad_hw, hw):
    Hp, Wp = pad_hw
    H, W = hw
    B = w.shape[0] // (Hp * Wp // ws // ws)
    x = w.view(B, Hp // ws, Wp // ws, ws, ws, -1).permute(0, 1, 3, 2, 4, 5).reshape(B, Hp, Wp, -1)
    return x[:, :H, :W, :]


class MLP(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.lin1 = nn.Linear(dim, hidden)
        self.lin2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.lin2(F.gelu(self.lin1(x)))


class Block(nn.Module):
    def __init__(self, dim, heads, mlp, window, rel_size):
        super().__init__()
        self.window = window
        self.norm1 = nn.LayerNorm(dim, eps=EPS)
        self.attn = Attention(dim, heads, rel_size)
        self.norm2 = nn.LayerNorm(dim, eps=EPS)
        self.mlp = MLP(dim, mlp)

    def forward(self, x):
        shortcut = x
        x = self.norm1(x)
        if self.window:
            H, W = x.shape[1], x.shape[2]
            x, pad_hw = window_partition(x, self.window)
        x = self.attn(x)
        if self.window:
            x = window_unpartition(x, self.window, pad_hw, (H, W))
        x = shortcut + x
        return x + self.mlp(self.norm2(x))


class LayerNorm2d(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(c))
        self.bias = nn.Parameter(torch.zeros(c))

    def forward(self, x):
        u = x.mean(1, keepdim=True)
        s = (x - u).pow(2).mean(1, keepdim=True)
        x = (x - u) / torch.sqrt(s + EPS)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


class PatchEmbed(nn.Module):
    def __init__(self, p, dim):
        super().__init__()
        self.proj = nn.Conv2d(3, dim, kernel_size=p, stride=p)

    def forward(self, x):
        return self.proj(x).permute(0, 2, 3, 1)


class ImageEncoderViT(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        E, G = cfg['embed_dim'], cfg['grid']
        self.patch_embed = PatchEmbed(cfg['patch'], E)
        self.pos_embed = nn.Parameter(torch.zeros(1, G, G, E))
        self.blocks = nn.ModuleList()
        for i in range(cfg['depth']):
            glob = i in cfg['globals']
            self.blocks.append(Block(E, cfg['heads'], cfg['mlp'], 0 if glob else cfg['window'], G if glob else cfg['window']))
        O = cfg['out']
        self.neck = nn.Sequential(nn.Conv2d(E, O, 1, bias=False), LayerNorm2d(O), nn.Conv2d(O, O, 3, padding=1, bias=False), LayerNorm2d(O))

    def forward(self, x):
        x = self.patch_embed(x)
        gh, gw = x.shape[1], x.shape[2]
        pos = self.pos_embed
        if (gh, gw) != tuple(pos.shape[1:3]):
            pos = F.interpolate(pos.permute(0, 3, 1, 2), size=(gh, gw), mode='bicubic', align_corners=False).permute(0, 2, 3, 1)
        x = x + pos
        for b in self.blocks:
            x = b(x)
        return self.neck(x.permute(0, 3, 1, 2)), x


def config_from(weights, prefix='image_encoder'):
    """Hyper-parameters from shapes (the same rules as src/model/sam/config.ts)."""
    E, _, p, _ = weights[f'{prefix}.patch_embed.proj.weight'].shape
    G = weights[f'{prefix}.pos_embed'].shape[1]
    depth = 0
    while f'{prefix}.blocks.{depth}.attn.qkv.weight' in weights:
        depth += 1
    globs, window, hd = [], 0, 0
    for i in range(depth):
        rows, hd = weights[f'{prefix}.blocks.{i}.attn.rel_pos_h'].shape
        if rows == 2 * G - 1:
            globs.append(i)
        else:
            window = (rows + 1) // 2
    return dict(embed_dim=E, patch=p, grid=G, depth=depth, heads=E // hd, window=window, globals=globs,
                mlp=weights[f'{prefix}.blocks.0.mlp.lin1.weight'].shape[0], out=weights[f'{prefix}.neck.0.weight'].shape[0])


def build(weights, prefix='image_encoder'):
    cfg = config_from(weights, prefix)
    model = ImageEncoderViT(cfg)
    sd = {k[len(prefix) + 1:]: torch.from_numpy(v) for k, v in weights.items() if k.startswith(prefix + '.')}
    model.load_state_dict(sd, strict=True)
    return model.eval(), cfg


def export(model, size, path):
    x = torch.zeros(1, 3, size, size)
    with torch.no_grad():
        torch.onnx.export(model, (x,), path, opset_version=OPSET, input_names=['image'],
                          output_names=['image_embedding', 'tokens'], do_constant_folding=True)


# ---------------------------------------------------------------------------- fixtures

def ref_check(actual, expected, entry):
    """The reference fixtures' comparison rule (test/fixtures/reference/README.md)."""
    a = actual.astype(np.float64).ravel()
    e = expected.astype(np.float64).ravel()
    rel = float(np.linalg.norm(a - e) / np.linalg.norm(e))
    mx = float(np.abs(a - e).max())
    noise = entry.get('fp32_vs_fp64', {'rel_l2': 0, 'max_abs_err': 0})
    gate_rel = max(1e-4, 20 * noise['rel_l2'])
    gate_abs = max(1e-3 * entry.get('absmax', 0), 20 * noise['max_abs_err'])
    return {'rel_l2': rel, 'max_abs': mx, 'rel_l2_gate': gate_rel, 'max_abs_gate': gate_abs, 'pass': rel <= gate_rel and mx <= gate_abs}


def run(model, x):
    with torch.no_grad():
        emb, tok = model(torch.from_numpy(x))
    return emb.numpy(), tok.numpy()


def fixtures():
    torch.set_num_threads(2)
    os.makedirs(OUT, exist_ok=True)
    manifest = json.load(open(os.path.join(REF, 'manifest.json')))
    smanifest = json.load(open(os.path.join(REF, 'samclip', 'manifest.json')))
    checks = {}
    io = {}
    models = {}

    # 1. sam_tiny at its native 256 px.
    w, _ = read_safetensors(os.path.join(REF, 'sam_tiny.weights.safetensors'), float32=True)
    tiny, cfg = build(w)
    enc, _ = read_safetensors(os.path.join(REF, 'sam_tiny.encoder.safetensors'), float32=True)
    emb, tok = run(tiny, enc['input'])
    ent = manifest['sam']['encoder']['tensors']
    checks['sam_tiny.encoder:image_embedding'] = ref_check(emb, enc['image_embedding'], ent['image_embedding'])
    checks['sam_tiny.encoder:enc.block3'] = ref_check(tok, enc['enc.block3'], ent['enc.block3'])
    models['sam_tiny_encoder_256.onnx'] = {'weights': 'reference/sam_tiny.weights.safetensors', 'size': 256, 'config': cfg}
    export(tiny, 256, os.path.join(OUT, 'sam_tiny_encoder_256.onnx'))

    # 2. The SAM-CLIP bundle's backbone at 160 px (grid 10: bicubic table, rel-pos resize, padded windows).
    sw, _ = read_safetensors(os.path.join(REF, 'samclip', 'samclip_tiny.safetensors'), float32=True)
    back, bcfg = build(sw)
    syn, _ = read_safetensors(os.path.join(REF, 'samclip', 'samclip_tiny.synthetic.safetensors'), float32=True)
    st = smanifest['synthetic']['tensors']
    for R in (256, 160, 112):
        _, t = run(back, syn[f'r{R}.input'])
        checks[f'samclip_tiny.synthetic:r{R}.tokens'] = ref_check(t, syn[f'r{R}.tokens'], st[f'r{R}.tokens'])
    models['samclip_tiny_backbone_160.onnx'] = {'weights': 'reference/samclip/samclip_tiny.safetensors (image_encoder.*)', 'size': 160, 'config': bcfg}
    export(back, 160, os.path.join(OUT, 'samclip_tiny_backbone_160.onnx'))

    failed = [k for k, c in checks.items() if not c['pass']]
    if failed:
        raise SystemExit(f'the re-implementation does not match the reference fixtures: {failed}: {json.dumps(checks, indent=1)}')

    # Fresh seeded inputs (not the fixtures' own), with the PyTorch outputs.
    g = torch.Generator().manual_seed(4242)
    for name, model, size in (('256', tiny, 256), ('160', back, 160)):
        x = torch.randn(1, 3, size, size, generator=g).clamp(-2.5, 2.5).numpy()
        e, t = run(model, x)
        io[f'{name}.input'] = x
        io[f'{name}.image_embedding'] = e
        io[f'{name}.tokens'] = t
    meta = {
        'generator': 'tools/export-onnx-sam-encoder.py',
        'seed': '4242 (torch.Generator, randn clamped to [-2.5, 2.5])',
        'torch': torch.__version__,
        'numpy': np.__version__,
        'opset': str(OPSET),
    }
    write_safetensors(os.path.join(OUT, 'io.safetensors'), io, meta, dtype='F32')
    import onnx
    info = {
        'generator': 'tools/export-onnx-sam-encoder.py',
        'upstream': 'facebookresearch/segment-anything@dca509fe793f601edb92606367a655c15ac00fdf segment_anything/modeling/image_encoder.py, common.py',
        'versions': {'torch': torch.__version__, 'numpy': np.__version__, 'onnx': onnx.__version__, 'python': sys.version.split()[0]},
        'opset': OPSET,
        'torch_threads': torch.get_num_threads(),
        'models': models,
        'io': {'file': 'io.safetensors', 'inputs': '<size>.input (1,3,S,S)', 'outputs': '<size>.image_embedding (NCHW), <size>.tokens (BHWC), from PyTorch', 'seed': 4242},
        'reimplementation_vs_reference_fixtures': checks,
    }
    with open(os.path.join(OUT, 'export.json'), 'w') as f:
        json.dump(info, f, indent=1)
    for k, c in checks.items():
        print(f'{k}: rel_l2 {c["rel_l2"]:.2e} (gate {c["rel_l2_gate"]:.1e}), max_abs {c["max_abs"]:.2e}')
    print(f'wrote {OUT}')


def export_cli(args):
    if len(args) < 2:
        raise SystemExit(__doc__)
    wpath, out = args[0], args[1]
    size = int(args[args.index('--size') + 1]) if '--size' in args else None
    iopath = args[args.index('--io') + 1] if '--io' in args else None
    if os.path.exists(out):
        raise SystemExit(f'{out} exists; not overwriting')
    torch.set_num_threads(os.cpu_count() or 1)
    w, _ = read_safetensors(wpath, float32=True)
    model, cfg = build(w)
    size = size or cfg['grid'] * cfg['patch']
    export(model, size, out)
    print(f'wrote {out}: {json.dumps(cfg)} at {size} px')
    if iopath:
        g = torch.Generator().manual_seed(4242)
        x = torch.randn(1, 3, size, size, generator=g).clamp(-2.5, 2.5).numpy()
        e, t = run(model, x)
        write_safetensors(iopath, {'input': x, 'image_embedding': e}, {'generator': 'tools/export-onnx-sam-encoder.py', 'weights': os.path.basename(wpath)}, dtype='F32')
        print(f'wrote {iopath}')


if __name__ == '__main__':
    if len(sys.argv) >= 2 and sys.argv[1] == 'fixtures':
        fixtures()
    elif len(sys.argv) >= 2 and sys.argv[1] == 'export':
        export_cli(sys.argv[2:])
    else:
        raise SystemExit(__doc__)
