"""Panoptic quality (bPQ, mPQ, mPQ+) on instance label maps, with the PanNuke / CoNIC semantics.

The definitions follow the official code line by line (``TissueImageAnalytics/PanNuke-metrics``
``utils.get_fast_pq`` / ``run.py`` and ``TissueImageAnalytics/CoNIC`` ``compute_stats.py``), including
their ``1e-6`` guards, so the numbers agree with the published tools; ``docs/metrics.md`` states them.
The pairwise IoU of all instance pairs comes from one joint histogram of (gt id, pred id) instead of
the official loop over instance masks.
"""
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
from pycocotools import mask as mask_util
from scipy.optimize import linear_sum_assignment

__all__ = [
    'PQStat', 'pairwise_iou', 'get_fast_pq', 'multi_class_pq', 'per_image_pq', 'bpq_mpq',
    'paint_instances', 'mask_pairwise_iou', 'instance_pq', 'per_image_instance_pq'
]


class PQStat(NamedTuple):
    """Counts and scores of one PQ evaluation (one image or one class of one image)."""

    tp: int
    fp: int
    fn: int
    iou_sum: float
    dq: float
    sq: float
    pq: float


def _relabel(inst_map: np.ndarray) -> Tuple[np.ndarray, int]:
    """Map the positive ids of ``inst_map`` to ``1..n`` in increasing order (0 stays 0).

    A look-up table indexed by id (one ``bincount``) replaces ``np.unique``'s sort, which
    dominated the cost on large images; ``np.unique`` remains for very sparse huge ids.
    """
    flat = np.asarray(inst_map).ravel().astype(np.intp, copy=False)
    if flat.size == 0:
        return flat.reshape(np.shape(inst_map)), 0
    if flat.min() < 0:
        raise ValueError(f'instance maps need ids >= 0, got {flat.min()}')
    top = int(flat.max())
    if top <= 4 * flat.size + 65536:
        present = np.bincount(flat, minlength=top + 1) > 0
        present[0] = False
        lut = np.cumsum(present)
        return lut[flat].reshape(np.shape(inst_map)), int(lut[-1])
    ids, inverse = np.unique(flat, return_inverse=True)
    if ids[0] != 0:
        inverse = inverse + 1
    return inverse.reshape(np.shape(inst_map)), int((ids > 0).sum())


def pairwise_iou(true: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """IoU of every (gt, pred) instance pair of two label maps, ids remapped to ``1..n`` order.

    Args:
        true (np.ndarray): (H, W) integer GT instance map, 0 = background.
        pred (np.ndarray): (H, W) integer predicted instance map, 0 = background.

    Returns:
        np.ndarray: (n_true, n_pred) float64 IoUs; rows/cols follow the sorted instance ids.
    """
    if np.shape(true) != np.shape(pred):
        raise ValueError(f'GT map shape {np.shape(true)} != prediction map shape {np.shape(pred)}')
    t, nt = _relabel(true)
    p, npr = _relabel(pred)
    area_t = np.bincount(t.ravel(), minlength=nt + 1)[1:]
    area_p = np.bincount(p.ravel(), minlength=npr + 1)[1:]
    both = (t > 0) & (p > 0)
    key = (t[both] - 1) * npr + (p[both] - 1)
    if nt * npr <= 1 << 24:
        inter = np.bincount(key, minlength=nt * npr).reshape(nt, npr)
    else:  # sparse counting for very many instances
        inter = np.zeros((nt, npr), np.int64)
        uniq, counts = np.unique(key, return_counts=True)
        inter[uniq // npr, uniq % npr] = counts
    iou = np.zeros((nt, npr), dtype=np.float64)
    overlap = inter > 0
    union = area_t[:, None] + area_p[None, :] - inter
    iou[overlap] = inter[overlap] / union[overlap]
    return iou


def _pq_stat(paired_iou: np.ndarray, n_true: int, n_pred: int) -> PQStat:
    """Counts, DQ, SQ (with the official ``1e-6``) and PQ from the IoUs of the matched pairs."""
    tp = int(paired_iou.size)
    fp, fn = n_pred - tp, n_true - tp
    iou_sum = float(paired_iou.sum())
    denom = tp + 0.5 * fp + 0.5 * fn
    if denom == 0:
        return PQStat(0, 0, 0, 0.0, float('nan'), float('nan'), float('nan'))
    dq = tp / denom
    sq = iou_sum / (tp + 1.0e-6)
    return PQStat(tp, fp, fn, iou_sum, dq, sq, dq * sq)


def get_fast_pq(true: np.ndarray, pred: np.ndarray, match_iou: float = 0.5) -> PQStat:
    """PQ of one pair of instance maps, as PanNuke's ``get_fast_pq``.

    Pairs need IoU > ``match_iou``; for ``match_iou >= 0.5`` such pairs are unique, below it the
    maximal unique pairing is found with the Hungarian algorithm (as the official code).
    ``SQ = sum(IoU of TPs) / (TP + 1e-6)`` (official guard); ids need not be contiguous.

    Args:
        true (np.ndarray): (H, W) GT instance map, 0 = background.
        pred (np.ndarray): (H, W) predicted instance map, 0 = background.
        match_iou (float): IoU threshold of a match.

    Returns:
        PQStat: counts and DQ/SQ/PQ; all three are NaN when both maps are empty (the official code
        divides by zero there and never calls it so).
    """
    if match_iou < 0:
        raise ValueError(f'match_iou must be >= 0, got {match_iou}')
    iou = pairwise_iou(true, pred)
    n_true, n_pred = iou.shape
    if match_iou >= 0.5:
        paired_iou = iou[iou > match_iou]
    else:
        rows, cols = linear_sum_assignment(-iou)
        paired_iou = iou[rows, cols]
        paired_iou = paired_iou[paired_iou > match_iou]
    return _pq_stat(paired_iou, n_true, n_pred)


def multi_class_pq(true_inst: np.ndarray,
                   true_cls: np.ndarray,
                   pred_inst: np.ndarray,
                   pred_cls: np.ndarray,
                   num_classes: int,
                   match_iou: float = 0.5) -> List[PQStat]:
    """PQ of every class of one image (CoNIC ``get_multi_pq_info``).

    Class ``c`` (1-based in the class maps) keeps the pixels of ``inst * (cls == c)``, as the
    official code does, then ``get_fast_pq`` runs on the two single-class maps.

    Args:
        true_inst (np.ndarray): (H, W) GT instance map.
        true_cls (np.ndarray): (H, W) GT class map, 0 background, ``1..num_classes``.
        pred_inst (np.ndarray): (H, W) predicted instance map.
        pred_cls (np.ndarray): (H, W) predicted class map.
        num_classes (int): number of object classes.
        match_iou (float): IoU threshold of a match.

    Returns:
        list[PQStat]: one per class, index ``c - 1``.
    """
    for name, arr in (('true_cls', true_cls), ('pred_cls', pred_cls)):
        if arr.size and (arr.min() < 0 or arr.max() > num_classes):
            raise ValueError(f'{name} has values outside 0..{num_classes}: '
                             f'[{arr.min()}, {arr.max()}]')
    return [
        get_fast_pq(true_inst * (true_cls == c), pred_inst * (pred_cls == c), match_iou)
        for c in range(1, num_classes + 1)
    ]


def _image_result(binary: PQStat, per_class: Sequence[PQStat], num_classes: int) -> Dict[str, np.ndarray]:
    """One image's ``bpq``, ``class_pq`` and ``class_stats`` from its binary and per-class stats."""
    n_true = np.array([s.tp + s.fn for s in per_class])
    class_pq = np.where(n_true > 0, [s.pq for s in per_class], np.nan).astype(np.float64)
    class_stats = np.array([[s.tp, s.fp, s.fn, s.iou_sum] for s in per_class],
                           dtype=np.float64).reshape(num_classes, 4)
    return dict(bpq=np.float64(binary.pq if binary.tp + binary.fn > 0 else np.nan),
                class_pq=class_pq,
                class_stats=class_stats)


def per_image_pq(true_inst: np.ndarray,
                 true_cls: np.ndarray,
                 pred_inst: np.ndarray,
                 pred_cls: np.ndarray,
                 num_classes: int,
                 match_iou: float = 0.5) -> Dict[str, np.ndarray]:
    """Everything bPQ, mPQ and mPQ+ need from one image, in compact form.

    Args:
        true_inst, true_cls, pred_inst, pred_cls, num_classes, match_iou: as in
            :func:`multi_class_pq`.

    Returns:
        dict: ``bpq`` (float, NaN when the GT has no instance: PanNuke skips the image),
        ``class_pq`` ((C,) float, NaN for classes absent from this image's GT, whatever the
        prediction holds) and ``class_stats`` ((C, 4) float64 ``[tp, fp, fn, iou_sum]`` for every
        class, kept also for absent classes since the pooled mPQ+ counts their FPs).
    """
    binary = get_fast_pq(true_inst, pred_inst, match_iou)
    per_class = multi_class_pq(true_inst, true_cls, pred_inst, pred_cls, num_classes, match_iou)
    return _image_result(binary, per_class, num_classes)


def _nanmean(values: Sequence[float]) -> float:
    """``np.nanmean`` that returns NaN for empty or all-NaN input without a warning."""
    arr = np.asarray(values, dtype=np.float64)
    arr = arr[~np.isnan(arr)]
    return float(arr.mean()) if arr.size else float('nan')


def bpq_mpq(image_results: Sequence[Dict[str, np.ndarray]],
            tissues: Optional[Sequence[Optional[str]]] = None) -> Dict[str, object]:
    """Aggregate :func:`per_image_pq` results into bPQ, mPQ, per-class PQ and mPQ+.

    PanNuke (``run.py``): per image, mPQ_i = nanmean over classes of the class PQs; per tissue,
    nanmean over its images of mPQ_i (bPQ likewise); mPQ / bPQ = nanmean over tissues (a single
    group when ``tissues`` is None). Per-class PQ = nanmean over all images of that class's PQ.
    CoNIC (``compute_stats.py``): mPQ+ = mean over classes of the PQ of TP/FP/FN/IoU sums pooled
    over all images, with ``DQ = TP / (TP + FP/2 + FN/2 + 1e-6)`` (a class never seen scores 0).

    Args:
        image_results (Sequence[dict]): outputs of :func:`per_image_pq`.
        tissues (Sequence[str | None], optional): tissue type of each image.

    Returns:
        dict: ``bPQ``, ``mPQ``, ``mPQ+`` (floats), ``class_PQ`` and ``class_PQ+`` ((C,) arrays).
    """
    if not image_results:
        raise ValueError('bpq_mpq got no image results')
    if tissues is None:
        tissues = [None] * len(image_results)
    if len(tissues) != len(image_results):
        raise ValueError(f'{len(tissues)} tissue names for {len(image_results)} images')
    class_pq = np.stack([r['class_pq'] for r in image_results])
    mpq_image = [_nanmean(row) for row in class_pq]
    bpq_image = [float(r['bpq']) for r in image_results]
    groups: Dict[Optional[str], List[int]] = {}
    for i, tissue in enumerate(tissues):
        groups.setdefault(tissue, []).append(i)
    mpq = _nanmean([_nanmean([mpq_image[i] for i in idx]) for idx in groups.values()])
    bpq = _nanmean([_nanmean([bpq_image[i] for i in idx]) for idx in groups.values()])
    per_class = np.array([_nanmean(col) for col in class_pq.T])

    tp, fp, fn, iou_sum = np.sum([r['class_stats'] for r in image_results], axis=0).T
    dq = tp / ((tp + 0.5 * fp + 0.5 * fn) + 1.0e-6)
    sq = iou_sum / (tp + 1.0e-6)
    pooled = dq * sq
    return {
        'bPQ': bpq,
        'mPQ': mpq,
        'mPQ+': float(pooled.mean()),
        'class_PQ': per_class,
        'class_PQ+': pooled
    }


def paint_instances(masks: np.ndarray, scores: np.ndarray,
                    labels: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Paint possibly overlapping instance masks into non-overlapping instance and class maps.

    Instances are painted in ascending score order, so where masks overlap the best-scored one
    wins (docs/model.md D10; a stable sort lets the later index win among equal scores). Instances left
    without pixels disappear; ids are ``1..n`` over the survivors.

    Args:
        masks (np.ndarray): (n, H, W) bool masks.
        scores (np.ndarray): (n,) scores.
        labels (np.ndarray): (n,) 0-based class labels.

    Returns:
        tuple[np.ndarray, np.ndarray]: (H, W) int32 instance map and (H, W) int32 class map
        (``label + 1``, 0 background).
    """
    masks = np.asarray(masks, dtype=bool)
    if masks.ndim != 3 or len(masks) != len(scores) or len(masks) != len(labels):
        raise ValueError(f'paint_instances needs (n, H, W) masks with n scores and labels, got masks '
                         f'{masks.shape}, {len(scores)} scores, {len(labels)} labels')
    if len(masks) == 0:
        shape = masks.shape[1:]
        return np.zeros(shape, np.int32), np.zeros(shape, np.int32)
    n, height, width = masks.shape
    # rank 1..n in ascending score order; each pixel keeps the highest rank covering it
    rank = np.empty(n, np.intp)
    rank[np.argsort(np.asarray(scores), kind='stable')] = np.arange(1, n + 1)
    # sparse (instance, pixel) pairs; flatnonzero is far faster than a 3-D np.nonzero
    k, pixel = np.divmod(np.flatnonzero(masks), height * width)
    top = np.zeros(height * width, np.intp)
    np.maximum.at(top, pixel, rank[k])
    cls_of_rank = np.zeros(n + 1, np.intp)
    cls_of_rank[rank] = np.asarray(labels) + 1
    inst = top.reshape(height, width)
    cls_map = cls_of_rank[inst].astype(np.int32)
    inst, _ = _relabel(inst)
    return inst.astype(np.int32), cls_map


# ------------------------------------------------------------------ overlap-aware mode
def mask_pairwise_iou(true_masks: np.ndarray, pred_masks: np.ndarray) -> np.ndarray:
    """IoU of every (gt, pred) pair of instance masks, which may overlap (no painting).

    Args:
        true_masks (np.ndarray): (n, H, W) bool GT masks.
        pred_masks (np.ndarray): (m, H, W) bool predicted masks.

    Returns:
        np.ndarray: (n, m) float64 IoUs (pycocotools RLE IoU, exact pixel counts).
    """
    true_masks, pred_masks = np.asarray(true_masks, bool), np.asarray(pred_masks, bool)
    if true_masks.shape[1:] != pred_masks.shape[1:]:
        raise ValueError(f'GT masks {true_masks.shape[1:]} and predicted masks '
                         f'{pred_masks.shape[1:]} differ in size')
    if len(true_masks) == 0 or len(pred_masks) == 0:
        return np.zeros((len(true_masks), len(pred_masks)), np.float64)

    def rles(masks):
        return mask_util.encode(np.asfortranarray(masks.transpose(1, 2, 0).astype(np.uint8)))

    iou = mask_util.iou(rles(pred_masks), rles(true_masks), [0] * len(true_masks))
    return np.asarray(iou, np.float64).reshape(len(pred_masks), len(true_masks)).T


def match_instances(iou: np.ndarray, match_iou: float = 0.5) -> Tuple[np.ndarray, np.ndarray]:
    """One-to-one pairs of (possibly overlapping) instances with IoU > ``match_iou``.

    With overlapping masks a GT instance can have IoU > 0.5 with several predictions, so the
    pairs are chosen by the Hungarian algorithm among the pairs with IoU > ``match_iou``: the most
    pairs, and among those the largest IoU sum; for non-overlapping masks and ``match_iou >= 0.5``
    this gives the same pairs as :func:`get_fast_pq`.

    Args:
        iou (np.ndarray): (n_true, n_pred) IoUs (:func:`mask_pairwise_iou`).
        match_iou (float): IoU threshold of a match (strict).

    Returns:
        tuple[np.ndarray, np.ndarray]: the GT rows and prediction columns of the pairs.
    """
    n_true, n_pred = iou.shape
    if not (n_true and n_pred):
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    # most matches first, then the largest IoU sum: a bonus above any count of IoUs
    gain = np.where(iou > match_iou, iou + min(n_true, n_pred) + 1, 0.0)
    rows, cols = linear_sum_assignment(-gain)
    keep = iou[rows, cols] > match_iou
    return rows[keep], cols[keep]


def instance_pq(iou: np.ndarray, match_iou: float = 0.5) -> PQStat:
    """PQ of one image from the IoU matrix of its (possibly overlapping) instance masks.

    Pairs from :func:`match_instances`; counts, DQ, SQ (with the official ``1e-6``) and PQ as
    :func:`get_fast_pq`.

    Args:
        iou (np.ndarray): (n_true, n_pred) IoUs (:func:`mask_pairwise_iou`).
        match_iou (float): IoU threshold of a match (strict).

    Returns:
        PQStat: NaN scores when both sides are empty.
    """
    n_true, n_pred = iou.shape
    paired = iou[match_instances(iou, match_iou)]
    return _pq_stat(paired, n_true, n_pred)


def per_image_instance_pq(true_masks: np.ndarray,
                          true_labels: np.ndarray,
                          pred_masks: np.ndarray,
                          pred_labels: np.ndarray,
                          num_classes: int,
                          match_iou: float = 0.5) -> Dict[str, np.ndarray]:
    """:func:`per_image_pq` on instance masks that may overlap (overlap-aware mode).

    bPQ pairs all instances; class ``c`` pairs the GT and predicted instances labelled ``c``.
    The output has the same fields and NaN rules as :func:`per_image_pq`, so :func:`bpq_mpq`
    aggregates it unchanged.

    Args:
        true_masks (np.ndarray): (n, H, W) bool GT masks.
        true_labels (np.ndarray): (n,) 0-based GT classes.
        pred_masks (np.ndarray): (m, H, W) bool predicted masks.
        pred_labels (np.ndarray): (m,) 0-based predicted classes.
        num_classes (int): number of classes.
        match_iou (float): IoU threshold of a match.

    Returns:
        dict: ``bpq``, ``class_pq``, ``class_stats`` as :func:`per_image_pq`.
    """
    true_labels = np.asarray(true_labels, np.int64)
    pred_labels = np.asarray(pred_labels, np.int64)
    for name, labels in (('true_labels', true_labels), ('pred_labels', pred_labels)):
        if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
            raise ValueError(f'{name} outside 0..{num_classes - 1}: '
                             f'[{labels.min()}, {labels.max()}]')
    iou = mask_pairwise_iou(true_masks, pred_masks)
    binary = instance_pq(iou, match_iou)
    per_class = [
        instance_pq(iou[np.ix_(true_labels == c, pred_labels == c)], match_iou)
        for c in range(num_classes)
    ]
    return _image_result(binary, per_class, num_classes)
