#!/usr/bin/env python3
"""ONNX exports of composite mode's dense CLIP features (src/pipelines/dense-clip.ts) for the
engine's component-level parity test (DESIGN.md 7.2), with the tiny reference CLIP weights.

The computation, written here in PyTorch from a reading of the sources (no code copied):
  * the CLIP vision tower of openai/CLIP clip/model.py @ d05afc436d78f1c48dc0dbf8e5980a9d471f35f6
    (conv1 without bias, [class; patches] + positional_embedding, ln_pre, ResidualAttentionBlocks
    with QuickGELU, ln_post, proj);
  * MaskCLIP's dense path, Zhou, Loy & Dai, ECCV 2022 (arXiv 2112.01071), as its official ViT code
    computes it (chongzhou96/MaskCLIP, read in the copy at volgachen/MaskCLIP: mmseg/models/backbones/vit.py `return_qkv` + MaskClipHead):
    in the last block the query-key attention is skipped; v = out_proj(W_v ln_1(x) + b_v);
    y = x + v; y = y + mlp(ln_2(y)); then ln_post and proj per patch token; L2 normalised;
  * method 'value': ln_post(v) @ proj (no residual, no MLP); 'baseline': the unmodified last block;
  * sliding windows: mmseg's slide_inference grid (origins every `stride`, last window flush with
    the border); a token's feature is the mean over the windows covering it.

Before exporting, the tower is checked against the official code's recorded outputs
(test/fixtures/reference/clip_tiny.safetensors: every stage and the image features) under the
fixtures' rule; the errors go to export-report.json.

Outputs (test/fixtures/onnx/dense-clip/):
  dense_clip_tiny.onnx        pixels [4,3,64,64] -> maskclip, value, baseline   each [4,4,4,64]
  dense_clip_tiny_slide.onnx  pixels [1,3,96,112] -> dense [1,6,7,64] (maskclip, 64-px windows, stride 32)
  dense_clip_io.safetensors   the inputs (seeded N(0,1)) and the export-time torch outputs
  export-report.json          versions, seed, checks, graph ops

Run: /usr/bin/python3 tools/export-onnx-dense-clip.py   (Debian python3-torch 1.13, python3-onnx, numpy)
"""
import hashlib
import json
import math
import os
import sys

import numpy as np
import torch
import onnx_legacy_export  # noqa: F401  (TorchScript exporter on torch >= 2.9 too)
import torch.nn.functional as F

from safetensors_io import read_safetensors, write_safetensors
from torch import nn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REF = os.path.join(ROOT, 'test', 'fixtures', 'reference')
OUT = os.path.join(ROOT, 'test', 'fixtures', 'onnx', 'dense-clip')
SEED = 5151
OPSET = 17
EPS = 1e-5
def quick_gelu(x):
    return x * torch.sigmoid(1.702 * x)


class Tower(nn.Module):
    """The CLIP ViT on batch-first tokens, with the dense variants of the last block."""

    def __init__(self, sd, heads):
        super().__init__()
        self.w = {k: torch.from_numpy(v) for k, v in sd.items() if k.startswith('visual.')}
        self.heads = heads
        self.layers = len({k.split('.')[3] for k in self.w if k.startswith('visual.transformer.resblocks.')})
        self.patch = self.w['visual.conv1.weight'].shape[-1]

    def p(self, i, name):
        return self.w[f'visual.transformer.resblocks.{i}.{name}']

    def attention(self, i, h):
        B, N, W = h.shape
        H = self.heads
        D = W // H
        qkv = F.linear(h, self.p(i, 'attn.in_proj_weight'), self.p(i, 'attn.in_proj_bias'))
        q, k, v = [t.reshape(B, N, H, D).transpose(1, 2) for t in qkv.split(W, dim=-1)]
        a = torch.softmax((q / math.sqrt(D)) @ k.transpose(-1, -2), dim=-1) @ v
        return F.linear(a.transpose(1, 2).reshape(B, N, W), self.p(i, 'attn.out_proj.weight'), self.p(i, 'attn.out_proj.bias'))

    def mlp(self, i, x):
        W = x.shape[-1]
        h = F.layer_norm(x, (W,), self.p(i, 'ln_2.weight'), self.p(i, 'ln_2.bias'), EPS)
        return F.linear(quick_gelu(F.linear(h, self.p(i, 'mlp.c_fc.weight'), self.p(i, 'mlp.c_fc.bias'))), self.p(i, 'mlp.c_proj.weight'), self.p(i, 'mlp.c_proj.bias'))

    def block(self, i, x):
        W = x.shape[-1]
        x = x + self.attention(i, F.layer_norm(x, (W,), self.p(i, 'ln_1.weight'), self.p(i, 'ln_1.bias'), EPS))
        return x + self.mlp(i, x)

    def trunk(self, pixels):
        """Everything before the last block: tokens [B, 1 + g*g, W], and the grid."""
        x = F.conv2d(pixels, self.w['visual.conv1.weight'], stride=self.patch)
        B, W, gh, gw = x.shape
        x = x.flatten(2).transpose(1, 2)
        cls = self.w['visual.class_embedding'].reshape(1, 1, W).expand(B, 1, W)
        x = torch.cat([cls, x], dim=1) + self.w['visual.positional_embedding']
        x = F.layer_norm(x, (W,), self.w['visual.ln_pre.weight'], self.w['visual.ln_pre.bias'], EPS)
        stages = [x]
        for i in range(self.layers - 1):
            x = self.block(i, x)
            stages.append(x)
        return x, (gh, gw), stages

    def head(self, y):
        W = y.shape[-1]
        return F.layer_norm(y, (W,), self.w['visual.ln_post.weight'], self.w['visual.ln_post.bias'], EPS) @ self.w['visual.proj']

    def image_features(self, pixels):
        x, _, stages = self.trunk(pixels)
        x = self.block(self.layers - 1, x)
        stages.append(x)
        return self.head(x[:, 0]), stages

    def dense(self, pixels, method):
        x, (gh, gw), _ = self.trunk(pixels)
        last = self.layers - 1
        W = x.shape[-1]
        if method == 'baseline':
            y = self.block(last, x)[:, 1:]
        else:
            pt = x[:, 1:]
            h = F.layer_norm(pt, (W,), self.p(last, 'ln_1.weight'), self.p(last, 'ln_1.bias'), EPS)
            wv = self.p(last, 'attn.in_proj_weight')[2 * W:]
            bv = self.p(last, 'attn.in_proj_bias')[2 * W:]
            v = F.linear(F.linear(h, wv, bv), self.p(last, 'attn.out_proj.weight'), self.p(last, 'attn.out_proj.bias'))
            if method == 'value':
                y = v
            else:
                y = pt + v
                y = y + self.mlp(last, y)
        f = self.head(y)
        f = f / f.norm(dim=-1, keepdim=True)
        return f.reshape(pixels.shape[0], gh, gw, -1)


def slide_origins(length, window, stride):
    if length <= window:
        return [0]
    count = max(length - window + stride - 1, 0) // stride + 1
    return [max(min(i * stride + window, length) - window, 0) for i in range(count)]


class DenseExport(nn.Module):
    def __init__(self, tower):
        super().__init__()
        self.t = tower

    def forward(self, pixels):
        return self.t.dense(pixels, 'maskclip'), self.t.dense(pixels, 'value'), self.t.dense(pixels, 'baseline')


class SlideExport(nn.Module):
    def __init__(self, tower, window, stride):
        super().__init__()
        self.t = tower
        self.window = window
        self.stride = stride

    def forward(self, pixels):
        _, _, H, W = pixels.shape
        P = self.t.patch
        ys = slide_origins(H, self.window, self.stride)
        xs = slide_origins(W, self.window, self.stride)
        wins = torch.cat([pixels[:, :, y:y + self.window, x:x + self.window] for y in ys for x in xs], dim=0)
        feats = self.t.dense(wins, 'maskclip')
        g = self.window // P
        total = torch.zeros(1, H // P, W // P, feats.shape[-1])
        count = torch.zeros(1, H // P, W // P, 1)
        k = 0
        for y in ys:
            for x in xs:
                pad = (0, 0, x // P, W // P - x // P - g, y // P, H // P - y // P - g)
                total = total + F.pad(feats[k:k + 1], pad)
                count = count + F.pad(torch.ones(1, g, g, 1), pad)
                k += 1
        return total / count


def rel_l2(a, b):
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def main():
    torch.manual_seed(SEED)
    torch.set_num_threads(2)
    os.makedirs(OUT, exist_ok=True)
    man = json.load(open(os.path.join(REF, 'manifest.json')))['clip']
    sd = read_safetensors(os.path.join(REF, 'clip_tiny.weights.safetensors'))[0]
    ref = read_safetensors(os.path.join(REF, 'clip_tiny.safetensors'))[0]
    tower = Tower(sd, man['vision_heads'])
    report = {
        'script': 'tools/export-onnx-dense-clip.py',
        'upstream': {
            'openai/CLIP': 'd05afc436d78f1c48dc0dbf8e5980a9d471f35f6 clip/model.py (VisionTransformer)',
            'MaskCLIP': 'chongzhou96/MaskCLIP mmseg/models/backbones/vit.py return_qkv path + MaskClipHead (arXiv 2112.01071)',
            'slide': "mmseg slide_inference window grid; features averaged over covering windows",
        },
        'versions': {'python': sys.version.split()[0], 'torch': torch.__version__, 'numpy': np.__version__},
        'seed': SEED,
        'opset': OPSET,
        'weights': 'test/fixtures/reference/clip_tiny.weights.safetensors (sha256 %s)' % hashlib.sha256(open(os.path.join(REF, 'clip_tiny.weights.safetensors'), 'rb').read()).hexdigest(),
        'tower_vs_official': {},
    }
    ok = True
    with torch.no_grad():
        f, stages = tower.image_features(torch.from_numpy(ref['images']))
        checks = [('visual.ln_pre', stages[0].numpy())]
        checks += [(f'visual.resblock{i}', stages[i + 1].permute(1, 0, 2).numpy()) for i in range(tower.layers)]
        checks += [('image_features', f.numpy())]
        for name, cand in checks:
            e = man['tensors'][name]
            noise = e.get('fp32_vs_fp64', {'rel_l2': 0, 'max_abs_err': 0})
            r = rel_l2(cand, ref[name])
            m = float(np.abs(cand.astype(np.float64) - ref[name]).max())
            gr, gm = max(1e-4, 20 * noise['rel_l2']), max(1e-3 * e.get('absmax', 0), 20 * noise['max_abs_err'])
            good = r <= gr and m <= gm
            ok &= good
            report['tower_vs_official'][name] = {'rel_l2': r, 'max_abs': m, 'rel_l2_gate': gr, 'max_abs_gate': gm, 'ok': good}
            print(f'{"ok  " if good else "FAIL"} {name}: rel_l2 {r:.2e} (gate {gr:.1e}) max_abs {m:.2e}')
        if not ok:
            print('the tower does not match the official outputs; nothing exported', file=sys.stderr)
            sys.exit(1)

        rng = np.random.default_rng(SEED)
        io = {
            'batch.pixels': rng.standard_normal((4, 3, 64, 64)).astype(np.float32),
            'slide.pixels': rng.standard_normal((1, 3, 96, 112)).astype(np.float32),
        }
        dense = DenseExport(tower).eval()
        for name, t in zip(['maskclip', 'value', 'baseline'], dense(torch.from_numpy(io['batch.pixels']))):
            io[f'batch.torch.{name}'] = t.numpy()
        slide = SlideExport(tower, 64, 32).eval()
        io['slide.torch.dense'] = slide(torch.from_numpy(io['slide.pixels'])).numpy()
        report['slide'] = {'window': 64, 'stride': 32, 'origins_y': slide_origins(96, 64, 32), 'origins_x': slide_origins(112, 64, 32)}

        exports = [
            ('dense_clip_tiny.onnx', dense, io['batch.pixels'], ['maskclip', 'value', 'baseline']),
            ('dense_clip_tiny_slide.onnx', slide, io['slide.pixels'], ['dense']),
        ]
        report['exports'] = {}
        try:
            import onnx
            report['versions']['onnx'] = onnx.__version__
        except ImportError:
            onnx = None
        for fname, mod, x, outs in exports:
            path = os.path.join(OUT, fname)
            torch.onnx.export(mod, (torch.from_numpy(x),), path, opset_version=OPSET, input_names=['pixels'], output_names=outs, do_constant_folding=True)
            entry = {'bytes': os.path.getsize(path), 'outputs': outs}
            if onnx is not None:
                m = onnx.load(path)
                onnx.checker.check_model(m)
                entry['ops'] = sorted({n.op_type for n in m.graph.node})
            report['exports'][fname] = entry
            print(f'wrote {path} ({entry["bytes"]} bytes)')
    write_safetensors(os.path.join(OUT, 'dense_clip_io.safetensors'), io, {'seed': str(SEED), 'script': 'tools/export-onnx-dense-clip.py', 'torch': torch.__version__}, dtype='F32')
    with open(os.path.join(OUT, 'export-report.json'), 'w') as fh:
        json.dump(report, fh, indent=1)
        fh.write('\n')


if __name__ == '__main__':
    main()
