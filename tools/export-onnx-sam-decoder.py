#!/usr/bin/python3
"""Export SAM's prompt encoder and mask decoder to ONNX (opset 17) from a safetensors checkpoint
with official names.

A PyTorch re-implementation of segment_anything/modeling/prompt_encoder.py (PromptEncoder,
PositionEmbeddingRandom), transformer.py (TwoWayTransformer, TwoWayAttentionBlock, Attention),
mask_decoder.py (MaskDecoder, MLP) and common.py (LayerNorm2d, MLPBlock) at
facebookresearch/segment-anything commit dca509fe793f601edb92606367a655c15ac00fdf, written from a
reading of that code (the official package is not installable here). Differences in form only:
  * label handling uses arithmetic masks instead of boolean-index assignment (same values:
    label -1 -> not_a_point_embed with a zero encoding, 0 / 1 -> encoding + point_embeddings[0 / 1]);
  * the prompt-encoder graph takes the padding point as an ordinary input (label -1) rather than
    appending it, and returns point and box tokens separately, so one graph covers every case;
  * the grid's positional encoding uses arange + 0.5 (= the official cumsum - 0.5, exactly).

Usage:
  tools/export-onnx-sam-decoder.py fixtures          # committed test fixtures (tiny model)
  tools/export-onnx-sam-decoder.py export W.safetensors OUT.onnx [--io IO.safetensors] [--batch B]

`fixtures` checks the re-implementation against every recorded case of ../test/fixtures/reference
(sam_tiny photos: sparse / dense embeddings, image_pe, hs, keys, upscaled, masks_all, iou_all,
low_res_logits, iou_predictions under the fixtures' rule; it must pass) and writes
test/fixtures/onnx/sam-decoder/: `sam_tiny_prompt_encoder.onnx`, `sam_tiny_mask_decoder.onnx`,
`export.json` (versions, opset, the check's numbers).

`export` writes the benchmark graph: point prompts -> low-res masks, i.e. prompt encoder (points,
no mask input) + mask decoder, inputs `image_embeddings` [1, C, g, g], `point_coords` [B, N, 2]
(model input frame, padding point included, label -1), `point_labels` [B, N]; outputs
`low_res_masks` [B, M + 1, 4g, 4g] and `iou_predictions` [B, M + 1] (all mask tokens, like the
official SamOnnxModel before its slicing). `--io` also writes seeded inputs and the PyTorch outputs.
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
OUT = os.path.join(ROOT, 'test', 'fixtures', 'onnx', 'sam-decoder')
OPSET = 17
SEED = 5151


# ---------------------------------------------------------------------------- safetensors

# ---------------------------------------------------------------------------- modules

class LayerNorm2d(nn.Module):
    def __init__(self, c, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(c))
        self.bias = nn.Parameter(torch.zeros(c))
        self.eps = eps

    def forward(self, x):
        mu = x.mean(1, keepdim=True)
        var = (x - mu).pow(2).mean(1, keepdim=True)
        y = (x - mu) / torch.sqrt(var + self.eps)
        return self.weight[:, None, None] * y + self.bias[:, None, None]


class PERandom(nn.Module):
    def __init__(self, feats):
        super().__init__()
        self.register_buffer('positional_encoding_gaussian_matrix', torch.zeros(2, feats))

    def encode(self, coords):
        c = 2 * coords - 1
        c = c @ self.positional_encoding_gaussian_matrix
        c = 2 * np.pi * c
        return torch.cat([torch.sin(c), torch.cos(c)], dim=-1)

    def grid(self, h, w):
        ys = (torch.arange(h, dtype=torch.float32) + 0.5) / h
        xs = (torch.arange(w, dtype=torch.float32) + 0.5) / w
        yy = ys[:, None].expand(h, w)
        xx = xs[None, :].expand(h, w)
        return self.encode(torch.stack([xx, yy], dim=-1)).permute(2, 0, 1)


class PromptEncoder(nn.Module):
    def __init__(self, dim, grid, img_size, mask_chans):
        super().__init__()
        self.dim, self.grid_size, self.img_size = dim, grid, img_size
        self.pe_layer = PERandom(dim // 2)
        self.point_embeddings = nn.ModuleList([nn.Embedding(1, dim) for _ in range(4)])
        self.not_a_point_embed = nn.Embedding(1, dim)
        self.mask_downscaling = nn.Sequential(
            nn.Conv2d(1, mask_chans // 4, 2, 2), LayerNorm2d(mask_chans // 4), nn.GELU(),
            nn.Conv2d(mask_chans // 4, mask_chans, 2, 2), LayerNorm2d(mask_chans), nn.GELU(),
            nn.Conv2d(mask_chans, dim, 1))
        self.no_mask_embed = nn.Embedding(1, dim)

    def coords_pe(self, pts):
        x = pts[..., 0] / self.img_size
        y = pts[..., 1] / self.img_size
        return self.pe_layer.encode(torch.stack([x, y], dim=-1))

    def points(self, coords, labels):
        """Point tokens [B, N, C] for coords in the input frame (+0.5 applied here), labels -1 / 0 / 1."""
        pe = self.coords_pe(coords + 0.5)
        lab = labels[..., None]
        is_pad = (lab == -1).to(pe.dtype)
        pe = pe * (1 - is_pad)
        pe = pe + is_pad * self.not_a_point_embed.weight
        pe = pe + (lab == 0).to(pe.dtype) * self.point_embeddings[0].weight
        pe = pe + (lab == 1).to(pe.dtype) * self.point_embeddings[1].weight
        return pe

    def boxes(self, boxes):
        corners = (boxes + 0.5).reshape(-1, 2, 2)
        pe = self.coords_pe(corners)
        return torch.cat([pe[:, :1] + self.point_embeddings[2].weight, pe[:, 1:] + self.point_embeddings[3].weight], dim=1)

    def masks(self, m):
        return self.mask_downscaling(m)

    def dense_pe(self):
        return self.pe_layer.grid(self.grid_size, self.grid_size)[None]

    def no_mask(self, b):
        return self.no_mask_embed.weight.reshape(1, -1, 1, 1).expand(b, -1, self.grid_size, self.grid_size)


class Attention(nn.Module):
    def __init__(self, dim, heads, down=1):
        super().__init__()
        inner = dim // down
        self.heads = heads
        self.q_proj = nn.Linear(dim, inner)
        self.k_proj = nn.Linear(dim, inner)
        self.v_proj = nn.Linear(dim, inner)
        self.out_proj = nn.Linear(inner, dim)

    def split(self, x):
        b, n, c = x.shape
        return x.reshape(b, n, self.heads, c // self.heads).transpose(1, 2)

    def forward(self, q, k, v):
        q, k, v = self.split(self.q_proj(q)), self.split(self.k_proj(k)), self.split(self.v_proj(v))
        d = q.shape[-1]
        a = torch.softmax((q @ k.transpose(2, 3)) / math.sqrt(d), dim=-1)
        o = (a @ v).transpose(1, 2)
        b, n = o.shape[0], o.shape[1]
        return self.out_proj(o.reshape(b, n, -1))


class MLPBlock(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.lin1 = nn.Linear(dim, hidden)
        self.lin2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.lin2(F.relu(self.lin1(x)))


class TwoWayBlock(nn.Module):
    def __init__(self, dim, heads, mlp, skip_pe):
        super().__init__()
        self.self_attn = Attention(dim, heads)
        self.norm1 = nn.LayerNorm(dim)
        self.cross_attn_token_to_image = Attention(dim, heads, 2)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = MLPBlock(dim, mlp)
        self.norm3 = nn.LayerNorm(dim)
        self.norm4 = nn.LayerNorm(dim)
        self.cross_attn_image_to_token = Attention(dim, heads, 2)
        self.skip_pe = skip_pe

    def forward(self, q, k, qpe, kpe):
        if self.skip_pe:
            q = self.self_attn(q, q, q)
        else:
            t = q + qpe
            q = q + self.self_attn(t, t, q)
        q = self.norm1(q)
        q = self.norm2(q + self.cross_attn_token_to_image(q + qpe, k + kpe, k))
        q = self.norm3(q + self.mlp(q))
        k = self.norm4(k + self.cross_attn_image_to_token(k + kpe, q + qpe, q))
        return q, k


class TwoWayTransformer(nn.Module):
    def __init__(self, depth, dim, heads, mlp):
        super().__init__()
        self.layers = nn.ModuleList([TwoWayBlock(dim, heads, mlp, i == 0) for i in range(depth)])
        self.final_attn_token_to_image = Attention(dim, heads, 2)
        self.norm_final_attn = nn.LayerNorm(dim)

    def forward(self, src, pe, tokens):
        k = src.flatten(2).permute(0, 2, 1)
        kpe = pe.flatten(2).permute(0, 2, 1)
        q = tokens
        for layer in self.layers:
            q, k = layer(q, k, tokens, kpe)
        q = self.norm_final_attn(q + self.final_attn_token_to_image(q + tokens, k + kpe, k))
        return q, k


class MLP(nn.Module):
    def __init__(self, i, h, o, n):
        super().__init__()
        dims = [i] + [h] * (n - 1)
        self.layers = nn.ModuleList([nn.Linear(a, b) for a, b in zip(dims, [h] * (n - 1) + [o])])

    def forward(self, x):
        for j, l in enumerate(self.layers):
            x = l(x)
            if j < len(self.layers) - 1:
                x = F.relu(x)
        return x


class MaskDecoder(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        c = cfg['dim']
        self.n_masks = cfg['multimask'] + 1
        self.transformer = TwoWayTransformer(cfg['depth'], c, cfg['heads'], cfg['mlp'])
        self.iou_token = nn.Embedding(1, c)
        self.mask_tokens = nn.Embedding(self.n_masks, c)
        self.output_upscaling = nn.Sequential(
            nn.ConvTranspose2d(c, c // 4, 2, 2), LayerNorm2d(c // 4), nn.GELU(),
            nn.ConvTranspose2d(c // 4, c // 8, 2, 2), nn.GELU())
        self.output_hypernetworks_mlps = nn.ModuleList([MLP(c, c, c // 8, 3) for _ in range(self.n_masks)])
        self.iou_prediction_head = MLP(c, cfg['iou_hidden'], self.n_masks, cfg['iou_depth'])

    def forward(self, image_embeddings, image_pe, sparse, dense):
        b = sparse.shape[0]
        out_tokens = torch.cat([self.iou_token.weight, self.mask_tokens.weight], dim=0)
        tokens = torch.cat([out_tokens[None].expand(b, -1, -1), sparse], dim=1)
        src = image_embeddings + dense
        pe = image_pe.expand(b, -1, -1, -1)
        _, c, h, w = src.shape
        hs, keys = self.transformer(src, pe, tokens)
        up = self.output_upscaling(keys.transpose(1, 2).reshape(b, c, h, w))
        hyper = torch.stack([m(hs[:, 1 + i]) for i, m in enumerate(self.output_hypernetworks_mlps)], dim=1)
        masks = (hyper @ up.flatten(2)).reshape(b, self.n_masks, 4 * h, 4 * w)
        iou = self.iou_prediction_head(hs[:, 0])
        return masks, iou, hs, keys, up


class Sam(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.prompt_encoder = PromptEncoder(cfg['dim'], cfg['grid'], cfg['img_size'], cfg['mask_chans'])
        self.mask_decoder = MaskDecoder(cfg)


class PromptEncoderGraph(nn.Module):
    def __init__(self, sam):
        super().__init__()
        self.pe = sam.prompt_encoder

    def forward(self, point_coords, point_labels, boxes, mask_input):
        return self.pe.points(point_coords, point_labels), self.pe.boxes(boxes), self.pe.masks(mask_input), self.pe.dense_pe()


class MaskDecoderGraph(nn.Module):
    def __init__(self, sam):
        super().__init__()
        self.dec = sam.mask_decoder

    def forward(self, image_embeddings, image_pe, sparse, dense):
        return self.dec(image_embeddings, image_pe, sparse, dense)


class PointDecoderGraph(nn.Module):
    """Points -> low-res masks: what the predictor runs per prompt set (no mask input)."""

    def __init__(self, sam):
        super().__init__()
        self.pe = sam.prompt_encoder
        self.dec = sam.mask_decoder

    def forward(self, image_embeddings, point_coords, point_labels):
        sparse = self.pe.points(point_coords, point_labels)
        dense = self.pe.no_mask(point_coords.shape[0])
        masks, iou, _, _, _ = self.dec(image_embeddings, self.pe.dense_pe(), sparse, dense)
        return masks, iou


def config_from(w, heads=None):
    c = w['prompt_encoder.not_a_point_embed.weight'].shape[1]
    depth = 0
    while f'mask_decoder.transformer.layers.{depth}.self_attn.q_proj.weight' in w:
        depth += 1
    iou_depth = 0
    while f'mask_decoder.iou_prediction_head.layers.{iou_depth}.weight' in w:
        iou_depth += 1
    grid = w['image_encoder.pos_embed'].shape[1] if 'image_encoder.pos_embed' in w else 64
    patch = w['image_encoder.patch_embed.proj.weight'].shape[2] if 'image_encoder.patch_embed.proj.weight' in w else 16
    return {
        'dim': c,
        'grid': grid,
        'img_size': grid * patch,
        'mask_chans': w['prompt_encoder.mask_downscaling.3.weight'].shape[0],
        'depth': depth,
        'heads': heads if heads else max(1, min(8, c // 16)),
        'mlp': w['mask_decoder.transformer.layers.0.mlp.lin1.weight'].shape[0],
        'multimask': w['mask_decoder.mask_tokens.weight'].shape[0] - 1,
        'iou_depth': iou_depth,
        'iou_hidden': w['mask_decoder.iou_prediction_head.layers.0.weight'].shape[0],
    }


def build(w, heads=None):
    cfg = config_from(w, heads)
    sam = Sam(cfg)
    state = {k: torch.from_numpy(v) for k, v in w.items() if k.startswith(('prompt_encoder.', 'mask_decoder.'))}
    sam.load_state_dict(state, strict=True)
    sam.eval()
    return sam, cfg


def export_graph(module, args, path, inputs, outputs, dynamic):
    with torch.no_grad():
        torch.onnx.export(module, args, path, opset_version=OPSET, input_names=inputs, output_names=outputs,
                          dynamic_axes=dynamic, do_constant_folding=True)
    import onnx
    onnx.checker.check_model(onnx.load(path))


# ---------------------------------------------------------------------------- reference check

def ref_check(actual, expected, entry):
    a = np.asarray(actual, dtype=np.float64).reshape(-1)
    e = np.asarray(expected, dtype=np.float64).reshape(-1)
    d = a - e
    rel = float(np.linalg.norm(d) / max(np.linalg.norm(e), 1e-30))
    mx = float(np.abs(d).max()) if d.size else 0.0
    noise = entry.get('fp32_vs_fp64', {'rel_l2': 0, 'max_abs_err': 0})
    gate_rel = max(1e-4, 20 * noise['rel_l2'])
    gate_abs = max(1e-3 * entry.get('absmax', 0), 20 * noise['max_abs_err'])
    return {'rel_l2': rel, 'max_abs': mx, 'ok': bool(rel <= gate_rel and mx <= gate_abs)}


def check_fixtures(sam, cfg):
    manifest = json.load(open(os.path.join(REF, 'manifest.json')))
    checks = {}
    pe = sam.prompt_encoder
    dec = sam.mask_decoder
    with torch.no_grad():
        for photo in manifest['sam']['photos']:
            t, _ = read_safetensors(os.path.join(REF, photo['file']), float32=True)
            ents = photo['tensors']
            name = 'truck' if 'truck' in photo['file'] else 'dog'
            checks[f'{name}/image_pe'] = ref_check(pe.dense_pe().numpy(), t['image_pe'], ents['image_pe'])
            emb = torch.from_numpy(t['image_embedding'])
            ipe = torch.from_numpy(t['image_pe'])
            for c in photo['cases']:
                tn = c['tensors']
                b = len(c['transformed_boxes']) if 'transformed_boxes' in c else 1
                parts = []
                if 'transformed_point_coords' in c:
                    coords = torch.tensor(c['transformed_point_coords'], dtype=torch.float32)[None]
                    labels = torch.tensor(c['point_labels'], dtype=torch.float32)[None]
                    has_box = 'transformed_box' in c
                    if not has_box:
                        coords = torch.cat([coords, torch.full((1, 1, 2), -0.5)], dim=1)
                        labels = torch.cat([labels, -torch.ones(1, 1)], dim=1)
                    parts.append(pe.points(coords, labels))
                boxes = c.get('transformed_boxes') or c.get('transformed_box')
                if boxes:
                    parts.append(pe.boxes(torch.tensor(boxes, dtype=torch.float32)))
                sparse = torch.cat(parts, dim=1) if parts else torch.zeros(b, 0, cfg['dim'])
                if 'mask_input' in c:
                    dense = pe.masks(torch.from_numpy(t[c['mask_input']])[None])
                else:
                    dense = pe.no_mask(b)
                key = f"{name}/{c['name']}"
                if sparse.shape[1]:
                    checks[f'{key}/sparse'] = ref_check(sparse.numpy(), t[tn['sparse_embeddings']], ents[tn['sparse_embeddings']])
                checks[f'{key}/dense'] = ref_check(dense.numpy(), t[tn['dense_embeddings']], ents[tn['dense_embeddings']])
                # The decoder is fed the stored embeddings, stage by stage.
                s_sparse = torch.from_numpy(t[tn['sparse_embeddings']])
                s_dense = torch.from_numpy(t[tn['dense_embeddings']])
                masks, iou, hs, keys, up = dec(emb, ipe, s_sparse, s_dense)
                for stage, v in [('decoder.hs', hs), ('decoder.keys', keys), ('decoder.upscaled', up),
                                 ('decoder.masks_all', masks), ('decoder.iou_all', iou)]:
                    checks[f'{key}/{stage}'] = ref_check(v.numpy(), t[tn[stage]], ents[tn[stage]])
                sl = slice(1, None) if c['multimask_output'] else slice(0, 1)
                checks[f'{key}/low_res_logits'] = ref_check(masks[:, sl].numpy(), t[tn['low_res_logits']], ents[tn['low_res_logits']])
                checks[f'{key}/iou_predictions'] = ref_check(iou[:, sl].numpy(), t[tn['iou_predictions']], ents[tn['iou_predictions']])
    return checks


# ---------------------------------------------------------------------------- commands

def versions():
    import onnx
    return {'torch': torch.__version__, 'numpy': np.__version__, 'onnx': onnx.__version__, 'python': sys.version.split()[0]}


def fixtures():
    w, _ = read_safetensors(os.path.join(REF, 'sam_tiny.weights.safetensors'), float32=True)
    manifest = json.load(open(os.path.join(REF, 'manifest.json')))
    heads = manifest['sam']['config']['decoder_num_heads']
    sam, cfg = build(w, heads)
    checks = check_fixtures(sam, cfg)
    failed = [k for k, v in checks.items() if not v['ok']]
    if failed:
        raise SystemExit(f'the re-implementation does not match the reference fixtures: {failed}')
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(SEED)
    c, g, m = cfg['dim'], cfg['grid'], 4 * cfg['grid']
    pe_path = os.path.join(OUT, 'sam_tiny_prompt_encoder.onnx')
    export_graph(PromptEncoderGraph(sam), (torch.rand(2, 3, 2) * cfg['img_size'], torch.tensor([[1., 0., -1.], [1., 1., 0.]]),
                                           torch.rand(2, 4) * cfg['img_size'], torch.randn(2, 1, m, m)),
                 pe_path, ['point_coords', 'point_labels', 'boxes', 'mask_input'], ['sparse_points', 'sparse_boxes', 'dense_mask', 'image_pe'],
                 {'point_coords': {0: 'B', 1: 'N'}, 'point_labels': {0: 'B', 1: 'N'}, 'boxes': {0: 'Bb'}, 'mask_input': {0: 'Bm'}})
    dec_path = os.path.join(OUT, 'sam_tiny_mask_decoder.onnx')
    export_graph(MaskDecoderGraph(sam), (torch.randn(1, c, g, g), torch.randn(1, c, g, g), torch.randn(2, 3, c), torch.randn(2, c, g, g)),
                 dec_path, ['image_embeddings', 'image_pe', 'sparse', 'dense'], ['masks_all', 'iou_all', 'hs', 'keys', 'upscaled'],
                 {'sparse': {0: 'B', 1: 'N'}, 'dense': {0: 'B'}})
    worst = {}
    for k, v in checks.items():
        stage = k.split('/', 2)[-1]
        worst[stage] = max(worst.get(stage, 0.0), v['rel_l2'])
    info = {
        'generated_by': 'tools/export-onnx-sam-decoder.py fixtures',
        'opset': OPSET,
        'seed': SEED,
        'versions': versions(),
        'config': cfg,
        'reference_check': {'cases': len(checks), 'all_within_fixture_rule': True, 'worst_rel_l2_per_stage': worst},
        'files': {
            'sam_tiny_prompt_encoder.onnx': 'point_coords [B,N,2] (input frame), point_labels [B,N] (-1/0/1, float), boxes [Bb,4], mask_input [Bm,1,64,64] -> sparse_points [B,N,64], sparse_boxes [Bb,2,64], dense_mask [Bm,64,16,16], image_pe [1,64,16,16]',
            'sam_tiny_mask_decoder.onnx': 'image_embeddings [1,64,16,16], image_pe [1,64,16,16], sparse [B,N,64], dense [B,64,16,16] -> masks_all [B,4,64,64], iou_all [B,4], hs [B,5+N,64], keys [B,256,64], upscaled [B,8,64,64]',
        },
    }
    with open(os.path.join(OUT, 'export.json'), 'w') as f:
        json.dump(info, f, indent=1)
    print(f'{len(checks)} reference checks passed; worst rel L2 per stage: {json.dumps(worst)}')
    print(f'wrote {pe_path}, {dec_path}')


def export_cli(args):
    if len(args) < 2:
        raise SystemExit(__doc__)
    src, out = args[0], args[1]
    io = args[args.index('--io') + 1] if '--io' in args else None
    batch = int(args[args.index('--batch') + 1]) if '--batch' in args else 1
    heads = int(args[args.index('--heads') + 1]) if '--heads' in args else None
    w, _ = read_safetensors(src, float32=True)
    sam, cfg = build(w, heads)
    torch.manual_seed(SEED)
    c, g = cfg['dim'], cfg['grid']
    emb = torch.randn(1, c, g, g)
    coords = torch.rand(batch, 2, 2) * cfg['img_size']
    coords[:, 1] = 0  # padding point
    labels = torch.tensor([[1., -1.]]).expand(batch, 2).contiguous()
    graph = PointDecoderGraph(sam)
    export_graph(graph, (emb, coords, labels), out, ['image_embeddings', 'point_coords', 'point_labels'], ['low_res_masks', 'iou_predictions'],
                 {'point_coords': {0: 'B', 1: 'N'}, 'point_labels': {0: 'B', 1: 'N'}})
    if io:
        with torch.no_grad():
            masks, iou = graph(emb, coords, labels)
        write_safetensors(io, {'image_embeddings': emb.numpy(), 'point_coords': coords.numpy(), 'point_labels': labels.numpy(),
                               'low_res_masks': masks.numpy(), 'iou_predictions': iou.numpy()},
                          {'seed': str(SEED), 'config': json.dumps(cfg), 'versions': json.dumps(versions())}, dtype='F32')
    print(f'wrote {out}: {json.dumps(cfg)}')


if __name__ == '__main__':
    if len(sys.argv) >= 2 and sys.argv[1] == 'fixtures':
        fixtures()
    elif len(sys.argv) >= 2 and sys.argv[1] == 'export':
        export_cli(sys.argv[2:])
    else:
        raise SystemExit(__doc__)
