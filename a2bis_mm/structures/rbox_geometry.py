"""Rotated-box geometry for the decoder: hit tests, bounds, rescaling, candidate pairs.

Boxes are mmrotate rows ``(cx, cy, w, h, t)`` (input pixels, ``t`` radians, clockwise in image
coordinates; see ``rbox.py`` and docs/components.md). Rotated IoUs go through
:func:`rbox_iou_aligned`, the single call site of the polygon-clipping IoU.
"""
from typing import Sequence, Tuple

import torch
from torch import Tensor

from .rbox_iou import rbox_overlaps

__all__ = [
    'ANCHOR_HALF_SIZE', 'square_intersects_rbox', 'points_in_rboxes', 'rescale_rboxes',
    'rbox_aabb', 'rbox_iou_upper_bound', 'rbox_candidate_pairs', 'rbox_iou_aligned'
]

ANCHOR_HALF_SIZE = 1.5  # half side of the 3x3 input-pixel anchor square


def rbox_iou_aligned(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """Rotated IoU of box pairs ``(boxes1[k], boxes2[k])``, (n, 5) each.

    The one place where the decoder and its helpers compute rotated IoUs: the exact
    :func:`~a2bis_mm.structures.rbox_iou.rbox_overlaps` (mmcv 2.1's CPU ``box_iou_rotated`` is wrong
    when edges are collinear, e.g. 0.434 for a box against a copy 1e-6 px taller).
    """
    if boxes1.numel() == 0:
        return boxes1.new_zeros((0, ))
    return rbox_overlaps(boxes1.float(), boxes2.float(), aligned=True)


def square_intersects_rbox(centers: Tensor, boxes: Tensor,
                           half_size: float = ANCHOR_HALF_SIZE) -> Tensor:
    """Whether axis-aligned squares intersect rotated boxes, pairwise (aligned).

    Own code because mmcv only offers IoUs (polygon clipping per pair); the separating-axis
    theorem decides intersection of two rectangles exactly with four projections. Touching counts
    as intersecting.

    Args:
        centers (Tensor): (..., 2) square centres (x, y).
        boxes (Tensor): (..., 5) rotated boxes (cx, cy, w, h, t), t in radians (mmrotate, clockwise).
        half_size (float): half the side of the squares.

    Returns:
        Tensor: (...) bool.
    """
    dx = centers[..., 0] - boxes[..., 0]
    dy = centers[..., 1] - boxes[..., 1]
    cos, sin = torch.cos(boxes[..., 4]), torch.sin(boxes[..., 4])
    acos, asin = cos.abs(), sin.abs()
    half_w, half_h = boxes[..., 2] / 2, boxes[..., 3] / 2
    # square's own axes (x, y): the box's projected half extents
    hit = (dx.abs() <= half_w * acos + half_h * asin + half_size)
    hit &= (dy.abs() <= half_w * asin + half_h * acos + half_size)
    # box axes u = (cos, sin), v = (-sin, cos): the square's projected half extent
    sq = half_size * (acos + asin)
    hit &= ((dx * cos + dy * sin).abs() <= half_w + sq)
    hit &= ((dy * cos - dx * sin).abs() <= half_h + sq)
    return hit


def points_in_rboxes(points: Tensor, boxes: Tensor, margin: float = 0.0) -> Tensor:
    """Whether points lie in rotated boxes (grown by ``margin`` on every side), pairwise (aligned).

    Args:
        points (Tensor): (..., 2) points (x, y).
        boxes (Tensor): (..., 5) rotated boxes.
        margin (float): distance added to each half side.

    Returns:
        Tensor: (...) bool; the boundary counts as inside.
    """
    dx = points[..., 0] - boxes[..., 0]
    dy = points[..., 1] - boxes[..., 1]
    cos, sin = torch.cos(boxes[..., 4]), torch.sin(boxes[..., 4])
    return (((dx * cos + dy * sin).abs() <= boxes[..., 2] / 2 + margin) &
            ((dy * cos - dx * sin).abs() <= boxes[..., 3] / 2 + margin))


def rescale_rboxes(boxes: Tensor, scale_factor: Sequence[float]) -> Tensor:
    """Map rotated boxes from the resized input back to the original image.

    Own code because mmrotate's ``RotatedBoxes.rescale_`` takes its angle formula from detectron2
    (counter-clockwise angles) and rotates boxes the wrong way under anisotropic factors. Each side
    is mapped as a vector: w and h become the lengths of the mapped sides, the angle is that of the
    mapped w side (the mapped sides are no longer perpendicular when ``sx != sy``).

    Args:
        boxes (Tensor): (n, 5) (cx, cy, w, h, t) in input pixels, t in radians.
        scale_factor (Sequence[float]): (sx, sy), input size / original size (mmdet metainfo).

    Returns:
        Tensor: (n, 5) boxes in original image pixels.
    """
    sx, sy = float(scale_factor[0]), float(scale_factor[1])
    cx, cy, w, h, t = boxes.unbind(-1)
    cos, sin = torch.cos(t), torch.sin(t)
    return torch.stack([
        cx / sx, cy / sy,
        w * torch.hypot(cos / sx, sin / sy), h * torch.hypot(sin / sx, cos / sy),
        torch.atan2(sin / sy, cos / sx)
    ], dim=-1)


def rbox_aabb(boxes: Tensor) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """Axis-aligned bounds (x0, y0, x1, y1) of rotated boxes."""
    cx, cy, w, h, t = boxes.unbind(-1)
    acos, asin = torch.cos(t).abs(), torch.sin(t).abs()
    ext_x, ext_y = (w * acos + h * asin) / 2, (w * asin + h * acos) / 2
    return cx - ext_x, cy - ext_y, cx + ext_x, cy + ext_y


def rbox_iou_upper_bound(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """Upper bound of the rotated IoU (broadcasting): bounds intersection / larger box area."""
    ax0, ay0, ax1, ay1 = rbox_aabb(boxes1)
    bx0, by0, bx1, by1 = rbox_aabb(boxes2)
    inter_w = (torch.minimum(ax1, bx1) - torch.maximum(ax0, bx0)).clamp(min=0)
    inter_h = (torch.minimum(ay1, by1) - torch.maximum(ay0, by0)).clamp(min=0)
    larger = torch.maximum(boxes1[..., 2] * boxes1[..., 3], boxes2[..., 2] * boxes2[..., 3])
    return inter_w * inter_h / larger.clamp(min=1e-12)


def rbox_candidate_pairs(boxes: Tensor, iou_thr: float) -> Tuple[Tensor, Tensor]:
    """Unordered pairs of rotated boxes whose IoU may reach ``iou_thr`` (> 0), i < j.

    A sort-and-sweep over x lists the pairs whose axis-aligned bounds overlap in x, then
    :func:`rbox_iou_upper_bound` drops those that cannot reach ``iou_thr``; no n x n matrix is built.
    """
    n = boxes.shape[0]
    x0, _, x1, _ = rbox_aabb(boxes)
    order = torch.argsort(x0)
    # partners of sorted box k: the boxes after it whose x0 <= its x1
    end = torch.searchsorted(x0[order].contiguous(), x1[order].contiguous(), right=True)
    counts = (end - torch.arange(1, n + 1, device=boxes.device)).clamp(min=0)
    first = torch.repeat_interleave(torch.arange(n, device=boxes.device), counts)
    second = first + 1 + torch.arange(first.numel(), device=boxes.device) - \
        (torch.cumsum(counts, 0) - counts)[first]
    i, j = order[first], order[second]
    # the margin keeps pairs whose rounded bound lands just under an exactly reached threshold
    maybe = rbox_iou_upper_bound(boxes[i], boxes[j]) >= iou_thr * (1 - 1e-4)
    i, j = i[maybe], j[maybe]
    return torch.minimum(i, j), torch.maximum(i, j)


