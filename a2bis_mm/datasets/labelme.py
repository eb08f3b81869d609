"""LabelMe JSON polygons (one file per image, e.g. the ChromSeg-SSL layout)."""
import base64
import glob
import io
import json
import os.path as osp
from typing import Dict, List, Optional, Union

import numpy as np
from mmdet.datasets import BaseDetDataset
from mmdet.registry import DATASETS
from shapely.geometry import Polygon, box
from shapely.validation import make_valid

from a2bis_mm.utils.errors import DatasetError, DatasetNotFoundError

from .utils import FilterEmptyGTMixin, log_skip, probe_image


def _outside(points: np.ndarray, height: int, width: int) -> bool:
    """True if the polygon does not overlap the image (its area inside the image is 0)."""
    (x0, y0), (x1, y1) = points.min(0), points.max(0)
    if x1 <= 0 or y1 <= 0 or x0 >= width or y0 >= height:
        return True
    return make_valid(Polygon(points)).intersection(box(0, 0, width, height)).area == 0


@DATASETS.register_module()
class LabelMeDataset(FilterEmptyGTMixin, BaseDetDataset):
    """LabelMe JSON files found recursively below ``data_prefix['img']`` (joined to ``data_root``).

    The image is ``imagePath`` (relative to the JSON) when that file exists, else the base64
    ``imageData`` embedded in the JSON (then ``img_path`` is the JSON itself, which
    ``LoadMicroscopyImage`` decodes). Each shape becomes an instance dict (``mask`` as a polygon
    list, ``bbox`` xyxy, ``bbox_label``) for ``LoadAnnotations(with_mask=True)``:
    ``poly2mask=False`` gives ``PolygonMasks``, True rasterises. Shapes sharing a ``group_id`` are
    the parts of one instance (e.g. an occluded chromosome); ``rectangle`` shapes become 4-point
    polygons.

    Skipped with a logged message naming the file (and the shape index): empty or invalid JSON,
    a missing image without ``imageData``, an unreadable image, shapes with fewer than 3 points,
    labels outside ``label_map``, polygons entirely outside the image. With
    ``filter_cfg=dict(filter_empty_gt=True)`` a file left without instances is not used for training.

    Args:
        label_map: LabelMe label -> class (0-based index or class name of the metainfo). None
            maps each class name of the metainfo to itself, e.g. for ChromSeg-SSL
            ``{'1': 0, ..., '22': 21, 'X': 22, '23': 22, 'Y': 23, '24': 23}``.
    """

    METAINFO = dict(classes=('chromosome', ), palette=[(220, 20, 60)])

    def __init__(self, *args, label_map: Optional[Dict[str, Union[int, str]]] = None,
                 **kwargs) -> None:
        self.label_map = label_map
        super().__init__(*args, **kwargs)

    def _class_index(self) -> Dict[str, int]:
        classes = list(self.metainfo['classes'])
        if self.label_map is None:
            return {name: i for i, name in enumerate(classes)}
        index = {}
        for label, cls in self.label_map.items():
            if isinstance(cls, str):
                if cls not in classes:
                    raise DatasetError(f'label_map maps {label!r} to {cls!r}, not a class of '
                                     f'{classes}')
                cls = classes.index(cls)
            if not 0 <= cls < len(classes):
                raise DatasetError(f'label_map maps {label!r} to index {cls}, outside '
                                 f'0..{len(classes) - 1}')
            index[str(label)] = int(cls)
        return index

    def _image_of(self, json_path: str, ann: dict) -> Optional[tuple]:
        """Return (img_path, height, width) or None (logged) when no readable image exists."""
        img_path = osp.join(osp.dirname(json_path), ann.get('imagePath') or '')
        try:
            if ann.get('imagePath') and osp.isfile(img_path):
                return (img_path, *probe_image(img_path))
            if ann.get('imageData'):
                return (json_path, *probe_image(io.BytesIO(base64.b64decode(ann['imageData']))))
        except ValueError as err:
            log_skip(f'LabelMeDataset: {json_path}: {err}; file skipped')
            return None
        log_skip(f'LabelMeDataset: {json_path}: image {img_path} not found and no imageData; '
                 'file skipped')
        return None

    def _instances(self, json_path: str, shapes: list, class_index: Dict[str, int],
                   height: int, width: int) -> List[dict]:
        groups: Dict[tuple, dict] = {}
        for k, shape in enumerate(shapes):
            label = str(shape.get('label'))
            points = np.asarray(shape.get('points') or [], dtype=np.float64).reshape(-1, 2)
            if shape.get('shape_type') == 'rectangle' and len(points) == 2:
                (x0, y0), (x1, y1) = points
                points = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
            if label not in class_index:
                log_skip(f'LabelMeDataset: {json_path}: shape {k} has label {label!r} outside '
                         f'the label map; shape skipped')
                continue
            if len(points) < 3:
                log_skip(f'LabelMeDataset: {json_path}: shape {k} ({label!r}) has '
                         f'{len(points)} points, a polygon needs 3; shape skipped')
                continue
            if _outside(points, height, width):
                log_skip(f'LabelMeDataset: {json_path}: shape {k} ({label!r}) lies entirely outside '
                         f'the {width}x{height} image; shape skipped')
                continue
            gid = shape.get('group_id')
            inst = groups.setdefault((label, k) if gid is None else (label, 'group', gid),
                                     dict(bbox_label=class_index[label], mask=[], points=[]))
            inst['mask'].append(points.ravel().tolist())
            inst['points'].append(points)
        instances = []
        for inst in groups.values():
            points = np.concatenate(inst.pop('points'))
            x0, y0 = np.clip(points.min(0), 0, (width, height))
            x1, y1 = np.clip(points.max(0), 0, (width, height))
            instances.append(dict(inst, bbox=[float(x0), float(y0), float(x1), float(y1)],
                                  ignore_flag=0))
        return instances

    def load_data_list(self) -> List[dict]:
        """Read every ``*.json`` below the image folder; skip (and log) what cannot be used."""
        root = self.data_prefix.get('img', '') or self.data_root
        if not osp.isdir(root):
            raise DatasetNotFoundError(f'LabelMe folder {root} does not exist')
        class_index = self._class_index()
        data_list = []
        for json_path in sorted(glob.glob(osp.join(glob.escape(root), '**', '*.json'),
                                          recursive=True)):
            try:
                with open(json_path, encoding='utf-8') as f:
                    ann = json.load(f)
                shapes = ann.get('shapes') or []
            except (ValueError, OSError, AttributeError) as err:
                log_skip(f'LabelMeDataset: {json_path} is empty or not LabelMe JSON ({err}); '
                         'file skipped')
                continue
            image = self._image_of(json_path, ann)
            if image is None:
                continue
            img_path, height, width = image
            data_list.append(
                dict(img_path=img_path, img_id=osp.splitext(osp.relpath(json_path, root))[0],
                     height=height, width=width,
                     instances=self._instances(json_path, shapes, class_index, height, width)))
        if not data_list:
            raise DatasetError(f'LabelMeDataset: no usable LabelMe file below {root}')
        return data_list
