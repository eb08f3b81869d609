"""A folder of images without annotations, for semi-supervised (SSL-IS) training."""
import glob
import os.path as osp
from typing import List, Sequence

from mmdet.datasets import BaseDetDataset
from mmdet.registry import DATASETS

from a2bis_mm.utils.errors import DatasetError, DatasetNotFoundError

from .utils import IMG_EXTENSIONS, log_skip, probe_image


@DATASETS.register_module()
class UnlabeledImageFolderDataset(BaseDetDataset):
    """Every image in ``data_prefix['img']`` (joined to ``data_root``), with no instances.

    Images that cannot be read are logged and skipped at start-up. Samples carry an empty
    ``instances`` list, so ``LoadAnnotations`` yields empty ground truth if a pipeline asks for it.

    Args:
        extensions: file name endings to take (case-insensitive).
        recursive: also scan sub-folders.
    """

    METAINFO = dict(classes=())

    def __init__(self, *args, extensions: Sequence[str] = IMG_EXTENSIONS, recursive: bool = False,
                 **kwargs) -> None:
        self.extensions = tuple(e.lower() for e in extensions)
        self.recursive = recursive
        super().__init__(*args, **kwargs)

    def load_data_list(self) -> List[dict]:
        """List the readable images of the folder, sorted by path."""
        root = self.data_prefix.get('img', '') or self.data_root
        if not osp.isdir(root):
            raise DatasetNotFoundError(f'unlabeled image folder {root} does not exist')
        pattern = osp.join(glob.escape(root), '**', '*') if self.recursive else osp.join(
            glob.escape(root), '*')
        data_list = []
        for path in sorted(glob.glob(pattern, recursive=self.recursive)):
            if not path.lower().endswith(self.extensions):
                continue
            try:
                height, width = probe_image(path)
            except ValueError as err:
                log_skip(f'UnlabeledImageFolderDataset: {err}; image skipped')
                continue
            data_list.append(dict(img_path=path, img_id=osp.splitext(osp.relpath(path, root))[0],
                                  height=height, width=width, instances=[]))
        if not data_list:
            raise DatasetError(f'UnlabeledImageFolderDataset: no readable {self.extensions} image '
                             f'in {root} (recursive={self.recursive})')
        return data_list
