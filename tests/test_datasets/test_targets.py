"""GenerateA2BTargets and PackA2BInputs: hand-computed maps, dropping, empty GT, real chromosomes."""
import json

import cv2
import numpy as np
import pytest
import torch
from mmdet.structures.mask import BitmapMasks, PolygonMasks
from mmrotate.structures import RotatedBoxes

from a2bis_mm.datasets.transforms import GenerateA2BTargets, PackA2BInputs, targets
from a2bis_mm.structures.a2b_targets import OVERLAP_SENTINEL

D1, D2, DSQRT2 = np.exp(-1 / 2.00001), np.exp(-4 / 2.00001), np.exp(-2 / 2.00001)


def _results(masks: np.ndarray, labels, ignore=None) -> dict:
    n, height, width = masks.shape
    results = dict(img=np.zeros((height, width, 3), np.uint8), img_shape=(height, width),
                   gt_masks=BitmapMasks(masks.astype(np.uint8), height, width),
                   gt_bboxes_labels=np.asarray(labels, dtype=np.int64))
    if ignore is not None:
        results['gt_ignore_flags'] = np.asarray(ignore, dtype=bool)
    return results


def _bars(size: int = 64) -> np.ndarray:
    """A horizontal and a vertical 6-px (3 feature px) wide bar crossing in the middle."""
    masks = np.zeros((2, size, size), np.uint8)
    masks[0, 28:34, 8:56] = 1  # feature rows 14-16, cols 4-27
    masks[1, 8:56, 28:34] = 1  # feature rows 4-27, cols 14-16
    return masks


def test_horizontal_bar_skeleton_values():
    out = GenerateA2BTargets()(_results(_bars()[:1], [0]))
    heat, seg = out['gt_skeleton'], out['gt_seg_map']
    assert heat.shape == seg.shape == (32, 32) and heat.dtype == np.float32
    col = heat[:, 12]  # away from the bar ends
    assert col[15] == 1.0
    assert col[14] == pytest.approx(D1, abs=1e-6) and col[16] == pytest.approx(D1, abs=1e-6)
    assert col[13] == pytest.approx(D2, abs=1e-6) and col[17] == pytest.approx(D2, abs=1e-6)
    assert (col[14], col[13]) == pytest.approx((0.61, 0.14), abs=0.01)  # reference values
    # Zhang's skeleton starts at col 4 of row 15: its diagonal neighbour is at distance sqrt(2).
    assert heat[14, 3] == pytest.approx(DSQRT2, abs=1e-6) and DSQRT2 == pytest.approx(0.37, abs=0.01)
    assert np.all(heat[15, 4:26] == 1.0) and heat.max() == 1.0
    # Max-pool downsampling: the class map is exactly the 3 x 24 feature block of the bar.
    expected = np.zeros((32, 32), np.uint8)
    expected[14:17, 4:28] = 1
    np.testing.assert_array_equal(seg, expected)
    assert seg.dtype == np.uint8
    # Outside the enlarged window (6 feature px) the Gaussian is exactly 0.
    assert heat[:7].max() == 0 and heat[24:].max() == 0
    assert out['gt_bboxes'].tensor.numpy()[0] == pytest.approx([32, 31, 48, 6, 0], abs=1e-5)


def test_any_covered_input_pixel_marks_the_feature_pixel():
    masks = np.zeros((1, 40, 40), np.uint8)
    masks[0, 11:16, 21:26] = 1  # odd borders: rows 11-15 -> feature rows 5-7, cols 10-12
    seg = GenerateA2BTargets()(_results(masks, [0]))['gt_seg_map']
    assert np.argwhere(seg).min(0).tolist() == [5, 10]
    assert np.argwhere(seg).max(0).tolist() == [7, 12]
    assert seg.sum() == 9


def test_crossing_bars_overlap_and_owner():
    out = GenerateA2BTargets()(_results(_bars(), [0, 1]))
    seg, owner = out['gt_seg_map'], out['gt_skeleton_inst']
    overlap = np.zeros((32, 32), bool)
    overlap[14:17, 14:17] = True
    np.testing.assert_array_equal(seg == OVERLAP_SENTINEL, overlap)
    assert np.all(seg[14:17, 4:14] == 1) and np.all(seg[4:14, 14:17] == 2)
    assert owner.dtype == np.int64
    assert np.all(owner[15, 4:12] == 0) and np.all(owner[4:12, 15] == 1)
    assert owner[0, 0] == -1 and owner[31, 31] == -1
    assert np.all((owner >= 0) == (out['gt_skeleton'] >= 1e-4))
    assert len(out['gt_bboxes']) == 2
    # An ignored instance keeps its maps but owns nothing; the other is index 0 of gt_instances.
    ignored = GenerateA2BTargets()(_results(_bars(), [0, 1], ignore=[True, False]))
    assert np.all(ignored['gt_skeleton_inst'][15, 4:12] == -1)
    assert np.all(ignored['gt_skeleton_inst'][4:12, 15] == 0)
    np.testing.assert_array_equal(ignored['gt_seg_map'], seg)


def test_small_instances_are_dropped_everywhere():
    masks = np.zeros((4, 64, 64), np.uint8)
    masks[:2] = _bars()
    masks[2, 2:6, 50:54] = 1    # 16 px < min_area
    masks[3, 60, 10:50] = 1     # 40 px but 1 px thin < min_size
    res = _results(masks, [0, 1, 2, 2], ignore=[False, True, False, True])
    out = GenerateA2BTargets(min_area=20, min_size=2)(res)
    assert len(out['gt_masks']) == len(out['gt_bboxes']) == 2
    np.testing.assert_array_equal(out['gt_bboxes_labels'], [0, 1])
    np.testing.assert_array_equal(out['gt_ignore_flags'], [False, True])
    np.testing.assert_array_equal(out['gt_masks'].masks, _bars())
    assert not np.any(out['gt_seg_map'] == 3)  # class 2 (label 3) vanished
    bars_only = GenerateA2BTargets()(_results(_bars(), [0, 1], ignore=[False, True]))
    for key in ('gt_seg_map', 'gt_skeleton', 'gt_skeleton_inst'):
        np.testing.assert_array_equal(out[key], bars_only[key])
    np.testing.assert_array_equal(out['gt_bboxes'].tensor, bars_only['gt_bboxes'].tensor)


def test_empty_gt():
    out = GenerateA2BTargets()(_results(np.zeros((0, 30, 50), np.uint8), []))
    assert out['gt_seg_map'].shape == (15, 25) and not out['gt_seg_map'].any()
    assert not out['gt_skeleton'].any() and np.all(out['gt_skeleton_inst'] == -1)
    assert isinstance(out['gt_bboxes'], RotatedBoxes) and out['gt_bboxes'].tensor.shape == (0, 5)
    assert len(out['gt_masks']) == 0 and out['gt_bboxes_labels'].shape == (0,)


def test_polygons_and_bad_input():
    poly = [np.array([8, 8, 40, 8, 40, 20, 8, 20], dtype=np.float64)]
    res = _results(np.zeros((0, 48, 48), np.uint8), [0])
    res['gt_masks'] = PolygonMasks([poly], 48, 48)
    out = GenerateA2BTargets()(res)
    np.testing.assert_array_equal(out['gt_masks'].masks,
                                  PolygonMasks([poly], 48, 48).to_ndarray())
    with pytest.raises(ValueError, match=r'labels must be in \[0, 252\]'):
        GenerateA2BTargets()(_results(_bars(), [0, 253]))
    with pytest.warns(DeprecationWarning, match='class count is set once'):
        deprecated = GenerateA2BTargets(num_classes=1)
    with pytest.raises(ValueError, match=r'labels must be in \[0, 0\]'):
        deprecated(_results(_bars(), [0, 1]))
    with pytest.raises(ValueError, match='skeleton_method'):
        GenerateA2BTargets(skeleton_method='medial')


def test_empty_skeleton_falls_back_to_the_centre_pixel(monkeypatch):
    # skimage 0.26 keeps one pixel of any blob, older versions could erase tiny ones.
    monkeypatch.setattr(targets, 'skeletonize', lambda fg, method: np.zeros_like(fg))
    blob = np.zeros((1, 32, 32), np.uint8)
    blob[0, 10:16, 12:20] = 1  # feature rows 5-7, cols 6-9: centroid (6, 7.5)
    heat = GenerateA2BTargets()(_results(blob, [0]))['gt_skeleton']
    assert np.argwhere(heat == 1.0).tolist() == [[6, 7]]
    assert heat[6, 8] == pytest.approx(D1, abs=1e-6)


def test_pack_a2b_inputs():
    out = PackA2BInputs()(GenerateA2BTargets()(_results(_bars(), [0, 1],
                                                                     ignore=[False, True])))
    sample = out['data_samples']
    assert out['inputs'].shape == (3, 64, 64) and out['inputs'].dtype == torch.uint8
    assert sample.gt_sem_seg.sem_seg.dtype == torch.uint8
    assert sample.gt_sem_seg.sem_seg.shape == (1, 32, 32)
    assert int(sample.gt_sem_seg.sem_seg.max()) == OVERLAP_SENTINEL  # the bars cross
    assert sample.gt_skeleton.metainfo['stride'] == 2
    assert sample.gt_skeleton.heatmap.dtype == torch.float32
    assert sample.gt_skeleton.heatmap.shape == (1, 32, 32)
    assert sample.gt_skeleton.inst.dtype == torch.int64
    assert float(sample.gt_skeleton.heatmap.max()) == 1.0
    assert isinstance(sample.gt_instances.bboxes, RotatedBoxes)
    assert len(sample.gt_instances) == 1 and len(sample.ignored_instances) == 1
    assert sample.gt_instances.labels.tolist() == [0]
    # Test pipeline: image only.
    test_out = PackA2BInputs()(dict(img=np.zeros((20, 30), np.uint8), img_shape=(20, 30)))
    assert test_out['inputs'].shape == (1, 20, 30)
    assert 'gt_skeleton' not in test_out['data_samples']
    assert test_out['data_samples'].img_shape == (20, 30)


def _labelme_masks(path) -> np.ndarray:
    data = json.loads(path.read_text())
    height, width = data['imageHeight'], data['imageWidth']
    masks = np.zeros((len(data['shapes']), height, width), np.uint8)
    for mask, shape in zip(masks, data['shapes']):
        cv2.fillPoly(mask, [np.round(np.asarray(shape['points'])).astype(np.int32)], 1)
    return masks, [np.asarray(s['points'], np.float32) for s in data['shapes']]


def test_real_chromosome_pairs(shared_data):
    files = sorted((shared_data / 'chromosome_pairs' / 'train').glob('*.json'))
    assert files, 'no LabelMe files in chromosome_pairs/train'
    crossings = 0
    for path in files:
        masks, polygons = _labelme_masks(path)
        out = GenerateA2BTargets()(_results(masks, [0] * len(masks)))
        assert out['gt_skeleton'].max() == 1.0, path.name
        boxes = out['gt_bboxes'].tensor.numpy()
        assert len(boxes) == 2, path.name
        for box, points in zip(boxes, polygons):
            length = max(cv2.minAreaRect(points)[1])
            assert box[2] == pytest.approx(length, abs=3.0), path.name
        if np.logical_and(masks[0], masks[1]).sum() >= 20:  # a true crossing
            crossings += 1
            assert (out['gt_seg_map'] == OVERLAP_SENTINEL).sum() > 0, path.name
            assert np.all(out['gt_seg_map'][np.logical_and(*out['gt_masks'].masks[:, ::2, ::2])]
                          == OVERLAP_SENTINEL), path.name
    assert crossings > 0
