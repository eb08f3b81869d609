"""Image and annotation loading for microscopy data (16-bit, RGBA, grey, embedded, memory-mapped)."""
import base64
import json
from typing import Optional

import cv2
import numpy as np
from mmcv.transforms import BaseTransform
from mmdet.datasets.transforms import LoadAnnotations
from mmdet.registry import TRANSFORMS
from mmengine.fileio import get

from ..utils import label_map_to_instances, log_skip, open_npy_stack


@TRANSFORMS.register_module()
class LoadMicroscopyImage(BaseTransform):
    """Load an image as 8-bit 3-channel BGR, whatever its depth, channels or storage.

    A drop-in replacement for ``LoadImageFromFile``, written because mmcv's loader either keeps
    16-bit/RGBA arrays as they are (``'unchanged'``) or lets OpenCV convert them (``'color'``:
    16-bit values are divided by 256, so faint fluorescence images come out black).

    Sources, chosen by the extension of ``results['img_path']``:

    - ``.json``: the base64 ``imageData`` embedded in a LabelMe file;
    - ``.npy``: row ``results['npy_index']`` of a memory-mapped stack (PanNuke folds, RGB order);
    - anything else: a file read through ``mmengine.fileio`` and decoded by OpenCV.

    Conversions (each kind is logged once per transform instance):

    - single channel (or grey + alpha) -> the grey values repeated in 3 channels;
    - RGBA -> RGB: the alpha channel is dropped, not blended;
    - integer images deeper than 8 bit -> ``img * 255 / high`` clipped to 0..255, where ``high``
      is the image's own maximum (``percentile=None``) or its ``percentile``-th percentile, which
      keeps a few hot pixels from darkening the rest;
    - float images are taken as 0..255 intensities (PanNuke's convention) and clipped.

    An unreadable image is logged with its path and the transform returns ``None``: mmengine's
    ``BaseDataset`` then draws another sample in training (test mode raises).

    Args:
        percentile: percentile of the intensities mapped to 255 for > 8-bit images; None uses
            the maximum.
        to_float32: return a float32 image, as ``LoadImageFromFile(to_float32=True)``.
        backend_args: arguments of the mmengine file backend.
    """

    def __init__(self,
                 percentile: Optional[float] = None,
                 to_float32: bool = False,
                 backend_args: Optional[dict] = None) -> None:
        if percentile is not None and not 0 < percentile <= 100:
            raise ValueError(f'percentile must lie in (0, 100], got {percentile}')
        self.percentile = percentile
        self.to_float32 = to_float32
        self.backend_args = backend_args
        self._logged = set()

    def _log_once(self, kind: str, msg: str) -> None:
        if kind not in self._logged:
            self._logged.add(kind)
            log_skip(f'{msg} (further {kind} images are converted silently)')

    def _read(self, results: dict) -> np.ndarray:
        path = results['img_path']
        suffix = str(path).lower().rsplit('.', 1)[-1]
        if suffix == 'npy':
            img = np.asarray(open_npy_stack(str(path))[results['npy_index']])
            return img[..., ::-1] if img.ndim == 3 and img.shape[2] == 3 else img  # RGB -> BGR
        if suffix == 'json':
            with open(path, encoding='utf-8') as f:
                data = base64.b64decode(json.load(f)['imageData'])
        else:
            data = get(path, backend_args=self.backend_args)
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        if img is None:
            raise ValueError('not a decodable image')
        return img

    def _to_uint8(self, img: np.ndarray, path: str) -> np.ndarray:
        if img.dtype == np.uint8:
            return img
        if np.issubdtype(img.dtype, np.floating):
            return np.clip(np.rint(img), 0, 255).astype(np.uint8)
        if self.percentile is None:
            high, by = float(img.max()), 'maximum'
        else:
            high, by = float(np.percentile(img, self.percentile)), f'{self.percentile}th percentile'
        self._log_once(str(img.dtype), f'LoadMicroscopyImage: {path} is {img.dtype}; scaled to 8 '
                       f'bit by its {by} ({high:g} -> 255)')
        scaled = img.astype(np.float32) * (255.0 / high) if high > 0 else np.zeros(img.shape)
        return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)

    def _to_bgr(self, img: np.ndarray, path: str) -> np.ndarray:
        if img.ndim == 3 and img.shape[2] == 4:
            self._log_once('RGBA', f'LoadMicroscopyImage: {path} has 4 channels; alpha dropped')
            return np.ascontiguousarray(img[..., :3])
        if img.ndim == 3 and img.shape[2] == 3:
            return img
        if img.ndim == 2 or (img.ndim == 3 and img.shape[2] in (1, 2)):
            self._log_once('grey', f'LoadMicroscopyImage: {path} is single-channel; '
                           'repeated to 3 channels')
            grey = img if img.ndim == 2 else img[..., 0]
            return np.repeat(grey[..., None], 3, axis=2)
        raise ValueError(f'unsupported image shape {img.shape}')

    def transform(self, results: dict) -> Optional[dict]:
        """Load ``results['img_path']`` into ``img``, ``img_shape`` and ``ori_shape``.

        Returns:
            The updated results, or None (logged) when the image cannot be read.
        """
        path = results['img_path']
        try:
            img = self._to_bgr(self._to_uint8(self._read(results), path), path)
        except Exception as err:
            log_skip(f'LoadMicroscopyImage: cannot read {path} ({err}); sample skipped')
            return None
        img = img.astype(np.float32) if self.to_float32 else np.ascontiguousarray(img)
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        results['ori_shape'] = img.shape[:2]
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(percentile={self.percentile}, '
                f'to_float32={self.to_float32}, backend_args={self.backend_args})')


@TRANSFORMS.register_module()
class LoadPanNukeAnnotations(LoadAnnotations):
    """``LoadAnnotations`` for PanNuke folds, read lazily from the memory-mapped ``masks.npy``.

    Row ``results['npy_index']`` of ``results['mask_stack_path']`` holds one instance-id map per
    class channel (neoplastic, inflammatory, connective, dead, epithelial; channel 5, background,
    is not read); each (channel, id) pair becomes one instance of that class. The instances are
    then loaded exactly as mmdet does, so ``with_bbox``/``with_mask``/``box_type`` behave the same;
    masks are RLE, so ``poly2mask`` must stay True.
    """

    NUM_CLASSES = 5

    def __init__(self, **kwargs) -> None:
        if not kwargs.get('poly2mask', True):
            raise ValueError('LoadPanNukeAnnotations decodes RLE masks: poly2mask must be True')
        super().__init__(**kwargs)

    def transform(self, results: dict) -> dict:
        """Build ``results['instances']`` from the masks row, then load them as mmdet does."""
        row = open_npy_stack(str(results['mask_stack_path']))[results['npy_index']]
        source = f"{results['mask_stack_path']}[{results['npy_index']}]"
        results['instances'] = [
            inst for channel in range(self.NUM_CLASSES)
            for inst in label_map_to_instances(
                np.asarray(row[..., channel]).astype(np.int64), label=channel, source=source)
        ]
        return super().transform(results)
