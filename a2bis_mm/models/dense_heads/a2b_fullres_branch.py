"""Full-resolution branch of the A2B-IS head: foreground and overlap at input resolution.

Why: a stride-2 feature pixel stands for a 2x2 input block, so even perfect stride-2 masks are
dilated by up to one pixel and cap CoNSeP's bPQ near 0.82 whatever the decoder does; with
perfect full-resolution foreground / overlap maps the voting decoder reaches 0.97 (docs/decoder.md,
docs/model.md). This light branch predicts them from the upsampled features and a shallow
convolution of the image; ``A2BISHead(fullres=None)`` is the paper's architecture.
"""
from typing import Dict, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmdet.registry import MODELS
from mmdet.utils import ConfigType, OptMultiConfig
from mmengine.model import BaseModule
from torch import Tensor

DEFAULT_LOSS_FULLRES_DICE = dict(
    type='DiceLoss', use_sigmoid=False, activate=False, naive_dice=True, eps=1e-5,
    loss_weight=2.0)

FULLRES_INIT_CFG = dict(
    type='Xavier',
    layer='Conv2d',
    distribution='uniform',
    override=dict(type='Constant', name='conv_out', val=0.))


@MODELS.register_module()
class A2BFullResBranch(BaseModule):
    """Foreground and overlap logits (B, 2, H, W) at input resolution.

    ``[F, S]`` (C4 + 1 channels at stride s) -> 1x1 conv to ``feat_channels`` + ReLU -> bilinear
    upsampling to the image size; the image -> 3x3 conv to ``img_channels`` + ReLU (after a
    per-image, per-channel standardisation, so that 0-255 JET inputs and mean/std-normalised H&E
    inputs look alike); both concatenated -> 3x3 conv to ``feat_channels`` + ReLU -> 3x3 conv to 2
    (zero-initialised and bias-free like the other branches' output convs, so the first
    predictions are 0.5).

    Losses (``loss``): binary cross-entropy of both channels over the valid pixels
    (``loss_fullres_bce``, weight ``bce_weight``) and Dice of each channel that has a positive
    pixel in the batch, pixels of the batch pooled (``loss_fullres_dice``); targets are
    ``gt_fullres`` (0 background, 1 one instance, 2 overlap, 255 ignored).

    Args:
        in_channels (int): C4 + 1 (features with the skeleton map).
        feat_channels (int): Hidden channels. Defaults to 32.
        img_channels (int): Channels of the image convolution. Defaults to 16.
        bce_weight (float): Weight of the binary cross-entropy. Defaults to 2.0.
        loss_dice (dict): Dice loss config (on probabilities).
        init_cfg (dict or list[dict], optional): Initialisation config.
    """

    def __init__(self,
                 in_channels: int,
                 feat_channels: int = 32,
                 img_channels: int = 16,
                 bce_weight: float = 2.0,
                 loss_dice: ConfigType = DEFAULT_LOSS_FULLRES_DICE,
                 init_cfg: OptMultiConfig = FULLRES_INIT_CFG) -> None:
        super().__init__(init_cfg=init_cfg)
        self.feat_proj = nn.Conv2d(in_channels, feat_channels, 1)
        self.img_conv = nn.Conv2d(3, img_channels, 3, padding=1)
        self.fuse = nn.Conv2d(feat_channels + img_channels, feat_channels, 3, padding=1)
        self.conv_out = nn.Conv2d(feat_channels, 2, 3, padding=1, bias=False)
        nn.init.zeros_(self.conv_out.weight)
        self.bce_weight = bce_weight
        self.loss_dice = MODELS.build(loss_dice)

    def forward(self, feat: Tensor, img: Tensor) -> Tensor:
        """Logits (B, 2, H, W) from ``[F, S]`` (B, C4 + 1, h, w) and the image (B, 3, H, W)."""
        up = F.interpolate(F.relu(self.feat_proj(feat)), size=img.shape[-2:], mode='bilinear',
                           align_corners=False)
        img = img.float()
        mean = img.mean(dim=(2, 3), keepdim=True)
        std = img.std(dim=(2, 3), keepdim=True).clamp(min=1e-3)
        low = F.relu(self.img_conv((img - mean) / std))
        return self.conv_out(F.relu(self.fuse(torch.cat([up, low], dim=1))))

    @staticmethod
    def get_maps(logits: Tensor) -> Dict[str, Tensor]:
        """``fg`` and ``overlap`` probabilities (B, 1, H, W) each."""
        probs = logits.sigmoid()
        return dict(fg=probs[:, :1], overlap=probs[:, 1:2])

    def loss(self, logits: Tensor, target: Optional[Tensor]) -> Dict[str, Tensor]:
        """``loss_fullres_bce`` and ``loss_fullres_dice``.

        Args:
            logits (Tensor): (B, 2, H, W).
            target (Tensor, optional): (B, H, W) uint8/int: 0, 1, 2 (overlap), 255 ignored.
                ``None`` (targets made without ``fullres``): zero losses that keep the branch
                in the graph.

        Returns:
            dict[str, Tensor]: the two losses.
        """
        if target is None:
            zero = logits.sum() * 0
            return dict(loss_fullres_bce=zero, loss_fullres_dice=zero)
        target = target.to(logits.device).long()
        valid = target != 255
        num_valid = max(int(valid.sum()), 1)
        goal = torch.stack([target >= 1, target >= 2], dim=1).float()
        bce = F.binary_cross_entropy_with_logits(logits, goal, reduction='none')
        loss_bce = self.bce_weight * (bce * valid[:, None]).sum() / (2 * num_valid)
        probs = logits.sigmoid().permute(1, 0, 2, 3)[:, valid]  # (2, pixels)
        goal = goal.permute(1, 0, 2, 3)[:, valid]
        present = goal.sum(dim=1) > 0
        if present.any():
            loss_dice = self.loss_dice(probs[present], goal[present])
        else:
            loss_dice = logits.sum() * 0
        return dict(loss_fullres_bce=loss_bce, loss_fullres_dice=loss_dice)
