"""A2BNet: the single-resolution Atrous-Attention backbone of A2B-IS (docs/model.md, backbone)."""
from contextlib import nullcontext
from typing import Dict, List, Optional, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmdet.registry import MODELS
from mmdet.utils import OptMultiConfig
from mmengine.model import BaseModule
from torch import Tensor


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channel dimension of an ``(N, C, H, W)`` map.

    Written here because mmcv/mmdet/mmengine ship only the channels-last ``nn.LayerNorm`` ('LN');
    this is the same module as mmpretrain's ``LayerNorm2d`` (Keras ``LayerNormalization(axis=-1)``).

    Args:
        num_channels (int): Number of channels C.
        eps (float): Added to the variance; 1e-3 is the Keras default the reference uses.
    """

    def __init__(self, num_channels: int, eps: float = 1e-3) -> None:
        super().__init__(num_channels, eps=eps)

    def forward(self, x: Tensor) -> Tensor:
        """Normalise each pixel's channel vector of ``x`` (N, C, H, W)."""
        if x.dim() != 4:
            raise ValueError(
                f'LayerNorm2d expects an (N, C, H, W) tensor, got shape {tuple(x.shape)}')
        fmt = _memory_format(x)
        x = F.layer_norm(x.permute(0, 2, 3, 1), self.normalized_shape, self.weight, self.bias,
                         self.eps)
        # keep the input's layout: a channels_last map stays channels_last without a copy
        return x.permute(0, 3, 1, 2).contiguous(memory_format=fmt)


def _memory_format(x: Tensor) -> torch.memory_format:
    """``torch.channels_last`` for an NHWC-strided 4-D map (channels_last training), else NCHW."""
    nhwc = x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(
        memory_format=torch.channels_last)
    return torch.channels_last if nhwc else torch.contiguous_format


def spatial_softmax(x: Tensor) -> Tensor:
    """Softmax over all H*W positions, separately per (image, channel), computed in float32.

    Autocast is disabled because a 256x256 map gives probabilities near 1.5e-5, which bf16/fp16
    sum and exponentiate too coarsely (docs/model.md, backbone).

    Args:
        x (Tensor): (N, C, H, W) scores.

    Returns:
        Tensor: float32 (N, C, H, W) probabilities; each (n, c) map sums to 1.
    """
    device_type = x.device.type
    # 'meta' tensors (shape-only FLOP counting) have no autocast to disable.
    no_autocast = (torch.autocast(device_type=device_type, enabled=False)
                   if torch.amp.is_autocast_available(device_type) else nullcontext())
    with no_autocast:
        if _memory_format(x) == torch.channels_last:
            # NHWC memory is (N, H*W, C): reduce over dim 1 in place of an NCHW copy
            n, c, h, w = x.shape
            y = torch.softmax(x.float().permute(0, 2, 3, 1).reshape(n, h * w, c), dim=1)
            return y.view(n, h, w, c).permute(0, 3, 1, 2)
        return torch.softmax(x.float().flatten(2), dim=-1).view(x.shape)


class AtrousAttentionBlock(BaseModule):
    """One stride-1 A2B block: LN_in, N atrous (self-attention) branches, 3x3 fusion.

    Branch n (dilation n): ``t = ReLU(1x1(x_n))``; ``k, q, v = ReLU(3x3_dil_n(t))``;
    ``u = softmax_HW(k * q) * v``; every branch output goes through ONE shared ``LN_upd``.
    Output ``LN_out(ReLU(3x3(concat[x_n, u_1..u_N])))``; there is no additive residual.
    With ``with_attention=False`` (the "no ASA" ablation) a branch is
    ``ReLU(3x3_dil_n(ReLU(1x1(x_n))))``.

    Args:
        in_channels (int): Input channels C_in.
        out_channels (int): Output channels C_out.
        num_asa (int): Number of branches N; branch n uses dilation n.
        dilate_scale (int): Branch width is ``out_channels // dilate_scale``.
        with_attention (bool): Use the k/q softmax attention in every branch.
        ln_eps (float): Epsilon of all LayerNorms.
        init_cfg (dict or list[dict], optional): Initialization config.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 num_asa: int,
                 dilate_scale: int = 2,
                 with_attention: bool = True,
                 ln_eps: float = 1e-3,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(init_cfg=init_cfg)
        branch_channels = out_channels // dilate_scale
        if num_asa < 1 or branch_channels < 1:
            raise ValueError(f'AtrousAttentionBlock needs num_asa >= 1 and out_channels // '
                             f'dilate_scale >= 1, got num_asa={num_asa}, '
                             f'out_channels={out_channels}, dilate_scale={dilate_scale}')
        self.with_attention = with_attention
        self.ln_in = LayerNorm2d(in_channels, eps=ln_eps)
        self.reduces = nn.ModuleList(
            nn.Conv2d(in_channels, branch_channels, 1) for _ in range(num_asa))
        names = ('values', 'keys', 'queries') if with_attention else ('values', )
        for name in names:
            self.add_module(
                name,
                nn.ModuleList(
                    nn.Conv2d(branch_channels, branch_channels, 3, padding=n, dilation=n)
                    for n in range(1, num_asa + 1)))
        self.ln_upd = LayerNorm2d(branch_channels, eps=ln_eps)
        self.fuse = nn.Conv2d(in_channels + num_asa * branch_channels, out_channels, 3, padding=1)
        self.ln_out = LayerNorm2d(out_channels, eps=ln_eps)

    def forward(self, x: Tensor) -> Tensor:
        """Apply the block to ``x`` (N, C_in, H, W); returns (N, C_out, H, W)."""
        x = self.ln_in(x)
        outs = [x]
        for n, reduce in enumerate(self.reduces):
            t = F.relu(reduce(x))
            v = F.relu(self.values[n](t))
            if self.with_attention:
                k = F.relu(self.keys[n](t))
                q = F.relu(self.queries[n](t))
                # M = k*q in fp32 too: under autocast k, q are bf16/fp16 and exp() magnifies
                # their rounding error.
                v = spatial_softmax(k.float() * q.float()) * v
            outs.append(self.ln_upd(v))
        return self.ln_out(F.relu(self.fuse(torch.cat(outs, dim=1))))


@MODELS.register_module()
class A2BNet(BaseModule):
    """A2BNet backbone of A2B-IS (docs/model.md, backbone and decision D1).

    A 7x7 stride-2 stem conv (bias, no activation) and a channels-first LayerNorm, then four
    stride-1 :class:`AtrousAttentionBlock` (one per stage). There is no further down-sampling, so
    the single output map has stride 2.

    Args:
        arch (str or dict): 'T', 'S', 'B' or 'L' (docs/model.md, backbone table), or
            ``dict(channels=[C1, C2, C3, C4], num_asa=[N1, N2, N3, N4])``.
        in_channels (int): Image channels.
        stem_kernel (int): Stem kernel size: 7 (reference code) or 3 (paper Table II).
        with_attention (bool): False builds the "no ASA" ablation of the paper.
        ln_eps (float): Epsilon of all LayerNorms (Keras default 1e-3).
        dilate_scale (int): Branch width of each block is ``C_out // dilate_scale``.
        tf_same_padding (bool): Pad the stem input like TF 'same' (e.g. (2, 3, 2, 3) for k=7),
            for porting TF weights; otherwise PyTorch symmetric padding ``stem_kernel // 2``.
        init_cfg (dict or list[dict], optional): Initialization config; None (default) means the
            Keras init of the reference (glorot-uniform conv kernels, zero biases).
    """

    arch_settings: Dict[str, Dict[str, List[int]]] = {
        'T': dict(channels=[16, 32, 64, 128], num_asa=[2, 2, 2, 2]),
        'S': dict(channels=[32, 64, 128, 256], num_asa=[4, 4, 4, 4]),
        'B': dict(channels=[64, 128, 256, 512], num_asa=[4, 4, 4, 4]),
        'L': dict(channels=[96, 192, 384, 768], num_asa=[8, 8, 4, 4]),
    }

    def __init__(self,
                 arch: Union[str, dict] = 'T',
                 in_channels: int = 3,
                 stem_kernel: int = 7,
                 with_attention: bool = True,
                 ln_eps: float = 1e-3,
                 dilate_scale: int = 2,
                 tf_same_padding: bool = False,
                 init_cfg: OptMultiConfig = None) -> None:
        if init_cfg is None:
            init_cfg = dict(type='Xavier', layer='Conv2d', distribution='uniform', bias=0.)
        super().__init__(init_cfg=init_cfg)
        channels, num_asa = self._parse_arch(arch)
        if stem_kernel not in (3, 7):
            raise ValueError(f'A2BNet stem_kernel must be 3 or 7, got {stem_kernel!r}')
        # TF 'same' with stride 2 on an even input pads (k - 2) // 2 before and k // 2 after.
        self.stem_pad: Optional[Tuple[int, int, int, int]] = (
            ((stem_kernel - 2) // 2, stem_kernel // 2) * 2 if tf_same_padding else None)
        self.stem = nn.Conv2d(
            in_channels,
            channels[0],
            stem_kernel,
            stride=2,
            padding=0 if tf_same_padding else stem_kernel // 2)
        self.stem_norm = LayerNorm2d(channels[0], eps=ln_eps)
        in_chs = [channels[0]] + channels[:-1]
        self.stages = nn.ModuleList(
            AtrousAttentionBlock(c_in, c_out, n, dilate_scale, with_attention, ln_eps)
            for c_in, c_out, n in zip(in_chs, channels, num_asa))
        self.out_channels = channels[-1]

    def _parse_arch(self, arch: Union[str, dict]) -> Tuple[List[int], List[int]]:
        """Return (channels, num_asa) of ``arch``; raise a one-line error when it is malformed."""
        if isinstance(arch, str):
            if arch not in self.arch_settings:
                raise ValueError(f'A2BNet arch must be one of {sorted(self.arch_settings)} or a '
                                 f'dict(channels=[...], num_asa=[...]), got {arch!r}')
            arch = self.arch_settings[arch]
        if not isinstance(arch, dict) or set(arch) != {'channels', 'num_asa'}:
            raise ValueError('A2BNet arch dict must have exactly the keys channels and num_asa, '
                             f'got {arch!r}')
        channels, num_asa = list(arch['channels']), list(arch['num_asa'])
        if len(channels) != 4 or len(num_asa) != 4:
            raise ValueError(f'A2BNet arch needs 4 stages of channels and num_asa, got {arch!r}')
        return channels, num_asa

    def forward(self, x: Tensor) -> Tuple[Tensor]:
        """Extract the stride-2 feature map.

        Args:
            x (Tensor): (N, in_channels, H, W) images.

        Returns:
            tuple[Tensor]: One map of shape (N, out_channels, H/2, W/2).
        """
        if self.stem_pad is not None:
            x = F.pad(x, self.stem_pad)
        x = self.stem_norm(self.stem(x))
        for stage in self.stages:
            x = stage(x)
        return (x, )


__all__ = ['A2BNet', 'AtrousAttentionBlock', 'LayerNorm2d', 'spatial_softmax']
