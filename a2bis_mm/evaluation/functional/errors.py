"""Where instance segmentation loses: missed, merged, split and spurious instances of one image.

The PQ matching (one-to-one pairs with mask IoU > 0.5, :func:`match_instances`) decides true positives;
every unmatched instance is then given ONE cause, from the overlaps of its mask with the other side's
masks (``cover(a, b) = |a ∩ b| / |a|``). Definitions and thresholds: ``docs/metrics.md``.

Unmatched GT instance ``g`` (a false negative):

* ``merged``: a prediction covers at least half of ``g`` and at least half of another GT instance;
* ``split``: two or more predictions each lie at least half inside ``g`` (``g`` was cut in pieces);
* ``missed``: no prediction reaches IoU 0.1 with ``g`` (nothing was found there);
* ``poor``: anything else (found, but with IoU <= 0.5).

Unmatched prediction ``p`` (a false positive):

* ``merge``: ``p`` covers at least half of two or more GT instances;
* ``fragment``: at least half of ``p`` lies inside one GT instance (a piece or a duplicate);
* ``background``: ``p`` reaches IoU 0.1 with no GT instance (a detection on background);
* ``poor``: anything else.
"""
from typing import Dict

import numpy as np

from .pq import mask_pairwise_iou, match_instances

COVER = 0.5  # "at least half" of an instance
FOUND_IOU = 0.1  # an IoU below it means the two instances have nothing to do with each other

FN_CAUSES = ('merged', 'split', 'missed', 'poor')
FP_CAUSES = ('merge', 'fragment', 'background', 'poor')


def instance_errors(true_masks: np.ndarray, pred_masks: np.ndarray,
                    match_iou: float = 0.5) -> Dict[str, int]:
    """Count the true positives and the causes of the errors of one image.

    Args:
        true_masks (np.ndarray): (n, H, W) bool GT masks (may overlap).
        pred_masks (np.ndarray): (m, H, W) bool predicted masks (may overlap).
        match_iou (float): IoU threshold of a match (strict), as PQ.

    Returns:
        dict[str, int]: ``gt``, ``pred``, ``tp``, ``fn_<cause>`` for :data:`FN_CAUSES` and
        ``fp_<cause>`` for :data:`FP_CAUSES`; the causes of each side add up to its errors.
    """
    n_true, n_pred = len(true_masks), len(pred_masks)
    counts = dict(gt=n_true, pred=n_pred, tp=0)
    counts.update({f'fn_{c}': 0 for c in FN_CAUSES})
    counts.update({f'fp_{c}': 0 for c in FP_CAUSES})
    iou = mask_pairwise_iou(true_masks, pred_masks)
    rows, cols = match_instances(iou, match_iou)
    counts['tp'] = len(rows)

    true_area = np.asarray(true_masks, bool).sum((1, 2)).astype(np.float64)
    pred_area = np.asarray(pred_masks, bool).sum((1, 2)).astype(np.float64)
    # |g ∩ p| from the IoU and the areas: IoU = I / (|g| + |p| - I)
    inter = iou * (true_area[:, None] + pred_area[None, :]) / (1.0 + iou)
    cover_true = inter / np.maximum(true_area[:, None], 1.0)  # share of g inside p
    cover_pred = inter / np.maximum(pred_area[None, :], 1.0)  # share of p inside g
    # a prediction holding at least half of two or more GT instances merges them
    merging = (cover_true >= COVER).sum(0) >= 2

    unmatched_true = np.setdiff1d(np.arange(n_true), rows)
    for g in unmatched_true:
        if (merging & (cover_true[g] >= COVER)).any():
            cause = 'merged'
        elif (cover_pred[g] >= COVER).sum() >= 2:
            cause = 'split'
        elif n_pred == 0 or iou[g].max() < FOUND_IOU:
            cause = 'missed'
        else:
            cause = 'poor'
        counts[f'fn_{cause}'] += 1
    for p in np.setdiff1d(np.arange(n_pred), cols):
        if merging[p]:
            cause = 'merge'
        elif n_true and cover_pred[:, p].max() >= COVER:
            cause = 'fragment'
        elif n_true == 0 or iou[:, p].max() < FOUND_IOU:
            cause = 'background'
        else:
            cause = 'poor'
        counts[f'fp_{cause}'] += 1
    return counts
