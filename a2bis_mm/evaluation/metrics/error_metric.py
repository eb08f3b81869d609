"""Error breakdown metric: how many instances are found, and why the others are lost."""
from typing import Dict, List, Optional, Sequence

from mmdet.registry import METRICS
from mmengine.evaluator import BaseMetric

from ..functional.errors import FN_CAUSES, FP_CAUSES, instance_errors
from .utils import mask_array, unpack_sample


@METRICS.register_module()
class InstanceErrorMetric(BaseMetric):
    """True positives, false negatives and false positives by cause, summed over the images.

    The predictions kept are those PQ keeps (``score >= score_thr``) and the matching is PQ's
    (mask IoU > ``match_iou``, one-to-one), so ``tp`` / ``fn`` / ``fp`` explain the DQ part of PQ:
    each unmatched GT instance is ``merged``, ``split``, ``missed`` or ``poor``, each unmatched
    prediction a ``merge``, ``fragment``, ``background`` or ``poor`` one
    (:mod:`a2bis_mm.evaluation.functional.errors`, ``docs/metrics.md``). ``images_all_found``
    counts the images whose every GT instance is matched (e.g. both chromosomes of a pair).

    Args:
        match_iou (float): IoU threshold of a match (a pair needs IoU > match_iou).
        score_thr (float): predictions scoring below it are dropped, as in PQ.
        collect_device (str): 'cpu' or 'gpu', for distributed collection.
        prefix (str, optional): key prefix, 'err' by default.
    """

    default_prefix: Optional[str] = 'err'

    def __init__(self,
                 match_iou: float = 0.5,
                 score_thr: float = 0.5,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.match_iou = match_iou
        self.score_thr = score_thr

    def process(self, data_batch: Optional[dict], data_samples: Sequence[dict]) -> None:
        """Count the matches and error causes of each image of a batch.

        Args:
            data_batch (dict, optional): unused (mmengine interface).
            data_samples (Sequence[dict]): data samples with ``gt_instances`` (masks, labels)
                and ``pred_instances`` (masks, scores, labels).
        """
        for sample in data_samples:
            name, _, pred, gt_masks, _, scores, _ = unpack_sample(sample)
            pred_masks = mask_array(pred['masks'], gt_masks.shape[1:],
                                    f'{name} pred_instances')[scores >= self.score_thr]
            self.results.append(instance_errors(gt_masks, pred_masks, self.match_iou))

    def compute_metrics(self, results: List[Dict]) -> Dict[str, float]:
        """Sum the per-image counts.

        Args:
            results (list[dict]): the collected outputs of ``process``.

        Returns:
            dict: ``gt``, ``pred``, ``tp``, ``fn``, ``fp``, ``fn_<cause>``, ``fp_<cause>``,
            ``images`` and ``images_all_found``.
        """
        keys = ['gt', 'pred', 'tp'] + [f'fn_{c}' for c in FN_CAUSES] + [f'fp_{c}' for c in FP_CAUSES]
        totals = {k: float(sum(r[k] for r in results)) for k in keys}
        totals['fn'] = totals['gt'] - totals['tp']
        totals['fp'] = totals['pred'] - totals['tp']
        totals['images'] = float(len(results))
        totals['images_all_found'] = float(sum(r['tp'] == r['gt'] for r in results))
        return totals
