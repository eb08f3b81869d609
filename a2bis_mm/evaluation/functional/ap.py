"""AP at one IoU threshold: COCO-style matching and interpolation for rotated boxes, pycocotools
for masks.

The rotated-box AP replicates ``pycocotools.cocoeval`` (``evaluateImg`` + ``accumulate``) on
exact rotated IoUs (``a2bis_mm.structures.rbox_iou.rbox_overlaps``; mmcv's ``box_iou_rotated`` errs
on collinear edges), because pycocotools only knows axis-aligned boxes and masks and mmrotate's
``eval_rbbox_map`` uses VOC matching (a detection whose best GT is taken is a FP) and VOC
interpolation.
"""
import contextlib
import io
from typing import Dict, List, Sequence, Tuple

import numpy as np
import torch
from mmdet.evaluation.functional import average_precision
from pycocotools import mask as mask_util
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from ...structures.rbox_iou import rbox_overlaps

__all__ = [
    'REC_THRS', 'match_single_image', 'accumulate_ap', 'match_rboxes_single', 'ap_from_matches',
    'rbox_ap', 'coco_mask_ap'
]

# COCO's 101 recall thresholds, built exactly as ``pycocotools.cocoeval.Params``.
REC_THRS = np.linspace(.0, 1.00, int(np.round((1.00 - .0) / .01)) + 1, endpoint=True)

ClassMatches = Tuple[np.ndarray, np.ndarray, int]  # (scores, tp flags, number of GTs)


def match_single_image(ious: np.ndarray,
                       scores: np.ndarray,
                       iou_thr: float = 0.5,
                       max_dets: int = 1000) -> Tuple[np.ndarray, np.ndarray]:
    """Greedy score-ordered matching of one image and class (``COCOeval.evaluateImg``).

    Detections, best score first (stable order for ties) and capped at ``max_dets``, each take the
    still unmatched GT of highest IoU if that IoU >= ``iou_thr``; one match per GT.

    Args:
        ious (np.ndarray): (n_det, n_gt) IoUs.
        scores (np.ndarray): (n_det,) detection scores.
        iou_thr (float): IoU threshold.
        max_dets (int): most detections kept per image and class.

    Returns:
        tuple[np.ndarray, np.ndarray]: scores of the kept detections in matching order and their
        bool TP flags.
    """
    scores = np.asarray(scores, dtype=np.float64)
    order = np.argsort(-scores, kind='mergesort')[:max_dets]
    ious = np.asarray(ious, dtype=np.float64)
    if ious.ndim != 2 or len(ious) != len(scores):
        raise ValueError(f'ious must be (n_det, n_gt) with n_det = {len(scores)}, got {ious.shape}')
    ious = ious[order]
    tp = np.zeros(len(order), dtype=bool)
    free = np.ones(ious.shape[1], dtype=bool)
    thr = min(iou_thr, 1 - 1e-10)
    for d, row in enumerate(ious):
        cand = np.where(free & (row >= thr), row, -1.0)
        if cand.size and cand.max() >= 0:
            # among equal IoUs COCO keeps the last GT it visits
            g = len(cand) - 1 - int(np.argmax(cand[::-1]))
            free[g] = False
            tp[d] = True
    return scores[order], tp


def accumulate_ap(matches: Sequence[Tuple[np.ndarray, np.ndarray]],
                  num_gt: int,
                  mode: str = '101point') -> float:
    """AP of one class from the per-image matches (``COCOeval.accumulate``).

    Detections of all images are ranked by score (stable, in image order), precision is
    ``TP / (TP + FP + eps)`` with ``eps = np.spacing(1)``, made non-increasing from the right,
    and, in ``'101point'`` mode, read at the first rank whose recall reaches each of the 101
    thresholds ``0, 0.01, ..., 1`` (0 where recall never reaches it); AP is their mean. ``'area'``
    is VOC's all-point area under the same envelope (mmdet ``average_precision``).

    Args:
        matches (Sequence[tuple]): ``(scores, tp flags)`` of each image.
        num_gt (int): number of GT instances of the class over all images.
        mode (str): ``'101point'`` (COCO) or ``'area'`` (VOC 2010+).

    Returns:
        float: the AP; NaN when the class has no GT (COCO's -1, skipped by the mean).
    """
    if mode not in ('101point', 'area'):
        raise ValueError(f"AP mode must be '101point' or 'area', got {mode!r}")
    if num_gt == 0:
        return float('nan')
    scores = np.concatenate([np.asarray(m[0], dtype=np.float64) for m in matches] or [[]])
    tps = np.concatenate([np.asarray(m[1], dtype=bool) for m in matches] or [[]]).astype(bool)
    if scores.size == 0:
        return 0.0
    tps = tps[np.argsort(-scores, kind='mergesort')]
    tp_sum = np.cumsum(tps, dtype=np.float64)
    fp_sum = np.cumsum(~tps, dtype=np.float64)
    recall = tp_sum / num_gt
    precision = tp_sum / (fp_sum + tp_sum + np.spacing(1))
    if mode == 'area':
        return float(average_precision(recall, precision, mode='area'))
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    inds = np.searchsorted(recall, REC_THRS, side='left')
    q = np.zeros(len(REC_THRS))
    valid = inds < len(envelope)
    q[valid] = envelope[inds[valid]]
    return float(q.mean())


def match_rboxes_single(pred_rboxes: np.ndarray,
                        pred_scores: np.ndarray,
                        pred_labels: np.ndarray,
                        gt_rboxes: np.ndarray,
                        gt_labels: np.ndarray,
                        num_classes: int,
                        iou_thr: float = 0.5,
                        max_dets: int = 1000) -> List[ClassMatches]:
    """Per-class rotated-box matches of one image.

    Args:
        pred_rboxes (np.ndarray): (n, 5) ``(cx, cy, w, h, t)`` boxes, radians (mmrotate).
        pred_scores (np.ndarray): (n,) scores.
        pred_labels (np.ndarray): (n,) 0-based labels.
        gt_rboxes (np.ndarray): (m, 5) GT boxes.
        gt_labels (np.ndarray): (m,) 0-based GT labels.
        num_classes (int): number of classes.
        iou_thr (float): IoU threshold.
        max_dets (int): most detections kept per image and class.

    Returns:
        list[tuple]: per class, ``(scores, tp flags, number of GTs)``.
    """
    pred_rboxes = np.asarray(pred_rboxes, dtype=np.float64).reshape(-1, 5)
    gt_rboxes = np.asarray(gt_rboxes, dtype=np.float64).reshape(-1, 5)
    pred_labels, gt_labels = np.asarray(pred_labels), np.asarray(gt_labels)
    pred_scores = np.asarray(pred_scores)
    # float64 boxes: the exact IoU then decides matches at the threshold without float32 rounding
    ious = rbox_overlaps(torch.from_numpy(pred_rboxes), torch.from_numpy(gt_rboxes)).numpy()
    out = []
    for c in range(num_classes):
        p, g = pred_labels == c, gt_labels == c
        scores, tp = match_single_image(ious[p][:, g], pred_scores[p], iou_thr, max_dets)
        out.append((scores, tp, int(g.sum())))
    return out


def _mean_over_classes(aps: np.ndarray) -> float:
    """Mean over the classes that have GT (COCO skips a class without GT)."""
    aps = aps[~np.isnan(aps)]
    return float(aps.mean()) if aps.size else float('nan')


def rbox_ap(pred_rboxes: Sequence[np.ndarray],
            pred_scores: Sequence[np.ndarray],
            pred_labels: Sequence[np.ndarray],
            gt_rboxes: Sequence[np.ndarray],
            gt_labels: Sequence[np.ndarray],
            num_classes: int,
            iou_thr: float = 0.5,
            max_dets: int = 1000,
            mode: str = '101point') -> Tuple[np.ndarray, float]:
    """Rotated-box AP of a data set (one entry per image in every sequence).

    Args:
        pred_rboxes, pred_scores, pred_labels, gt_rboxes, gt_labels: per-image arrays, as in
            :func:`match_rboxes_single`.
        num_classes (int): number of classes.
        iou_thr (float): IoU threshold (>= is a match).
        max_dets (int): most detections kept per image and class.
        mode (str): interpolation, see :func:`accumulate_ap`.

    Returns:
        tuple[np.ndarray, float]: (C,) per-class AP (NaN without GT) and their mean over classes
        with GT.
    """
    per_image = [
        match_rboxes_single(*args, num_classes=num_classes, iou_thr=iou_thr, max_dets=max_dets)
        for args in zip(pred_rboxes, pred_scores, pred_labels, gt_rboxes, gt_labels)
    ]
    return ap_from_matches(per_image, num_classes, mode)


def ap_from_matches(per_image: Sequence[List[ClassMatches]],
                    num_classes: int,
                    mode: str = '101point') -> Tuple[np.ndarray, float]:
    """Per-class AP and their mean from the per-image outputs of :func:`match_rboxes_single`.

    Args:
        per_image (Sequence[list]): per image, per class ``(scores, tp flags, number of GTs)``.
        num_classes (int): number of classes.
        mode (str): interpolation, see :func:`accumulate_ap`.

    Returns:
        tuple[np.ndarray, float]: (C,) per-class AP (NaN without GT) and their mean over classes
        with GT (NaN if none has GT).
    """
    aps = np.array([
        accumulate_ap([m[c][:2] for m in per_image], sum(m[c][2] for m in per_image), mode)
        for c in range(num_classes)
    ]).reshape(num_classes)
    return aps, _mean_over_classes(aps)


def coco_mask_ap(gts: Sequence[Dict],
                 preds: Sequence[Dict],
                 num_classes: int,
                 iou_thr: float = 0.5,
                 max_dets: int = 1000) -> Tuple[np.ndarray, float]:
    """Mask AP at one IoU threshold through pycocotools (segm).

    Args:
        gts (Sequence[dict]): per image ``height``, ``width``, ``masks`` (list of COCO RLEs) and
            ``labels`` (0-based).
        preds (Sequence[dict]): per image ``masks`` (RLEs), ``scores`` and ``labels``.
        num_classes (int): number of classes.
        iou_thr (float): the IoU threshold (pycocotools' ``iouThrs = [iou_thr]``).
        max_dets (int): ``maxDets`` of the AP (pycocotools' ``stats[1]`` reads ``maxDets[-1]``).

    Returns:
        tuple[np.ndarray, float]: (C,) per-class AP (NaN without GT) and pycocotools' mean over
        classes with GT (its ``stats[1]`` for ``iou_thr = 0.5``).
    """
    if len(gts) != len(preds):
        raise ValueError(f'coco_mask_ap got {len(gts)} GT images and {len(preds)} predictions')
    images, anns, dets = [], [], []
    for img_id, (gt, pred) in enumerate(zip(gts, preds), start=1):
        images.append(dict(id=img_id, height=int(gt['height']), width=int(gt['width'])))
        for rle, label in zip(gt['masks'], gt['labels']):
            anns.append(dict(id=len(anns) + 1, image_id=img_id, category_id=int(label) + 1,
                             segmentation=rle, area=float(mask_util.area(rle)), iscrowd=0))
        for rle, score, label in zip(pred['masks'], pred['scores'], pred['labels']):
            dets.append(dict(image_id=img_id, category_id=int(label) + 1, segmentation=rle,
                             score=float(score)))
    counts = np.bincount([a['category_id'] - 1 for a in anns], minlength=num_classes)
    if not dets:
        aps = np.where(counts > 0, 0.0, np.nan)
        return aps, _mean_over_classes(aps)
    coco_gt = COCO()
    coco_gt.dataset = dict(images=images, annotations=anns,
                           categories=[dict(id=c + 1, name=str(c)) for c in range(num_classes)])
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(dets)
        coco_eval = COCOeval(coco_gt, coco_dt, 'segm')
        coco_eval.params.iouThrs = np.array([iou_thr])
        coco_eval.params.maxDets = [1, 10, max_dets]
        coco_eval.evaluate()
        coco_eval.accumulate()
    # precision: (iou, recall, class, area range 'all' first, maxDets)
    precision = coco_eval.eval['precision'][0, :, :, 0, -1]
    aps = np.array([
        precision[:, c][precision[:, c] > -1].mean() if counts[c] > 0 else np.nan
        for c in range(num_classes)
    ])
    valid = precision[precision > -1]
    return aps, float(valid.mean()) if valid.size else float('nan')

