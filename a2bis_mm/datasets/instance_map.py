"""Folders of images with instance label maps (HoVer-Net / challenge style), no conversion needed."""
import glob
import os.path as osp
from typing import List, Optional, Sequence, Union

from mmdet.datasets import BaseDetDataset
from mmdet.registry import DATASETS

from a2bis_mm.utils.errors import DatasetError, DatasetNotFoundError

from .utils import (
    IMG_EXTENSIONS,
    FilterEmptyGTMixin,
    label_map_to_instances,
    log_skip,
    probe_image,
    read_label_map,
)


@DATASETS.register_module()
class InstanceMapDataset(FilterEmptyGTMixin, BaseDetDataset):
    """Images + instance label maps (+ optional class maps) read straight from their folders.

    ``data_prefix=dict(img=..., ann=...)`` names the image and label folders (joined to
    ``data_root``). For image ``NAME.ext`` the instance map is ``ann/NAME{inst_suffix}`` (0 =
    background, ``1..N`` one instance each; PNG/TIFF up to 16 bit, ``.npy`` or HoVer-Net ``.mat``
    with ``inst_map``) and the optional class map ``ann/NAME{class_suffix}`` (values ``1..C`` for
    the metainfo classes, ``type_map`` in ``.mat``). Instances become mmdet instance dicts with RLE
    masks, so the plain ``LoadAnnotations(with_mask=True)`` (``poly2mask=True``) loads them.

    Files that cannot be read, label maps of another size than their image and instances of an
    unknown class are logged and skipped; the rest loads. ``filter_cfg=dict(filter_empty_gt=True)``
    leaves images without instances out of training.

    Args:
        inst_suffix: suffix replacing the image extension to name the instance map.
        class_suffix: suffix of the class map; None gives every instance class 0.
        split: image names (with or without extension) to use, or a text file listing them one per
            line (relative to ``data_root``); None uses every image in the folder.
        img_glob: glob pattern of the images inside the image folder (e.g. ``'train_*.jpg'``);
            combined with ``split`` when both are given.
    """

    METAINFO = dict(classes=('nucleus', ), palette=[(220, 20, 60)])

    def __init__(self,
                 *args,
                 inst_suffix: str = '.png',
                 class_suffix: Optional[str] = None,
                 split: Union[None, str, Sequence[str]] = None,
                 img_glob: str = '*',
                 **kwargs) -> None:
        self.inst_suffix = inst_suffix
        self.class_suffix = class_suffix
        self.split = split
        self.img_glob = img_glob
        super().__init__(*args, **kwargs)

    def _split_names(self) -> Optional[set]:
        if self.split is None:
            return None
        names = self.split
        if isinstance(names, str):
            path = osp.join(self.data_root, names) if self.data_root else names
            if not osp.isfile(path):
                raise DatasetNotFoundError(f'split file {path} does not exist')
            with open(path, encoding='utf-8') as f:
                names = [line.strip() for line in f if line.strip()]
        return {osp.splitext(osp.basename(n))[0] for n in names}

    def load_data_list(self) -> List[dict]:
        """Scan the image folder, read each label map and build the instance dicts."""
        img_dir = self.data_prefix.get('img', '')
        ann_dir = self.data_prefix.get('ann', '')
        if not osp.isdir(img_dir):
            raise DatasetNotFoundError(f'image folder {img_dir} does not exist')
        wanted = self._split_names()
        paths = sorted(
            p for p in glob.glob(osp.join(img_dir, self.img_glob))
            if p.lower().endswith(IMG_EXTENSIONS))
        names = [osp.splitext(osp.basename(p))[0] for p in paths]
        if wanted is not None:
            missing = sorted(wanted - set(names))
            if missing:
                raise DatasetNotFoundError(f'split names without an image in {img_dir}: {missing}')
            paths = [p for p, n in zip(paths, names) if n in wanted]
        num_classes = len(self.metainfo['classes'])
        data_list = []
        for img_path in paths:
            name = osp.splitext(osp.basename(img_path))[0]
            inst_path = osp.join(ann_dir, name + self.inst_suffix)
            try:
                height, width = probe_image(img_path)
                inst_map = read_label_map(inst_path, 'inst_map')
                class_map = None if self.class_suffix is None else read_label_map(
                    osp.join(ann_dir, name + self.class_suffix), 'type_map')
            except (ValueError, OSError) as err:
                log_skip(f'InstanceMapDataset: {err}; sample {name} skipped')
                continue
            shapes = {inst_map.shape} | ({class_map.shape} if class_map is not None else set())
            if shapes != {(height, width)}:
                log_skip(f'InstanceMapDataset: label maps of {name} have shape(s) {sorted(shapes)}'
                         f', image is {(height, width)}; sample skipped')
                continue
            data_list.append(
                dict(img_path=img_path, img_id=name, height=height, width=width,
                     instances=label_map_to_instances(inst_map, class_map,
                                                      num_classes=num_classes,
                                                      source=inst_path)))
        if not data_list:
            raise DatasetError(f'InstanceMapDataset: no usable image/label pair in {img_dir} '
                             f'(glob {self.img_glob!r}, labels in {ann_dir})')
        return data_list
