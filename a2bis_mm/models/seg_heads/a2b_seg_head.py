"""Semantic head of A2B-IS: background, object classes and the overlap class."""
from typing import Dict, Tuple

import torch
import torch.nn.functional as F
from mmdet.registry import MODELS
from mmdet.structures import SampleList
from mmdet.utils import ConfigType, OptMultiConfig
from mmengine.model import BaseModule
from torch import Tensor

from .utils import A2B_HEAD_INIT_CFG, a2b_branch, pad_to

DEFAULT_LOSS_CE = dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=2.0)
DEFAULT_LOSS_DICE = dict(
    type='DiceLoss', use_sigmoid=False, activate=False, naive_dice=True, eps=1e-5,
    loss_weight=4.0)


@MODELS.register_module()
class A2BSegHead(BaseModule):
    """``C4+1 -> 256 -> 256 -> C`` 3x3 convs predicting class logits, ``C = num_classes + 2``.

    Channel 0 is background, ``1..num_classes`` the object classes (label + 1) and
    ``num_classes + 1`` the overlap class (spec B §3.2). The input is the backbone feature map
    with the skeleton probability appended as one extra channel (spec B §2).

    Loss (spec D3 / B §4.2): ``loss_ce`` on the logits scaled by ``1 + mean(y)`` (y = skeleton
    GT; the reference's collapsed weight) or by the per-pixel ``1 + y`` when
    ``ce_pixel_skeleton_weight=True``; ``loss_dice`` on the softmax probabilities of the
    non-background channels (overlap included), all pixels of the batch pooled into one row per
    channel. mmdet's ``DiceLoss(naive_dice=True)`` computes ``1 - mean_c (2 sum gp + eps) /
    (sum g + sum p + eps)``, which is §4.2's dice; ``dice_log_cosh=True`` applies the
    reference's ``log(cosh(.))`` to it. Pixels of the padded region are ignored by both terms.

    Args:
        in_channels (int): Channels of the backbone feature map (C4); the head adds one input
            channel for the skeleton map.
        num_classes (int): Number of object classes N.
        feat_channels (int): Hidden channels. Defaults to 256.
        loss_ce (dict): Config of the cross-entropy loss (on logits).
        loss_dice (dict): Config of the dice loss (on probabilities).
        ce_pixel_skeleton_weight (bool): Per-pixel ``1 + y`` CE weight instead of the scalar
            ``1 + mean(y)``. Defaults to False.
        dice_log_cosh (bool): Use ``log(cosh(dice loss))``. Defaults to False.
        ignore_index (int): Label of ignored pixels (padding). Defaults to 255.
        init_cfg (dict or list[dict], optional): Initialisation config.
    """

    def __init__(self,
                 in_channels: int,
                 num_classes: int,
                 feat_channels: int = 256,
                 loss_ce: ConfigType = DEFAULT_LOSS_CE,
                 loss_dice: ConfigType = DEFAULT_LOSS_DICE,
                 ce_pixel_skeleton_weight: bool = False,
                 dice_log_cosh: bool = False,
                 ignore_index: int = 255,
                 init_cfg: OptMultiConfig = A2B_HEAD_INIT_CFG) -> None:
        super().__init__(init_cfg=init_cfg)
        if num_classes < 1:
            raise ValueError(f'num_classes must be >= 1, got {num_classes}')
        self.num_classes = num_classes
        self.overlap_label = num_classes + 1
        self.convs, self.conv_out = a2b_branch(in_channels + 1, feat_channels, num_classes + 2)
        self.loss_ce = MODELS.build(loss_ce)
        self.loss_dice = MODELS.build(loss_dice)
        self.ce_pixel_skeleton_weight = ce_pixel_skeleton_weight
        self.dice_log_cosh = dice_log_cosh
        self.ignore_index = ignore_index

    def forward(self, x: Tensor) -> Tensor:
        """Return class logits (B, C, h, w) from features with the skeleton map (B, C4+1, h, w)."""
        return self.conv_out(self.convs(x))

    def get_targets(self, batch_data_samples: SampleList,
                    size: torch.Size) -> Tuple[Tensor, Tensor]:
        """Stack the class maps (B, h, w) (padding = ignore) and skeleton maps (B, h, w)."""
        labels, skeletons = [], []
        for sample in batch_data_samples:
            sem = sample.gt_sem_seg.sem_seg.long()
            if int(sem.max()) > self.overlap_label:
                raise ValueError(f'gt_sem_seg of {sample.metainfo.get("img_path")} has label '
                                 f'{int(sem.max())} > overlap label {self.overlap_label} '
                                 f'(num_classes={self.num_classes})')
            labels.append(pad_to(sem, size, self.ignore_index, 'gt_sem_seg')[0])
            skeletons.append(
                pad_to(sample.gt_skeleton.heatmap.float(), size, 0., 'gt_skeleton.heatmap')[0])
        return torch.stack(labels), torch.stack(skeletons)

    def loss(self, logits: Tensor, batch_data_samples: SampleList) -> Dict[str, Tensor]:
        """Compute the CE and dice terms.

        Args:
            logits (Tensor): Class logits (B, C, h, w).
            batch_data_samples (list[DetDataSample]): Samples with ``gt_sem_seg.sem_seg`` and
                ``gt_skeleton.heatmap``.

        Returns:
            dict[str, Tensor]: ``loss_ce`` and ``loss_dice``.
        """
        labels, skeleton = self.get_targets(batch_data_samples, logits.shape[-2:])
        labels, skeleton = labels.to(logits.device), skeleton.to(logits.device)
        valid = labels != self.ignore_index
        num_valid = max(int(valid.sum()), 1)
        if self.ce_pixel_skeleton_weight:
            weight, factor = 1 + skeleton, 1.
        else:
            weight, factor = None, 1 + skeleton[valid].sum() / num_valid
        loss_ce = factor * self.loss_ce(
            logits, labels, weight, avg_factor=num_valid, ignore_index=self.ignore_index)

        # one row per non-background channel, the valid pixels of the whole batch pooled
        probs = logits.softmax(dim=1).permute(1, 0, 2, 3)[1:, valid]
        onehot = F.one_hot(labels[valid], self.num_classes + 2).T[1:]
        loss_dice = self.loss_dice(probs, onehot)
        if self.dice_log_cosh:
            weight_dice = self.loss_dice.loss_weight
            loss_dice = weight_dice * torch.cosh(loss_dice / weight_dice).log()
        return dict(loss_ce=loss_ce, loss_dice=loss_dice)
