"""A2B-IS augmentations: exact 90-degree rotations and the grey -> JET input of the reference."""
from typing import Sequence

import cv2
import numpy as np
from mmcv.transforms import BaseTransform
from mmcv.transforms.utils import cache_randomness
from mmdet.registry import TRANSFORMS
from mmdet.structures.bbox import BaseBoxes
from mmdet.structures.mask import BitmapMasks, PolygonMasks
from mmengine.logging import print_log
from mmrotate.structures import RotatedBoxes

# Maps computed at feature or input resolution that rotate like the image (exact np.rot90).
_MAP_KEYS = ('gt_seg_map', 'gt_skeleton', 'gt_skeleton_inst')


@TRANSFORMS.register_module()
class RandomRot90(BaseTransform):
    """Rotate by exactly ``k * 90`` degrees counter-clockwise (as displayed), as the reference.

    mmdet has no exact right-angle rotation and mmrotate's ``Rotate``/``RandomRotate`` warp with
    interpolation (and do not record ``homography_matrix``), which would blur masks and maps;
    ``np.rot90`` permutes pixels exactly. With probability ``prob`` a ``k`` is drawn uniformly
    from ``k_choices`` (the reference: {0, 1, 2, 3}), otherwise nothing changes.

    Points follow mmdet's continuous convention (pixel ``c`` spans ``[c, c + 1]``): one step
    (k = 1) on an ``H x W`` image maps ``(x, y) -> (y, W - x)`` and gives a ``W x H`` image.
    ``RotatedBoxes`` keep their angle and swap ``w``/``h`` for odd ``k`` (``(w, h, t - pi/2)``
    is the same box as ``(h, w, t)``), so angles never drift; other box types are projected
    with the homography (exact for right angles).

    Required keys: ``img``. Modified keys (when present): ``img``, ``img_shape``, ``gt_bboxes``,
    ``gt_masks``, ``gt_seg_map``, ``gt_skeleton``, ``gt_skeleton_inst``.
    Added keys: ``rot90_k``, ``homography_matrix`` (updated if present).

    Args:
        prob (float): Probability of drawing a rotation. Defaults to 1.0.
        k_choices (Sequence[int]): Quarter turns drawn from, uniformly. Defaults to (0, 1, 2, 3).
    """

    def __init__(self, prob: float = 1.0, k_choices: Sequence[int] = (0, 1, 2, 3)) -> None:
        if not 0 <= prob <= 1:
            raise ValueError(f'prob must be in [0, 1], got {prob}')
        if len(k_choices) == 0 or any(int(k) != k for k in k_choices):
            raise ValueError(f'k_choices must be a non-empty list of integers, got {k_choices}')
        self.prob = prob
        self.k_choices = [int(k) % 4 for k in k_choices]

    @cache_randomness
    def _random_k(self) -> int:
        if np.random.rand() >= self.prob:
            return 0
        return int(np.random.choice(self.k_choices))

    @staticmethod
    def _homography(k: int, height: int, width: int) -> np.ndarray:
        """Exact (integer) homography of ``k`` quarter turns of an ``height x width`` image."""
        step = np.eye(3, dtype=np.float32)
        for _ in range(k):
            step = np.array([[0, 1, 0], [-1, 0, width], [0, 0, 1]], dtype=np.float32) @ step
            height, width = width, height
        return step

    @staticmethod
    def _rotate_masks(masks, k: int, height: int, width: int, matrix: np.ndarray):
        """Rotate bitmaps with ``np.rot90`` and polygon vertices with the homography."""
        if isinstance(masks, BitmapMasks):
            rotated = np.ascontiguousarray(np.rot90(masks.masks, k, axes=(1, 2)))
            new_h, new_w = (width, height) if k % 2 else (height, width)
            return BitmapMasks(rotated, new_h, new_w)
        if isinstance(masks, PolygonMasks):
            new_h, new_w = (width, height) if k % 2 else (height, width)
            polygons = []
            for polys in masks.masks:
                out = []
                for p in polys:
                    xy = np.asarray(p, dtype=np.float64).reshape(-1, 2)
                    out.append((xy @ matrix[:2, :2].T + matrix[:2, 2]).reshape(-1))
                polygons.append(out)
            return PolygonMasks(polygons, new_h, new_w)
        raise TypeError(f'gt_masks must be BitmapMasks or PolygonMasks, got {type(masks)}')

    def transform(self, results: dict) -> dict:
        """Rotate the image and every geometric annotation by the drawn ``k``.

        Args:
            results (dict): Result dict of the pipeline.

        Returns:
            dict: The rotated result dict.
        """
        k = self._random_k()
        results['rot90_k'] = k
        height, width = results['img'].shape[:2]
        matrix = self._homography(k, height, width)
        if results.get('homography_matrix') is None:
            results['homography_matrix'] = matrix
        else:
            results['homography_matrix'] = matrix @ results['homography_matrix']
        if k == 0:
            return results

        results['img'] = np.ascontiguousarray(np.rot90(results['img'], k, axes=(0, 1)))
        results['img_shape'] = results['img'].shape[:2]
        for key in _MAP_KEYS:
            if key in results:
                results[key] = np.ascontiguousarray(np.rot90(results[key], k, axes=(0, 1)))
        if 'gt_masks' in results:
            results['gt_masks'] = self._rotate_masks(results['gt_masks'], k, height, width,
                                                     matrix)
        boxes = results.get('gt_bboxes')
        if isinstance(boxes, RotatedBoxes):
            data = boxes.tensor.clone()
            centres = data[:, :2]
            data[:, :2] = centres @ centres.new_tensor(matrix[:2, :2]).T + centres.new_tensor(
                matrix[:2, 2])
            if k % 2:
                data[:, 2:4] = data[:, [3, 2]]
            results['gt_bboxes'] = RotatedBoxes(data)
        elif isinstance(boxes, BaseBoxes):
            boxes.project_(matrix)
        elif boxes is not None:
            raise TypeError(f'gt_bboxes must be mmdet boxes (HorizontalBoxes, RotatedBoxes), '
                            f'got {type(boxes)}')
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(prob={self.prob}, k_choices={self.k_choices})'


@TRANSFORMS.register_module()
class JetColormap(BaseTransform):
    """Grey -> ``cv2.COLORMAP_JET`` input of the reference (docs/model.md, D9).

    3-channel images are converted with ``BGR2GRAY`` first (what ``cv2.applyColorMap`` does
    internally), 1-channel images are used directly. 16-bit images are scaled to 8 bit by their
    own maximum (``x * 255 / max``, keeping the contrast of 12-bit data) with a warning logged
    once per transform. The output is a BGR uint8 ``(H, W, 3)`` image in 0-255, to be fed without
    mean/std normalisation as the reference does.

    Required keys: ``img``. Modified keys: ``img``.
    """

    def __init__(self) -> None:
        self._warned_16bit = False

    def transform(self, results: dict) -> dict:
        """Apply the colour map.

        Args:
            results (dict): Result dict of the pipeline.

        Returns:
            dict: The result dict with the JET image.
        """
        img = results['img']
        if img.ndim == 3 and img.shape[2] == 3:
            img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
        elif img.ndim == 3 and img.shape[2] == 1:
            img = img[..., 0]
        elif img.ndim != 2:
            raise ValueError(f'JetColormap expects a (H, W), (H, W, 1) or (H, W, 3) image, got '
                             f'shape {img.shape} ({results.get("img_path", "")})')
        if img.dtype == np.uint16:
            if not self._warned_16bit:
                print_log(f'JetColormap: 16-bit image scaled to 8 bit by its maximum '
                          f'({results.get("img_path", "")})', logger='current', level=30)
                self._warned_16bit = True
            img = np.round(img.astype(np.float32) * (255.0 / max(int(img.max()), 1)))
            img = img.astype(np.uint8)
        elif img.dtype != np.uint8:
            raise TypeError(f'JetColormap expects a uint8 or uint16 image, got {img.dtype} '
                            f'({results.get("img_path", "")})')
        results['img'] = cv2.applyColorMap(np.ascontiguousarray(img), cv2.COLORMAP_JET)
        return results
