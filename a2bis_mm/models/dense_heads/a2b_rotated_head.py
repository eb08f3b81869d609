"""Rotated-box branch of A2B-IS: one 3x3 anchor per feature pixel (spec D5, B §2, §3.4-3.5)."""
from typing import Dict, List, Tuple

import torch
from mmdet.models.task_modules.prior_generators import MlvlPointGenerator
from mmdet.registry import MODELS, TASK_UTILS
from mmdet.structures import SampleList
from mmdet.structures.bbox import get_box_tensor
from mmdet.utils import ConfigType, InstanceList, OptConfigType, OptMultiConfig
from mmengine.config import ConfigDict
from mmengine.model import BaseModule
from mmengine.structures import InstanceData, PixelData
from torch import Tensor

from ...structures.rbox_iou import rbox_overlaps
from ..seg_heads.utils import A2B_HEAD_INIT_CFG, a2b_branch
from .a2b_postprocess import a2b_postprocess

DEFAULT_TRAIN_CFG = dict(anchor_thr=0.2, assign_mode='max_iou', use_anchor_weight=True)

DEFAULT_BBOX_CODER = dict(
    type='mmrotate.DeltaXYWHTRBBoxCoder', angle_version='oc', use_box_type=False)
DEFAULT_LOSS_BBOX = dict(type='A2BKLDLoss', tau=1.0, loss_weight=2.0)


@MODELS.register_module()
class A2BRotatedHead(BaseModule):
    """``C4+1 -> 256 -> 256 -> 5`` 3x3 convs predicting (dx, dy, dw, dh, dt) per feature pixel.

    Each feature pixel (r, c) owns one anchor ``(s*c, s*r, a, a, 0)`` in input pixels (s = stride,
    a = ``anchor_size``). Deltas decode as ``x = dx*a + ax``, ``y = dy*a + ay``,
    ``w = a*exp(dw)``, ``h = a*exp(dh)``, ``t = dt`` (spec §3.5), which is mmrotate's
    ``DeltaXYWHTRBBoxCoder`` with means 0, stds 1 and ``angle_version='oc'`` (no angle wrap).
    Its dw/dh clamp is set by ``wh_ratio_clip`` (1e-6: ``|dw| <= 13.8``), far outside any real
    box, so it only keeps ``exp`` finite and leaves training gradients alone.

    Training (``train_cfg``): anchors are the pixels whose GT skeleton is >= ``anchor_thr`` and
    whose class is not overlap; ``assign_mode='max_iou'`` gives each the GT box with the highest
    rotated IoU with its anchor (IoU <= 1e-6: ignored), ``'instance'`` the instance of
    ``gt_skeleton.inst``. With ``use_anchor_weight`` an anchor weighs the aspect ratio of its
    GT plus that GT's highest IoU with another GT (IoU > 0.99 zeroed). The loss compares the
    decoded box with the GT box; the GT is never encoded.

    Args:
        in_channels (int): Channels of the backbone feature map (C4); the head adds one input
            channel for the skeleton map.
        num_classes (int): Number of object classes N (the overlap label is N + 1).
        feat_channels (int): Hidden channels. Defaults to 256.
        stride (int): Stride of the feature map in input pixels. Defaults to 2.
        anchor_size (float): Side of the square anchors in input pixels. Defaults to 3.0.
        wh_ratio_clip (float): ``exp`` guard of the coder (see above). Defaults to 1e-6.
        bbox_coder (dict): Coder config.
        loss_bbox (dict): Box loss config, called on decoded (n, 5) boxes.
        train_cfg (dict, optional): ``anchor_thr``, ``assign_mode``, ``use_anchor_weight``.
        test_cfg (dict, optional): Post-processing config passed to ``a2b_postprocess``.
        init_cfg (dict or list[dict], optional): Initialisation config.
    """

    def __init__(self,
                 in_channels: int,
                 num_classes: int,
                 feat_channels: int = 256,
                 stride: int = 2,
                 anchor_size: float = 3.0,
                 wh_ratio_clip: float = 1e-6,
                 bbox_coder: ConfigType = DEFAULT_BBOX_CODER,
                 loss_bbox: ConfigType = DEFAULT_LOSS_BBOX,
                 train_cfg: OptConfigType = None,
                 test_cfg: OptConfigType = None,
                 init_cfg: OptMultiConfig = A2B_HEAD_INIT_CFG) -> None:
        super().__init__(init_cfg=init_cfg)
        self.num_classes = num_classes
        self.overlap_label = num_classes + 1
        self.stride = stride
        self.anchor_size = anchor_size
        self.wh_ratio_clip = wh_ratio_clip
        self.convs, self.conv_out = a2b_branch(in_channels + 1, feat_channels, 5)
        self.prior_generator = MlvlPointGenerator([stride], offset=0.)
        self.bbox_coder = TASK_UTILS.build(bbox_coder)
        self.loss_bbox = MODELS.build(loss_bbox)
        unknown = set(train_cfg or {}) - set(DEFAULT_TRAIN_CFG)
        if unknown:
            raise ValueError(f'unknown train_cfg keys {sorted(unknown)} for A2BRotatedHead; '
                             f'expected {sorted(DEFAULT_TRAIN_CFG)}')
        self.train_cfg = ConfigDict(DEFAULT_TRAIN_CFG, **(train_cfg or {}))
        if self.train_cfg.assign_mode not in ('max_iou', 'instance'):
            raise ValueError("train_cfg.assign_mode must be 'max_iou' or 'instance', got "
                             f'{self.train_cfg.assign_mode!r}')
        self.test_cfg = test_cfg

    def forward(self, x: Tensor) -> Tensor:
        """Return deltas (B, 5, h, w) from features with the skeleton map (B, C4+1, h, w)."""
        return self.conv_out(self.convs(x))

    def get_anchors(self, featmap_size: Tuple[int, int], device: torch.device) -> Tensor:
        """Anchors (h*w, 5) ``(s*c, s*r, a, a, 0)``, row-major over (r, c)."""
        points = self.prior_generator.single_level_grid_priors(featmap_size, 0, device=device)
        sizes = points.new_tensor([self.anchor_size, self.anchor_size, 0.]).expand(len(points), 3)
        return torch.cat([points, sizes], dim=1)

    def decode(self, anchors: Tensor, deltas: Tensor) -> Tensor:
        """Decode (n, 5) deltas on (n, 5) anchors into boxes in input pixels (radians)."""
        return self.bbox_coder.decode(anchors, deltas, wh_ratio_clip=self.wh_ratio_clip)

    def _get_targets_single(self, anchors: Tensor, gt_instances: InstanceData,
                            gt_sem_seg: PixelData, gt_skeleton: PixelData,
                            featmap_size: Tuple[int, int]) -> Tuple[Tensor, Tensor, Tensor]:
        """Select and assign the training anchors of one image.

        Returns:
            tuple[Tensor, Tensor, Tensor]: Flat feature indices (m,), GT boxes (m, 5) and
            weights (m,) of the assigned anchors.
        """
        heat = gt_skeleton.heatmap[0].to(anchors.device)
        sem = gt_sem_seg.sem_seg[0].to(anchors.device)
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

    def loss_by_feat(self, bbox_preds: Tensor, batch_gt_instances: InstanceList,
                     batch_gt_sem_seg: List[PixelData],
                     batch_gt_skeleton: List[PixelData]) -> Dict[str, Tensor]:
        """Compute the box loss from the deltas and the GT of each image.

        Args:
            bbox_preds (Tensor): Deltas (B, 5, h, w).
            batch_gt_instances (list[InstanceData]): GT with ``bboxes`` (RotatedBoxes).
            batch_gt_sem_seg (list[PixelData]): GT class maps ``sem_seg`` (1, h', w').
            batch_gt_skeleton (list[PixelData]): GT ``heatmap`` and ``inst`` (1, h', w').

        Returns:
            dict[str, Tensor]: ``loss_bbox``; ``0 * sum(bbox_preds)`` when no anchor is assigned,
            so that every parameter still gets a gradient.
        """
        featmap_size = bbox_preds.shape[-2:]
        anchors = self.get_anchors(featmap_size, bbox_preds.device)
        deltas = bbox_preds.permute(0, 2, 3, 1).reshape(len(bbox_preds), -1, 5)
        preds, targets, weights = [], [], []
        for img_deltas, gt_instances, gt_sem_seg, gt_skeleton in zip(
                deltas, batch_gt_instances, batch_gt_sem_seg, batch_gt_skeleton):
            inds, gt_boxes, img_weights = self._get_targets_single(
                anchors, gt_instances, gt_sem_seg, gt_skeleton, featmap_size)
            preds.append(self.decode(anchors[inds], img_deltas[inds]))
            targets.append(gt_boxes)
            weights.append(img_weights)
        preds, targets, weights = torch.cat(preds), torch.cat(targets), torch.cat(weights)
        if len(preds) == 0:
            return dict(loss_bbox=bbox_preds.sum() * 0)
        return dict(loss_bbox=self.loss_bbox(preds, targets, weights))

    def loss(self, bbox_preds: Tensor, batch_data_samples: SampleList) -> Dict[str, Tensor]:
        """Compute the box loss from deltas (B, 5, h, w) and the packed data samples."""
        return self.loss_by_feat(bbox_preds, [s.gt_instances for s in batch_data_samples],
                                 [s.gt_sem_seg for s in batch_data_samples],
                                 [s.gt_skeleton for s in batch_data_samples])

    def predict_by_feat(self,
                        bbox_preds: Tensor,
                        seg_probs: Tensor,
                        skeleton_probs: Tensor,
                        batch_img_metas: List[dict],
                        cfg: OptConfigType = None,
                        rescale: bool = False) -> InstanceList:
        """Decode every pixel's box and run the A2B-IS post-processing per image (spec D7).

        Args:
            bbox_preds (Tensor): Deltas (B, 5, h, w).
            seg_probs (Tensor): Class probabilities (B, C, h, w).
            skeleton_probs (Tensor): Skeleton probabilities (B, 1, h, w).
            batch_img_metas (list[dict]): Meta information of each image.
            cfg (dict, optional): Test config; ``self.test_cfg`` when None.
            rescale (bool): Return boxes and masks at the original image size.

        Returns:
            list[InstanceData]: ``bboxes`` (RotatedBoxes), ``scores``, ``labels``, ``masks``.
        """
        cfg = self.test_cfg if cfg is None else cfg
        if cfg is None:
            raise ValueError('A2BRotatedHead.predict_by_feat needs a test_cfg')
        cfg = ConfigDict(cfg)
        anchors = self.get_anchors(bbox_preds.shape[-2:], bbox_preds.device)
        deltas = bbox_preds.permute(0, 2, 3, 1).reshape(len(bbox_preds), -1, 5)
        return [
            a2b_postprocess(skeleton, seg, self.decode(anchors, img_deltas), img_meta, cfg,
                            rescale, stride=self.stride)
            for img_deltas, seg, skeleton, img_meta in zip(deltas, seg_probs, skeleton_probs,
                                                           batch_img_metas)
        ]
