"""Convert PanNuke fold files to PNG images + one COCO instance JSON (RLE masks).

Example::

    python tools/dataset_converters/pannuke2coco.py "data/pannuke/Fold 1" "data/pannuke/Fold 2" \
        --out data/pannuke_coco --name train

Images go to ``OUT/images/<fold>_<index>.png``; ``OUT/<name>.json`` lists them with their tissue
type (``tissue``) and the five PanNuke classes as categories 1..5. The folds are read through
memory maps, one image at a time.
"""
import argparse
import json
import os.path as osp
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
import pycocotools.mask as mask_utils

from a2bis_mm.datasets.pannuke import PANNUKE_CLASSES, open_fold
from a2bis_mm.datasets.utils import label_map_to_instances


def convert(folds: Sequence[str], out_dir: str, name: str) -> dict:
    """Write the images of ``folds`` and return (and write) the COCO dict."""
    out = Path(out_dir)
    (out / 'images').mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for fold in folds:
        arrays = open_fold(fold)
        fold_name = osp.basename(osp.normpath(fold)).replace(' ', '')
        for idx, tissue in enumerate(arrays['types']):
            file_name = f'{fold_name}_{idx}.png'
            rgb = np.clip(np.rint(np.asarray(arrays['images'][idx])), 0, 255).astype(np.uint8)
            cv2.imwrite(str(out / 'images' / file_name), rgb[..., ::-1])
            image_id = len(images) + 1
            height, width = rgb.shape[:2]
            images.append(dict(id=image_id, file_name=file_name, height=height, width=width,
                               tissue=str(tissue)))
            row = np.asarray(arrays['masks'][idx])
            for channel in range(len(PANNUKE_CLASSES)):
                for inst in label_map_to_instances(row[..., channel].astype(np.int64),
                                                   label=channel):
                    x0, y0, x1, y1 = inst['bbox']
                    rle = inst['mask']
                    annotations.append(
                        dict(id=len(annotations) + 1, image_id=image_id,
                             category_id=channel + 1, segmentation=rle, iscrowd=0,
                             area=float(mask_utils.area(rle)),
                             bbox=[x0, y0, x1 - x0, y1 - y0]))
    coco = dict(images=images, annotations=annotations,
                categories=[dict(id=i + 1, name=n) for i, n in enumerate(PANNUKE_CLASSES)])
    with open(out / f'{name}.json', 'w', encoding='utf-8') as f:
        json.dump(coco, f)
    return coco


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('folds', nargs='+', help='fold folders (official layout or flat)')
    parser.add_argument('--out', required=True, help='output folder')
    parser.add_argument('--name', default='train', help='JSON file name without .json')
    args = parser.parse_args()
    coco = convert(args.folds, args.out, args.name)
    print(f'{len(coco["images"])} images, {len(coco["annotations"])} instances -> '
          f'{osp.join(args.out, args.name)}.json')


if __name__ == '__main__':
    main()
