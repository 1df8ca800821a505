"""Make torch.onnx.export use the TorchScript exporter on every PyTorch version.

PyTorch 2.9 made the dynamo-based exporter the default (``dynamo=True``); the export scripts here
were written and checked against the TorchScript exporter (opset, op decomposition, constant
folding), which older releases use anyway. Importing this module pins that choice where the
keyword exists, so the same scripts produce the same graphs on Debian's torch 1.13 and on a GPU
machine's torch 2.x.
"""
import inspect

import torch

_export = torch.onnx.export
if 'dynamo' in inspect.signature(_export).parameters:
    def _legacy_export(*args, **kwargs):
        kwargs.setdefault('dynamo', False)
        return _export(*args, **kwargs)

    torch.onnx.export = _legacy_export
