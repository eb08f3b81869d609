"""Tiles of a large image, compact (cropped) instance masks and the border-safe merge of tiles.

Merge rule (docs/inference.md, "Tiling"): the tile grid defines *cores* that partition the image
(the boundary between two neighbouring tiles runs through the middle of their overlap). A tile
keeps an instance only if its rotated-box centre lies in the tile's core grown by ``margin`` px;
the kept instances of different tiles are then deduplicated greedily by score: an instance is
dropped when its mask IoU with an already accepted instance of *another* tile exceeds
``dedup_iou``. Hence (1) an object seen identically by several tiles is kept exactly once (the
cores partition the plane), (2) an object whose predicted centre moves by up to ``margin`` px
between tiles is still kept by at least one of them, and (3) after the dedup no two kept instances
of different tiles overlap by more than ``dedup_iou``: there are no duplicates at tile borders.
Instances of one tile are left to the model's own NMS. An instance kept by a tile lies at least
``overlap / 2 - margin`` px from that tile's inner borders, so it is not cut as long as objects
are smaller than that (choose ``overlap`` >= the largest object + 2 * ``margin``).
"""
from dataclasses import dataclass, field
from typing import Iterator, List, Optional, Sequence, Tuple

import cv2
import numpy as np
from scipy import ndimage

from ..structures.rbox import mask_to_rbox
from ..utils.progress import track
from ..visualization.overlay import microscopy_palette


@dataclass
class CompactInstances:
    """Instances of one image with masks stored as crops, never as full-image arrays.

    Own container because mmdet's ``InstanceData`` + ``BitmapMasks`` hold dense ``(n, H, W)``
    masks, which do not fit in memory for slides (10000² px x thousands of instances).

    Attributes:
        img_shape: ``(H, W)`` of the image the coordinates refer to (level-0 px for results).
        bboxes: ``(n, 5)`` float64 rotated boxes ``(cx, cy, w, h, t)``, t in radians (mmrotate).
        scores: ``(n,)`` float64.
        labels: ``(n,)`` int64, 0-based classes.
        offsets: ``(n, 2)`` int64, ``(x0, y0)`` of each mask crop in the image.
        crops: ``n`` bool arrays; crop ``i`` covers rows ``y0..y0+h-1`` and cols ``x0..x0+w-1``.
        classes: class names (index = label).
        palette: one RGB colour per class.
        img_path: source file, if any.
    """

    img_shape: Tuple[int, int]
    bboxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 5)))
    scores: np.ndarray = field(default_factory=lambda: np.zeros((0, )))
    labels: np.ndarray = field(default_factory=lambda: np.zeros((0, ), dtype=np.int64))
    offsets: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), dtype=np.int64))
    crops: List[np.ndarray] = field(default_factory=list)
    classes: Tuple[str, ...] = ()
    palette: List[Tuple[int, int, int]] = field(default_factory=list)
    img_path: Optional[str] = None

    def __len__(self) -> int:
        return len(self.crops)

    def select(self, index: Sequence[int]) -> 'CompactInstances':
        """A new container with the instances ``index`` (in that order)."""
        index = np.asarray(index, dtype=np.int64)
        return CompactInstances(
            self.img_shape, self.bboxes[index], self.scores[index], self.labels[index],
            self.offsets[index], [self.crops[i] for i in index], self.classes, self.palette,
            self.img_path)

    def areas(self) -> np.ndarray:
        """``(n,)`` mask areas in pixels."""
        return np.array([int(c.sum()) for c in self.crops], dtype=np.int64)

    def dense_mask(self, i: int) -> np.ndarray:
        """Instance ``i`` as a full ``(H, W)`` bool mask (small images and tests only)."""
        mask = np.zeros(self.img_shape, dtype=bool)
        (x0, y0), crop = self.offsets[i], self.crops[i]
        mask[y0:y0 + crop.shape[0], x0:x0 + crop.shape[1]] = crop
        return mask

    def crop(self, x0: int, y0: int, x1: int, y1: int) -> 'CompactInstances':
        """The instances inside the window ``[x0, x1) x [y0, y1)``, clipped to it, in its
        coordinates; an instance with no mask pixel inside is left out."""
        keep, offsets, crops = [], [], []
        for i, ((ox, oy), crop) in enumerate(zip(self.offsets, self.crops)):
            part = crop[max(0, y0 - oy):max(0, y1 - oy), max(0, x0 - ox):max(0, x1 - ox)]
            if part.any():
                keep.append(i)
                offsets.append((max(ox, x0) - x0, max(oy, y0) - y0))
                crops.append(part)
        out = self.select(keep)
        out.img_shape = (y1 - y0, x1 - x0)
        out.offsets = np.array(offsets, dtype=np.int64).reshape(-1, 2)
        out.crops = crops
        out.bboxes[:, :2] -= (x0, y0)
        return out

    @staticmethod
    def concatenate(parts: Sequence['CompactInstances'],
                    img_shape: Tuple[int, int]) -> 'CompactInstances':
        """Join instance sets that share classes and image."""
        if not parts:
            return CompactInstances(img_shape)
        return CompactInstances(
            img_shape, np.concatenate([p.bboxes for p in parts]),
            np.concatenate([p.scores for p in parts]), np.concatenate([p.labels for p in parts]),
            np.concatenate([p.offsets for p in parts]), [c for p in parts for c in p.crops],
            parts[0].classes, parts[0].palette, parts[0].img_path)


def ground_truth_instances(shape: Tuple[int, int], offsets: Sequence[Tuple[int, int]],
                           crops: Sequence[np.ndarray], classes: Sequence[str] = ('nucleus', ),
                           img_path: Optional[str] = None) -> CompactInstances:
    """Ground-truth instances from their cropped masks, class 0, scores 1, boxes the minimum-area
    rotated boxes of the masks: for drawing beside predictions
    (``tools/analysis_tools/compare_overlays.py``)."""
    boxes = []
    for (x0, y0), crop in zip(offsets, crops):
        cx, cy, w, h, t = mask_to_rbox(crop)
        boxes.append((cx + x0, cy + y0, w, h, t))
    n = len(crops)
    return CompactInstances(
        tuple(shape[:2]), np.array(boxes, dtype=np.float64).reshape(n, 5), np.ones(n),
        np.zeros(n, dtype=np.int64), np.array(offsets, dtype=np.int64).reshape(n, 2), list(crops),
        tuple(classes), microscopy_palette(len(classes)), img_path)


def instances_from_label_map(inst_map: np.ndarray, classes: Sequence[str] = ('nucleus', ),
                              img_path: Optional[str] = None) -> CompactInstances:
    """Instances of an instance-label map (0 = background, each other id one instance), class 0."""
    offsets, crops = [], []
    for inst_id, box in enumerate(ndimage.find_objects(inst_map), start=1):
        if box is None:  # ids need not be contiguous
            continue
        crops.append(inst_map[box] == inst_id)
        offsets.append((box[1].start, box[0].start))
    return ground_truth_instances(inst_map.shape, offsets, crops, classes, img_path)


def instances_from_polygons(polygons: Sequence[np.ndarray], shape: Tuple[int, int],
                            classes: Sequence[str] = ('nucleus', ),
                            img_path: Optional[str] = None) -> CompactInstances:
    """Instances of (possibly overlapping) polygons, e.g. the shapes of a LabelMe file, class 0.

    Args:
        polygons (Sequence[np.ndarray]): (k, 2) x, y vertices in image pixels, one per instance.
        shape (tuple[int, int]): (H, W) of the image.
    """
    masks = np.zeros((len(polygons), *shape[:2]), np.uint8)
    for mask, poly in zip(masks, polygons):
        cv2.fillPoly(mask, [np.round(np.asarray(poly, np.float64)).astype(np.int32)], 1)
    offsets, crops, _ = masks_to_crops(masks.astype(bool))
    return ground_truth_instances(shape, [tuple(o) for o in offsets], crops, classes, img_path)


def masks_to_crops(masks: np.ndarray) -> Tuple[np.ndarray, List[np.ndarray], np.ndarray]:
    """Crop dense ``(n, H, W)`` bool masks to their bounding boxes.

    Returns:
        tuple: ``offsets`` (m, 2) ``(x0, y0)``, ``crops`` (m arrays) and ``index`` (m,) of the
        non-empty masks among the n.
    """
    rows, cols = masks.any(axis=2), masks.any(axis=1)
    index = np.flatnonzero(rows.any(axis=1))
    offsets = np.zeros((len(index), 2), dtype=np.int64)
    crops = []
    for k, i in enumerate(index):
        r = np.flatnonzero(rows[i])
        c = np.flatnonzero(cols[i])
        offsets[k] = c[0], r[0]
        crops.append(masks[i, r[0]:r[-1] + 1, c[0]:c[-1] + 1].copy())
    return offsets, crops, index


def resample_crop(crop: np.ndarray, offset: Sequence[int], scale: Tuple[float, float],
                  out_shape: Tuple[int, int]) -> Tuple[np.ndarray, np.ndarray]:
    """Map a mask crop onto another pixel grid of the same image (pixel-centre aligned).

    Target pixel ``X`` samples source point ``(X + 0.5) * sx - 0.5`` bilinearly and keeps ``>= 0.5``
    (as ``cv2.resize`` + threshold, but on the crop's window only).

    Args:
        crop: ``(h, w)`` bool mask crop at ``offset`` = ``(x0, y0)`` of the source grid.
        scale: ``(sx, sy)``, source pixels per target pixel.
        out_shape: ``(H, W)`` of the target grid (the result is clipped to it).

    Returns:
        tuple: the target ``offset`` (2,) and crop (tightened to its support; may be empty).
    """
    (x0, y0), (sx, sy) = offset, scale
    h, w = crop.shape
    tx0, ty0 = max(int(np.floor(x0 / sx)), 0), max(int(np.floor(y0 / sy)), 0)
    tx1 = min(int(np.ceil((x0 + w) / sx)), out_shape[1])
    ty1 = min(int(np.ceil((y0 + h) / sy)), out_shape[0])
    if tx1 <= tx0 or ty1 <= ty0:
        return np.array([tx0, ty0], dtype=np.int64), np.zeros((0, 0), dtype=bool)
    affine = np.array([[sx, 0, (tx0 + 0.5) * sx - 0.5 - x0],
                       [0, sy, (ty0 + 0.5) * sy - 0.5 - y0]], dtype=np.float64)
    win = cv2.warpAffine(crop.astype(np.float32), affine, (tx1 - tx0, ty1 - ty0),
                         flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=0) >= 0.5
    offsets, crops, _ = masks_to_crops(win[None])
    if not crops:
        return np.array([tx0, ty0], dtype=np.int64), np.zeros((0, 0), dtype=bool)
    return offsets[0] + (tx0, ty0), crops[0]


def tile_starts(length: int, tile_size: int, overlap: int) -> np.ndarray:
    """Start coordinates of tiles of ``tile_size`` covering ``[0, length)`` with >= ``overlap``.

    The last tile ends at the image border, so every tile has the full size (one tile of the
    whole length when ``length <= tile_size``).
    """
    if length <= tile_size:
        return np.array([0])
    starts = list(range(0, length - tile_size, tile_size - overlap)) + [length - tile_size]
    return np.array(starts)


def core_bounds(starts: np.ndarray, tile_size: int) -> np.ndarray:
    """Boundaries of the tile cores along one axis: ``len(starts) + 1`` values, -inf and +inf at
    the ends, the middle of each overlap in between (the cores partition the axis)."""
    mids = (starts[1:] + starts[:-1] + tile_size) / 2.0
    return np.concatenate([[-np.inf], mids, [np.inf]])


@dataclass
class Tile:
    """One tile: its window ``[x0, x1) x [y0, y1)`` and its core ``[cx0, cx1) x [cy0, cy1)``."""

    index: int
    x0: int
    y0: int
    x1: int
    y1: int
    core: Tuple[float, float, float, float]


def iter_tiles(height: int, width: int, tile_size: Optional[int],
               overlap: int) -> Iterator[Tile]:
    """Tiles of an image in row-major order; one tile of the whole image if ``tile_size`` is None.

    Raises:
        ValueError: ``overlap`` is negative or not smaller than ``tile_size``.
    """
    if tile_size is None:
        yield Tile(0, 0, 0, width, height, (-np.inf, -np.inf, np.inf, np.inf))
        return
    if tile_size <= 0 or not 0 <= overlap < tile_size:
        raise ValueError(f'need tile_size > 0 and 0 <= overlap < tile_size, got tile_size='
                         f'{tile_size}, overlap={overlap}')
    xs, ys = tile_starts(width, tile_size, overlap), tile_starts(height, tile_size, overlap)
    bx, by = core_bounds(xs, tile_size), core_bounds(ys, tile_size)
    index = 0
    for j, y0 in enumerate(ys):
        for i, x0 in enumerate(xs):
            yield Tile(index, int(x0), int(y0), int(min(x0 + tile_size, width)),
                       int(min(y0 + tile_size, height)), (bx[i], by[j], bx[i + 1], by[j + 1]))
            index += 1


def in_core(centers: np.ndarray, tile: Tile, margin: float) -> np.ndarray:
    """Whether the ``(n, 2)`` image-coordinate centres lie in the tile's core grown by margin."""
    cx0, cy0, cx1, cy1 = tile.core
    x, y = centers[:, 0], centers[:, 1]
    return (x >= cx0 - margin) & (x < cx1 + margin) & (y >= cy0 - margin) & (y < cy1 + margin)


def crop_iou(off_a: np.ndarray, crop_a: np.ndarray, off_b: np.ndarray,
             crop_b: np.ndarray) -> float:
    """IoU of two cropped masks of the same image."""
    x0, y0 = max(off_a[0], off_b[0]), max(off_a[1], off_b[1])
    x1 = min(off_a[0] + crop_a.shape[1], off_b[0] + crop_b.shape[1])
    y1 = min(off_a[1] + crop_a.shape[0], off_b[1] + crop_b.shape[0])
    if x1 <= x0 or y1 <= y0:
        return 0.0
    inter = np.logical_and(
        crop_a[y0 - off_a[1]:y1 - off_a[1], x0 - off_a[0]:x1 - off_a[0]],
        crop_b[y0 - off_b[1]:y1 - off_b[1], x0 - off_b[0]:x1 - off_b[0]]).sum()
    union = crop_a.sum() + crop_b.sum() - inter
    return float(inter) / float(union) if union > 0 else 0.0


def dedup_across_tiles(insts: CompactInstances, tile_ids: np.ndarray, tiles: Sequence[Tile],
                       iou_thr: float, progress: bool = False) -> np.ndarray:
    """Greedy, score-ordered removal of cross-tile duplicates (mask IoU > ``iou_thr``).

    Masks of tile ``i`` lie inside its window, so a duplicate pair of tiles ``i`` and ``j`` lies
    in the intersection of both windows: only the instances reaching into a neighbour's window are
    compared, and the cost grows with the instances in the overlaps, not with n².

    Args:
        insts: candidate instances of all tiles (image coordinates).
        tile_ids: ``(n,)`` index into ``tiles`` of the tile each instance comes from.
        tiles: the tiles.
        iou_thr: mask IoU above which two instances are duplicates.
        progress: Show a progress bar over the pairs of overlapping tiles.

    Returns:
        np.ndarray: indices of the kept instances, by descending score.
    """
    n = len(insts)
    order = np.argsort(-insts.scores, kind='stable')
    if n == 0 or len(tiles) == 1:
        return order
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    box = np.concatenate([
        insts.offsets, insts.offsets + np.array([(c.shape[1], c.shape[0]) for c in insts.crops])
    ], axis=1)  # (x0, y0, x1, y1), exclusive ends
    win = np.array([(t.x0, t.y0, t.x1, t.y1) for t in tiles])

    def intersects(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return ((a[:, None, 0] < b[None, :, 2]) & (b[None, :, 0] < a[:, None, 2])
                & (a[:, None, 1] < b[None, :, 3]) & (b[None, :, 1] < a[:, None, 3]))

    members = [np.flatnonzero(tile_ids == t.index) for t in tiles]
    # conflicts[i]: higher-ranked instances of other tiles that duplicate i
    conflicts: List[List[int]] = [[] for _ in range(n)]
    pairs = np.argwhere(np.triu(intersects(win, win), k=1))
    for ti, tj in track(pairs, len(pairs), 'merge', enable=progress):
        a = members[ti][intersects(box[members[ti]], win[tj:tj + 1])[:, 0]]
        b = members[tj][intersects(box[members[tj]], win[ti:ti + 1])[:, 0]]
        for ia, ib in zip(*np.nonzero(intersects(box[a], box[b]))):
            p, q = a[ia], b[ib]
            if crop_iou(insts.offsets[p], insts.crops[p], insts.offsets[q],
                        insts.crops[q]) > iou_thr:
                lo, hi = (p, q) if rank[p] > rank[q] else (q, p)
                conflicts[lo].append(hi)
    kept = np.zeros(n, dtype=bool)
    for i in order:
        kept[i] = not any(kept[j] for j in conflicts[i])
    return order[kept[order]]
