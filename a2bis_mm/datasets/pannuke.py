"""PanNuke official fold files (``images.npy``, ``masks.npy``, ``types.npy``), memory-mapped."""
import glob
import os.path as osp
from typing import Dict, List, Sequence

import numpy as np
from mmdet.datasets import BaseDetDataset
from mmdet.registry import DATASETS

from a2bis_mm.utils.errors import DatasetError, DatasetNotFoundError

from .utils import open_npy_stack

PANNUKE_CLASSES = ('neoplastic', 'inflammatory', 'connective', 'dead', 'epithelial')


def find_fold_files(fold_dir: str) -> Dict[str, str]:
    """Locate ``images.npy``, ``masks.npy`` and ``types.npy`` anywhere below a fold folder.

    The official archives nest them (``Fold 1/images/fold1/images.npy``,
    ``Fold 1/masks/fold1/masks.npy``); a flat folder works too.

    Raises:
        DatasetNotFoundError: (a ``FileNotFoundError``) if a file is missing or found more than once.
    """
    if not osp.isdir(fold_dir):
        raise DatasetNotFoundError(f'PanNuke fold folder {fold_dir} does not exist')
    files = {}
    for name in ('images', 'masks', 'types'):
        found = sorted(glob.glob(osp.join(glob.escape(fold_dir), '**', f'{name}.npy'),
                                 recursive=True))
        if len(found) != 1:
            raise DatasetNotFoundError(
                f'expected one {name}.npy below {fold_dir}, found {len(found)}: {found}')
        files[name] = found[0]
    return files


def open_fold(fold_dir: str) -> Dict[str, np.ndarray]:
    """Memory-map a fold and check that its three arrays agree.

    Returns:
        ``images`` (N, H, W, 3) and ``masks`` (N, H, W, >=5) memory maps, ``types`` (N,) tissue
        names, and ``files`` (the paths).

    Raises:
        DatasetError: (a ``ValueError``) if shapes disagree (message names the fold and the shapes).
    """
    files = find_fold_files(fold_dir)
    images = open_npy_stack(files['images'])
    masks = open_npy_stack(files['masks'])
    types = np.load(files['types'])
    if (images.ndim != 4 or images.shape[3] != 3 or masks.ndim != 4 or masks.shape[3] < 5
            or images.shape[:3] != masks.shape[:3] or types.shape != images.shape[:1]):
        raise DatasetError(f'PanNuke fold {fold_dir}: images {images.shape}, masks {masks.shape}, '
                         f'types {types.shape} do not fit (N,H,W,3), (N,H,W,6), (N,)')
    return dict(images=images, masks=masks, types=types, files=files)


@DATASETS.register_module()
class PanNukeDataset(BaseDetDataset):
    """PanNuke read from the official fold files, several folds per split.

    Nothing is decoded at start-up: each sample carries its fold files and row index, and
    ``LoadMicroscopyImage`` / ``LoadPanNukeAnnotations`` read that row from the memory-mapped
    arrays, so a fold never has to fit in RAM. Each sample keeps its tissue type as ``tissue``
    (add it to the packer's ``meta_keys`` for tissue-averaged PQ).

    Args:
        folds: fold folders relative to ``data_root`` (e.g. ``('Fold 1', 'Fold 2')``).
    """

    METAINFO = dict(
        classes=PANNUKE_CLASSES,
        palette=[(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (255, 165, 0)])

    def __init__(self, *args, folds: Sequence[str] = ('Fold 1', ), **kwargs) -> None:
        if isinstance(folds, str) or not folds:
            raise DatasetError(f'folds must be a non-empty list of fold folders, got {folds!r}')
        self.folds = list(folds)
        super().__init__(*args, **kwargs)

    def load_data_list(self) -> List[dict]:
        """One data info per image of every fold: paths, row index, size and tissue."""
        data_list = []
        for fold in self.folds:
            fold_dir = osp.join(self.data_root, fold) if self.data_root else fold
            arrays = open_fold(fold_dir)
            _, height, width, _ = arrays['images'].shape
            fold_name = osp.basename(osp.normpath(fold)).replace(' ', '')
            for idx, tissue in enumerate(arrays['types']):
                data_list.append(
                    dict(img_path=arrays['files']['images'],
                         mask_stack_path=arrays['files']['masks'], npy_index=idx,
                         img_id=f'{fold_name}_{idx}', height=height, width=width,
                         tissue=str(tissue)))
        if not data_list:
            raise DatasetError(f'PanNukeDataset: the folds {self.folds} below {self.data_root} hold no image')
        return data_list
