"""Greedy class-agnostic rotated NMS (same result as ``mmcv.ops.nms_rotated``, faster on CPU)."""
import torch
from torch import Tensor

from a2bis_mm.structures import rbox_candidate_pairs, rbox_iou_aligned, rbox_iou_upper_bound

__all__ = ['rotated_nms']


def _greedy_nms_sorted(boxes: Tensor, iou_thr: float) -> Tensor:
    """Greedy NMS of boxes already sorted by rank, resolved in vectorised rounds.

    A box is kept once none of its higher-ranked candidate partners is still open, and dropped
    once a kept partner reaches ``iou_thr``; each (kept, open) pair's IoU is computed once.
    """
    n = boxes.shape[0]
    src, dst = rbox_candidate_pairs(boxes, iou_thr)  # src outranks dst
    state = torch.zeros(n, dtype=torch.int8, device=boxes.device)  # 0 open, 1 kept, -1 dropped
    while True:
        open_dst = state[dst] == 0
        src, dst = src[open_dst], dst[open_dst]
        by_kept = state[src] == 1
        if by_kept.any():
            iou = rbox_iou_aligned(boxes[src[by_kept]], boxes[dst[by_kept]])
            state[dst[by_kept][iou >= iou_thr]] = -1
            src, dst = src[~by_kept], dst[~by_kept]
        opened = state == 0
        if not opened.any():
            return (state == 1).nonzero().squeeze(1)
        blocked = torch.zeros(n, dtype=torch.bool, device=boxes.device)
        blocked[dst[state[src] == 0]] = True
        state[opened & ~blocked] = 1


def rotated_nms(boxes: Tensor, scores: Tensor, iou_thr: float, max_num: int = -1,
                chunk: int = 256) -> Tensor:
    """Greedy class-agnostic rotated NMS, the result of ``mmcv.ops.nms_rotated`` with exact IoUs.

    Own code because mmcv's CPU kernel clips a polygon pair for every remaining pair
    (O(n * kept) clippings, ~0.2-1 s for 2,000 dense candidates on one core) and its IoU is wrong
    on collinear edges. Here boxes are taken in score-ranked chunks: a chunk first loses the boxes
    that an already kept box suppresses, then its survivors are resolved among themselves
    (:func:`_greedy_nms_sorted`); IoUs (:func:`~a2bis_mm.structures.rbox_iou_aligned`, exact)
    are only computed for pairs whose axis-aligned upper bound can reach ``iou_thr``.
    Suppression at IoU >= ``iou_thr`` as in mmcv's CPU kernel; equal scores are ranked by index
    (mmcv's unstable sort ranks them arbitrarily).

    Args:
        boxes (Tensor): (n, 5) rotated boxes.
        scores (Tensor): (n, ) scores.
        iou_thr (float): IoU threshold, > 0.
        max_num (int): stop after this many kept boxes (-1: no limit).
        chunk (int): boxes per round.

    Returns:
        Tensor: indices of the kept boxes, by descending score.
    """
    order = torch.argsort(scores, descending=True, stable=True)
    kept = order[:0]
    for start in range(0, order.numel(), chunk):
        idx = order[start:start + chunk]
        if kept.numel():
            a, b = (rbox_iou_upper_bound(boxes[idx, None], boxes[None, kept]) >=
                    iou_thr * (1 - 1e-4)).nonzero(as_tuple=True)
            iou = rbox_iou_aligned(boxes[idx[a]], boxes[kept[b]])
            suppressed = torch.zeros(idx.numel(), dtype=torch.bool, device=boxes.device)
            suppressed[a[iou >= iou_thr]] = True
            idx = idx[~suppressed]
        kept = torch.cat([kept, idx[_greedy_nms_sorted(boxes[idx], iou_thr)]])
        if 0 < max_num <= kept.numel():
            return kept[:max_num]
    return kept


