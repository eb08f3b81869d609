"""Mask AP50 (pycocotools) and rotated-box AP50 metric for mmengine evaluators."""
from typing import Dict, List, Optional, Sequence

from mmdet.registry import METRICS
from mmengine.evaluator import BaseMetric

from ..functional import ap_from_matches, coco_mask_ap, match_rboxes_single
from .utils import (
    class_names,
    mask_array,
    mask_rboxes,
    mask_rles,
    rotated_array,
    unpack_sample,
)


@METRICS.register_module()
class InstanceAP50Metric(BaseMetric):
    """Mask AP and rotated-box AP at one IoU threshold (0.5), per class and mean.

    Mask AP is pycocotools' segm AP (``stats[1]`` for IoU 0.5). Rotated-box AP uses COCO's
    greedy score-ordered matching (IoU >= thr, one match per GT) on exact rotated IoUs
    (``rbox_overlaps``) and COCO's 101-point interpolation. Rotated boxes are taken from
    ``bboxes`` when they are ``RotatedBoxes`` (or (n, 5) tensors) and otherwise (horizontal
    boxes of mmdet baselines, GT loaded without rotated boxes) derived from the masks with
    ``masks_to_rboxes``. ``process`` keeps RLEs and the per-class box matches of each image only.

    Args:
        iou_thr (float): IoU threshold of a match.
        max_dets (int): most detections per image and class (pycocotools ``maxDets[-1]``; 1000 as
            mmdet's ``CocoMetric``, since nuclei images hold more than 100 instances).
        rbox_ap_mode (str): ``'101point'`` (COCO) or ``'area'`` (VOC all-point) for box AP.
        collect_device (str): 'cpu' or 'gpu', for distributed collection.
        prefix (str, optional): key prefix, 'ap50' by default.
    """

    default_prefix: Optional[str] = 'ap50'

    def __init__(self,
                 iou_thr: float = 0.5,
                 max_dets: int = 1000,
                 rbox_ap_mode: str = '101point',
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        if rbox_ap_mode not in ('101point', 'area'):
            raise ValueError(f"rbox_ap_mode must be '101point' or 'area', got {rbox_ap_mode!r}")
        self.iou_thr = iou_thr
        self.max_dets = max_dets
        self.rbox_ap_mode = rbox_ap_mode

    def process(self, data_batch: Optional[dict], data_samples: Sequence[dict]) -> None:
        """Encode the masks of a batch and match its rotated boxes.

        Args:
            data_batch (dict, optional): unused (mmengine interface).
            data_samples (Sequence[dict]): data samples with ``gt_instances`` (masks, labels,
                optional rotated bboxes) and ``pred_instances`` (masks, bboxes, scores, labels).
        """
        num_classes = len(class_names(self.dataset_meta, type(self).__name__))
        for sample in data_samples:
            name, gt, pred, gt_masks, gt_labels, scores, labels = unpack_sample(sample)
            shape = gt_masks.shape[1:]
            pred_rles = mask_rles(pred['masks'], shape, f'{name} pred_instances')
            pred_rboxes = rotated_array(pred.get('bboxes'))
            if pred_rboxes is None:
                pred_rboxes = mask_rboxes(mask_array(pred['masks'], shape, f'{name} pred_instances'))
            gt_rboxes = rotated_array(gt.get('bboxes'))
            if gt_rboxes is None:
                gt_rboxes = mask_rboxes(gt_masks)
            matches = match_rboxes_single(pred_rboxes, scores, labels, gt_rboxes, gt_labels,
                                          num_classes, self.iou_thr, self.max_dets)
            self.results.append(
                dict(gt=dict(height=shape[0], width=shape[1], labels=gt_labels,
                             masks=mask_rles(gt_masks, shape, f'{name} gt_instances')),
                     pred=dict(masks=pred_rles, scores=scores, labels=labels),
                     rbox_matches=matches))

    def compute_metrics(self, results: List[Dict]) -> Dict[str, float]:
        """Mask AP through pycocotools and rotated-box AP from the stored matches.

        Args:
            results (list[dict]): the collected outputs of ``process``.

        Returns:
            dict: ``mask_mAP50``, ``rbox_mAP50``, ``mask_AP50_<class>``, ``rbox_AP50_<class>``
            (NaN for a class without GT; the means skip those classes).
        """
        names = class_names(self.dataset_meta, type(self).__name__)
        mask_aps, mask_map = coco_mask_ap([r['gt'] for r in results],
                                          [r['pred'] for r in results], len(names), self.iou_thr,
                                          self.max_dets)
        rbox_aps, rbox_map = ap_from_matches([r['rbox_matches'] for r in results], len(names),
                                             self.rbox_ap_mode)
        metrics = {'mask_mAP50': mask_map, 'rbox_mAP50': rbox_map}
        metrics.update({f'mask_AP50_{n}': float(v) for n, v in zip(names, mask_aps)})
        metrics.update({f'rbox_AP50_{n}': float(v) for n, v in zip(names, rbox_aps)})
        return metrics
