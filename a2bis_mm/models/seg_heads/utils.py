"""Conv stack shared by the three A2B-IS heads (spec B §2)."""
from typing import Tuple

import torch.nn as nn
from torch import Tensor

# Keras' glorot-uniform kernels and zero biases as in the reference; the output conv starts at
# zero so that the first predictions are S = 0.5, P = 1/C and boxes equal to their anchors.
A2B_HEAD_INIT_CFG = dict(
    type='Xavier',
    layer='Conv2d',
    distribution='uniform',
    override=dict(type='Constant', name='conv_out', val=0.))


def a2b_branch(in_channels: int, feat_channels: int,
               out_channels: int) -> Tuple[nn.Sequential, nn.Conv2d]:
    """Build ``conv3x3-ReLU-conv3x3-ReLU`` and the zero-initialised, bias-free output conv.

    Args:
        in_channels (int): Input channels.
        feat_channels (int): Hidden channels (256 in the paper).
        out_channels (int): Output channels.

    Returns:
        tuple[nn.Sequential, nn.Conv2d]: The hidden convs and the output conv.
    """
    convs = nn.Sequential(
        nn.Conv2d(in_channels, feat_channels, 3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(feat_channels, feat_channels, 3, padding=1), nn.ReLU(inplace=True))
    conv_out = nn.Conv2d(feat_channels, out_channels, 3, padding=1, bias=False)
    nn.init.zeros_(conv_out.weight)
    return convs, conv_out


def pad_to(target: Tensor, size: Tuple[int, int], value: float, name: str) -> Tensor:
    """Pad a ``(..., h, w)`` target map at the bottom/right to the feature size ``size``.

    Targets are smaller than the prediction when the batch was padded (mmdet pads images at the
    bottom/right, so the valid region stays at the top-left).

    Args:
        target (Tensor): The target map (..., h, w).
        size (tuple[int, int]): The feature map size (H, W).
        value (float): Fill value of the padded region.
        name (str): Name of the target, for the error message.

    Returns:
        Tensor: The padded map (..., H, W).
    """
    h, w = target.shape[-2:]
    if h > size[0] or w > size[1]:
        raise ValueError(f'{name} target of size {(h, w)} is larger than the prediction map '
                         f'{tuple(size)}; check the stride of the targets and of the model')
    return nn.functional.pad(target, (0, size[1] - w, 0, size[0] - h), value=value)
