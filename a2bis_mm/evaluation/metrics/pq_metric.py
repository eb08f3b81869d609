"""Panoptic quality metric (bPQ, mPQ, mPQ+ and per-class PQ) for mmengine evaluators."""
from typing import Dict, List, Optional, Sequence

import numpy as np
from mmdet.registry import METRICS
from mmengine.evaluator import BaseMetric

from ..functional import bpq_mpq, paint_instances, per_image_instance_pq, per_image_pq
from .utils import class_names, mask_array, unpack_sample


@METRICS.register_module()
class PanopticQualityMetric(BaseMetric):
    """bPQ / mPQ with the PanNuke official semantics and the CoNIC pooled mPQ+.

    ``process`` paints GT and predicted masks into instance and class maps (predictions in
    ascending score order, so the best-scored instance wins an overlap; GT in index order) and
    keeps only the per-image PQ numbers; ``compute_metrics`` aggregates them with
    :func:`~a2bis_mm.evaluation.functional.bpq_mpq`. Images are grouped by the ``tissue``
    metainfo field when the data samples carry it. Definitions: ``docs/metrics.md``.

    ``overlap_aware=True`` (chromosome configs) skips the painting: IoUs are taken between the
    instance masks themselves, so overlapping GT and predicted instances keep all their pixels
    (:func:`~a2bis_mm.evaluation.functional.per_image_instance_pq`); the aggregation is the same.

    Args:
        match_iou (float): IoU threshold of a match (a pair needs IoU > match_iou).
        score_thr (float): predictions scoring below it are dropped before painting (PQ needs
            a hard decision, unlike AP).
        collect_device (str): 'cpu' or 'gpu', for distributed collection.
        prefix (str, optional): key prefix, 'pq' by default.
        overlap_aware (bool): match instance masks directly instead of painted label maps.
    """

    default_prefix: Optional[str] = 'pq'

    def __init__(self,
                 match_iou: float = 0.5,
                 score_thr: float = 0.5,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None,
                 overlap_aware: bool = False) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.overlap_aware = bool(overlap_aware)
        if match_iou < 0:
            raise ValueError(f'match_iou must be >= 0, got {match_iou}')
        self.match_iou = match_iou
        self.score_thr = score_thr

    def process(self, data_batch: Optional[dict], data_samples: Sequence[dict]) -> None:
        """Compute the per-image PQ numbers of a batch.

        Args:
            data_batch (dict, optional): unused (mmengine interface).
            data_samples (Sequence[dict]): data samples with ``gt_instances`` (masks, labels)
                and ``pred_instances`` (masks, scores, labels).
        """
        num_classes = len(class_names(self.dataset_meta, type(self).__name__))
        for sample in data_samples:
            name, _, pred, gt_masks, gt_labels, scores, labels = unpack_sample(sample)
            keep = scores >= self.score_thr
            pred_masks = mask_array(pred['masks'], gt_masks.shape[1:],
                                    f'{name} pred_instances')[keep]
            if self.overlap_aware:
                result = per_image_instance_pq(gt_masks, gt_labels, pred_masks, labels[keep],
                                               num_classes, self.match_iou)
            else:
                true_inst, true_cls = paint_instances(gt_masks, np.zeros(len(gt_masks)),
                                                      gt_labels)
                pred_inst, pred_cls = paint_instances(pred_masks, scores[keep], labels[keep])
                result = per_image_pq(true_inst, true_cls, pred_inst, pred_cls, num_classes,
                                      self.match_iou)
            result['tissue'] = sample.get('tissue')
            self.results.append(result)

    def compute_metrics(self, results: List[Dict]) -> Dict[str, float]:
        """Aggregate the per-image numbers.

        Args:
            results (list[dict]): the collected outputs of ``process``.

        Returns:
            dict: ``bPQ``, ``mPQ``, ``mPQ+``, ``PQ_<class>`` and ``PQ+_<class>``.
        """
        names = class_names(self.dataset_meta, type(self).__name__)
        tissues = [r['tissue'] for r in results]
        agg = bpq_mpq(results, tissues if any(t is not None for t in tissues) else None)
        metrics = {'bPQ': agg['bPQ'], 'mPQ': agg['mPQ'], 'mPQ+': agg['mPQ+']}
        metrics.update({f'PQ_{n}': float(v) for n, v in zip(names, agg['class_PQ'])})
        metrics.update({f'PQ+_{n}': float(v) for n, v in zip(names, agg['class_PQ+'])})
        return metrics
