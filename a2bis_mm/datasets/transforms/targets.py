"""A2B-IS training targets: stride-s class map with the overlap class, skeleton heatmap, rotated boxes."""
import math
import warnings
from typing import Optional, Tuple

import numpy as np
from mmcv.transforms import BaseTransform
from mmdet.registry import TRANSFORMS
from mmdet.structures.mask import BitmapMasks, PolygonMasks
from mmrotate.structures import RotatedBoxes
from scipy.ndimage import distance_transform_edt
from skimage.morphology import skeletonize

from a2bis_mm.structures import mask_to_rbox
from a2bis_mm.structures.a2b_targets import OVERLAP_SENTINEL


@TRANSFORMS.register_module()
class GenerateA2BTargets(BaseTransform):
    """Build the A2B-IS targets from instance masks (docs/components.md, docs/model.md).

    Runs after every geometric augmentation (the targets are never interpolated). For each kept
    instance ``i`` with 0-based label ``l_i``:

    * its stride-s mask: a feature pixel belongs to the instance if ANY input pixel of its
      ``s x s`` block does (max-pool). This is what the reference's INTER_LINEAR downsample
      (round(label * coverage) >= 1) gives for labels >= 2; we use it for every label so the
      class does not change the mask.
    * ``gt_seg_map`` (h, w) uint8: 0 background, ``l_i + 1`` on its stride-s mask,
      ``OVERLAP_SENTINEL`` (254) where >= 2 stride-s masks meet (this includes contact lines, as
      in the reference). The pipeline does not know the model's class count: ``A2BISHead``, which
      owns it, maps 254 to its overlap label ``num_classes + 1`` and rejects labels above
      ``num_classes``.
    * ``gt_skeleton`` (h, w) float32: max over instances of ``exp(-d_i^2 / (2 sigma^2 + 1e-5))``,
      ``d_i`` the Euclidean distance (feature px) to ``skeletonize(stride-s mask)``; exactly 1.0
      on skeleton pixels. A blob that skeletonizes to nothing uses its foreground pixel nearest
      to its centroid. ``d_i`` is computed only in the instance's box enlarged by
      ``ceil(sigma * sqrt(2 ln 1e5)) + 1`` feature px, outside which the Gaussian is < 1e-5 (set
      to 0 there), instead of over the whole image as the reference does.
    * ``gt_skeleton_inst`` (h, w) int64: index of the instance with the largest Gaussian there (the
      first one on ties), counted over the non-ignored kept instances, i.e. an index into
      ``data_sample.gt_instances``; -1 where that instance is ignored, where the maximum is
      < 1e-4, or without instances.
    * ``gt_bboxes``: :class:`RotatedBoxes` of the masks at input resolution
      (:func:`a2bis_mm.structures.mask_to_rbox`, 'le90').
    * ``gt_fullres`` (H, W) uint8, at input resolution (``fullres=True``): how many kept
      instances cover the pixel, clipped to 2 (0 background, 1 foreground, 2 true overlap): the
      target of the head's full-resolution branch (docs/decoder.md).

    Instances with fewer than ``min_area`` pixels or a box side below ``min_size`` are dropped from
    ``gt_masks`` (returned as :class:`BitmapMasks`), ``gt_bboxes``, ``gt_bboxes_labels``,
    ``gt_ignore_flags`` and from all maps (they become background). The map size is
    ``(ceil(H / s), ceil(W / s))``, the output size of the stride-2 stem; feature pixel
    ``(r, c)`` covers input pixels ``[s*r, s*r + s) x [s*c, s*c + s)``.

    The per-instance work runs on crops (one Python iteration per instance, vectorised inside):
    about 0.15 s for a 512 x 512 image with 350 nuclei, 0.03 s with 46 chromosomes (2-core CPU).

    Required keys: ``gt_masks`` (BitmapMasks or PolygonMasks), ``gt_bboxes_labels``.
    Optional keys: ``gt_ignore_flags``.
    Added keys: ``gt_seg_map``, ``gt_skeleton``, ``gt_skeleton_inst``, ``gt_fullres``,
    ``a2b_target_stride``
    (packed by ``PackA2BInputs`` as ``gt_skeleton.metainfo['stride']``, checked by the head).
    Modified keys: ``gt_masks``, ``gt_bboxes``, ``gt_bboxes_labels``, ``gt_ignore_flags``.

    Args:
        num_classes (int, optional): Deprecated, the model owns the class count; when given,
            labels >= ``num_classes`` raise here already. Defaults to None.
        stride (int): Output stride s of the prediction maps; must equal the model's
            ``mask_head.stride``. Defaults to 2.
        sigma (float): Gaussian sigma in feature pixels. Defaults to 1.0.
        min_area (int): Instances with fewer input pixels are dropped. Defaults to 20.
        min_size (float): Instances whose rotated box has a side shorter than this (input px)
            are dropped. Defaults to 2.0.
        skeleton_method (str): ``'zhang'`` (reference) or ``'lee'``, the methods of
            ``skimage.morphology.skeletonize``. Defaults to ``'zhang'``.
        fullres (bool): Also write ``gt_fullres``. Defaults to True.
    """

    def __init__(self,
                 num_classes: Optional[int] = None,
                 stride: int = 2,
                 sigma: float = 1.0,
                 min_area: int = 20,
                 min_size: float = 2.0,
                 skeleton_method: str = 'zhang',
                 fullres: bool = True) -> None:
        if num_classes is not None:
            warnings.warn('GenerateA2BTargets(num_classes=...) is deprecated: the class count is '
                          'set once, in the model (mask_head.num_classes)', DeprecationWarning,
                          stacklevel=2)
            if not 1 <= num_classes < OVERLAP_SENTINEL:
                raise ValueError(f'num_classes must be in [1, {OVERLAP_SENTINEL - 1}] (uint8 '
                                 f'map, overlap written as {OVERLAP_SENTINEL}), got {num_classes}')
        if stride < 1 or int(stride) != stride:
            raise ValueError(f'stride must be a positive integer, got {stride}')
        if sigma <= 0:
            raise ValueError(f'sigma must be > 0, got {sigma}')
        if skeleton_method not in ('zhang', 'lee'):
            raise ValueError(f"skeleton_method must be 'zhang' or 'lee', got {skeleton_method!r}")
        self.num_classes = num_classes
        self.stride = int(stride)
        self.sigma = float(sigma)
        self.min_area = max(int(min_area), 1)
        self.min_size = float(min_size)
        self.skeleton_method = skeleton_method
        self.fullres = bool(fullres)
        self.margin = math.ceil(self.sigma * math.sqrt(2 * math.log(1e5))) + 1
        self._denom = 2 * self.sigma**2 + 1e-5

    def _stride_mask(self, mask: np.ndarray, y0: int, y1: int, x0: int,
                     x1: int) -> Tuple[np.ndarray, int, int]:
        """Max-pool the instance's bounding crop to stride s; returns it with its feature origin."""
        s = self.stride
        fy0, fx0 = y0 // s, x0 // s
        fy1, fx1 = -(-y1 // s), -(-x1 // s)
        block = np.zeros(((fy1 - fy0) * s, (fx1 - fx0) * s), dtype=bool)
        crop = mask[fy0 * s:fy1 * s, fx0 * s:fx1 * s]
        block[:crop.shape[0], :crop.shape[1]] = crop
        return block.reshape(fy1 - fy0, s, fx1 - fx0, s).any(axis=(1, 3)), fy0, fx0

    def _gaussian(self, fg: np.ndarray) -> np.ndarray:
        """Gaussian of the distance to the skeleton of a (window-padded) stride-s mask."""
        skeleton = skeletonize(fg, method=self.skeleton_method)
        if not skeleton.any():
            ys, xs = np.nonzero(fg)
            k = np.argmin((ys - ys.mean())**2 + (xs - xs.mean())**2)
            skeleton[ys[k], xs[k]] = True
        dist = distance_transform_edt(~skeleton)
        return np.exp(-dist**2 / self._denom)

    def transform(self, results: dict) -> dict:
        """Generate the targets; see the class docstring for the keys.

        Args:
            results (dict): Result dict of the pipeline.

        Returns:
            dict: The result dict with the targets added and tiny instances dropped.
        """
        if 'gt_masks' not in results or 'gt_bboxes_labels' not in results:
            raise KeyError('GenerateA2BTargets needs gt_masks and gt_bboxes_labels (load them '
                           'with LoadAnnotations(with_mask=True, with_label=True))')
        masks = results['gt_masks']
        if isinstance(masks, PolygonMasks):
            masks = masks.to_bitmap()
        elif not isinstance(masks, BitmapMasks):
            raise TypeError(f'gt_masks must be BitmapMasks or PolygonMasks, got {type(masks)}')
        labels = np.asarray(results['gt_bboxes_labels'], dtype=np.int64)
        if len(labels) != len(masks):
            raise ValueError(f'gt_bboxes_labels has {len(labels)} entries but gt_masks has '
                             f'{len(masks)} ({results.get("img_path", "")})')
        # labels l are written as l + 1 < OVERLAP_SENTINEL
        max_label = OVERLAP_SENTINEL - 2 if self.num_classes is None else self.num_classes - 1
        if labels.size and (labels.min() < 0 or labels.max() >= max_label + 1):
            raise ValueError(f'labels must be in [0, {max_label}], got range '
                             f'[{labels.min()}, {labels.max()}] ({results.get("img_path", "")})')
        ignore: Optional[np.ndarray] = results.get('gt_ignore_flags')
        if ignore is None:
            ignore = np.zeros(len(labels), dtype=bool)
        ignore = np.asarray(ignore, dtype=bool)

        height, width = masks.height, masks.width
        s, m = self.stride, self.margin
        h, w = -(-height // s), -(-width // s)
        count = np.zeros((h, w), dtype=np.int32)
        seg = np.zeros((h, w), dtype=np.uint8)
        heat = np.zeros((h, w), dtype=np.float32)
        owner = np.full((h, w), -1, dtype=np.int64)
        cover = np.zeros((height, width), dtype=np.uint8) if self.fullres else None

        array = masks.masks
        rows_any = array.any(axis=2)
        keep, boxes = [], []
        num_valid = 0  # index among the kept, non-ignored instances (gt_instances order)
        for i, rows in enumerate(rows_any):
            rows = np.flatnonzero(rows)
            if rows.size == 0:
                continue
            y0, y1 = int(rows[0]), int(rows[-1]) + 1
            cols = np.flatnonzero(array[i, y0:y1].any(axis=0))
            x0, x1 = int(cols[0]), int(cols[-1]) + 1
            crop = array[i, y0:y1, x0:x1]
            if np.count_nonzero(crop) < self.min_area:
                continue
            cx, cy, bw, bh, t = mask_to_rbox(crop)
            if min(bw, bh) < self.min_size:
                continue
            keep.append(i)
            boxes.append((cx + x0, cy + y0, bw, bh, t))
            if cover is not None:
                cover_win = cover[y0:y1, x0:x1]
                cover_win += (crop != 0) & (cover_win < 2)

            small, fy0, fx0 = self._stride_mask(array[i], y0, y1, x0, x1)
            fy1, fx1 = fy0 + small.shape[0], fx0 + small.shape[1]
            count[fy0:fy1, fx0:fx1] += small
            seg[fy0:fy1, fx0:fx1][small] = labels[i] + 1

            # Window where this instance's Gaussian can reach 1e-5, clipped to the map.
            wy0, wx0 = max(fy0 - m, 0), max(fx0 - m, 0)
            wy1, wx1 = min(fy1 + m, h), min(fx1 + m, w)
            fg = np.zeros((wy1 - wy0, wx1 - wx0), dtype=bool)
            fg[fy0 - wy0:fy1 - wy0, fx0 - wx0:fx1 - wx0] = small
            gauss = self._gaussian(fg)
            heat_win = heat[wy0:wy1, wx0:wx1]
            wins = gauss > heat_win
            heat_win[wins] = gauss[wins]
            owner[wy0:wy1, wx0:wx1][wins] = -1 if ignore[i] else num_valid
            num_valid += not ignore[i]

        seg[count >= 2] = OVERLAP_SENTINEL
        owner[heat < 1e-4] = -1
        keep = np.asarray(keep, dtype=np.int64)
        if len(keep) < len(masks):  # indexing copies the whole (n, H, W) stack: only if needed
            masks = masks[keep]
        results['gt_masks'] = masks
        results['gt_bboxes'] = RotatedBoxes(np.asarray(boxes, dtype=np.float32).reshape(-1, 5))
        results['gt_bboxes_labels'] = labels[keep]
        if 'gt_ignore_flags' in results:
            results['gt_ignore_flags'] = ignore[keep]
        results['gt_seg_map'] = seg
        results['gt_skeleton'] = heat
        results['gt_skeleton_inst'] = owner
        if cover is not None:
            results['gt_fullres'] = cover
        results['a2b_target_stride'] = s
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(stride={self.stride}, sigma={self.sigma}, '
                f'min_area={self.min_area}, min_size={self.min_size}, '
                f'skeleton_method={self.skeleton_method!r}, fullres={self.fullres})')
