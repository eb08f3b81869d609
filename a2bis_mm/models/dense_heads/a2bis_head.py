"""The A2B-IS head: skeleton, segmentation and rotated-box branches on one stride-s map.

One head owns the three branches of docs/model.md (architecture), the class count, the overlap
label and the stride, and hands them to its targets, losses and decoder, in the shape of mmdet's
one-stage mask heads (``SOLOV2Head``): ``forward`` -> ``loss``/``loss_by_feat`` and
``predict``/``predict_by_feat``.
"""
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmdet.models.dense_heads.base_mask_head import BaseMaskHead
from mmdet.models.task_modules.prior_generators import MlvlPointGenerator
from mmdet.registry import MODELS, TASK_UTILS
from mmdet.structures import SampleList
from mmdet.structures.bbox import get_box_tensor
from mmdet.utils import ConfigType, InstanceList, OptConfigType, OptMultiConfig
from mmengine.config import ConfigDict
from mmengine.model import BaseModule
from mmengine.structures import InstanceData, PixelData
from torch import Tensor

from a2bis_mm.structures.a2b_targets import IGNORE_INDEX, OVERLAP_SENTINEL
from a2bis_mm.structures.rbox_iou import rbox_overlaps

from ..task_modules import build_decoder
from .a2b_fullres_branch import A2BFullResBranch

DEFAULT_TRAIN_CFG = dict(anchor_thr=0.2, assign_mode='max_iou', use_anchor_weight=True)
DEFAULT_BBOX_CODER = dict(
    type='mmrotate.DeltaXYWHTRBBoxCoder', angle_version='oc', use_box_type=False)
DEFAULT_LOSS_SKELETON = dict(type='GaussianFocalLoss', alpha=2.0, gamma=4.0, loss_weight=1.0)
DEFAULT_LOSS_CE = dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=2.0)
DEFAULT_LOSS_DICE = dict(
    type='DiceLoss', use_sigmoid=False, activate=False, naive_dice=True, eps=1e-5,
    loss_weight=4.0)
DEFAULT_LOSS_BBOX = dict(type='A2BKLDLoss', tau=1.0, loss_weight=2.0)

# Keras' glorot-uniform kernels and zero biases as in the reference; the output conv starts at
# zero so that the first predictions are S = 0.5, P = 1/C and boxes equal to their anchors.
A2B_BRANCH_INIT_CFG = dict(
    type='Xavier',
    layer='Conv2d',
    distribution='uniform',
    override=dict(type='Constant', name='conv_out', val=0.))


class A2BBranch(BaseModule):
    """``conv3x3-ReLU-conv3x3-ReLU`` and a zero-initialised, bias-free 3x3 output conv.

    Args:
        in_channels (int): Input channels.
        feat_channels (int): Hidden channels (256 in the paper).
        out_channels (int): Output channels.
        init_cfg (dict or list[dict], optional): Initialisation config.
    """

    def __init__(self,
                 in_channels: int,
                 feat_channels: int,
                 out_channels: int,
                 init_cfg: OptMultiConfig = A2B_BRANCH_INIT_CFG) -> None:
        super().__init__(init_cfg=init_cfg)
        self.convs = nn.Sequential(
            nn.Conv2d(in_channels, feat_channels, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(feat_channels, feat_channels, 3, padding=1), nn.ReLU(inplace=True))
        self.conv_out = nn.Conv2d(feat_channels, out_channels, 3, padding=1, bias=False)
        nn.init.zeros_(self.conv_out.weight)

    def forward(self, x: Tensor) -> Tensor:
        """Return the branch output (B, out_channels, h, w)."""
        return self.conv_out(self.convs(x))


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
    return F.pad(target, (0, size[1] - w, 0, size[0] - h), value=value)


@MODELS.register_module()
class A2BISHead(BaseMaskHead):
    """Skeleton, segmentation and rotated single-anchor branches of A2B-IS (docs/model.md).

    All branches run on one stride-s feature map F. The skeleton probability S =
    sigmoid(skeleton logits) is appended to F as one channel, with gradient, before the
    segmentation and box branches::

        F --skeleton_branch--> S --+
        F -------------------------+-> [F, S] --seg_branch--> class logits (N + 2 channels)
                                           +---bbox_branch--> deltas -> rotated boxes

    Channel 0 of the class logits is background, ``1..N`` the object classes (label + 1) and
    ``N + 1`` the overlap class. Each feature pixel (r, c) owns one anchor ``(s*c, s*r, a, a, 0)``
    in input pixels (a = ``anchor_size``). Deltas decode as ``x = dx*a + ax``, ``y = dy*a + ay``,
    ``w = a*exp(dw)``, ``h = a*exp(dh)``, ``t = dt``: mmrotate's ``DeltaXYWHTRBBoxCoder`` with
    means 0, stds 1 and ``angle_version='oc'`` (no angle wrap); its dw/dh clamp
    (``wh_ratio_clip``, 1e-6: ``|dw| <= 13.8``) only keeps ``exp`` finite.

    Losses (docs/model.md, decisions D2-D5 and the losses table):

    * ``loss_skeleton``: CenterNet's penalty-reduced focal loss (mmdet ``GaussianFocalLoss``,
      alpha 2, gamma 4) on S, divided by ``max(#(y == 1), 1)``.
    * ``loss_ce``: softmax CE on the class logits scaled by ``1 + mean(y)`` (y = skeleton GT),
      or by the per-pixel ``1 + y`` with ``ce_pixel_skeleton_weight=True``.
    * ``loss_dice``: ``DiceLoss(naive_dice=True)`` on the softmax probabilities of channels
      ``1..N + 1``, the valid pixels of the batch pooled into one row per channel;
      ``dice_log_cosh=True`` applies the reference's ``log(cosh(.))``.
    * ``loss_bbox``: KLD between the decoded box and the GT box of every training anchor. Anchors
      (``train_cfg``) are the pixels whose GT skeleton is >= ``anchor_thr`` and whose class is
      not overlap; ``assign_mode='max_iou'`` gives each the GT box with the highest rotated IoU
      with its anchor (IoU <= 1e-6: ignored), ``'instance'`` the instance of
      ``gt_skeleton.inst``. With ``use_anchor_weight`` an anchor weighs the aspect ratio of its
      GT plus that GT's highest IoU with another GT (IoU > 0.99 zeroed).

    Pixels of the padded region of a batch are ignored by the class terms and are 0 in the
    skeleton target. The targets come from ``GenerateA2BTargets`` in the data pipeline, which
    does not know the class count: it writes the overlap class as ``OVERLAP_SENTINEL`` (254),
    mapped here to ``N + 1``, and records its stride, checked here against ``stride``.

    Inference (``predict_by_feat``): every pixel's box is decoded and the maps of each image go
    to the decoder built from ``test_cfg`` with this head's ``num_classes`` and ``stride``.

    Args:
        num_classes (int): Number of object classes N (the overlap label is N + 1).
        in_channels (int): Channels of the feature map (C4); the seg and box branches get one
            more input channel, the skeleton map.
        feat_channels (int): Hidden channels of each branch. Defaults to 256.
        stride (int): Stride of the feature map in input pixels. Defaults to 2.
        anchor_size (float): Side of the square anchors in input pixels. Defaults to 3.0.
        wh_ratio_clip (float): ``exp`` guard of the coder (see above). Defaults to 1e-6.
        bbox_coder (dict): Box coder config.
        loss_skeleton (dict): Skeleton loss config (on probabilities).
        loss_ce (dict): Cross-entropy loss config (on logits).
        loss_dice (dict): Dice loss config (on probabilities).
        loss_bbox (dict): Box loss config, called on decoded (n, 5) boxes.
        ce_pixel_skeleton_weight (bool): Per-pixel ``1 + y`` CE weight instead of the scalar
            ``1 + mean(y)``. Defaults to False.
        dice_log_cosh (bool): Use ``log(cosh(dice loss))``. Defaults to False.
        train_cfg (dict, optional): ``anchor_thr`` (0.2), ``assign_mode`` ('max_iou'),
            ``use_anchor_weight`` (True).
        test_cfg (dict, optional): Decoder config (docs/decoder.md).
        fullres (dict, optional): Settings of the full-resolution branch
            (:class:`A2BFullResBranch`: ``feat_channels``, ``img_channels``, ``bce_weight``,
            ``loss_dice``); None is the paper's architecture (three branches only).
        init_cfg (dict or list[dict], optional): Initialisation config; each branch has its
            own (Xavier-uniform, zero output conv).
    """

    def __init__(self,
                 num_classes: int,
                 in_channels: int,
                 feat_channels: int = 256,
                 stride: int = 2,
                 anchor_size: float = 3.0,
                 wh_ratio_clip: float = 1e-6,
                 bbox_coder: ConfigType = DEFAULT_BBOX_CODER,
                 loss_skeleton: ConfigType = DEFAULT_LOSS_SKELETON,
                 loss_ce: ConfigType = DEFAULT_LOSS_CE,
                 loss_dice: ConfigType = DEFAULT_LOSS_DICE,
                 loss_bbox: ConfigType = DEFAULT_LOSS_BBOX,
                 ce_pixel_skeleton_weight: bool = False,
                 dice_log_cosh: bool = False,
                 train_cfg: OptConfigType = None,
                 test_cfg: OptConfigType = None,
                 fullres: OptConfigType = None,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if num_classes is None:
            raise ValueError('A2BISHead.num_classes is not set: set it once per config from the '
                             'data set, model=dict(mask_head=dict(num_classes=len(classes)))')
        if not 1 <= num_classes < OVERLAP_SENTINEL - 1:
            raise ValueError(f'num_classes must be in [1, {OVERLAP_SENTINEL - 2}] (uint8 class '
                             f'maps with overlap and ignore labels), got {num_classes}')
        if stride < 1 or int(stride) != stride:
            raise ValueError(f'stride must be a positive integer, got {stride}')
        self.num_classes = num_classes
        self.overlap_label = num_classes + 1
        self.stride = int(stride)
        self.anchor_size = anchor_size
        self.wh_ratio_clip = wh_ratio_clip
        self.skeleton_branch = A2BBranch(in_channels, feat_channels, 1)
        self.seg_branch = A2BBranch(in_channels + 1, feat_channels, num_classes + 2)
        self.bbox_branch = A2BBranch(in_channels + 1, feat_channels, 5)
        self.prior_generator = MlvlPointGenerator([self.stride], offset=0.)
        self.bbox_coder = TASK_UTILS.build(bbox_coder)
        self.loss_skeleton = MODELS.build(loss_skeleton)
        self.loss_ce = MODELS.build(loss_ce)
        self.loss_dice = MODELS.build(loss_dice)
        self.loss_bbox = MODELS.build(loss_bbox)
        self.ce_pixel_skeleton_weight = ce_pixel_skeleton_weight
        self.dice_log_cosh = dice_log_cosh

        unknown = set(train_cfg or {}) - set(DEFAULT_TRAIN_CFG)
        if unknown:
            raise ValueError(f'unknown train_cfg keys {sorted(unknown)} for A2BISHead; '
                             f'expected {sorted(DEFAULT_TRAIN_CFG)}')
        self.train_cfg = ConfigDict(DEFAULT_TRAIN_CFG, **(train_cfg or {}))
        if self.train_cfg.assign_mode not in ('max_iou', 'instance'):
            raise ValueError("train_cfg.assign_mode must be 'max_iou' or 'instance', got "
                             f'{self.train_cfg.assign_mode!r}')
        self.fullres_branch = None if fullres is None else A2BFullResBranch(
            in_channels + 1, **fullres)
        self.test_cfg = test_cfg
        self.decoder = None if test_cfg is None else build_decoder(
            test_cfg, stride=self.stride, num_classes=self.num_classes)

    # ---------------------------------------------------------------- forward
    def forward(self, x: Tuple[Tensor, ...]) -> Tuple[Tensor, ...]:
        """Raw maps of the first (only) feature level.

        Args:
            x (tuple[Tensor]): ``x[0]`` is the stride-s map (B, C4, h, w); ``A2BIS`` passes the
                normalised image (B, 3, H, W) as ``x[1]`` (used by the full-resolution branch).

        Returns:
            tuple[Tensor]: Skeleton logits (B, 1, h, w), class logits (B, N + 2, h, w), box
            deltas (B, 5, h, w) and, with the full-resolution branch, its foreground / overlap
            logits (B, 2, H, W).
        """
        feat = x[0]
        skeleton_logits = self.skeleton_branch(feat)
        feat = torch.cat([feat, skeleton_logits.sigmoid()], dim=1)
        outs = (skeleton_logits, self.seg_branch(feat), self.bbox_branch(feat))
        if self.fullres_branch is not None:
            if len(x) < 2:
                raise ValueError('the full-resolution branch needs the image as x[1] '
                                 '(A2BIS.extract_feat hands it over)')
            outs += (self.fullres_branch(feat, x[1]), )
        return outs

    @staticmethod
    def get_maps(skeleton_logits: Tensor, seg_logits: Tensor, bbox_preds: Tensor,
                 fullres_logits: Optional[Tensor] = None) -> Dict[str, Tensor]:
        """The dense maps: probabilities and deltas (SSL-IS compares the first three).

        Returns:
            dict[str, Tensor]: ``skeleton`` (B, 1, h, w) and ``seg`` (B, N + 2, h, w)
            probabilities, ``bbox`` (B, 5, h, w) deltas; with the full-resolution branch also
            ``fg`` and ``overlap`` (B, 1, H, W) probabilities.
        """
        maps = dict(
            skeleton=skeleton_logits.sigmoid(), seg=seg_logits.softmax(dim=1), bbox=bbox_preds)
        if fullres_logits is not None:
            maps.update(A2BFullResBranch.get_maps(fullres_logits))
        return maps

    # ---------------------------------------------------------------- anchors and boxes
    def get_anchors(self, featmap_size: Tuple[int, int], device: torch.device) -> Tensor:
        """Anchors (h*w, 5) ``(s*c, s*r, a, a, 0)``, row-major over (r, c)."""
        points = self.prior_generator.single_level_grid_priors(featmap_size, 0, device=device)
        sizes = points.new_tensor([self.anchor_size, self.anchor_size, 0.]).expand(len(points), 3)
        return torch.cat([points, sizes], dim=1)

    def decode(self, anchors: Tensor, deltas: Tensor) -> Tensor:
        """Decode (n, 5) deltas on (n, 5) anchors into boxes in input pixels (radians)."""
        return self.bbox_coder.decode(anchors, deltas, wh_ratio_clip=self.wh_ratio_clip)

    # ---------------------------------------------------------------- targets
    def class_map(self, gt_sem_seg: PixelData, img_meta: Optional[dict] = None) -> Tensor:
        """The (h, w) int64 class map of one image with the overlap at ``N + 1``.

        Args:
            gt_sem_seg (PixelData): ``sem_seg`` (1, h, w): 0 background, ``1..N`` classes,
                ``OVERLAP_SENTINEL`` overlap.
            img_meta (dict, optional): Meta information, for error messages.

        Returns:
            Tensor: The class map.
        """
        sem = gt_sem_seg.sem_seg[0].long()
        overlap = sem == OVERLAP_SENTINEL
        bad = (sem > self.num_classes) & ~overlap
        if bad.any():
            path = (img_meta or {}).get('img_path')
            raise ValueError(f'gt_sem_seg of {path} has label {int(sem[bad].max())} > '
                             f'num_classes={self.num_classes} (overlap is written as '
                             f'{OVERLAP_SENTINEL}); check the class list of the data set and '
                             'mask_head.num_classes')
        return sem.masked_fill(overlap, self.overlap_label)

    def _check_stride(self, gt_skeleton: PixelData) -> None:
        """Raise if the targets were generated at another stride than this head's."""
        stride = gt_skeleton.metainfo.get('stride')
        if stride is not None and int(stride) != self.stride:
            raise ValueError(f'the targets were generated at stride {stride} '
                             f'(GenerateA2BTargets(stride=...)) but A2BISHead has stride '
                             f'{self.stride}')

    def get_targets(self, batch_gt_sem_seg: List[PixelData], batch_gt_skeleton: List[PixelData],
                    batch_img_metas: List[dict],
                    featmap_size: Tuple[int, int]) -> Tuple[List[Tensor], Tensor, Tensor]:
        """Class maps and skeleton maps of a batch.

        Args:
            batch_gt_sem_seg (list[PixelData]): GT ``sem_seg`` (1, h', w') of each image.
            batch_gt_skeleton (list[PixelData]): GT ``heatmap`` and ``inst`` (1, h', w').
            batch_img_metas (list[dict]): Meta information of each image.
            featmap_size (tuple[int, int]): Prediction size (h, w) >= (h', w').

        Returns:
            tuple: The unpadded (h', w') class maps (overlap = N + 1), the class maps (B, h, w)
            padded with ``IGNORE_INDEX`` and the skeleton maps (B, 1, h, w) padded with 0.
        """
        class_maps, labels, heatmaps = [], [], []
        for gt_sem_seg, gt_skeleton, img_meta in zip(batch_gt_sem_seg, batch_gt_skeleton,
                                                     batch_img_metas):
            self._check_stride(gt_skeleton)
            sem = self.class_map(gt_sem_seg, img_meta)
            class_maps.append(sem)
            labels.append(pad_to(sem[None], featmap_size, IGNORE_INDEX, 'gt_sem_seg')[0])
            heatmaps.append(
                pad_to(gt_skeleton.heatmap.float(), featmap_size, 0., 'gt_skeleton.heatmap'))
        return class_maps, torch.stack(labels), torch.stack(heatmaps)

    def _get_bbox_targets_single(self, anchors: Tensor, gt_instances: InstanceData,
                                 class_map: Tensor, gt_skeleton: PixelData,
                                 featmap_size: Tuple[int, int]) -> Tuple[Tensor, Tensor, Tensor]:
        """Select and assign the training anchors of one image.

        Args:
            anchors (Tensor): (h*w, 5) anchors.
            gt_instances (InstanceData): GT with ``bboxes`` (RotatedBoxes).
            class_map (Tensor): (h', w') class map, overlap = N + 1.
            gt_skeleton (PixelData): GT ``heatmap`` and ``inst`` (1, h', w').
            featmap_size (tuple[int, int]): The feature size (h, w).

        Returns:
            tuple[Tensor, Tensor, Tensor]: Flat feature indices (m,), GT boxes (m, 5) and
            weights (m,) of the assigned anchors.
        """
        heat = gt_skeleton.heatmap[0].to(anchors.device)
        sem = class_map.to(anchors.device)
        if heat.shape != sem.shape or heat.shape[0] > featmap_size[0] or \
                heat.shape[1] > featmap_size[1]:
            raise ValueError(f'gt_skeleton.heatmap {tuple(heat.shape)} and gt_sem_seg '
                             f'{tuple(sem.shape)} must be equal and fit the feature map '
                             f'{tuple(featmap_size)}')
        gt_boxes = get_box_tensor(gt_instances.bboxes).to(anchors)
        rows, cols = torch.nonzero(
            (heat >= self.train_cfg.anchor_thr) & (sem != self.overlap_label), as_tuple=True)
        inds = rows * featmap_size[1] + cols
        if len(gt_boxes) == 0 or len(inds) == 0:
            return inds[:0], gt_boxes.new_zeros((0, 5)), gt_boxes.new_zeros((0, ))
        if self.train_cfg.assign_mode == 'max_iou':
            # exact IoU, only for the pairs whose axis-aligned boxes meet (the others are 0)
            max_iou, gt_inds = rbox_overlaps(anchors[inds], gt_boxes).max(dim=1)
            keep = max_iou > 1e-6
        else:
            gt_inds = gt_skeleton.inst[0].to(anchors.device)[rows, cols]
            if int(gt_inds.max()) >= len(gt_boxes):
                raise ValueError(f'gt_skeleton.inst refers to instance {int(gt_inds.max())} but '
                                 f'the image has {len(gt_boxes)} GT boxes')
            keep = gt_inds >= 0
        inds, gt_inds = inds[keep], gt_inds[keep]
        if self.train_cfg.use_anchor_weight:
            gt_ious = rbox_overlaps(gt_boxes, gt_boxes)
            gt_ious[gt_ious > 0.99] = 0
            wh = gt_boxes[:, 2:4]
            gt_weights = wh.max(1).values / wh.min(1).values + gt_ious.max(1).values
            weights = gt_weights[gt_inds]
        else:
            weights = gt_boxes.new_ones(len(inds))
        return inds, gt_boxes[gt_inds], weights

    # ---------------------------------------------------------------- losses
    def loss(self, x: Tuple[Tensor, ...], batch_data_samples: SampleList,
             **kwargs) -> Dict[str, Tensor]:
        """Forward the features and compute the losses.

        Args:
            x (tuple[Tensor]): ``x[0]`` is the stride-s map, ``x[1]`` the normalised image.
            batch_data_samples (list[DetDataSample]): Samples with ``gt_instances``,
                ``gt_sem_seg`` and ``gt_skeleton`` (``PackA2BInputs``).
            **kwargs: Ignored (``positive_infos`` of ``SingleStageInstanceSegmentor``).

        Returns:
            dict[str, Tensor]: ``loss_skeleton``, ``loss_ce``, ``loss_dice`` and ``loss_bbox``.
        """
        outs = self(x)
        return self.loss_by_feat(
            *outs,
            batch_gt_instances=[s.gt_instances for s in batch_data_samples],
            batch_gt_sem_seg=[s.gt_sem_seg for s in batch_data_samples],
            batch_gt_skeleton=[s.gt_skeleton for s in batch_data_samples],
            batch_img_metas=[s.metainfo for s in batch_data_samples],
            batch_gt_fullres=[s.get('gt_fullres') for s in batch_data_samples])

    def loss_by_feat(self, skeleton_logits: Tensor, seg_logits: Tensor, bbox_preds: Tensor,
                     fullres_logits: Optional[Tensor] = None, *,
                     batch_gt_instances: InstanceList, batch_gt_sem_seg: List[PixelData],
                     batch_gt_skeleton: List[PixelData], batch_img_metas: List[dict],
                     batch_gt_fullres: Optional[List[Optional[PixelData]]] = None,
                     **kwargs) -> Dict[str, Tensor]:
        """Compute the losses from the raw maps and the GT of each image.

        Args:
            skeleton_logits (Tensor): (B, 1, h, w).
            seg_logits (Tensor): (B, N + 2, h, w).
            bbox_preds (Tensor): Deltas (B, 5, h, w).
            fullres_logits (Tensor, optional): (B, 2, H, W) of the full-resolution branch.
            batch_gt_instances (list[InstanceData]): GT with ``bboxes`` (RotatedBoxes).
            batch_gt_sem_seg (list[PixelData]): GT class maps ``sem_seg`` (1, h', w').
            batch_gt_skeleton (list[PixelData]): GT ``heatmap`` and ``inst`` (1, h', w').
            batch_img_metas (list[dict]): Meta information of each image.
            batch_gt_fullres (list[PixelData], optional): GT ``sem_seg`` (1, H', W') of the
                full-resolution branch (``GenerateA2BTargets(fullres=True)``).
            **kwargs: Ignored (mmdet's ``positive_infos``, ``batch_gt_instances_ignore``).

        Returns:
            dict[str, Tensor]: ``loss_skeleton``, ``loss_ce``, ``loss_dice`` and ``loss_bbox``
            (``0 * sum(bbox_preds)`` when no anchor is assigned, so that every parameter still
            gets a gradient); with the full-resolution branch also ``loss_fullres_bce`` and
            ``loss_fullres_dice``.
        """
        featmap_size = seg_logits.shape[-2:]
        class_maps, labels, heatmaps = self.get_targets(batch_gt_sem_seg, batch_gt_skeleton,
                                                        batch_img_metas, featmap_size)
        losses = self.loss_skeleton_by_feat(skeleton_logits, heatmaps)
        losses.update(self.loss_seg_by_feat(seg_logits, labels, heatmaps[:, 0]))
        losses.update(self.loss_bbox_by_feat(bbox_preds, batch_gt_instances, class_maps,
                                              batch_gt_skeleton))
        if self.fullres_branch is not None:
            if fullres_logits is None:
                raise ValueError('A2BISHead has a full-resolution branch: loss_by_feat needs '
                                 'its logits (the 4th output of forward)')
            losses.update(self.fullres_branch.loss(
                fullres_logits, self._fullres_targets(batch_gt_fullres, fullres_logits)))
        return losses

    @staticmethod
    def _fullres_targets(batch_gt_fullres: Optional[List[Optional[PixelData]]],
                         logits: Tensor) -> Optional[Tensor]:
        """(B, H, W) full-resolution targets padded with ``IGNORE_INDEX``; None if any is
        missing (e.g. targets made with ``GenerateA2BTargets(fullres=False)``)."""
        if not batch_gt_fullres or any(t is None for t in batch_gt_fullres):
            return None
        size = logits.shape[-2:]
        return torch.stack([
            pad_to(t.sem_seg.to(logits.device), size, IGNORE_INDEX, 'gt_fullres')[0]
            for t in batch_gt_fullres
        ])

    def loss_skeleton_by_feat(self, logits: Tensor, target: Tensor) -> Dict[str, Tensor]:
        """``loss_skeleton`` of logits (B, 1, h, w) against the padded skeleton maps."""
        target = target.to(logits.device)
        num_pos = max(int(target.eq(1).sum()), 1)
        return dict(loss_skeleton=self.loss_skeleton(
            logits.sigmoid(), target, avg_factor=num_pos))

    def loss_seg_by_feat(self, logits: Tensor, labels: Tensor,
                         skeleton: Tensor) -> Dict[str, Tensor]:
        """``loss_ce`` and ``loss_dice`` of class logits (B, N + 2, h, w).

        Args:
            logits (Tensor): Class logits (B, N + 2, h, w).
            labels (Tensor): Class maps (B, h, w), ``IGNORE_INDEX`` on padding.
            skeleton (Tensor): Skeleton GT (B, h, w), the CE weight.

        Returns:
            dict[str, Tensor]: ``loss_ce`` and ``loss_dice``.
        """
        labels, skeleton = labels.to(logits.device), skeleton.to(logits.device)
        valid = labels != IGNORE_INDEX
        num_valid = max(int(valid.sum()), 1)
        if self.ce_pixel_skeleton_weight:
            weight, factor = 1 + skeleton, 1.
        else:
            weight, factor = None, 1 + skeleton[valid].sum() / num_valid
        loss_ce = factor * self.loss_ce(
            logits, labels, weight, avg_factor=num_valid, ignore_index=IGNORE_INDEX)

        # one row per non-background channel, the valid pixels of the whole batch pooled
        probs = logits.softmax(dim=1).permute(1, 0, 2, 3)[1:, valid]
        onehot = F.one_hot(labels[valid], self.num_classes + 2).T[1:]
        loss_dice = self.loss_dice(probs, onehot)
        if self.dice_log_cosh:
            weight_dice = self.loss_dice.loss_weight
            loss_dice = weight_dice * torch.cosh(loss_dice / weight_dice).log()
        return dict(loss_ce=loss_ce, loss_dice=loss_dice)

    def loss_bbox_by_feat(self, bbox_preds: Tensor, batch_gt_instances: InstanceList,
                          class_maps: List[Tensor],
                          batch_gt_skeleton: List[PixelData]) -> Dict[str, Tensor]:
        """``loss_bbox`` of deltas (B, 5, h, w) on the anchors selected by the GT.

        Args:
            bbox_preds (Tensor): Deltas (B, 5, h, w).
            batch_gt_instances (list[InstanceData]): GT with ``bboxes`` (RotatedBoxes).
            class_maps (list[Tensor]): Unpadded (h', w') class maps, overlap = N + 1.
            batch_gt_skeleton (list[PixelData]): GT ``heatmap`` and ``inst`` (1, h', w').

        Returns:
            dict[str, Tensor]: ``loss_bbox``.
        """
        featmap_size = bbox_preds.shape[-2:]
        anchors = self.get_anchors(featmap_size, bbox_preds.device)
        deltas = bbox_preds.permute(0, 2, 3, 1).reshape(len(bbox_preds), -1, 5)
        preds, targets, weights = [], [], []
        for img_deltas, gt_instances, class_map, gt_skeleton in zip(
                deltas, batch_gt_instances, class_maps, batch_gt_skeleton):
            inds, gt_boxes, img_weights = self._get_bbox_targets_single(
                anchors, gt_instances, class_map, gt_skeleton, featmap_size)
            preds.append(self.decode(anchors[inds], img_deltas[inds]))
            targets.append(gt_boxes)
            weights.append(img_weights)
        preds, targets, weights = torch.cat(preds), torch.cat(targets), torch.cat(weights)
        if len(preds) == 0:
            return dict(loss_bbox=bbox_preds.sum() * 0)
        return dict(loss_bbox=self.loss_bbox(preds, targets, weights))

    # ---------------------------------------------------------------- inference
    def predict_by_feat(self,
                        skeleton_logits: Tensor,
                        seg_logits: Tensor,
                        bbox_preds: Tensor,
                        fullres_logits: Optional[Tensor] = None,
                        *,
                        batch_img_metas: List[dict],
                        rescale: bool = False,
                        **kwargs) -> InstanceList:
        """Decode every pixel's box and run the decoder on the maps of each image.

        Args:
            skeleton_logits (Tensor): (B, 1, h, w).
            seg_logits (Tensor): (B, N + 2, h, w).
            bbox_preds (Tensor): Deltas (B, 5, h, w).
            fullres_logits (Tensor, optional): (B, 2, H, W) of the full-resolution branch; the
                decoder then gets ``fg`` and ``overlap`` maps and builds masks at input
                resolution.
            batch_img_metas (list[dict]): Meta information of each image.
            rescale (bool): Return boxes and masks at the original image size.
            **kwargs: Ignored (mmdet's ``results_list``).

        Returns:
            list[InstanceData]: ``bboxes`` (RotatedBoxes), ``scores``, ``labels`` (0-based),
            ``masks`` (bool) of each image.
        """
        if self.decoder is None:
            raise ValueError('A2BISHead.predict_by_feat needs a test_cfg')
        maps = self.get_maps(skeleton_logits, seg_logits, bbox_preds, fullres_logits)
        h, w = bbox_preds.shape[-2:]
        anchors = self.get_anchors((h, w), bbox_preds.device)
        deltas = bbox_preds.permute(0, 2, 3, 1).reshape(len(bbox_preds), -1, 5)
        results = []
        for i, (img_deltas, img_meta) in enumerate(zip(deltas, batch_img_metas)):
            img_maps = {k: v[i] for k, v in maps.items() if k != 'bbox'}
            img_maps['rboxes'] = self.decode(anchors, img_deltas).view(h, w, 5)
            results.append(self.decoder.decode(img_maps, img_meta, rescale))
        return results
