"""Skeleton head of A2B-IS: a dense skeleton heat map at the feature resolution."""
from typing import Dict, List

import torch
from mmdet.registry import MODELS
from mmdet.structures import SampleList
from mmdet.utils import ConfigType, OptMultiConfig
from mmengine.model import BaseModule
from torch import Tensor

from .utils import A2B_HEAD_INIT_CFG, a2b_branch, pad_to

DEFAULT_LOSS_SKELETON = dict(type='GaussianFocalLoss', alpha=2.0, gamma=4.0, loss_weight=1.0)


@MODELS.register_module()
class A2BSkeletonHead(BaseModule):
    """``C4 -> 256 -> 256 -> 1`` 3x3 convs predicting skeleton logits (spec B §2).

    The loss is the CenterNet penalty-reduced focal loss (spec D2 / B §4.1) on the sigmoid
    probabilities, normalised by the number of pixels whose target is exactly 1. mmdet's
    ``GaussianFocalLoss`` computes exactly the §4.1 terms (alpha is the exponent 2 on
    ``(1-p)``/``p``, gamma the exponent 4 on ``(1-y)``) except that its log epsilon is 1e-12
    instead of 1e-5; the normaliser is ``max(#pos, 1)`` instead of ``#pos + 1e-5`` so that an
    image without objects keeps a finite loss.

    Args:
        in_channels (int): Channels of the backbone feature map (C4).
        feat_channels (int): Hidden channels. Defaults to 256.
        loss_skeleton (dict): Config of the skeleton loss.
        init_cfg (dict or list[dict], optional): Initialisation config.
    """

    def __init__(self,
                 in_channels: int,
                 feat_channels: int = 256,
                 loss_skeleton: ConfigType = DEFAULT_LOSS_SKELETON,
                 init_cfg: OptMultiConfig = A2B_HEAD_INIT_CFG) -> None:
        super().__init__(init_cfg=init_cfg)
        self.convs, self.conv_out = a2b_branch(in_channels, feat_channels, 1)
        self.loss_skeleton = MODELS.build(loss_skeleton)

    def forward(self, x: Tensor) -> Tensor:
        """Return skeleton logits (B, 1, h, w) from features (B, C4, h, w)."""
        return self.conv_out(self.convs(x))

    def get_targets(self, batch_data_samples: SampleList, size: torch.Size) -> Tensor:
        """Stack ``gt_skeleton.heatmap`` into (B, 1, h, w), padded with 0 to ``size``."""
        maps: List[Tensor] = [
            pad_to(s.gt_skeleton.heatmap.float(), size, 0., 'gt_skeleton.heatmap')
            for s in batch_data_samples
        ]
        return torch.stack(maps)

    def loss(self, logits: Tensor, batch_data_samples: SampleList) -> Dict[str, Tensor]:
        """Compute the skeleton loss.

        Args:
            logits (Tensor): Skeleton logits (B, 1, h, w).
            batch_data_samples (list[DetDataSample]): Samples with ``gt_skeleton.heatmap``.

        Returns:
            dict[str, Tensor]: ``loss_skeleton``.
        """
        target = self.get_targets(batch_data_samples, logits.shape[-2:]).to(logits.device)
        num_pos = max(int(target.eq(1).sum()), 1)
        return dict(loss_skeleton=self.loss_skeleton(
            logits.sigmoid(), target, avg_factor=num_pos))
