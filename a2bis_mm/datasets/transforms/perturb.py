"""Photometric perturbation of the SSL-IS teacher and student views (docs/ssl.md)."""
from typing import Sequence

import numpy as np
from mmcv.transforms import BaseTransform
from mmcv.transforms.utils import cache_randomness
from mmdet.registry import TRANSFORMS


@TRANSFORMS.register_module()
class A2BPhotometricPerturb(BaseTransform):
    """Random brightness shift, then random contrast, then clip to [0, 255] (the reference order).

    Written here because mmcv/mmdet's ``PhotoMetricDistortion``/``BrightnessTransform`` draw from
    continuous ranges and do not offer the reference's discrete sets. Put one instance in each of
    the ``unsup_teacher`` and ``unsup_student`` branches of a ``MultiBranch``: every branch has its
    own draw, so the two views of one (geometrically augmented) image are perturbed independently.

    * brightness: ``x + delta * brightness_scale``, ``delta`` drawn uniformly from
      ``brightness_deltas``. The reference adds the deltas to 0-255 pixels (``brightness_scale=1``),
      which is nearly a no-op; ``brightness_scale=255`` reads them as fractions of the range (a
      documented deviation that makes brightness matter).
    * contrast: ``(x - mean_c) * f + mean_c`` with the per-channel spatial mean, ``f`` drawn
      uniformly from ``contrast_factors``.

    uint8 images stay uint8 (rounded); float images stay float32.

    Required keys: ``img``. Modified keys: ``img``. Added keys: ``perturb_brightness``,
    ``perturb_contrast`` (the drawn values, for inspection).

    Args:
        brightness_deltas (Sequence[float]): Brightness shifts drawn from, uniformly.
        contrast_factors (Sequence[float]): Contrast factors drawn from, uniformly.
        brightness_scale (float): Multiplier of the drawn brightness shift. Defaults to 1.0.
    """

    def __init__(self,
                 brightness_deltas: Sequence[float] = (0, 0, 0, 0.02, 0.04, 0.06, 0.08),
                 contrast_factors: Sequence[float] = (1, 1, 1, 1.2, 1.4, 1.6),
                 brightness_scale: float = 1.0) -> None:
        if len(brightness_deltas) == 0 or len(contrast_factors) == 0:
            raise ValueError('A2BPhotometricPerturb needs non-empty brightness_deltas and '
                             f'contrast_factors, got {brightness_deltas} and {contrast_factors}')
        if any(f < 0 for f in contrast_factors):
            raise ValueError(f'contrast_factors must be >= 0, got {contrast_factors}')
        self.brightness_deltas = [float(d) for d in brightness_deltas]
        self.contrast_factors = [float(f) for f in contrast_factors]
        self.brightness_scale = float(brightness_scale)

    @cache_randomness
    def _draw(self) -> tuple:
        return (self.brightness_deltas[np.random.randint(len(self.brightness_deltas))],
                self.contrast_factors[np.random.randint(len(self.contrast_factors))])

    def transform(self, results: dict) -> dict:
        """Perturb ``results['img']``.

        Args:
            results (dict): Result dict of the pipeline.

        Returns:
            dict: The result dict with the perturbed image.
        """
        img = results['img']
        if img.dtype != np.uint8 and not np.issubdtype(img.dtype, np.floating):
            raise TypeError(f'A2BPhotometricPerturb expects a uint8 or float image in 0-255, got '
                            f'{img.dtype} ({results.get("img_path", "")})')
        delta, factor = self._draw()
        out = img.astype(np.float32) + delta * self.brightness_scale
        mean = out.reshape(-1, out.shape[2]).mean(axis=0) if out.ndim == 3 else out.mean()
        out = np.clip((out - mean) * factor + mean, 0, 255)
        results['img'] = np.round(out).astype(np.uint8) if img.dtype == np.uint8 else out
        results['perturb_brightness'] = delta * self.brightness_scale
        results['perturb_contrast'] = factor
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(brightness_deltas={self.brightness_deltas}, '
                f'contrast_factors={self.contrast_factors}, '
                f'brightness_scale={self.brightness_scale})')
