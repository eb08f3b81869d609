"""Parameters and FLOPs of a model: the one counter of tools/analysis_tools/get_flops.py and
tools/benchmark.py.

FLOPs follow the paper's convention: 2 x the multiply-adds of convolutions and matrix products
(conv, linear, matmul, bmm, attention); biases, normalisation, activations, the spatial softmax,
resizing and post-processing are not counted. They are counted at the dispatcher by torch's
``FlopCounterMode``, so functional calls (``F.linear`` inside attention) count as well and the
model may run on the 'meta' device (shapes only: A2B-IS-L at 512^2 in about a second).
"""
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn as nn
from mmdet.registry import MODELS
from mmengine.model import BaseModel
from torch import Tensor
from torch.utils.flop_counter import FlopCounterMode


def count_flops(model: nn.Module, inputs: Tensor, data_samples: Optional[list] = None,
                ) -> Dict[str, int]:
    """FLOPs of one forward of ``model`` on ``inputs``, per module.

    Args:
        model (nn.Module): A detector (run in mmdet's ``mode='tensor'``) or a plain module.
        inputs (Tensor): The input batch, e.g. ``(1, 3, H, W)``; may be on the 'meta' device.
        data_samples (list, optional): Data samples of a detector's forward (two-stage
            detectors need their metainfo).

    Returns:
        dict[str, int]: FLOPs per module path relative to ``model`` (``'backbone'``,
        ``'mask_head.seg_branch'``, ...) and the total under ``''``.
    """
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        if isinstance(model, BaseModel):
            model(inputs, data_samples, mode='tensor')
        else:
            model(inputs)
    root = type(model).__name__
    flops = {'': counter.get_total_flops()}
    for name, ops in counter.get_flop_counts().items():
        if name.startswith(root + '.'):
            flops[name[len(root) + 1:]] = sum(ops.values())
    return flops


def default_parts(model: nn.Module) -> List[str]:
    """Top-level children, and the children of each head (A2B-IS: its three branches)."""
    parts = []
    for name, child in model.named_children():
        parts.append(name)
        if type(child).__name__.endswith('Head'):
            parts += [f'{name}.{sub}' for sub, grandchild in child.named_children()
                      if any(True for _ in grandchild.parameters())]
    return parts


def model_complexity(model_cfg: dict, shape: int,
                     parts: Optional[Sequence[str]] = None) -> Dict[str, Dict[str, float]]:
    """Build ``model_cfg`` on the 'meta' device and measure it on one ``shape`` x ``shape`` image.

    Args:
        model_cfg (dict): A model config (``cfg.model``) in the mmdet registry.
        shape (int): Input height and width.
        parts (Sequence[str], optional): Module paths to report besides the total; default
            :func:`default_parts`.

    Returns:
        dict[str, dict]: For each part with parameters or FLOPs and for ``'total'``: ``params``
        (int), ``mib`` (float32 MiB = params * 4 / 2^20), ``macs`` (int, FLOPs / 2) and
        ``gflops`` (FLOPs / 1e9).
    """
    with torch.device('meta'):  # no weights allocated or initialised
        model = MODELS.build(model_cfg)
    model.eval()
    flops = count_flops(model, torch.empty(1, 3, shape, shape, device='meta'))
    modules = dict(model.named_modules())
    rows = {}
    for name in (default_parts(model) if parts is None else parts):
        params = sum(p.numel() for p in modules[name].parameters())
        if params or flops.get(name):
            rows[name] = dict(params=params, macs=flops.get(name, 0) // 2)
    rows['total'] = dict(params=sum(p.numel() for p in model.parameters()), macs=flops[''] // 2)
    for row in rows.values():
        row['mib'] = row['params'] * 4 / 2**20
        row['gflops'] = 2 * row['macs'] / 1e9
    return rows
