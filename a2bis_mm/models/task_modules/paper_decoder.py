"""The paper's A2B-IS decoder (``decoder='paper'``): dense maps -> rotated boxes and masks.

Implements docs/model.md D7 (the reference code's inference; steps in docs/decoder.md) for one
image. Conventions (docs/components.md, ``a2bis_mm/structures/rbox.py``, ``GenerateA2BTargets``):
box coordinates are continuous, pixel ``(r, c)`` being the unit square ``[c, c + 1] x [r, r + 1]``,
so boxes go back to the original image as ``x / sx`` (mmdet's rescale); feature pixel ``(r, c)``
has its 3x3 anchor square centred at the input point ``(s*c, s*r)``, and its class/mask value
stands for the input block ``[s*c, s*c + s) x [s*r, s*r + s)`` (the max-pooled targets).

Decisions vs the reference code:

* hit test (step 7): an exact separating-axis test of the anchor square against the rotated box
  replaces the reference's ``rIoU(anchor, box) > 1e-4``; it needs no per-pair polygon clipping and
  differs only where the anchor just touches the box (the reference also drops anchors whose
  intersection is under ``1e-4`` of the union, i.e. slivers along large boxes).
* masks go from the feature grid to the output grid in ONE bilinear sampling (pixel-centre aligned,
  as ``cv2.resize``/``F.interpolate(align_corners=False)``) that composes feature -> input (padding
  cropped by ``img_shape``) -> original; ``>= mask_thr`` matches the reference's rounding of its uint8
  bilinear resize and turns a feature pixel into exactly its ``s x s`` input block.
* clean-up (step 8) runs on each mask's own window (its support padded by the kernel radii, so the
  result equals the full-image operation) instead of the reference's square of half-size
  ``max(w, h)/2``, which clips the ends of diagonal boxes. The kernels (11x11 close cross, 15x15
  majority blur) are defined at the reference's magnification of 6.25 original pixels per feature
  pixel (256² maps -> 1600² images) and scaled per axis to the actual magnification ``s / scale``
  (3x3 and 5x5 at stride 2 without resize).
* candidates are restricted to feature pixels inside ``img_shape`` (padding is not image) and to
  finite decoded boxes.
"""
from typing import Tuple

import cv2
import numpy as np
import torch
from mmengine.config import ConfigDict
from mmengine.structures import InstanceData
from mmrotate.structures import RotatedBoxes
from torch import Tensor

from a2bis_mm.structures import (
    ANCHOR_HALF_SIZE,
    rbox_aabb,
    rbox_candidate_pairs,
    rbox_iou_aligned,
    rescale_rboxes,
    square_intersects_rbox,
)

from .nms import rotated_nms
from .vote_decoder import uncovered, warn_cap

REF_MAGNIFICATION = 6.25  # original px per feature px in the reference (1600 / (512 / 2))
REF_CLOSE_KERNEL = 11  # cross element of the reference's morphological close
REF_BLUR_KERNEL = 15  # box filter of the reference's majority blur
# a kept box "overlaps another" above this rotated IoU (reference step 7, mask assignment)
OVERLAP_IOU_THR = 0.001


def _empty_results(boxes: Tensor, out_shape: Tuple[int, int]) -> InstanceData:
    """Zero instances with the dtypes and trailing shapes of real results."""
    results = InstanceData()
    results.bboxes = RotatedBoxes(boxes.new_zeros((0, 5)))
    results.scores = boxes.new_zeros((0, ))
    results.labels = torch.zeros((0, ), dtype=torch.long, device=boxes.device)
    results.masks = torch.zeros((0, *out_shape), dtype=torch.bool, device=boxes.device)
    return results


def _check_inputs(skeleton: Tensor, seg: Tensor, rboxes: Tensor) -> None:
    """Raise a one-line ValueError for maps that do not fit together."""
    if seg.dim() != 3 or seg.shape[0] < 3:
        raise ValueError(f'seg must be (C>=3, h, w) (background, classes, overlap), '
                         f'got {tuple(seg.shape)}')
    h, w = seg.shape[1:]
    if tuple(skeleton.shape) != (1, h, w):
        raise ValueError(f'skeleton must be (1, {h}, {w}) like seg, got {tuple(skeleton.shape)}')
    if tuple(rboxes.shape) != (h * w, 5):
        raise ValueError(f'rboxes must be ({h * w}, 5) (one box per feature pixel of a {h}x{w} '
                         f'map), got {tuple(rboxes.shape)}')


def _odd_kernel(base: int, magnification: float) -> int:
    """``base`` px at the reference magnification, scaled and rounded to the nearest odd >= 1."""
    size = base * magnification / REF_MAGNIFICATION
    return max(1, 2 * int(np.floor(size / 2)) + 1)


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    """``scipy.ndimage.binary_fill_holes`` (4-connected background) by one ``cv2.floodFill``.

    Own code for speed: scipy's iterative dilation costs ~0.1-0.3 ms per small mask, the flood
    fill a few microseconds; the result is identical.
    """
    padded = cv2.copyMakeBorder(mask.astype(np.uint8), 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    cv2.floodFill(padded, None, (0, 0), 2)
    return padded[1:-1, 1:-1] != 2


def _assign_masks(boxes: Tensor, labels: Tensor, cls_map: Tensor, stride: int,
                  overlap_label: int) -> Tuple[Tensor, Tensor, Tensor]:
    """Hit pixels of every kept box (reference step 7), batched over the boxes' windows.

    Each box only visits the feature pixels of its axis-aligned bounding window (grown by the
    anchor half size), so memory is O(sum of window areas), not O(n * h * w).

    Args:
        boxes (Tensor): (n, 5) kept, grown boxes in input pixels.
        labels (Tensor): (n, ) 0-based classes of the boxes.
        cls_map (Tensor): (h, w) argmax class map (0 background, ``overlap_label`` overlap).
        stride (int): feature stride s.
        overlap_label (int): the overlap channel N + 1.

    Returns:
        tuple[Tensor]: ``box_ids``, ``rows``, ``cols`` of the assigned (box, feature pixel) pairs.
    """
    n = boxes.shape[0]
    h, w = cls_map.shape
    i, j = rbox_candidate_pairs(boxes, OVERLAP_IOU_THR)
    touching = rbox_iou_aligned(boxes[i], boxes[j]) > OVERLAP_IOU_THR
    overlapped = torch.zeros(n, dtype=torch.bool, device=boxes.device)
    overlapped[i[touching]] = True
    overlapped[j[touching]] = True

    x0, y0, x1, y1 = rbox_aabb(boxes)
    # clamp in float first: decoded boxes may be huge
    half = ANCHOR_HALF_SIZE
    c0 = torch.ceil(((x0 - half) / stride).clamp(0, w)).long()
    c1 = torch.floor(((x1 + half) / stride).clamp(-1, w - 1)).long()
    r0 = torch.ceil(((y0 - half) / stride).clamp(0, h)).long()
    r1 = torch.floor(((y1 + half) / stride).clamp(-1, h - 1)).long()
    win_w = (c1 - c0 + 1).clamp(min=0)
    sizes = (r1 - r0 + 1).clamp(min=0) * win_w
    box_ids = torch.repeat_interleave(torch.arange(n, device=boxes.device), sizes)
    offsets = torch.arange(box_ids.numel(), device=boxes.device) - \
        (torch.cumsum(sizes, 0) - sizes)[box_ids]
    rows = r0[box_ids] + torch.div(offsets, win_w[box_ids], rounding_mode='floor')
    cols = c0[box_ids] + offsets % win_w[box_ids]

    pix_cls = cls_map[rows, cols]
    keep = pix_cls > 0
    # a box that overlaps another keeps only its own class and the overlap class
    keep &= ~overlapped[box_ids] | (pix_cls == labels[box_ids] + 1) | (pix_cls == overlap_label)
    box_ids, rows, cols = box_ids[keep], rows[keep], cols[keep]
    centers = torch.stack([cols, rows], dim=-1).to(boxes.dtype) * stride
    hit = square_intersects_rbox(centers, boxes[box_ids])
    return box_ids[hit], rows[hit], cols[hit]


def _paint_masks(box_ids: Tensor, rows: Tensor, cols: Tensor, n: int, out_shape: Tuple[int, int],
                 scale: Tuple[float, float], stride: int, mask_thr: float,
                 postprocess: bool) -> np.ndarray:
    """Resample each box's feature-grid mask into the output grid and clean it up (reference step 8).

    Works per box on the window of its hit pixels; the loop is over kept boxes only.

    Args:
        box_ids, rows, cols (Tensor): assigned (box, feature pixel) pairs.
        n (int): number of boxes.
        out_shape (tuple[int, int]): (H, W) of the output masks.
        scale (tuple[float, float]): (sx, sy), input px per output px.
        stride (int): feature stride s.
        mask_thr (float): threshold on the bilinearly resampled mask.
        postprocess (bool): apply close, majority blur and hole filling.

    Returns:
        np.ndarray: (n, H, W) bool masks.
    """
    out_h, out_w = out_shape
    sx, sy = scale
    masks = np.zeros((n, out_h, out_w), dtype=bool)
    if box_ids.numel() == 0:
        return masks
    # window of each box's hit pixels on the feature grid
    lo_r = torch.full((n, ), 1 << 30, dtype=torch.long, device=rows.device)
    lo_c, hi_r, hi_c = lo_r.clone(), torch.full_like(lo_r, -1), torch.full_like(lo_r, -1)
    lo_r.scatter_reduce_(0, box_ids, rows, 'amin')
    lo_c.scatter_reduce_(0, box_ids, cols, 'amin')
    hi_r.scatter_reduce_(0, box_ids, rows, 'amax')
    hi_c.scatter_reduce_(0, box_ids, cols, 'amax')
    lo_r, lo_c, hi_r, hi_c = (x.cpu().numpy() for x in (lo_r, lo_c, hi_r, hi_c))
    order = torch.argsort(box_ids, stable=True).cpu()
    ids_np = box_ids.cpu().numpy()[order]
    rows_np, cols_np = rows.cpu().numpy()[order], cols.cpu().numpy()[order]
    bounds = np.searchsorted(ids_np, np.arange(n + 1))

    kx = _odd_kernel(REF_CLOSE_KERNEL, stride / sx)
    ky = _odd_kernel(REF_CLOSE_KERNEL, stride / sy)
    bx = _odd_kernel(REF_BLUR_KERNEL, stride / sx)
    by = _odd_kernel(REF_BLUR_KERNEL, stride / sy)
    close_el = cv2.getStructuringElement(cv2.MORPH_CROSS, (kx, ky))
    # padding so that the windowed clean-up equals the full-image one
    pad_x = (kx // 2 + bx // 2 + 1) if postprocess else 0
    pad_y = (ky // 2 + by // 2 + 1) if postprocess else 0

    # output pixel x0 samples the feature point (x0 + 0.5) * sx / s - 0.5 (pixel-centre aligned);
    # keep those within one feature px of the window (the bilinear support)
    x_lo = np.floor((lo_c - 0.5) * stride / sx - 0.5).astype(np.int64) - pad_x
    x_hi = np.ceil((hi_c + 1.5) * stride / sx - 0.5).astype(np.int64) + pad_x
    y_lo = np.floor((lo_r - 0.5) * stride / sy - 0.5).astype(np.int64) - pad_y
    y_hi = np.ceil((hi_r + 1.5) * stride / sy - 0.5).astype(np.int64) + pad_y
    x_lo, y_lo = np.maximum(x_lo, 0), np.maximum(y_lo, 0)
    x_hi, y_hi = np.minimum(x_hi, out_w - 1), np.minimum(y_hi, out_h - 1)

    for i in range(n):
        start, end = bounds[i], bounds[i + 1]
        if start == end or x_lo[i] > x_hi[i] or y_lo[i] > y_hi[i]:
            continue
        feat = np.zeros((hi_r[i] - lo_r[i] + 1, hi_c[i] - lo_c[i] + 1), dtype=np.float32)
        feat[rows_np[start:end] - lo_r[i], cols_np[start:end] - lo_c[i]] = 1
        affine = np.array(
            [[sx / stride, 0, (x_lo[i] + 0.5) * sx / stride - 0.5 - lo_c[i]],
             [0, sy / stride, (y_lo[i] + 0.5) * sy / stride - 0.5 - lo_r[i]]],
            dtype=np.float64)
        win = cv2.warpAffine(feat, affine, (int(x_hi[i] - x_lo[i] + 1), int(y_hi[i] - y_lo[i] + 1)),
                             flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                             borderMode=cv2.BORDER_CONSTANT, borderValue=0) >= mask_thr
        if postprocess:
            win = cv2.morphologyEx(win.view(np.uint8), cv2.MORPH_CLOSE, close_el)
            # box blur of a 0/1 mask > 0.5 = majority vote (odd kernels, no ties)
            win = cv2.blur(win.astype(np.float32), (bx, by)) > 0.5
            win = _fill_holes(win)
        masks[i, y_lo[i]:y_hi[i] + 1, x_lo[i]:x_hi[i] + 1] = win
    return masks


def a2b_postprocess(skeleton: Tensor,
                    seg: Tensor,
                    rboxes: Tensor,
                    img_meta: dict,
                    cfg: ConfigDict,
                    rescale: bool = False,
                    stride: int = 2) -> InstanceData:
    """Turn one image's dense A2B-IS maps into instances (docs/model.md D7).

    Args:
        skeleton (Tensor): (1, h, w) skeleton probabilities S.
        seg (Tensor): (C, h, w) class probabilities P: 0 background, 1..N classes, N+1 overlap.
        rboxes (Tensor): (h*w, 5) decoded boxes (cx, cy, w, h, t) in input pixels, t in radians
            (mmrotate convention), row-major over (r, c).
        img_meta (dict): mmdet metainfo with ``img_shape`` and, if ``rescale``, ``ori_shape`` and
            ``scale_factor`` (w_scale, h_scale).
        cfg (ConfigDict): ``score_thr`` (0.01), ``nms`` (dict(type='nms_rotated',
            iou_threshold=0.25)), ``nms_pre`` (2000), ``max_per_img`` (300), ``box_grow`` (2.0,
            input px added to w and h after NMS), ``mask_thr`` (0.5), ``mask_postprocess`` (True),
            ``skeleton_gate`` (None, or the paper's delta: candidates need S >= delta).
        rescale (bool): return boxes and masks in original image pixels; else at ``img_shape``.
        stride (int): feature stride s; pixel (r, c) is the input point (s*c, s*r).

    Returns:
        InstanceData: ``bboxes`` (RotatedBoxes), ``scores``, ``labels`` (0-based) and ``masks``
        ((n, H, W) bool), sorted by descending score.
    """
    _check_inputs(skeleton, seg, rboxes)
    nms_cfg = cfg.get('nms', dict(type='nms_rotated', iou_threshold=0.25))
    if nms_cfg.get('type', 'nms_rotated') != 'nms_rotated' or nms_cfg.get('iou_threshold', 0) <= 0:
        raise ValueError(f"cfg.nms must be dict(type='nms_rotated', iou_threshold>0), got {nms_cfg}")
    num_channels, h, w = seg.shape
    overlap_label = num_channels - 1
    img_h, img_w = img_meta['img_shape'][:2]
    if rescale:
        if 'ori_shape' not in img_meta:
            raise KeyError(f'rescale=True needs ori_shape in img_meta, got keys {sorted(img_meta)}')
        out_shape = tuple(int(x) for x in img_meta['ori_shape'][:2])
        # a test pipeline without Resize records no scale_factor: the input is the original
        sx, sy = (float(x) for x in img_meta.get('scale_factor', (1.0, 1.0))[:2])
    else:
        out_shape, (sx, sy) = (int(img_h), int(img_w)), (1.0, 1.0)
    rboxes = rboxes.float()

    # 1. candidates: argmax is an object class, inside the image, finite box, score >= thr
    prob, cls_map = seg.float().max(dim=0)
    scores = (prob * skeleton[0].float()).flatten()
    valid = (cls_map >= 1) & (cls_map < overlap_label)
    valid[int(np.ceil(img_h / stride)):] = False
    valid[:, int(np.ceil(img_w / stride)):] = False
    valid = valid.flatten() & (scores >= cfg.get('score_thr', 0.01))
    valid &= torch.isfinite(rboxes).all(dim=1)
    if cfg.get('skeleton_gate') is not None:
        valid &= skeleton.flatten() >= cfg.skeleton_gate
    cand = valid.nonzero().squeeze(1)
    nms_pre = cfg.get('nms_pre', 2000)
    cut = None
    if 0 < nms_pre < cand.numel():
        top = scores[cand].topk(nms_pre).indices
        cut = torch.ones(cand.numel(), dtype=torch.bool, device=cand.device)
        cut[top] = False
        cut, cand = cand[cut], cand[top]
    if cand.numel() == 0:
        return _empty_results(rboxes, out_shape)

    # 2. class-agnostic rotated NMS, cap, grow; a cap that cuts instances is reported
    keep = cand[rotated_nms(rboxes[cand], scores[cand], nms_cfg['iou_threshold'])]
    max_per_img = cfg.get('max_per_img', 300)
    if 0 < max_per_img < keep.numel():
        warn_cap(img_meta, 'max_per_img', max_per_img, f'{keep.numel() - max_per_img} instances')
        keep = keep[:max_per_img]
    boxes, scores, labels = rboxes[keep].clone(), scores[keep], cls_map.flatten()[keep] - 1
    boxes[:, 2:4] += cfg.get('box_grow', 2.0)
    if cut is not None:
        lost = uncovered(boxes, cut, h, w, stride, ANCHOR_HALF_SIZE)
        if lost:
            warn_cap(img_meta, 'nms_pre', nms_pre, f'{lost} candidate pixels outside every kept box')

    # 3. mask assignment on the feature grid, 4. back to the output grid
    box_ids, rows, cols = _assign_masks(boxes, labels, cls_map, stride, overlap_label)
    masks = _paint_masks(box_ids, rows, cols, boxes.shape[0], out_shape, (sx, sy), stride,
                         cfg.get('mask_thr', 0.5), cfg.get('mask_postprocess', True))

    results = InstanceData()
    results.bboxes = RotatedBoxes(rescale_rboxes(boxes, (sx, sy)) if rescale else boxes)
    results.scores = scores
    results.labels = labels
    results.masks = torch.from_numpy(masks).to(boxes.device)
    return results
