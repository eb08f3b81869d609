"""A2B-IS: one-stage skeleton-guided instance segmentation (spec B §2)."""
from typing import Dict, Tuple

import torch
from mmdet.models.detectors import BaseDetector
from mmdet.registry import MODELS
from mmdet.structures import OptSampleList, SampleList
from mmdet.utils import ConfigType, OptConfigType, OptMultiConfig
from torch import Tensor


@MODELS.register_module()
class A2BIS(BaseDetector):
    """A2B-IS detector: backbone (+ optional neck), skeleton, segmentation and box heads.

    All heads run on one stride-s feature map F. The skeleton probability S = sigmoid(skeleton
    logits) is appended to F as one channel, with gradient, before the segmentation and box
    heads (spec B §2)::

        F --skeleton_head--> S --+
        F -----------------------+-> [F, S] --seg_head--> P (softmax)
                                         +---bbox_head--> deltas -> rotated boxes

    Args:
        backbone (dict): Backbone config; its first output map is used.
        skeleton_head (dict): ``A2BSkeletonHead`` config.
        seg_head (dict): ``A2BSegHead`` config.
        bbox_head (dict): ``A2BRotatedHead`` config; gets ``train_cfg`` and ``test_cfg``.
        neck (dict, optional): Neck config; if it returns several maps the first is used.
        train_cfg (dict, optional): Anchor selection/assignment of the box head.
        test_cfg (dict, optional): Post-processing config (``a2b_postprocess``).
        data_preprocessor (dict, optional): Data preprocessor config.
        init_cfg (dict or list[dict], optional): Initialisation config.
    """

    def __init__(self,
                 backbone: ConfigType,
                 skeleton_head: ConfigType,
                 seg_head: ConfigType,
                 bbox_head: ConfigType,
                 neck: OptConfigType = None,
                 train_cfg: OptConfigType = None,
                 test_cfg: OptConfigType = None,
                 data_preprocessor: OptConfigType = None,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.backbone = MODELS.build(backbone)
        if neck is not None:
            self.neck = MODELS.build(neck)
        self.skeleton_head = MODELS.build(skeleton_head)
        self.seg_head = MODELS.build(seg_head)
        bbox_head.update(train_cfg=train_cfg, test_cfg=test_cfg)
        self.bbox_head = MODELS.build(bbox_head)
        self.train_cfg = train_cfg
        self.test_cfg = test_cfg

    def extract_feat(self, batch_inputs: Tensor) -> Tensor:
        """Return the feature map F (B, C4, h, w) of a batch of images (B, 3, H, W)."""
        x = self.backbone(batch_inputs)
        if self.with_neck:
            x = self.neck(x)
        return x[0] if isinstance(x, (list, tuple)) else x

    def _forward(self,
                 batch_inputs: Tensor,
                 batch_data_samples: OptSampleList = None) -> Tuple[Tensor, Tensor, Tensor]:
        """Return the raw maps: skeleton logits (B, 1, h, w), class logits (B, C, h, w) and box
        deltas (B, 5, h, w)."""
        feat = self.extract_feat(batch_inputs)
        skeleton_logits = self.skeleton_head(feat)
        feat = torch.cat([feat, skeleton_logits.sigmoid()], dim=1)
        return skeleton_logits, self.seg_head(feat), self.bbox_head(feat)

    def forward_maps(self, batch_inputs: Tensor) -> Dict[str, Tensor]:
        """Return the dense maps compared by SSL-IS (spec B §4.4).

        Returns:
            dict[str, Tensor]: ``skeleton`` (B, 1, h, w) and ``seg`` (B, C, h, w)
            probabilities, ``bbox`` (B, 5, h, w) deltas.
        """
        skeleton_logits, seg_logits, bbox_preds = self._forward(batch_inputs)
        return dict(
            skeleton=skeleton_logits.sigmoid(), seg=seg_logits.softmax(dim=1), bbox=bbox_preds)

    def loss(self, batch_inputs: Tensor, batch_data_samples: SampleList) -> Dict[str, Tensor]:
        """Return ``loss_skeleton``, ``loss_ce``, ``loss_dice`` and ``loss_bbox``."""
        skeleton_logits, seg_logits, bbox_preds = self._forward(batch_inputs)
        losses = self.skeleton_head.loss(skeleton_logits, batch_data_samples)
        losses.update(self.seg_head.loss(seg_logits, batch_data_samples))
        losses.update(self.bbox_head.loss(bbox_preds, batch_data_samples))
        return losses

    def predict(self,
                batch_inputs: Tensor,
                batch_data_samples: SampleList,
                rescale: bool = True) -> SampleList:
        """Predict instances (spec D7, D8).

        Returns:
            list[DetDataSample]: The samples with ``pred_instances`` (``bboxes`` RotatedBoxes,
            ``scores``, ``labels``, ``masks`` at the original size when ``rescale``).
        """
        maps = self.forward_maps(batch_inputs)
        results = self.bbox_head.predict_by_feat(
            maps['bbox'], maps['seg'], maps['skeleton'],
            [s.metainfo for s in batch_data_samples], rescale=rescale)
        # not add_pred_to_datasample: it turns RotatedBoxes into plain tensors (D8 keeps them)
        for data_sample, pred_instances in zip(batch_data_samples, results):
            data_sample.pred_instances = pred_instances
        return batch_data_samples
