"""Conversions from the instance fields of a data sample (as ``Evaluator`` hands them to
``process``: dicts holding tensors, mmdet masks and box structures) to plain arrays and RLEs."""
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
import torch
from mmdet.structures.mask import BitmapMasks, PolygonMasks, encode_mask_results
from mmrotate.structures import RotatedBoxes
from pycocotools import mask as mask_util

from a2bis_mm.structures import masks_to_rboxes


def sample_name(data_sample: Dict) -> str:
    """The image path (or id) of a data sample, for error messages."""
    return str(data_sample.get('img_path', data_sample.get('img_id', '<unknown image>')))


def instances(data_sample: Dict, key: str, fields: Sequence[str]) -> Dict:
    """``data_sample[key]`` after checking that it holds ``fields``."""
    inst = data_sample.get(key)
    if inst is None:
        raise KeyError(f'{sample_name(data_sample)}: data sample has no {key!r}')
    missing = [f for f in fields if f not in inst]
    if missing:
        raise KeyError(f'{sample_name(data_sample)}: {key} lacks {missing} '
                       '(the metrics need instance masks and labels)')
    return inst


class UnpackedSample(NamedTuple):
    """The GT and predictions of one data sample, as both metrics read them.

    Attributes:
        name (str): Image path or id, for error messages.
        gt (dict): ``gt_instances`` (holds ``masks`` and ``labels``; ``bboxes`` optional).
        pred (dict): ``pred_instances`` (holds ``masks``, ``scores``, ``labels``).
        gt_masks (np.ndarray): (n, H, W) bool GT masks.
        gt_labels (np.ndarray): (n, ) int64 GT labels.
        scores (np.ndarray): (m, ) float64 prediction scores.
        labels (np.ndarray): (m, ) int64 predicted labels.
    """
    name: str
    gt: Dict
    pred: Dict
    gt_masks: np.ndarray
    gt_labels: np.ndarray
    scores: np.ndarray
    labels: np.ndarray


def unpack_sample(data_sample: Dict) -> UnpackedSample:
    """Check and convert the GT and predicted instances of a data sample (see UnpackedSample).

    The predicted masks stay as given (``pred.masks``): the metrics convert them differently
    (RLEs for AP, arrays for PQ).
    """
    name = sample_name(data_sample)
    gt = instances(data_sample, 'gt_instances', ('masks', 'labels'))
    pred = instances(data_sample, 'pred_instances', ('masks', 'scores', 'labels'))
    return UnpackedSample(
        name=name, gt=gt, pred=pred,
        gt_masks=mask_array(gt['masks'], None, f'{name} gt_instances'),
        gt_labels=to_numpy(gt['labels']).astype(np.int64),
        scores=to_numpy(pred['scores']).astype(np.float64),
        labels=to_numpy(pred['labels']).astype(np.int64))


def to_numpy(values) -> np.ndarray:
    """Tensor or array-like to a numpy array."""
    if isinstance(values, torch.Tensor):
        return values.detach().cpu().numpy()
    return np.asarray(values)


def mask_array(masks, shape: Optional[Tuple[int, int]], name: str) -> np.ndarray:
    """(n, H, W) bool array of BitmapMasks, PolygonMasks, a tensor/array or a list of COCO RLEs.

    Args:
        masks: the instance masks.
        shape (tuple, optional): expected (H, W); checked when given.
        name (str): what the masks are, for the error message.
    """
    if isinstance(masks, (BitmapMasks, PolygonMasks)):
        array = masks.to_ndarray().astype(bool)
    elif isinstance(masks, (list, tuple)) and (len(masks) == 0 or isinstance(masks[0], dict)):
        if len(masks) == 0:
            if shape is None:
                raise ValueError(f'{name}: cannot size an empty RLE list without a shape')
            return np.zeros((0, *shape), dtype=bool)
        array = mask_util.decode(list(masks)).transpose(2, 0, 1).astype(bool)
    else:
        array = to_numpy(masks).astype(bool)
    if array.ndim != 3:
        raise ValueError(f'{name}: masks must be (n, H, W), got shape {array.shape}')
    if shape is not None and array.shape[1:] != tuple(shape):
        raise ValueError(f'{name}: masks are {array.shape[1:]}, expected {tuple(shape)} '
                         '(GT and predicted masks must both be at the original image size)')
    return array


def mask_rles(masks, shape: Tuple[int, int], name: str) -> List[Dict]:
    """COCO RLEs of instance masks; a list of RLEs (mmdet's encoded results) passes through."""
    if isinstance(masks, (list, tuple)) and len(masks) and isinstance(masks[0], dict):
        sizes = {tuple(rle['size']) for rle in masks}
        if sizes != {tuple(shape)}:
            raise ValueError(f'{name}: RLE sizes {sorted(sizes)} differ from {tuple(shape)}')
        return list(masks)
    return encode_mask_results(mask_array(masks, shape, name))


def rotated_array(bboxes) -> Optional[np.ndarray]:
    """(n, 5) float32 array of ``RotatedBoxes`` or an (n, 5) tensor/array; None for other boxes."""
    if isinstance(bboxes, RotatedBoxes):
        return to_numpy(bboxes.tensor).astype(np.float32)
    if isinstance(bboxes, (torch.Tensor, np.ndarray)) and bboxes.ndim == 2 and bboxes.shape[1] == 5:
        return to_numpy(bboxes).astype(np.float32)
    return None


def mask_rboxes(masks: np.ndarray) -> np.ndarray:
    """(n, 5) min-area rotated boxes of (n, H, W) masks; an empty mask gets a zero box (IoU 0).

    Used for horizontal-box predictions (mmdet baselines) and GT without rotated boxes, so that
    every method is scored on the same kind of box.
    """
    out = np.zeros((len(masks), 5), dtype=np.float32)
    nonempty = masks.any(axis=(1, 2)) if len(masks) else np.zeros(0, bool)
    if nonempty.any():
        out[nonempty] = to_numpy(masks_to_rboxes(masks[nonempty]).tensor)
    return out


def class_names(dataset_meta: Optional[Dict], metric: str) -> List[str]:
    """Class names from ``dataset_meta['classes']``."""
    if not dataset_meta or 'classes' not in dataset_meta:
        raise ValueError(f"{metric} needs dataset_meta['classes'] (set by the Evaluator from the "
                         'dataset metainfo)')
    return [str(c) for c in dataset_meta['classes']]
