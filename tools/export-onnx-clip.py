#!/usr/bin/env python3
"""ONNX exports of the CLIP towers for the engine's component-level parity tests (DESIGN.md 7.2).

The official openai/CLIP package is not installable here (no network), so this script holds a
faithful PyTorch re-implementation of its modules, written from a reading of
openai/CLIP clip/model.py at d05afc436d78f1c48dc0dbf8e5980a9d471f35f6 (VisionTransformer,
Transformer, ResidualAttentionBlock, QuickGELU, CLIP.encode_image / encode_text) and of
open_clip's `resize_pos_embed` (mlfoundations/open_clip src/open_clip/pos_embed.py / model.py:
bicubic, antialias=True, align_corners=False, class row kept). Before exporting, the
re-implementation is run on the reference fixtures (test/fixtures/reference/clip_tiny.*, made by
the official code) and must match them under the fixtures' rule; the measured errors are written
to export-report.json.

Outputs (test/fixtures/onnx/clip/):
  clip_tiny_vision.onnx       pixels [2,3,64,64] -> ln_pre, resblock0, resblock1 (batch-first), image_features
  clip_tiny_vision_96.onnx    pixels [2,3,96,96] -> image_features, with the position table resized
                              to the 6x6 grid by open_clip's rule at export time (baked in)
  clip_tiny_text.onnx         token_ids int64 [B,77], token_embedding [49408,64] (a graph input so
                              the file stays small; tests feed it from clip_tiny.weights.safetensors)
                              -> text_features. QuickGELU.
  clip_tiny_text_gelu.onnx    the same weights with exact (erf) GELU: the OpenCLIP activation
  clip_tiny_io.safetensors    the inputs, the ONNX-export-time torch outputs, and the resized
                              position tables (`pos_embed.aa.RxR`, `pos_embed.bicubic.RxR`)
  export-report.json          versions, seeds, checks

Run: /usr/bin/python3 tools/export-onnx-clip.py   (Debian python3-torch 1.13, python3-onnx, numpy)

Benchmark mode (bench/clip.ts calls it; nothing is committed):
  /usr/bin/python3 tools/export-onnx-clip.py --bench WEIGHTS.safetensors OUTDIR [--prompts N]
exports the full-size towers of an OpenAI-named F32 checkpoint (e.g. random ViT-B/16 weights from
tools/random-weights.ts) with the same re-implementation: OUTDIR/vision.onnx (pixels [1,3,R,R] ->
image_features) and OUTDIR/text.onnx (token_ids [N,77] given as float32, cast to int64 inside the
graph because the bench harness feeds float32 tensors -> text_features). Heads are width // 64 (or
the checkpoint's `clip` metadata), the activation is the metadata's (QuickGELU by default).
"""
import hashlib
import json
import math
import os
import struct
import sys

import numpy as np
import torch
import onnx_legacy_export  # noqa: F401  (TorchScript exporter on torch >= 2.9 too)
import torch.nn.functional as F

from safetensors_io import read_safetensors, write_safetensors
from torch import nn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REF = os.path.join(ROOT, 'test', 'fixtures', 'reference')
OUT = os.path.join(ROOT, 'test', 'fixtures', 'onnx', 'clip')
SEED = 4242
OPSET = 17

# ----------------------------------------------------------------------------- safetensors I/O

# ----------------------------------------------------------------------------- the model

class QuickGELU(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(1.702 * x)


class Block(nn.Module):
    """ResidualAttentionBlock on batch-first tokens [B, N, W]; in_proj rows are [q; k; v]."""

    def __init__(self, sd, prefix, heads, act):
        super().__init__()
        p = lambda k: nn.Parameter(torch.from_numpy(sd[f'{prefix}.{k}']), requires_grad=False)
        self.ln1_w, self.ln1_b = p('ln_1.weight'), p('ln_1.bias')
        self.in_w, self.in_b = p('attn.in_proj_weight'), p('attn.in_proj_bias')
        self.out_w, self.out_b = p('attn.out_proj.weight'), p('attn.out_proj.bias')
        self.ln2_w, self.ln2_b = p('ln_2.weight'), p('ln_2.bias')
        self.fc_w, self.fc_b = p('mlp.c_fc.weight'), p('mlp.c_fc.bias')
        self.proj_w, self.proj_b = p('mlp.c_proj.weight'), p('mlp.c_proj.bias')
        self.heads = heads
        self.act = QuickGELU() if act == 'quick_gelu' else nn.GELU()

    def forward(self, x, mask=None):
        B, N, W = x.shape
        H = self.heads
        D = W // H
        h = F.layer_norm(x, (W,), self.ln1_w, self.ln1_b, 1e-5)
        q, k, v = F.linear(h, self.in_w, self.in_b).chunk(3, dim=-1)
        q = q.reshape(B, N, H, D).transpose(1, 2)
        k = k.reshape(B, N, H, D).transpose(1, 2)
        v = v.reshape(B, N, H, D).transpose(1, 2)
        s = (q * (1.0 / math.sqrt(D))) @ k.transpose(-1, -2)
        if mask is not None:
            s = s + mask
        a = torch.softmax(s, dim=-1) @ v
        a = a.transpose(1, 2).reshape(B, N, W)
        x = x + F.linear(a, self.out_w, self.out_b)
        h = F.layer_norm(x, (W,), self.ln2_w, self.ln2_b, 1e-5)
        return x + F.linear(self.act(F.linear(h, self.fc_w, self.fc_b)), self.proj_w, self.proj_b)


def resize_pos_embed(pos, grid, antialias):
    """open_clip's rule: keep the class row, resize the grid rows bicubically (align_corners False)."""
    g = int(round(math.sqrt(pos.shape[0] - 1)))
    if grid == g:
        return pos
    img = pos[1:].reshape(1, g, g, -1).permute(0, 3, 1, 2)
    img = F.interpolate(img, size=(grid, grid), mode='bicubic', antialias=antialias, align_corners=False)
    img = img.permute(0, 2, 3, 1).reshape(grid * grid, -1)
    return torch.cat([pos[:1], img], dim=0)


class Vision(nn.Module):
    def __init__(self, sd, heads, act, grid=None, antialias=True):
        super().__init__()
        t = lambda k: torch.from_numpy(sd[k])
        self.conv1 = nn.Parameter(t('visual.conv1.weight'), requires_grad=False)
        self.cls = nn.Parameter(t('visual.class_embedding'), requires_grad=False)
        pos = t('visual.positional_embedding')
        if grid is not None:
            pos = resize_pos_embed(pos, grid, antialias)
        self.pos = nn.Parameter(pos, requires_grad=False)
        self.ln_pre = (nn.Parameter(t('visual.ln_pre.weight'), requires_grad=False), nn.Parameter(t('visual.ln_pre.bias'), requires_grad=False))
        self.ln_post = (nn.Parameter(t('visual.ln_post.weight'), requires_grad=False), nn.Parameter(t('visual.ln_post.bias'), requires_grad=False))
        self.proj = nn.Parameter(t('visual.proj'), requires_grad=False)
        n = len({k.split('.')[3] for k in sd if k.startswith('visual.transformer.resblocks.')})
        self.blocks = nn.ModuleList([Block(sd, f'visual.transformer.resblocks.{i}', heads, act) for i in range(n)])
        self.patch = self.conv1.shape[-1]

    def forward(self, x):
        x = F.conv2d(x, self.conv1, stride=self.patch)  # [B, W, g, g]
        conv = x
        B, W = x.shape[0], x.shape[1]
        x = x.reshape(B, W, -1).permute(0, 2, 1)
        cls = self.cls.reshape(1, 1, W).expand(B, 1, W)
        x = torch.cat([cls, x], dim=1) + self.pos
        x = F.layer_norm(x, (W,), self.ln_pre[0], self.ln_pre[1], 1e-5)
        stages = [x]
        for blk in self.blocks:
            x = blk(x)
            stages.append(x)
        c = F.layer_norm(x[:, 0, :], (W,), self.ln_post[0], self.ln_post[1], 1e-5)
        return c @ self.proj, conv, stages, c


class Text(nn.Module):
    def __init__(self, sd, heads, act, embedding_as_input):
        super().__init__()
        t = lambda k: nn.Parameter(torch.from_numpy(sd[k]), requires_grad=False)
        self.embedding_as_input = embedding_as_input
        if not embedding_as_input:
            self.tok = t('token_embedding.weight')
        self.pos = t('positional_embedding')
        self.ln_w, self.ln_b = t('ln_final.weight'), t('ln_final.bias')
        self.proj = t('text_projection')
        n = len({k.split('.')[2] for k in sd if k.startswith('transformer.resblocks.')})
        self.blocks = nn.ModuleList([Block(sd, f'transformer.resblocks.{i}', heads, act) for i in range(n)])
        L = self.pos.shape[0]
        # upstream build_attention_mask: -inf strictly above the diagonal
        self.register_buffer('mask', torch.full((L, L), float('-inf')).triu(1))

    def forward(self, ids, table=None):
        table = table if self.embedding_as_input else self.tok
        x = F.embedding(ids, table) + self.pos
        stages = []
        for blk in self.blocks:
            x = blk(x, self.mask)
            stages.append(x)
        x = F.layer_norm(x, (x.shape[-1],), self.ln_w, self.ln_b, 1e-5)
        pooled = x[torch.arange(x.shape[0]), ids.argmax(dim=-1)]
        return pooled @ self.proj, stages, x


class VisionExport(nn.Module):
    def __init__(self, v, with_stages):
        super().__init__()
        self.v = v
        self.with_stages = with_stages

    def forward(self, pixels):
        f, _, stages, _ = self.v(pixels)
        return (stages[0], stages[1], stages[2], f) if self.with_stages else f


class TextExport(nn.Module):
    def __init__(self, t):
        super().__init__()
        self.t = t

    def forward(self, token_ids, token_embedding):
        return self.t(token_ids, token_embedding)[0]


class TextFloatIdsExport(nn.Module):
    """Token ids arrive as float32 (exact for ids < 2^24) and are cast to int64 in the graph."""

    def __init__(self, t):
        super().__init__()
        self.t = t

    def forward(self, token_ids):
        return self.t(token_ids.to(torch.int64))[0]


def bench_export(weights, outdir, prompts):
    os.makedirs(outdir, exist_ok=True)
    with open(weights, 'rb') as f:
        n = struct.unpack('<Q', f.read(8))[0]
        meta = json.loads(f.read(n)).get('__metadata__', {})
    sd, _ = read_safetensors(weights)
    cfg = json.loads(meta.get('clip', '{}'))
    act = meta.get('clip.act', cfg.get('act', 'quick_gelu'))
    vw = sd['visual.conv1.weight'].shape[0]
    tw = sd['token_embedding.weight'].shape[1]
    vh = int(meta.get('clip.vision_heads', cfg.get('visionHeads', vw // 64)))
    th = int(meta.get('clip.text_heads', cfg.get('transformerHeads', tw // 64)))
    res = int(round(math.sqrt(sd['visual.positional_embedding'].shape[0] - 1))) * sd['visual.conv1.weight'].shape[-1]
    L = sd['positional_embedding'].shape[0]
    print(f'bench export: vision width {vw} heads {vh} at {res} px, text width {tw} heads {th}, act {act}, {prompts} prompts')
    with torch.no_grad():
        v = VisionExport(Vision(sd, vh, act).eval(), False).eval()
        torch.onnx.export(v, (torch.zeros(1, 3, res, res),), os.path.join(outdir, 'vision.onnx'), opset_version=OPSET,
                          input_names=['pixels'], output_names=['image_features'], do_constant_folding=True)
        t = TextFloatIdsExport(Text(sd, th, act, embedding_as_input=False).eval()).eval()
        ids = torch.zeros(prompts, L)
        ids[:, 0] = 49406
        ids[:, 1] = 49407
        torch.onnx.export(t, (ids,), os.path.join(outdir, 'text.onnx'), opset_version=OPSET,
                          input_names=['token_ids'], output_names=['text_features'], do_constant_folding=True)
    with open(os.path.join(outdir, 'export.json'), 'w') as f:
        json.dump({'weights': os.path.abspath(weights), 'weights_bytes': os.path.getsize(weights), 'act': act, 'vision_heads': vh,
                   'text_heads': th, 'resolution': res, 'prompts': prompts, 'torch': torch.__version__, 'opset': OPSET}, f, indent=1)
    print('ok')


# ----------------------------------------------------------------------------- checks

def rel_l2(a, b):
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def gate_check(name, cand, ref_arr, entry, report):
    noise = entry.get('fp32_vs_fp64', {'rel_l2': 0, 'max_abs_err': 0})
    r = rel_l2(cand, ref_arr)
    m = float(np.max(np.abs(np.asarray(cand, np.float64) - ref_arr)))
    g_r = max(1e-4, 20 * noise['rel_l2'])
    g_m = max(1e-3 * entry.get('absmax', 0), 20 * noise['max_abs_err'])
    ok = r <= g_r and m <= g_m
    report['reimplementation_vs_official'][name] = {'rel_l2': r, 'max_abs': m, 'rel_l2_gate': g_r, 'max_abs_gate': g_m, 'ok': ok}
    print(f'{"ok  " if ok else "FAIL"} {name}: rel_l2 {r:.2e} (gate {g_r:.1e}), max_abs {m:.2e}')
    return ok


def main():
    torch.manual_seed(SEED)
    torch.set_num_threads(2)
    os.makedirs(OUT, exist_ok=True)
    manifest = json.load(open(os.path.join(REF, 'manifest.json')))['clip']
    tens = manifest['tensors']
    sd, _ = read_safetensors(os.path.join(REF, 'clip_tiny.weights.safetensors'))
    ref, _ = read_safetensors(os.path.join(REF, 'clip_tiny.safetensors'))
    vh, th = manifest['vision_heads'], manifest['text_heads']
    report = {
        'script': 'tools/export-onnx-clip.py',
        'upstream': {'openai/CLIP': 'd05afc436d78f1c48dc0dbf8e5980a9d471f35f6 clip/model.py', 'open_clip': 'resize_pos_embed (bicubic, antialias=True, align_corners=False)'},
        'versions': {'python': sys.version.split()[0], 'torch': torch.__version__, 'numpy': np.__version__},
        'seed': SEED,
        'opset': OPSET,
        'weights': 'test/fixtures/reference/clip_tiny.weights.safetensors (sha256 %s)' % hashlib.sha256(open(os.path.join(REF, 'clip_tiny.weights.safetensors'), 'rb').read()).hexdigest(),
        'reimplementation_vs_official': {},
    }
    try:
        import onnx
        report['versions']['onnx'] = onnx.__version__
    except ImportError:
        onnx = None

    ok = True
    with torch.no_grad():
        # --- the re-implementation against the official code's recorded outputs
        vis = Vision(sd, vh, 'quick_gelu').eval()
        f, conv, stages, c = vis(torch.from_numpy(ref['images']))
        ok &= gate_check('visual.conv1', conv.numpy(), ref['visual.conv1'], tens['visual.conv1'], report)
        ok &= gate_check('visual.ln_pre', stages[0].numpy(), ref['visual.ln_pre'], tens['visual.ln_pre'], report)
        for i in (0, 1):
            ok &= gate_check(f'visual.resblock{i}', stages[i + 1].permute(1, 0, 2).numpy(), ref[f'visual.resblock{i}'], tens[f'visual.resblock{i}'], report)
        ok &= gate_check('visual.ln_post', c.numpy(), ref['visual.ln_post'], tens['visual.ln_post'], report)
        ok &= gate_check('image_features', f.numpy(), ref['image_features'], tens['image_features'], report)
        txt = Text(sd, th, 'quick_gelu', embedding_as_input=False).eval()
        ids = torch.from_numpy(ref['token_ids'][manifest['text_subset']].astype(np.int64))
        tf, tstages, lnf = txt(ids)
        for i in (0, 1):
            ok &= gate_check(f'text.resblock{i}', tstages[i].permute(1, 0, 2).numpy(), ref[f'text.resblock{i}'], tens[f'text.resblock{i}'], report)
        ok &= gate_check('text.ln_final', lnf.numpy(), ref['text.ln_final'], tens['text.ln_final'], report)
        ok &= gate_check('text_features', tf.numpy(), ref['text_features'], tens['text_features'], report)
        fi = f / f.norm(dim=1, keepdim=True)
        ft = tf / tf.norm(dim=1, keepdim=True)
        logits = float(np.exp(sd['logit_scale'])) * fi @ ft.t()
        ok &= gate_check('logits_per_image', logits.numpy(), ref['logits_per_image'], tens['logits_per_image'], report)
        if not ok:
            print('the re-implementation does not match the official outputs; nothing exported', file=sys.stderr)
            sys.exit(1)

        # --- inputs for the ONNX layer (independent of the reference inputs for the vision tower)
        rng = np.random.default_rng(SEED)
        io = {}
        io['vision.pixels'] = rng.standard_normal((2, 3, 64, 64)).astype(np.float32)
        io['vision96.pixels'] = rng.standard_normal((2, 3, 96, 96)).astype(np.float32)
        io['text.token_ids'] = ref['token_ids'].astype(np.int32)  # all 34 strings, incl. truncated ones

        # position tables resized by both rules, up (6x6) and down (3x3)
        pos = torch.from_numpy(sd['visual.positional_embedding'])
        for g in (6, 3):
            io[f'pos_embed.aa.{g}x{g}'] = resize_pos_embed(pos, g, True).numpy()
            io[f'pos_embed.bicubic.{g}x{g}'] = resize_pos_embed(pos, g, False).numpy()

        exports = []
        v_exp = VisionExport(vis, True).eval()
        outs = v_exp(torch.from_numpy(io['vision.pixels']))
        for name, t in zip(['ln_pre', 'resblock0', 'resblock1', 'image_features'], outs):
            io[f'vision.torch.{name}'] = t.numpy()
        exports.append(('clip_tiny_vision.onnx', v_exp, (torch.from_numpy(io['vision.pixels']),), ['pixels'], ['ln_pre', 'resblock0', 'resblock1', 'image_features']))

        v96 = VisionExport(Vision(sd, vh, 'quick_gelu', grid=6, antialias=True).eval(), False).eval()
        io['vision96.torch.image_features'] = v96(torch.from_numpy(io['vision96.pixels'])).numpy()
        exports.append(('clip_tiny_vision_96.onnx', v96, (torch.from_numpy(io['vision96.pixels']),), ['pixels'], ['image_features']))

        tok = torch.from_numpy(sd['token_embedding.weight'])
        ids64 = torch.from_numpy(io['text.token_ids'].astype(np.int64))
        for act, fname in (('quick_gelu', 'clip_tiny_text.onnx'), ('gelu', 'clip_tiny_text_gelu.onnx')):
            t_exp = TextExport(Text(sd, th, act, embedding_as_input=True).eval()).eval()
            io[f'text.torch.{act}.text_features'] = t_exp(ids64, tok).numpy()
            exports.append((fname, t_exp, (ids64, tok), ['token_ids', 'token_embedding'], ['text_features']))

        report['exports'] = {}
        for fname, mod, args, inames, onames in exports:
            path = os.path.join(OUT, fname)
            torch.onnx.export(mod, args, path, opset_version=OPSET, input_names=inames, output_names=onames, do_constant_folding=True)
            entry = {'bytes': os.path.getsize(path), 'inputs': inames, 'outputs': onames}
            if onnx is not None:
                m = onnx.load(path)
                onnx.checker.check_model(m)
                entry['ops'] = sorted({n.op_type for n in m.graph.node})
            report['exports'][fname] = entry
            print(f'wrote {path} ({entry["bytes"]} bytes)')

    write_safetensors(os.path.join(OUT, 'clip_tiny_io.safetensors'), io, {'generator': 'tools/export-onnx-clip.py', 'seed': str(SEED), 'torch': torch.__version__})
    report['io'] = {k: {'shape': list(v.shape), 'dtype': str(v.dtype)} for k, v in sorted(io.items())}
    with open(os.path.join(OUT, 'export-report.json'), 'w') as f:
        json.dump(report, f, indent=1)
        f.write('\n')
    print('ok')


if __name__ == '__main__':
    if len(sys.argv) > 1 and sys.argv[1] == '--bench':
        args = sys.argv[2:]
        n = 80
        if '--prompts' in args:
            i = args.index('--prompts')
            n = int(args[i + 1])
            del args[i:i + 2]
        if len(args) != 2:
            sys.exit('usage: export-onnx-clip.py --bench WEIGHTS.safetensors OUTDIR [--prompts N]')
        bench_export(args[0], args[1], n)
    else:
        main()
