"""Inference of A2B-IS on images of any size: pixel-size matching, tiling and compact results."""
import copy
import os
import os.path as osp
import warnings
from pathlib import Path
from typing import List, Optional, Tuple, Union

import cv2
import numpy as np
import torch
from mmcv.transforms import Compose
from mmdet.apis import inference_detector, init_detector
from mmdet.evaluation import get_classes
from mmdet.registry import DATASETS
from mmdet.structures.bbox import get_box_tensor
from mmdet.utils import get_test_pipeline_cfg
from mmengine.config import Config
from mmengine.logging import print_log
from mmrotate.structures.bbox import hbox2rbox
from PIL import Image

from ..datasets.transforms import LoadMicroscopyImage
from ..datasets.utils import IMG_EXTENSIONS
from ..structures import rescale_rboxes
from ..utils.checkpoint import load_checkpoint_strict
from ..utils.progress import track
from ..visualization.overlay import microscopy_palette
from .tiling import (
    CompactInstances,
    dedup_across_tiles,
    in_core,
    iter_tiles,
    masks_to_crops,
    resample_crop,
)

ImageInput = Union[str, Path, np.ndarray]


def init_a2bis_model(config: Union[str, Path, Config],
                     checkpoint: Optional[str] = None,
                     device: str = 'cpu',
                     cfg_options: Optional[dict] = None) -> torch.nn.Module:
    """Build a model with mmdet's ``init_detector``, load its weights strictly, and prepare it for
    :func:`inference_a2bis`.

    Differences from ``init_detector``: a checkpoint that does not fit the model (missing,
    unexpected or resized keys, e.g. another data set's number of classes) is refused instead of
    loaded in part with a warning; the class names fall back to the config's test data set
    metainfo (not COCO) when the checkpoint stores none; and ``model.a2bis_pipeline`` holds the
    test pipeline made to take arrays (:func:`build_inference_pipeline`).

    Args:
        config: Config file or object.
        checkpoint: Checkpoint file; None keeps the initial weights.
        device: Device of the model, e.g. ``'cpu'`` or ``'cuda:0'``.
        cfg_options: Config overrides, as ``--cfg-options``.

    Raises:
        FileNotFoundError: The checkpoint file does not exist.
        a2bis_mm.utils.checkpoint.CheckpointError: It is not a checkpoint, or does not fit the
            model (``CheckpointMismatchError``, one line naming the first mismatched keys).
    """
    # built without weights (mmdet loads them with strict=False), then loaded strictly on the CPU;
    # record=True because init_detector resets the filters, and its "checkpoint is None, use COCO
    # classes" warning is wrong here
    with warnings.catch_warnings(record=True) as caught:
        model = init_detector(config, None, device='cpu', cfg_options=cfg_options)
    for w in caught:
        if checkpoint is None or 'checkpoint is None' not in str(w.message):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if checkpoint is not None:
        meta = load_checkpoint_strict(model, checkpoint, map_location='cpu').get('meta') or {}
        # as init_detector: mmdet 3 keeps dataset_meta, older checkpoints CLASSES
        if 'dataset_meta' in meta:
            model.dataset_meta = {k.lower(): v for k, v in meta['dataset_meta'].items()}
        elif 'CLASSES' in meta:
            model.dataset_meta = dict(classes=meta['CLASSES'])
    if list(model.dataset_meta.get('classes', ())) == list(get_classes('coco')):
        dataset_cfg = copy.deepcopy(model.cfg.test_dataloader.dataset)
        dataset_cfg['lazy_init'] = True
        model.dataset_meta = dict(DATASETS.build(dataset_cfg).metainfo)
    model.a2bis_pipeline = build_inference_pipeline(model.cfg)
    return model.to(device).eval()


def build_inference_pipeline(cfg: Config) -> Compose:
    """The config's test pipeline for in-memory images.

    The loader becomes ``LoadImageFromNDArray``, annotation loaders are dropped (there is no
    ground truth), and a ``Resize(scale_factor=1.0)`` is added when the pipeline has no resize,
    because mmdet's heads (baseline models run through this API too) need ``scale_factor`` to
    map results back to the image.
    """
    steps = [copy.deepcopy(t) for t in get_test_pipeline_cfg(cfg)]
    steps = [steps[0]] + [t for t in steps[1:] if 'Annotations' not in t['type']]
    steps[0] = dict(type='mmdet.LoadImageFromNDArray')
    if not any('Resize' in t['type'] for t in steps):
        steps.insert(1, dict(type='mmdet.Resize', scale_factor=1.0, keep_ratio=True))
    return Compose(steps)


def list_images(folder: Union[str, Path]) -> List[str]:
    """Image files (``IMG_EXTENSIONS``) directly inside ``folder``, sorted by name."""
    return sorted(
        osp.join(folder, f) for f in os.listdir(folder) if f.lower().endswith(IMG_EXTENSIONS))


def max_image_pixels() -> int:
    """OpenCV's limit on decoded image pixels (``OPENCV_IO_MAX_IMAGE_PIXELS``, default 2**30)."""
    try:
        return int(os.environ.get('OPENCV_IO_MAX_IMAGE_PIXELS', 1 << 30))
    except ValueError:
        return 1 << 30


def image_size(path: Union[str, Path]) -> Optional[Tuple[int, int]]:
    """``(width, height)`` from the file's header without decoding it; None if PIL cannot tell."""
    old = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None  # only the header is read: PIL's decompression-bomb guard is moot
    try:
        with Image.open(path) as im:
            return im.size
    except Exception:  # noqa: BLE001 - any unknown format: leave the verdict to the decoder
        return None
    finally:
        Image.MAX_IMAGE_PIXELS = old


def check_image_size(path: Union[str, Path]) -> None:
    """Refuse an image over OpenCV's pixel limit before it is decoded.

    Raises:
        ValueError: One line with the image's size, the limit and how to raise it.
    """
    size, limit = image_size(path), max_image_pixels()
    if size is not None and size[0] * size[1] > limit:
        raise ValueError(
            f'image {path} has {size[0]}x{size[1]} = {size[0] * size[1]:,} px, over the limit of '
            f'{limit:,} px (set OPENCV_IO_MAX_IMAGE_PIXELS before starting to raise it, or cut the '
            f'slide into regions)')


def read_image(path: Union[str, Path]) -> np.ndarray:
    """Read an image as 8-bit BGR with ``LoadMicroscopyImage`` (16-bit, grey, RGBA handled).

    Raises:
        ValueError: The file does not exist, is over OpenCV's pixel limit, or cannot be read or
            decoded (one line naming the file).
    """
    if not osp.isfile(path):
        raise ValueError(f'image {path} does not exist')
    check_image_size(path)
    results = LoadMicroscopyImage()(dict(img_path=str(path)))
    if results is None:
        raise ValueError(f'cannot read image {path}')
    return results['img']


def _check_array(img: np.ndarray) -> np.ndarray:
    """Return ``img`` as (H, W, 3) uint8; grey is repeated to 3 channels."""
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ValueError(f'image array must be (H, W) or (H, W, 3) uint8 BGR, got shape '
                         f'{img.shape} dtype {img.dtype}')
    return img


def _predict_tile(model: torch.nn.Module, img: np.ndarray, tile, score_thr: float,
                  margin: float) -> CompactInstances:
    """Run the model on one tile and keep its core instances as crops, in image coordinates."""
    tile_img = np.ascontiguousarray(img[tile.y0:tile.y1, tile.x0:tile.x1])
    pred = inference_detector(model, tile_img, test_pipeline=model.a2bis_pipeline).pred_instances
    scores = pred.scores.cpu().numpy().astype(np.float64)
    # mmdet's add_pred_to_datasample turns RotatedBoxes into plain (n, 5) tensors
    bboxes = get_box_tensor(pred.bboxes).cpu().numpy().astype(np.float64)
    if bboxes.shape[1] == 4:  # a baseline's (x1, y1, x2, y2): the same box as (cx, cy, w, h, 0)
        bboxes = hbox2rbox(torch.from_numpy(bboxes)).numpy()
    bboxes[:, :2] += (tile.x0, tile.y0)
    keep = np.flatnonzero((scores >= score_thr) & in_core(bboxes[:, :2], tile, margin))
    masks = pred.masks[torch.from_numpy(keep)].cpu().numpy().astype(bool, copy=False)
    offsets, crops, nonempty = masks_to_crops(masks)
    keep = keep[nonempty]
    return CompactInstances(
        (img.shape[0], img.shape[1]), bboxes[keep], scores[keep],
        pred.labels.cpu().numpy().astype(np.int64)[keep], offsets + (tile.x0, tile.y0), crops)


def _to_level0(insts: CompactInstances, scale: tuple, shape: tuple,
               progress: bool = False) -> CompactInstances:
    """Map instances from the rescaled image (``scale`` = its px per level-0 px) to level 0."""
    offsets, crops, keep = [], [], []
    pairs = enumerate(zip(insts.offsets, insts.crops))
    for i, (off, crop) in track(pairs, len(insts), 'level 0', enable=progress):
        off, crop = resample_crop(crop, off, scale, shape)
        if crop.size:
            offsets.append(off)
            crops.append(crop)
            keep.append(i)
    keep = np.array(keep, dtype=np.int64)
    bboxes = rescale_rboxes(torch.from_numpy(insts.bboxes[keep]), scale).numpy()
    return CompactInstances(shape, bboxes, insts.scores[keep], insts.labels[keep],
                            np.array(offsets, dtype=np.int64).reshape(-1, 2), crops)


def _inference_array(model: torch.nn.Module, img: np.ndarray, tile_size: Optional[int],
                     overlap: int, scale: Optional[float], score_thr: float,
                     margin: Optional[float], dedup_iou: float,
                     progress: bool) -> CompactInstances:
    """Rescale, tile, predict and merge one BGR image; see :func:`inference_a2bis`."""
    level0_shape = img.shape[:2]
    if scale is not None and scale != 1.0:
        size = (max(1, round(img.shape[1] * scale)), max(1, round(img.shape[0] * scale)))
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        img = cv2.resize(img, size, interpolation=interp)
    if margin is None:
        margin = overlap / 8
    tiles = list(iter_tiles(img.shape[0], img.shape[1], tile_size, overlap))
    parts, tile_ids = [], []
    # the bar covers the network and the decoding of its maps into instances, tile by tile
    for tile in track(tiles, len(tiles), 'tiles', enable=progress):
        # only the compact crops of each tile are kept: memory stays bounded on slides
        part = _predict_tile(model, img, tile, score_thr, margin)
        parts.append(part)
        tile_ids.append(np.full(len(part), tile.index))
    insts = CompactInstances.concatenate(parts, img.shape[:2])
    insts = insts.select(
        dedup_across_tiles(insts, np.concatenate(tile_ids), tiles, dedup_iou, progress))
    if img.shape[:2] != level0_shape:
        scale_xy = (img.shape[1] / level0_shape[1], img.shape[0] / level0_shape[0])
        insts = _to_level0(insts, scale_xy, level0_shape, progress)
    return insts


def inference_a2bis(model: torch.nn.Module,
                    image_or_path: ImageInput,
                    tile_size: Optional[int] = None,
                    overlap: int = 64,
                    pixel_size: Optional[float] = None,
                    model_pixel_size: Optional[float] = None,
                    score_thr: float = 0.0,
                    merge_margin: Optional[float] = None,
                    dedup_iou: float = 0.5,
                    progress: bool = False
                    ) -> Union[CompactInstances, List[CompactInstances]]:
    """Segment an image, an image file or a folder of images with A2B-IS.

    With ``pixel_size`` and ``model_pixel_size`` (e.g. µm/px) the image is first resized by
    ``pixel_size / model_pixel_size`` so that it matches the training resolution; the results are
    mapped back to level-0 (input) pixels. With ``tile_size`` the (resized) image is cut into tiles
    of ``tile_size`` px overlapping by at least ``overlap`` px, each run through mmdet's
    ``inference_detector`` and merged by the rule of :mod:`a2bis_mm.apis.tiling` (no duplicates at
    tile borders). Only cropped masks are kept between tiles.

    Args:
        model: A model from :func:`init_a2bis_model`.
        image_or_path: A BGR uint8 array (mmdet convention), an image file or a folder.
        tile_size: Tile side in model-input px; None runs the whole image at once.
        overlap: Minimum overlap of neighbouring tiles in model-input px.
        pixel_size: Physical size of an input pixel; needs ``model_pixel_size``.
        model_pixel_size: Physical pixel size the model was trained at.
        score_thr: Instances scored below are dropped.
        merge_margin: Growth of the tile cores in model-input px; None: ``overlap / 8``.
        dedup_iou: Mask IoU above which instances of two tiles are duplicates.
        progress: Show progress bars (tiles, merge, mapping back to level 0).

    Returns:
        CompactInstances, or a list of them (one per readable image, by name) for a folder;
        unreadable images in a folder are logged and skipped.

    Raises:
        ValueError: Bad sizes, only one of the pixel sizes, or an unreadable single image.
    """
    if (pixel_size is None) != (model_pixel_size is None):
        raise ValueError(f'pixel_size and model_pixel_size go together, got pixel_size='
                         f'{pixel_size}, model_pixel_size={model_pixel_size}')
    if pixel_size is not None and not (pixel_size > 0 and model_pixel_size > 0):
        raise ValueError(f'pixel sizes must be > 0, got pixel_size={pixel_size}, '
                         f'model_pixel_size={model_pixel_size}')
    if not hasattr(model, 'a2bis_pipeline'):
        raise ValueError('model has no a2bis_pipeline: build it with init_a2bis_model')
    scale = None if pixel_size is None else pixel_size / model_pixel_size
    kwargs = dict(tile_size=tile_size, overlap=overlap, scale=scale, score_thr=score_thr,
                  margin=merge_margin, dedup_iou=dedup_iou, progress=progress)
    if isinstance(image_or_path, np.ndarray):
        return _with_meta(model, _inference_array(model, _check_array(image_or_path), **kwargs),
                          None)
    if osp.isdir(image_or_path):
        results = []
        for path in list_images(image_or_path):
            try:
                img = read_image(path)
            except ValueError as err:
                print_log(f'skipped: {err}', logger='current')
                continue
            results.append(_with_meta(model, _inference_array(model, img, **kwargs), path))
        return results
    return _with_meta(model, _inference_array(model, read_image(image_or_path), **kwargs),
                      str(image_or_path))


def _with_meta(model: torch.nn.Module, insts: CompactInstances,
               img_path: Optional[str]) -> CompactInstances:
    """Attach the class names, the overlay palette (docs/inference.md) and the source path."""
    classes = tuple(model.dataset_meta['classes'])
    insts.classes = classes
    insts.palette = microscopy_palette(len(classes))
    insts.img_path = img_path
    return insts
