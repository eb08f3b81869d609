"""Exact rotated-box IoU, vectorised in torch (CPU and CUDA), with an axis-aligned pre-filter.

Why not ``mmcv.ops.box_iou_rotated``:

* mmcv 2.1's kernel collects the intersection polygon from corner-in-box tests and edge-edge
  intersections with tolerances, which is wrong when two boxes have collinear edges (upstream issue
  mmcv#2621): a box against a copy of itself with ``h + 1e-6`` gives 0.434 instead of 1.
* its CPU kernel indexes the tensors pair by pair and computes every pair, also the many that cannot
  overlap (about a million tensor ``select`` calls for 2,400 anchors x 80 boxes, ~0.75 s per training
  step of A2B-IS-T, docs/benchmarks.md).

Here the intersection is the Sutherland-Hodgman clipping of one box by the four half-planes of the
other, in float64, relative to the first box's centre. Each clipping step classifies a vertex by the
exact sign of its cross product and puts the crossing point on the segment between an inside and an
outside vertex, so the clipped polygon, and with it the area, moves continuously with the boxes:
collinear and touching edges need no tolerance. A convex polygon cut by a half-plane stays convex,
so after four cuts the polygon is the exact intersection up to float64 rounding.

Boxes are mmrotate ``RotatedBoxes`` rows ``(cx, cy, w, h, t)``, ``t`` in radians, the ``w`` side
along ``(cos t, sin t)`` (mmcv's ``clockwise=True``, see ``a2bis_mm/structures/rbox.py``).
"""
from typing import Tuple

import torch
from torch import Tensor

__all__ = ['rbox_overlaps', 'rbox_corners', 'rbox_aabb_candidates']

# Pairs clipped per vectorised pass: bounds the float64 temporaries (~3 KiB per pair) to ~200 MiB.
_PAIR_CHUNK = 1 << 16
# Pair-mask elements built per pass for the (n, m) pre-filter.
_MASK_CHUNK = 1 << 24
# Relative growth of the axis-aligned extents before the pre-filter: far above float64 rounding of
# cos/sin, so a pair that overlaps is never skipped; far below any box size.
_AABB_SLACK = 1e-9


def rbox_corners(boxes: Tensor) -> Tensor:
    """Corners (n, 4, 2) of (n, 5) rotated boxes, counter-clockwise in (x, y) axes.

    The order ``(-w/2, -h/2), (w/2, -h/2), (w/2, h/2), (-w/2, h/2)`` in the box frame keeps the
    interior to the left of every edge (positive shoelace area), which the clipping relies on.
    """
    cx, cy, w, h, t = boxes.unbind(-1)
    cos, sin = torch.cos(t), torch.sin(t)
    sx = boxes.new_tensor([-0.5, 0.5, 0.5, -0.5])
    sy = boxes.new_tensor([-0.5, -0.5, 0.5, 0.5])
    lx = w[:, None] * sx  # (n, 4) corner offsets along the w side
    ly = h[:, None] * sy  # ... along the h side
    x = cx[:, None] + lx * cos[:, None] - ly * sin[:, None]
    y = cy[:, None] + lx * sin[:, None] + ly * cos[:, None]
    return torch.stack([x, y], dim=-1)


def _half_extents(boxes: Tensor) -> Tensor:
    """Half width and half height (n, 2) of the axis-aligned boxes enclosing rotated boxes."""
    w, h, t = boxes[:, 2].abs(), boxes[:, 3].abs(), boxes[:, 4]
    cos, sin = torch.cos(t).abs(), torch.sin(t).abs()
    return 0.5 * torch.stack([w * cos + h * sin, w * sin + h * cos], dim=-1)


def rbox_aabb_candidates(boxes1: Tensor, boxes2: Tensor, aligned: bool = False) -> Tensor:
    """Pairs whose axis-aligned enclosing boxes overlap with positive area (the only pairs that
    can have a non-zero rotated IoU).

    Args:
        boxes1 (Tensor): (n, 5) rotated boxes.
        boxes2 (Tensor): (m, 5) rotated boxes ((n, 5) when ``aligned``).
        aligned (bool): compare row i with row i instead of every pair.

    Returns:
        Tensor: bool (n, m), or (n,) when ``aligned``.
    """
    b1, b2 = boxes1.double(), boxes2.double()
    e1, e2 = _half_extents(b1) * (1 + _AABB_SLACK), _half_extents(b2) * (1 + _AABB_SLACK)
    if aligned:
        return ((b1[:, :2] - b2[:, :2]).abs() < e1 + e2).all(dim=-1)
    gap = (b1[:, None, :2] - b2[None, :, :2]).abs()
    return (gap < e1[:, None] + e2[None]).all(dim=-1)


def _clip(poly: Tensor, start: Tensor, edge: Tensor) -> Tensor:
    """Clip convex polygons by half-planes (one Sutherland-Hodgman step).

    Args:
        poly (Tensor): (p, k, 2) closed vertex cycles; a vertex may repeat (zero-length edges
            change neither the clipping nor the area).
        start (Tensor): (p, 2) a point of each clipping line.
        edge (Tensor): (p, 2) its direction; the inside is to the left (cross product >= 0).

    Returns:
        Tensor: (p, k', 2) clipped cycles, k' the largest vertex count of the batch; shorter
        cycles repeat their last vertex, empty ones are all zeros (area 0).
    """
    rel = poly - start[:, None]
    side = edge[:, None, 0] * rel[..., 1] - edge[:, None, 1] * rel[..., 0]  # (p, k)
    nxt, side_nxt = poly.roll(-1, dims=1), side.roll(-1, dims=1)
    inside = side >= 0
    crosses = inside != (side_nxt >= 0)
    # inside and outside vertices have opposite signs, so the denominator is never 0 where used
    frac = side / torch.where(crosses, side - side_nxt, torch.ones_like(side))
    cut = poly + frac[..., None] * (nxt - poly)
    # per vertex: the vertex if inside, then the crossing point on its outgoing edge if any
    cand = torch.stack([poly, cut], dim=2).flatten(1, 2)  # (p, 2k, 2)
    valid = torch.stack([inside, crosses], dim=2).flatten(1, 2)  # (p, 2k)
    # compact the valid candidates to the front, in order (cumsum + scatter: cheaper than a sort)
    pos = valid.cumsum(dim=1) - 1
    count = pos[:, -1] + 1
    k = max(int(count.max()), 1) if len(count) else 1
    dump = cand.shape[1]  # invalid candidates all go to one extra slot, dropped below
    buf = cand.new_zeros((len(cand), dump + 1, 2))
    buf.scatter_(1, torch.where(valid, pos, dump)[..., None].expand(-1, -1, 2), cand)
    slot = torch.arange(k, device=poly.device).expand(len(poly), k)
    slot = torch.minimum(slot, (count - 1).clamp(min=0)[:, None])  # pad: repeat the last vertex
    out = buf.gather(1, slot[..., None].expand(-1, -1, 2))
    return torch.where((count > 0)[:, None, None], out, torch.zeros_like(out))


def _intersection_area(b1: Tensor, b2: Tensor) -> Tensor:
    """Intersection areas (p,) of float64 box pairs (p, 5), clipping b1 by b2."""
    centre = b1[:, :2]
    # local frame (precision); |w|, |h| keep the corners counter-clockwise
    b1 = torch.cat([torch.zeros_like(centre), b1[:, 2:4].abs(), b1[:, 4:]], dim=1)
    b2 = torch.cat([b2[:, :2] - centre, b2[:, 2:4].abs(), b2[:, 4:]], dim=1)
    poly, clipper = rbox_corners(b1), rbox_corners(b2)
    edges = clipper.roll(-1, dims=1) - clipper
    for i in range(4):
        poly = _clip(poly, clipper[:, i], edges[:, i])
    nxt = poly.roll(-1, dims=1)
    area = 0.5 * (poly[..., 0] * nxt[..., 1] - poly[..., 1] * nxt[..., 0]).sum(dim=1)
    return area.clamp(min=0)


def _pair_iou(b1: Tensor, b2: Tensor, mode: str) -> Tensor:
    """IoU (or IoF) of float64 box pairs (p, 5), computed in chunks of ``_PAIR_CHUNK`` pairs."""
    out = []
    for s in range(0, len(b1), _PAIR_CHUNK):
        p1, p2 = b1[s:s + _PAIR_CHUNK], b2[s:s + _PAIR_CHUNK]
        area1 = p1[:, 2].abs() * p1[:, 3].abs()
        area2 = p2[:, 2].abs() * p2[:, 3].abs()
        inter = torch.minimum(_intersection_area(p1, p2), torch.minimum(area1, area2))
        denom = area1 if mode == 'iof' else area1 + area2 - inter
        out.append(torch.where(denom > 0, inter / denom.clamp(min=1e-300), torch.zeros_like(inter)))
    return torch.cat(out) if out else b1.new_zeros(0)


def _check(boxes1: Tensor, boxes2: Tensor, aligned: bool, mode: str) -> Tuple[Tensor, Tensor]:
    if mode not in ('iou', 'iof'):
        raise ValueError(f"rbox_overlaps mode must be 'iou' or 'iof', got {mode!r}")
    boxes1, boxes2 = boxes1.reshape(-1, boxes1.shape[-1]), boxes2.reshape(-1, boxes2.shape[-1])
    if boxes1.shape[-1] != 5 or boxes2.shape[-1] != 5:
        raise ValueError(f'rbox_overlaps expects (n, 5) boxes (cx, cy, w, h, t), got '
                         f'{tuple(boxes1.shape)} and {tuple(boxes2.shape)}')
    if aligned and len(boxes1) != len(boxes2):
        raise ValueError(f'aligned rbox_overlaps needs as many boxes on both sides, got '
                         f'{len(boxes1)} and {len(boxes2)}')
    return boxes1, boxes2


def rbox_overlaps(boxes1: Tensor, boxes2: Tensor, aligned: bool = False, mode: str = 'iou') -> Tensor:
    """Exact IoU of rotated boxes; pairs whose axis-aligned boxes do not meet are 0 unclipped.

    Drop-in for ``mmcv.ops.box_iou_rotated(boxes1, boxes2, mode, aligned)`` (``clockwise=True``),
    without its collinear-edge error, and fast when few pairs can overlap (anchors x GT boxes,
    detections x GT boxes): only the pre-filtered pairs are clipped. Runs on the device of the
    inputs, in float64, and returns the dtype of ``boxes1``; autocast does not apply (no matmul).

    Args:
        boxes1 (Tensor): (n, 5) ``(cx, cy, w, h, t)`` boxes, ``t`` in radians.
        boxes2 (Tensor): (m, 5) boxes ((n, 5) when ``aligned``).
        aligned (bool): IoU of row i with row i, (n,), instead of every pair, (n, m).
        mode (str): ``'iou'`` (intersection / union) or ``'iof'`` (intersection / area of the
            box of ``boxes1``).

    Returns:
        Tensor: (n, m) or (n,) overlaps in [0, 1]; 0 where a box has zero area.
    """
    boxes1, boxes2 = _check(boxes1, boxes2, aligned, mode)
    dtype = boxes1.dtype if boxes1.is_floating_point() else torch.float32
    b1, b2 = boxes1.double(), boxes2.double()
    if aligned:
        out = b1.new_zeros(len(b1))
        idx = rbox_aabb_candidates(b1, b2, aligned=True).nonzero(as_tuple=True)[0]
        if len(idx):
            out[idx] = _pair_iou(b1[idx], b2[idx], mode)
        return out.to(dtype)
    n, m = len(b1), len(b2)
    out = b1.new_zeros((n, m))
    if n == 0 or m == 0:
        return out.to(dtype)
    rows_per_pass = max(1, _MASK_CHUNK // m)
    for s in range(0, n, rows_per_pass):
        i, j = rbox_aabb_candidates(b1[s:s + rows_per_pass], b2).nonzero(as_tuple=True)
        if len(i):
            out[i + s, j] = _pair_iou(b1[i + s], b2[j], mode)
    return out.to(dtype)
