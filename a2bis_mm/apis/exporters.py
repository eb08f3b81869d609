"""Exports of :class:`CompactInstances`: COCO instance JSON (RLE), QuPath GeoJSON, overlay PNG.

Field-by-field descriptions of the files are in docs/inference.md. All coordinates are level-0
pixels with pixel ``(r, c)`` covering ``[c, c + 1] x [r, r + 1]`` (QuPath's and COCO's convention).
"""
import json
import os
import os.path as osp
import tempfile
import uuid
from typing import Optional, Union

import cv2
import numpy as np
import pycocotools.mask as mask_utils
import shapely
import torch

from ..structures import rescale_rboxes
from ..utils.progress import track
from ..visualization.overlay import draw_instances
from .tiling import CompactInstances, resample_crop


def crop_to_rle(crop: np.ndarray, offset, height: int, width: int) -> dict:
    """COCO compressed RLE of a cropped mask in an ``height x width`` image.

    Own code because ``pycocotools.mask.encode`` needs the full-image mask; the column-major runs
    are built from the crop's columns only (O(crop width x H) memory).
    """
    x0, y0 = int(offset[0]), int(offset[1])
    h, w = crop.shape
    cols = np.zeros((w, height), dtype=np.uint8)  # the crop's columns, full height
    cols[:, y0:y0 + h] = crop.T
    flat = cols.ravel()
    edges = np.flatnonzero(np.diff(flat)) + 1
    counts = np.diff(np.concatenate([[0], edges, [flat.size]])).tolist()
    if flat[0]:
        counts.insert(0, 0)  # RLE starts with a background run
    counts[0] += x0 * height
    tail = (width - x0 - w) * height
    if tail:
        if flat[-1]:
            counts.append(tail)
        else:
            counts[-1] += tail
    rle = mask_utils.frPyObjects(dict(counts=counts, size=[height, width]), height, width)
    rle['counts'] = rle['counts'].decode('ascii')
    return rle


def crop_to_polygon(crop: np.ndarray, offset) -> shapely.Geometry:
    """Exact pixel-edge outline of a cropped mask (Polygon or MultiPolygon, holes kept).

    The union of the mask's row runs as unit-height rectangles: its area equals the pixel count,
    unlike contours through pixel centres (``cv2.findContours``), which lose half a pixel along the
    whole border, a large fraction for small nuclei.
    """
    x0, y0 = int(offset[0]), int(offset[1])
    padded = np.pad(crop.view(np.uint8), ((0, 0), (1, 1)))
    rows, starts = np.nonzero(np.diff(padded, axis=1) == 1)
    _, ends = np.nonzero(np.diff(padded, axis=1) == 255)  # uint8: 0 - 1 wraps to 255
    boxes = shapely.box(x0 + starts, y0 + rows, x0 + ends, y0 + rows + 1)
    return shapely.orient_polygons(shapely.simplify(shapely.union_all(boxes), 0))


def to_coco_dict(insts: CompactInstances, image_id: int = 1, progress: bool = False) -> dict:
    """COCO instance JSON of one image (``images``, ``annotations`` with RLE, ``categories``).

    Args:
        insts: The instances.
        image_id: The image's id in the file.
        progress: Show a progress bar over the instances.
    """
    height, width = insts.img_shape
    annotations = []
    pairs = enumerate(zip(insts.offsets, insts.crops))
    for i, (off, crop) in track(pairs, len(insts), 'coco', enable=progress):
        rows, cols = np.flatnonzero(crop.any(axis=1)), np.flatnonzero(crop.any(axis=0))
        annotations.append(dict(
            id=i + 1, image_id=image_id, category_id=int(insts.labels[i]) + 1,
            segmentation=crop_to_rle(crop, off, height, width), area=int(crop.sum()),
            bbox=[int(off[0] + cols[0]), int(off[1] + rows[0]), int(cols[-1] - cols[0] + 1),
                  int(rows[-1] - rows[0] + 1)],
            score=float(insts.scores[i]), iscrowd=0,
            rbox=[float(v) for v in insts.bboxes[i]]))
    return dict(
        images=[dict(id=image_id, file_name=osp.basename(insts.img_path or ''), height=height,
                     width=width)],
        annotations=annotations,
        categories=[dict(id=k + 1, name=name) for k, name in enumerate(insts.classes)])


def to_geojson_dict(insts: CompactInstances, progress: bool = False) -> dict:
    """QuPath-importable GeoJSON: one ``detection`` Feature per instance, level-0 px geometry.

    Args:
        insts: The instances.
        progress: Show a progress bar over the instances.
    """
    features = []
    pairs = enumerate(zip(insts.offsets, insts.crops))
    for i, (off, crop) in track(pairs, len(insts), 'geojson', enable=progress):
        label = int(insts.labels[i])
        _, _, w, h, t = (float(v) for v in insts.bboxes[i])
        features.append(dict(
            type='Feature',
            # stable ids: the same run gives the same file
            id=str(uuid.uuid5(uuid.NAMESPACE_URL, f'{insts.img_path}#{i}')),
            geometry=shapely.geometry.mapping(crop_to_polygon(crop, off)),
            properties=dict(
                objectType='detection',
                classification=dict(name=insts.classes[label],
                                    color=[int(c) for c in insts.palette[label]]),
                isLocked=False,
                measurements=dict(score=float(insts.scores[i]), area_px=int(crop.sum()),
                                  rbox_length_px=max(w, h), rbox_width_px=min(w, h),
                                  rbox_angle_deg=float(np.degrees(t))))))
    return dict(type='FeatureCollection', features=features)


def draw_overlay(img: np.ndarray, insts: CompactInstances, max_size: Optional[int] = 2048,
                 score_thr: float = 0.0, scale: Optional[float] = None, show_bboxes: bool = False,
                 max_labels: int = 50, legend: bool = True, alpha: float = 0.4,
                 progress: bool = False) -> np.ndarray:
    """Draw the instances on their image with :func:`a2bis_mm.visualization.draw_instances`.

    The image is resized once (downscaled so that its longer side is at most ``max_size`` px, or
    by ``scale``) and each mask crop is mapped onto that grid; no full-image mask is ever built.
    A mask that the downscale would erase keeps one pixel, so every instance stays visible.

    Args:
        img: The level-0 BGR image.
        insts: Its instances.
        max_size: Longest side of the overlay; None keeps the full size.
        score_thr: Instances scored below are not drawn.
        scale: Output px per level-0 px; overrides ``max_size`` (e.g. 3 to enlarge a crop).
        show_bboxes: Draw the rotated boxes.
        max_labels: Most instances that get a ``class: score`` label.
        legend: Add the legend strip (class colours and counts) below the image.
        alpha: Opacity of one mask fill.
        progress: Show progress bars.

    Returns:
        np.ndarray: The BGR overlay: the (resized) image in the top rows, the legend below.
    """
    insts = insts.select(np.flatnonzero(insts.scores >= score_thr))
    if scale is None:
        scale = 1.0 if max_size is None else min(1.0, max_size / max(img.shape[:2]))
    out_w, out_h = max(1, round(img.shape[1] * scale)), max(1, round(img.shape[0] * scale))
    if (out_h, out_w) != img.shape[:2]:
        img = cv2.resize(img, (out_w, out_h),
                         interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    offsets, crops, bboxes = insts.offsets, insts.crops, insts.bboxes
    if (out_h, out_w) != tuple(insts.img_shape):
        src_per_out = (insts.img_shape[1] / out_w, insts.img_shape[0] / out_h)
        offsets, crops = np.zeros_like(insts.offsets), []
        for i in track(range(len(insts)), len(insts), 'resize', enable=progress):
            off, crop = resample_crop(insts.crops[i], insts.offsets[i], src_per_out, (out_h, out_w))
            if not crop.size:  # smaller than an output pixel: keep the pixel of its centre
                centre = insts.offsets[i] + np.array(insts.crops[i].shape[::-1]) / 2
                off = np.minimum((centre / src_per_out).astype(np.int64), (out_w - 1, out_h - 1))
                crop = np.ones((1, 1), dtype=bool)
            offsets[i] = off
            crops.append(crop)
        bboxes = rescale_rboxes(torch.from_numpy(insts.bboxes), src_per_out).numpy()
    drawn = draw_instances(
        np.ascontiguousarray(img[..., ::-1]), offsets, crops, insts.labels, insts.classes,
        insts.palette, scores=insts.scores, bboxes=bboxes, alpha=alpha, show_bboxes=show_bboxes,
        max_labels=max_labels, legend=legend, progress=progress)
    return np.ascontiguousarray(drawn[..., ::-1])


def _write_atomic(data: bytes, path: str) -> None:
    """Write to a temporary file beside ``path``, then rename: readers never see half a file."""
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f'.{osp.basename(path)}.', suffix='.tmp')
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; outputs get the usual mode
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def write_json_atomic(obj: Union[dict, list], path: str) -> None:
    """Write ``obj`` as JSON to ``path`` atomically."""
    _write_atomic(json.dumps(obj).encode('utf-8'), path)


def write_png_atomic(img: np.ndarray, path: str) -> None:
    """Write a BGR image as PNG to ``path`` atomically."""
    ok, buf = cv2.imencode('.png', img)
    if not ok:
        raise ValueError(f'cannot encode a {img.shape} image as PNG for {path}')
    _write_atomic(buf.tobytes(), path)
