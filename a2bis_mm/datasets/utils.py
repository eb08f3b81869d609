"""Helpers shared by the microscopy datasets, the loading transforms and the converters."""
import logging
from functools import lru_cache
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

import cv2
import numpy as np
import pycocotools.mask as mask_utils
from mmengine.logging import print_log
from PIL import Image
from scipy import ndimage
from scipy.io import loadmat

from a2bis_mm.utils.errors import DatasetError

IMG_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.tif', '.tiff')


def log_skip(msg: str) -> None:
    """Log why a sample or an annotation is skipped, on the current mmengine logger."""
    print_log(msg, logger='current', level=logging.WARNING)


class FilterEmptyGTMixin:
    """``filter_cfg`` for datasets whose data infos carry their ``instances``, as mmdet's CocoDataset.

    In training (not ``test_mode``), ``filter_cfg=dict(filter_empty_gt=True)`` drops images without a
    usable instance (e.g. every shape of a LabelMe file was skipped) and ``min_size`` drops images
    with a side below it. What is dropped is logged; nothing left is an error.
    """

    def filter_data(self) -> List[dict]:
        """Filter ``self.data_list`` according to ``self.filter_cfg``."""
        if self.test_mode or not self.filter_cfg:
            return self.data_list
        filter_empty_gt = self.filter_cfg.get('filter_empty_gt', False)
        min_size = self.filter_cfg.get('min_size', 0)
        kept, empty, small = [], [], []
        for info in self.data_list:
            if filter_empty_gt and not any(not inst.get('ignore_flag', 0)
                                           for inst in info.get('instances', [])):
                empty.append(info['img_id'])
            elif min(info['width'], info['height']) < min_size:
                small.append(info['img_id'])
            else:
                kept.append(info)
        name = type(self).__name__
        for ids, why in ((empty, 'no instance (filter_empty_gt)'), (small, f'a side < {min_size} px')):
            if ids:
                log_skip(f'{name}: {len(ids)} of {len(self.data_list)} images have {why}; skipped: '
                         f"{', '.join(map(str, ids[:5]))}{' ...' if len(ids) > 5 else ''}")
        if not kept:
            raise DatasetError(f'{name}: no image of {self.data_root or self.data_prefix} is left '
                               f'after filter_cfg={dict(self.filter_cfg)}')
        return kept


def probe_image(path: Union[str, Path]) -> Tuple[int, int]:
    """Return ``(height, width)`` of an image file without decoding its pixels.

    PIL reads the header and ``verify()`` checks the file structure (PNG chunk CRCs), which catches
    empty, truncated-header and non-image files cheaply at ``load_data_list`` time.

    Raises:
        ValueError: if the file cannot be identified or is damaged (message names the file).
    """
    try:
        with Image.open(path) as img:
            width, height = img.size
            img.verify()
    except Exception as err:  # PIL raises many types (OSError, SyntaxError, struct.error ...)
        raise ValueError(f'unreadable image {path}: {err}') from err
    return height, width


def read_label_map(path: Union[str, Path], mat_key: str = 'inst_map') -> np.ndarray:
    """Read a 2-D integer label map (instance ids or class ids) from PNG/TIFF, ``.npy`` or ``.mat``.

    ``.mat`` files follow HoVer-Net's layout (``inst_map`` and ``type_map`` in one file).

    Raises:
        ValueError: if the file cannot be read or is not a 2-D map (message names the file).
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f'label map {path} does not exist')
    suffix = path.suffix.lower()
    try:
        if suffix == '.npy':
            label = np.load(path)
        elif suffix == '.mat':
            label = loadmat(path)[mat_key]
        else:
            label = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    except Exception as err:
        raise ValueError(f'unreadable label map {path}: {err}') from err
    if label is None:
        raise ValueError(f'unreadable label map {path}: empty or not an image')
    if label.ndim == 3:  # 8-bit maps saved as RGB: all channels hold the same id
        label = label[..., 0]
    if label.ndim != 2:
        raise ValueError(f'label map {path} has shape {label.shape}, expected (H, W)')
    return label.astype(np.int64)


def label_map_to_instances(inst_map: np.ndarray,
                           class_map: Optional[np.ndarray] = None,
                           label: int = 0,
                           num_classes: Optional[int] = None,
                           source: str = '') -> List[Dict]:
    """Turn an instance-id map into mmdet instance dicts with RLE masks.

    The dicts (``bbox`` xyxy, ``bbox_label``, ``mask`` as COCO RLE with ``str`` counts,
    ``ignore_flag``) are what mmdet's ``LoadAnnotations(poly2mask=True)`` decodes.

    Args:
        inst_map: (H, W) integer map, 0 = background, each other id one instance.
        class_map: optional (H, W) map of classes ``1..num_classes``; an instance takes its
            majority class, 0-based. Without it every instance gets ``label``.
        label: the 0-based class of every instance when ``class_map`` is None.
        num_classes: instances whose class lies outside ``1..num_classes`` are logged and skipped.
        source: file name used in log messages.
    """
    height, width = inst_map.shape
    canvas = np.zeros((height, width), dtype=np.uint8, order='F')
    instances = []
    for inst_id, box in enumerate(ndimage.find_objects(inst_map), start=1):
        if box is None:  # ids need not be contiguous
            continue
        crop = inst_map[box] == inst_id
        if class_map is None:
            bbox_label = label
        else:
            values = class_map[box][crop]
            cls = int(np.bincount(values).argmax())
            if not 1 <= cls <= (num_classes or cls):
                log_skip(f'{source}: instance {inst_id} has class {cls} outside '
                         f'1..{num_classes}; instance skipped')
                continue
            bbox_label = cls - 1
        canvas[box] = crop
        rle = mask_utils.encode(canvas)
        canvas[box] = 0
        rle['counts'] = rle['counts'].decode()  # mmdet accepts str, not bytes, counts
        rows, cols = box
        instances.append(
            dict(bbox=[float(cols.start), float(rows.start), float(cols.stop), float(rows.stop)],
                 bbox_label=bbox_label, mask=rle, ignore_flag=0))
    return instances


@lru_cache(maxsize=32)
def open_npy_stack(path: str) -> np.ndarray:
    """Memory-map an ``.npy`` stack once per process (PanNuke folds do not fit in RAM)."""
    return np.load(path, mmap_mode='r')
