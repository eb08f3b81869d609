"""Rotated-box helpers: instance mask -> minimum-area rotated box in mmrotate's convention.

Conventions (the single place where OpenCV's box format is converted):

* Boxes are mmrotate ``RotatedBoxes`` rows ``(cx, cy, w, h, t)``: input pixels, ``t`` in radians,
  clockwise in image coordinates (x right, y down); the ``w`` side points along ``(cos t, sin t)``
  and the ``h`` side along ``(-sin t, cos t)``. ``cv2.minAreaRect`` / ``cv2.boxPoints`` (OpenCV >= 4.5.1)
  use the same geometry in degrees, so the conversion is ``t = deg * pi / 180`` and nothing else
  (checked in ``tests/test_structures.py`` against ``RotatedBoxes.convert_to('qbox')``).
* Pixel ``(row r, col c)`` is the unit square ``[c, c + 1] x [r, r + 1]`` (mmdet's convention:
  ``BitmapMasks.get_bboxes`` gives ``x2 = max col + 1``). The box encloses the pixel squares, so a
  1-px mask gives ``w = h = 1`` centred at ``(c + 0.5, r + 0.5)`` and an axis-aligned 20 x 6 block
  gives exactly 20 x 6. This keeps mmdet's ``Resize``/``RandomFlip`` (``x -> W - x``) and the
  ``scale_factor`` rescale of predictions exact for these boxes. The reference code ran
  ``minAreaRect`` on pixel centres instead, which gives boxes 1 px smaller (0 for a 1-px mask) and
  centres 0.5 px lower.
"""
from typing import Tuple, Union

import cv2
import numpy as np
from mmdet.structures.mask import BitmapMasks, PolygonMasks
from mmrotate.structures import RotatedBoxes

# Offsets from a pixel's index (x, y) to the four corners of its unit square.
_PIXEL_CORNERS = np.array([[0, 0], [1, 0], [0, 1], [1, 1]], dtype=np.float32)


def _min_area_rect(points: np.ndarray) -> Tuple[float, float, float, float, float]:
    """``cv2.minAreaRect`` of (k, 2) float32 points as a 'le90' ``(cx, cy, w, h, t_rad)`` box.

    'le90' (``w >= h``, ``t`` in ``[-pi/2, pi/2)``) is ``RotatedBoxes.regularize_boxes('le90')``
    done on scalars, so that the result does not depend on OpenCV's version-specific angle range.
    """
    (cx, cy), (w, h), angle_deg = cv2.minAreaRect(points)
    t = np.deg2rad(angle_deg)
    if w < h:
        w, h, t = h, w, t + np.pi / 2
    t = (t + np.pi / 2) % np.pi - np.pi / 2
    return float(cx), float(cy), float(w), float(h), float(t)


def mask_to_rbox(mask: np.ndarray) -> Tuple[float, float, float, float, float]:
    """Minimum-area rotated box enclosing the pixel squares of a binary mask.

    All outer contours are used, so an instance cut in two pieces still gets one box.
    Only contour pixels are needed: the convex hull of the pixel squares is the hull of the
    corners of the boundary pixels (``CHAIN_APPROX_SIMPLE`` keeps the ends of straight runs,
    whose squares span the same hull).

    Args:
        mask (np.ndarray): ``(H, W)`` binary mask (bool or integer, non-zero = foreground).

    Returns:
        tuple: ``(cx, cy, w, h, t)`` in pixels and radians (mmrotate convention, see module doc),
        'le90' regularised: ``w >= h`` and ``t`` in ``[-pi/2, pi/2)``.

    Raises:
        ValueError: if the mask is not 2-D or has no foreground pixel.
    """
    if mask.ndim != 2:
        raise ValueError(f'mask_to_rbox expects a 2-D (H, W) mask, got shape {mask.shape}')
    contours, _ = cv2.findContours(
        (mask != 0).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if len(contours) == 0:
        raise ValueError(f'mask_to_rbox got an empty mask of shape {mask.shape}')
    pixels = np.concatenate(contours).reshape(-1, 1, 2).astype(np.float32)
    return _min_area_rect((pixels + _PIXEL_CORNERS).reshape(-1, 2))


def masks_to_rboxes(masks: Union[BitmapMasks, PolygonMasks, np.ndarray]) -> RotatedBoxes:
    """Minimum-area rotated boxes of instance masks.

    mmrotate's ``RotatedBoxes.from_instance_masks`` is not reused: for bitmaps it feeds
    ``np.nonzero`` (row, col) pairs to ``minAreaRect`` as (x, y), and it measures pixel centres.

    Args:
        masks (BitmapMasks | PolygonMasks | np.ndarray): ``n`` instance masks; arrays are
            ``(n, H, W)``. Bitmaps follow :func:`mask_to_rbox` (each mask is cropped to its
            bounding rows first, for speed); polygons use their vertices, which are already
            continuous coordinates in the same convention.

    Returns:
        RotatedBoxes: ``(n, 5)`` float32 'le90' boxes, one per mask, in mask order.
    """
    if isinstance(masks, PolygonMasks):
        boxes = [
            _min_area_rect(
                np.concatenate([np.asarray(p, dtype=np.float32).reshape(-1, 2) for p in polys]))
            for polys in masks.masks
        ]
    else:
        array = masks.masks if isinstance(masks, BitmapMasks) else np.asarray(masks)
        if array.ndim != 3:
            raise ValueError(f'masks_to_rboxes expects (n, H, W) masks, got shape {array.shape}')
        rows_any = array.any(axis=2)
        boxes = []
        for mask, rows in zip(array, rows_any):
            rows = np.flatnonzero(rows)
            if rows.size == 0:
                raise ValueError('masks_to_rboxes got an empty mask at index '
                                 f'{len(boxes)} (drop empty instances first)')
            cx, cy, w, h, t = mask_to_rbox(mask[rows[0]:rows[-1] + 1])
            boxes.append((cx, cy + rows[0], w, h, t))
    return RotatedBoxes(np.asarray(boxes, dtype=np.float32).reshape(-1, 5))
