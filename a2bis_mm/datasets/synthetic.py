"""Seeded generator of microscopy-like images with instance annotations (COCO format).

A smoke-test and demo set, NOT a benchmark: the images only imitate the two cases A2B-IS is made for —
touching textured blobs of several kinds (nuclei-like) and long bent rods (chromosome-like) that cross and
overlap at arbitrary angles — on a noisy background, so that the main job and the tests run anywhere without
downloads. Real data lives in ``../shared/data`` (see docs/datasets.md).
"""
import json
import os
import os.path as osp
from dataclasses import asdict, dataclass
from typing import Dict, List, Tuple

import cv2
import numpy as np
import pycocotools.mask as mask_utils

CLASSES = ('bright_nucleus', 'dark_nucleus', 'rod')
# BGR colours (mean intensity) of each class and of the background, H&E-like.
_COLOURS = {
    'background': (215, 195, 225),
    'bright_nucleus': (190, 120, 170),
    'dark_nucleus': (140, 60, 110),
    'rod': (120, 90, 70),
}


@dataclass
class SyntheticMicroscopyGenerator:
    """Draws one image and its instances at a time, reproducibly from ``seed``.

    Args:
        size: Side of the square images in pixels.
        num_blobs: (min, max) number of nuclei-like blobs per image.
        num_rod_pairs: (min, max) number of crossing rod pairs per image.
        noise_std: Standard deviation of the background/texture noise (grey levels).
        seed: Seed of the random generator.
    """

    size: int = 256
    num_blobs: Tuple[int, int] = (6, 14)
    num_rod_pairs: Tuple[int, int] = (1, 2)
    noise_std: float = 8.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.size < 64:
            raise ValueError(f'size must be >= 64 pixels, got {self.size}')
        self.rng = np.random.default_rng(self.seed)

    def _blob_mask(self, centre: Tuple[float, float], axes: Tuple[float, float],
                   angle: float) -> np.ndarray:
        mask = np.zeros((self.size, self.size), np.uint8)
        cv2.ellipse(mask, (int(round(centre[0])), int(round(centre[1]))),
                    (int(round(axes[0])), int(round(axes[1]))), angle, 0, 360, 1, -1)
        return mask.astype(bool)

    def _rod_mask(self, start: np.ndarray, end: np.ndarray, bend: float,
                  thickness: int) -> np.ndarray:
        """A quadratic Bezier curve from ``start`` to ``end`` bent sideways by ``bend`` px."""
        mid = (start + end) / 2
        direction = (end - start) / (np.linalg.norm(end - start) + 1e-6)
        ctrl = mid + bend * np.array([-direction[1], direction[0]])
        t = np.linspace(0, 1, 40)[:, None]
        pts = (1 - t)**2 * start + 2 * (1 - t) * t * ctrl + t**2 * end
        mask = np.zeros((self.size, self.size), np.uint8)
        cv2.polylines(mask, [np.round(pts).astype(np.int32)], False, 1, thickness, cv2.LINE_8)
        return mask.astype(bool)

    def _place_blobs(self) -> List[Tuple[str, np.ndarray]]:
        """Blobs in small clusters, each new blob touching an earlier one where possible.

        Blobs never overlap (a new blob is cut by the earlier ones), as nuclei in a section do not.
        """
        rng, out = self.rng, []
        taken = np.zeros((self.size, self.size), bool)
        centres: List[Tuple[float, float, float]] = []
        for _ in range(rng.integers(*self.num_blobs, endpoint=True)):
            a, b = rng.uniform(5, 12), rng.uniform(4, 8)
            if centres and rng.random() < 0.6:  # touch a previous blob
                cx, cy, r = centres[rng.integers(len(centres))]
                phi = rng.uniform(0, 2 * np.pi)
                cx, cy = cx + (r + a) * np.cos(phi), cy + (r + a) * np.sin(phi)
            else:
                cx, cy = rng.uniform(15, self.size - 15, size=2)
            if not (12 <= cx < self.size - 12 and 12 <= cy < self.size - 12):
                continue
            mask = self._blob_mask((cx, cy), (a, b), rng.uniform(0, 180)) & ~taken
            if mask.sum() < 30:
                continue
            taken |= mask
            centres.append((cx, cy, max(a, b)))
            out.append((CLASSES[int(rng.integers(2))], mask))
        return out

    def _place_rods(self) -> List[Tuple[str, np.ndarray]]:
        """Pairs of rods crossing near their middles at arbitrary angles."""
        rng, out = self.rng, []
        for _ in range(rng.integers(*self.num_rod_pairs, endpoint=True)):
            cross = rng.uniform(0.3 * self.size, 0.7 * self.size, size=2)
            theta = rng.uniform(0, np.pi)
            for dtheta in (0.0, rng.uniform(np.pi / 6, 5 * np.pi / 6)):
                length = rng.uniform(0.25, 0.45) * self.size
                d = np.array([np.cos(theta + dtheta), np.sin(theta + dtheta)])
                shift = rng.uniform(-0.3, 0.3) * length * d  # cross off-centre
                start, end = cross - d * length / 2 + shift, cross + d * length / 2 + shift
                start, end = np.clip(start, 4, self.size - 5), np.clip(end, 4, self.size - 5)
                out.append(('rod', self._rod_mask(start, end, rng.uniform(-0.15, 0.15) * length,
                                                  int(rng.integers(5, 9)))))
        return out

    def sample(self) -> Tuple[np.ndarray, List[Tuple[str, np.ndarray]]]:
        """Draw one image.

        Returns:
            The BGR uint8 image (size x size x 3) and its instances as (class name, bool mask)
            pairs. Rod masks may overlap each other (crossings); blobs may touch.
        """
        rng = self.rng
        img = np.empty((self.size, self.size, 3), np.float32)
        img[:] = _COLOURS['background']
        # Low-frequency illumination and stain variation.
        shading = cv2.GaussianBlur(rng.normal(0, 1, (self.size, self.size)).astype(np.float32),
                                   (0, 0), self.size / 8)
        img += 60 * shading[..., None] / (np.abs(shading).max() + 1e-6)
        instances = self._place_blobs() + self._place_rods()
        # Overlapping rods darken each other (absorbance adds up), as chromosomes do.
        for name, mask in instances:
            texture = cv2.GaussianBlur(rng.normal(0, 1, (self.size, self.size)).astype(np.float32),
                                       (0, 0), 1.5) * 25
            target = np.array(_COLOURS[name], np.float32)
            if name == 'rod':
                img[mask] = img[mask] * 0.55 + 0.45 * target + texture[mask, None]
            else:
                img[mask] = target + texture[mask, None]
        img += rng.normal(0, self.noise_std, img.shape)
        return np.clip(img, 0, 255).astype(np.uint8), instances


def _coco_annotation(mask: np.ndarray, ann_id: int, img_id: int, cat_id: int) -> Dict:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    x, y, w, h = mask_utils.toBbox(rle).tolist()
    rle['counts'] = rle['counts'].decode('ascii')
    return dict(id=ann_id, image_id=img_id, category_id=cat_id, segmentation=rle,
                area=float(mask_utils.area(rle)), bbox=[x, y, w, h], iscrowd=0)


def generate_synthetic_coco(out_dir: str, num_train: int = 24, num_val: int = 8, size: int = 256,
                            seed: int = 0) -> Dict[str, str]:
    """Write ``train`` and ``val`` splits as PNG images + COCO instance JSON (RLE masks).

    Idempotent: when ``out_dir/meta.json`` records the same parameters, nothing is rewritten.

    Args:
        out_dir: Output folder; gets ``images/``, ``train.json``, ``val.json`` and ``meta.json``.
        num_train: Number of training images.
        num_val: Number of validation images.
        size: Image side in pixels.
        seed: Seed; the validation split uses ``seed + 1``.

    Returns:
        Paths of the two annotation files, keyed by split.
    """
    if num_train < 1 or num_val < 1:
        raise ValueError(f'need at least one image per split, got {num_train=} {num_val=}')
    params = dict(num_train=num_train, num_val=num_val, size=size, seed=seed, classes=list(CLASSES))
    ann_files = {split: osp.join(out_dir, f'{split}.json') for split in ('train', 'val')}
    meta_file = osp.join(out_dir, 'meta.json')
    if osp.isfile(meta_file) and all(map(osp.isfile, ann_files.values())):
        with open(meta_file) as f:
            if json.load(f) == params:
                return ann_files
    os.makedirs(osp.join(out_dir, 'images'), exist_ok=True)
    categories = [dict(id=i + 1, name=name) for i, name in enumerate(CLASSES)]
    for split, count, split_seed in (('train', num_train, seed), ('val', num_val, seed + 1)):
        gen = SyntheticMicroscopyGenerator(size=size, seed=split_seed)
        images, annotations = [], []
        for i in range(count):
            img, instances = gen.sample()
            file_name = f'{split}_{i:04d}.png'
            cv2.imwrite(osp.join(out_dir, 'images', file_name), img)
            images.append(dict(id=i + 1, file_name=file_name, height=size, width=size))
            for name, mask in instances:
                annotations.append(_coco_annotation(mask, len(annotations) + 1, i + 1,
                                                    CLASSES.index(name) + 1))
        coco = dict(info=dict(description=f'a2bis-mm synthetic smoke-test set ({asdict(gen)})'),
                    images=images, annotations=annotations, categories=categories)
        tmp = ann_files[split] + '.tmp'
        with open(tmp, 'w') as f:
            json.dump(coco, f)
        os.replace(tmp, ann_files[split])
    with open(meta_file, 'w') as f:
        json.dump(params, f)
    return ann_files
