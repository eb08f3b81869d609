"""Ideal dense maps: what a perfect A2B-IS network would predict for a set of instance masks.

Used to measure what the decoder can do at best (``tools/analysis_tools/decode_ceiling.py``,
docs/decoder.md) and by the decoder tests. The maps follow the decoder interface
(:class:`~a2bis_mm.models.task_modules.A2BDecoder`):

* ``skeleton`` (1, h, w): the Gaussian skeleton target of ``GenerateA2BTargets``.
* ``seg`` (C, h, w): the one-hot stride-s class target (overlap class where two stride-s masks
  meet), C = N + 2.
* ``rboxes`` (h, w, 5): every feature pixel covered by an instance carries that instance's
  min-area box. A pixel covered by several instances (overlap class) carries the box of the
  instance that covers most of its ``s x s`` input block (ties: the lower index); background
  pixels carry their own 3x3 anchor. The trained box head only sees anchors near the skeleton
  (docs/model.md D5), so this is an idealisation away from the skeleton; it is what "perfect maps" means
  in docs/decoder.md.
* ``fg`` (1, H, W) and ``overlap`` (1, H, W) at input resolution (``with_fullres``): the
  ground-truth foreground (union of the masks) and true overlap (pixels in two or more masks),
  the targets of the head's full-resolution branch (``mask_head.fullres``).
"""
from typing import Dict, Optional

import numpy as np
import torch
from mmdet.structures.mask import BitmapMasks

from a2bis_mm.datasets.transforms.targets import GenerateA2BTargets

__all__ = ['ideal_maps']

OVERLAP_SENTINEL = 254  # GenerateA2BTargets' overlap value once the head owns num_classes


def _block_coverage(mask: np.ndarray, y0: int, y1: int, x0: int, x1: int, stride: int):
    """Input-pixel count of each ``stride x stride`` block of a mask's bounding crop."""
    s = stride
    fy0, fx0 = y0 // s, x0 // s
    fy1, fx1 = -(-y1 // s), -(-x1 // s)
    block = np.zeros(((fy1 - fy0) * s, (fx1 - fx0) * s), dtype=np.int32)
    crop = mask[fy0 * s:fy1 * s, fx0 * s:fx1 * s]
    block[:crop.shape[0], :crop.shape[1]] = crop
    return block.reshape(fy1 - fy0, s, fx1 - fx0, s).sum(axis=(1, 3)), fy0, fx0


def ideal_maps(masks: np.ndarray,
               labels: np.ndarray,
               num_classes: int,
               stride: int = 2,
               anchor_size: float = 3.0,
               with_fullres: bool = True,
               targets: Optional[GenerateA2BTargets] = None) -> Dict[str, object]:
    """Perfect dense maps for instance masks at input resolution.

    Args:
        masks (np.ndarray): (n, H, W) bool instance masks at input resolution (may overlap).
        labels (np.ndarray): (n,) 0-based classes.
        num_classes (int): number of object classes N.
        stride (int): feature stride s.
        anchor_size (float): side of the anchors that background pixels carry.
        with_fullres (bool): also return the input-resolution ``fg`` and ``overlap`` maps.
        targets (GenerateA2BTargets, optional): the target transform to use (its ``min_area`` /
            ``min_size`` filter decides which instances the maps show); default
            ``GenerateA2BTargets(num_classes, stride)``.

    Returns:
        dict: ``skeleton``, ``seg``, ``rboxes`` (and ``fg``, ``overlap``) as float32 tensors,
        plus ``keep`` (indices of the instances the maps show) and ``gt_bboxes`` ((k, 5) their
        boxes).
    """
    masks = np.asarray(masks, dtype=bool)
    n, height, width = masks.shape
    targets = targets or GenerateA2BTargets(num_classes, stride=stride)
    out = targets(dict(gt_masks=BitmapMasks(masks, height, width),
                       gt_bboxes_labels=np.asarray(labels, np.int64),
                       gt_ignore_flags=np.zeros(n, bool)))
    seg_map, heat = out['gt_seg_map'].astype(np.int64), out['gt_skeleton']
    # the target transform may write overlap as a sentinel (254) that the head maps to N + 1
    seg_map[seg_map == OVERLAP_SENTINEL] = num_classes + 1
    kept = out['gt_masks'].masks.astype(bool)
    boxes = out['gt_bboxes'].tensor.numpy()
    h, w = seg_map.shape

    # the owner of each block: the kept instance covering most of its input pixels
    best = np.zeros((h, w), np.int32)
    owner = np.full((h, w), -1, np.int64)
    rows_any = kept.any(axis=2)
    for i, rows in enumerate(rows_any):
        rows = np.flatnonzero(rows)
        y0, y1 = int(rows[0]), int(rows[-1]) + 1
        cols = np.flatnonzero(kept[i, y0:y1].any(axis=0))
        x0, x1 = int(cols[0]), int(cols[-1]) + 1
        cover, fy0, fx0 = _block_coverage(kept[i], y0, y1, x0, x1, stride)
        win_best = best[fy0:fy0 + cover.shape[0], fx0:fx0 + cover.shape[1]]
        win_owner = owner[fy0:fy0 + cover.shape[0], fx0:fx0 + cover.shape[1]]
        wins = cover > win_best
        win_best[wins] = cover[wins]
        win_owner[wins] = i

    rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing='ij')
    rboxes = np.stack([stride * cols, stride * rows, np.full((h, w), anchor_size),
                       np.full((h, w), anchor_size), np.zeros((h, w))], -1).astype(np.float32)
    rboxes[owner >= 0] = boxes[owner[owner >= 0]]
    seg = np.zeros((num_classes + 2, h, w), np.float32)
    np.put_along_axis(seg, seg_map[None], 1.0, axis=0)

    # indices of the kept instances among the input masks (same filter, same order)
    keep = []
    j = 0
    for i in range(n):
        if j < len(kept) and masks[i].any() and np.array_equal(masks[i], kept[j]):
            keep.append(i)
            j += 1
    result = dict(skeleton=torch.from_numpy(heat[None].astype(np.float32)),
                  seg=torch.from_numpy(seg), rboxes=torch.from_numpy(rboxes),
                  keep=np.asarray(keep, np.int64), gt_bboxes=torch.from_numpy(boxes))
    if with_fullres:
        count = kept.sum(axis=0) if len(kept) else np.zeros((height, width), np.int64)
        result['fg'] = torch.from_numpy((count >= 1).astype(np.float32)[None])
        result['overlap'] = torch.from_numpy((count >= 2).astype(np.float32)[None])
    return result
