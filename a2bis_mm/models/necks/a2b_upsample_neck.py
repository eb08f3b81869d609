"""Neck that brings a classic multi-scale backbone to the stride-2 map the A2B heads expect."""
from typing import List, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from mmdet.registry import MODELS
from mmdet.utils import ConfigType, OptConfigType, OptMultiConfig
from mmengine.model import BaseModule
from torch import Tensor


def upsample_aligned(x: Tensor, factor: int) -> Tensor:
    """Bilinear upsampling by an integer factor that keeps pixel ``c`` at ``factor * c``.

    The A2B data contract maps feature pixel ``(r, c)`` to input point ``(s*c, s*r)`` with no
    half-pixel offset. ``F.interpolate(scale_factor=f)`` shifts the grid by ``(f - 1) / (2f)``
    pixels (nearest: by up to ``f - 1``), so we replicate-pad one row/column, interpolate with
    ``align_corners=True`` to ``f*n + 1`` samples (output ``c'`` samples input ``c' / f`` exactly)
    and crop back to ``f*n``.

    Args:
        x (Tensor): ``(B, C, h, w)`` features.
        factor (int): Integer upsampling factor (>= 1).

    Returns:
        Tensor: ``(B, C, factor*h, factor*w)`` features.
    """
    if factor == 1:
        return x
    h, w = x.shape[-2:]
    x = F.pad(x, (0, 1, 0, 1), mode='replicate')
    x = F.interpolate(x, size=(factor * h + 1, factor * w + 1), mode='bilinear',
                      align_corners=True)
    return x[..., :factor * h, :factor * w]


@MODELS.register_module()
class A2BUpsampleNeck(BaseModule):
    """FPN-style top-down fusion of multi-scale features, upsampled to one stride-2 map.

    Lets the A2B-IS heads run on ResNet / Swin / HRNet / ConvNeXt (paper Table VI). Written here
    rather than reusing mmdet ``FPN`` because only the finest fused level is needed (``FPN`` spends
    a 3x3 output conv on every level) and its nearest-neighbour top-down path shifts the pixel grid.

    Args:
        in_channels (Sequence[int]): Channels of each backbone output, finest first.
        out_channels (int): Channels of the stride-2 output map (the heads' ``in_channels``).
        in_strides (Sequence[int]): Stride of each backbone output, finest first; consecutive
            strides must differ by an integer factor.
        out_stride (int): Stride of the output map. Defaults to 2 (the A2B-IS stride, docs/model.md).
        conv_cfg (dict, optional): Conv config of all convs. Defaults to None.
        norm_cfg (dict, optional): Norm config of the output convs. Defaults to BN.
        act_cfg (dict): Activation of the output convs. Defaults to ReLU.
        init_cfg (dict or list[dict], optional): Initialisation config.
    """

    def __init__(self,
                 in_channels: Sequence[int],
                 out_channels: int = 128,
                 in_strides: Sequence[int] = (4, 8, 16, 32),
                 out_stride: int = 2,
                 conv_cfg: OptConfigType = None,
                 norm_cfg: OptConfigType = dict(type='BN'),  # noqa: B006 (OpenMMLab style)
                 act_cfg: ConfigType = dict(type='ReLU'),  # noqa: B006
                 init_cfg: OptMultiConfig = dict(  # noqa: B006
                     type='Xavier', layer='Conv2d', distribution='uniform')) -> None:
        super().__init__(init_cfg=init_cfg)
        if len(in_channels) != len(in_strides):
            raise ValueError(f'A2BUpsampleNeck: {len(in_channels)} in_channels but '
                             f'{len(in_strides)} in_strides ({in_channels} vs {in_strides})')
        strides = [out_stride, *in_strides]
        if any(b % a or b <= a for a, b in zip(strides[:-1], strides[1:])):
            raise ValueError(f'A2BUpsampleNeck: strides must grow by integer factors from '
                             f'out_stride={out_stride}, got in_strides={tuple(in_strides)}')
        self.factors: List[int] = [b // a for a, b in zip(strides[:-1], strides[1:])]
        self.lateral_convs = torch.nn.ModuleList(
            ConvModule(c, out_channels, 1, conv_cfg=conv_cfg, act_cfg=None) for c in in_channels)
        # One 3x3 conv smooths the fused finest level (as FPN's output conv), one more after
        # the final upsampling so the stride-2 map is not a pure interpolation.
        self.fuse_conv = ConvModule(out_channels, out_channels, 3, padding=1, conv_cfg=conv_cfg,
                                    norm_cfg=norm_cfg, act_cfg=act_cfg)
        self.out_conv = ConvModule(out_channels, out_channels, 3, padding=1, conv_cfg=conv_cfg,
                                   norm_cfg=norm_cfg, act_cfg=act_cfg)

    def forward(self, inputs: Tuple[Tensor, ...]) -> Tuple[Tensor]:
        """Fuse the backbone outputs top-down and upsample the finest level to ``out_stride``.

        Args:
            inputs (tuple[Tensor]): Backbone outputs, finest first.

        Returns:
            tuple[Tensor]: One ``(B, out_channels, H/out_stride, W/out_stride)`` map.
        """
        if len(inputs) != len(self.lateral_convs):
            raise ValueError(f'A2BUpsampleNeck: expected {len(self.lateral_convs)} feature maps, '
                             f'got {len(inputs)}')
        laterals = [conv(x) for conv, x in zip(self.lateral_convs, inputs)]
        fused = laterals[-1]
        for i in range(len(laterals) - 2, -1, -1):
            up = upsample_aligned(fused, self.factors[i + 1])
            lat = laterals[i]
            # Odd input sizes leave coarse maps one pixel short/long; align on the top-left grid.
            fused = lat + _fit(up, lat.shape[-2:])
        out = upsample_aligned(self.fuse_conv(fused), self.factors[0])
        return (self.out_conv(out), )


def _fit(x: Tensor, size: torch.Size) -> Tensor:
    """Crop or replicate-pad ``x`` at the bottom/right to spatial ``size``."""
    x = x[..., :size[0], :size[1]]
    pad_h, pad_w = size[0] - x.shape[-2], size[1] - x.shape[-1]
    if pad_h or pad_w:
        x = F.pad(x, (0, pad_w, 0, pad_h), mode='replicate')
    return x
