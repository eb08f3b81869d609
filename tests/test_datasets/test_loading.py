"""LoadMicroscopyImage / LoadPanNukeAnnotations on real files: depth, channels, sources, failures."""
import base64
import json

import cv2
import numpy as np
import pytest
from mmdet.registry import TRANSFORMS

import a2bis_mm  # noqa: F401  registers the transforms


def _load(path, **kwargs):
    return TRANSFORMS.build(dict(type='LoadMicroscopyImage', **kwargs)).transform(
        dict(img_path=str(path)))


def test_rgba_alpha_dropped(shared_data, mm_caplog):
    path = shared_data / 'cpm15' / 'images' / 'image01.png'
    res = _load(path)
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert raw.shape[2] == 4
    assert res['img'].shape == (488, 643, 3) and res['img'].dtype == np.uint8
    np.testing.assert_array_equal(res['img'], raw[..., :3])
    assert res['ori_shape'] == (488, 643)
    assert 'image01.png has 4 channels; alpha dropped' in mm_caplog.text


def test_single_channel_repeated(shared_data, mm_caplog):
    path = sorted((shared_data / 'chromosome_pairs' / 'train').glob('*.png'))[0]
    transform = TRANSFORMS.build(dict(type='LoadMicroscopyImage'))
    res = transform.transform(dict(img_path=str(path)))
    transform.transform(dict(img_path=str(path)))
    grey = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert grey.ndim == 2 and res['img'].shape == grey.shape + (3, )
    for c in range(3):
        np.testing.assert_array_equal(res['img'][..., c], grey)
    assert mm_caplog.text.count('is single-channel; repeated to 3 channels') == 1  # logged once


def test_16bit_scaled_by_max_or_percentile(shared_data, mm_caplog):
    # a real 16-bit PNG with values above 255: cpm15's instance map (ids 0..351)
    path = shared_data / 'cpm15' / 'labels' / 'image01.png'
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert raw.dtype == np.uint16 and raw.max() > 255
    res = _load(path)
    expected = np.rint(raw.astype(np.float32) * (255.0 / raw.max())).astype(np.uint8)
    np.testing.assert_array_equal(res['img'][..., 0], expected)
    assert res['img'].max() == 255
    assert f'is uint16; scaled to 8 bit by its maximum ({raw.max()} -> 255)' in mm_caplog.text

    high = np.percentile(raw, 90.0)
    res = _load(path, percentile=90.0)
    expected = np.clip(np.rint(raw.astype(np.float32) * (255.0 / high)), 0, 255)
    np.testing.assert_array_equal(res['img'][..., 0], expected.astype(np.uint8))
    assert 0 < high < raw.max() and (res['img'] == 255).mean() > 0.09
    with pytest.raises(ValueError, match='percentile'):
        _load(path, percentile=0)


def test_corrupt_image_returns_none_and_logs(tmp_path, mm_caplog):
    bad = tmp_path / 'broken.png'
    bad.write_bytes(b'\x89PNG\r\n\x1a\n not really a png')
    assert _load(bad) is None
    assert 'cannot read' in mm_caplog.text and 'broken.png' in mm_caplog.text
    assert _load(tmp_path / 'missing.png') is None


def test_labelme_embedded_image(shared_data, tmp_path):
    src = sorted((shared_data / 'chromosome_pairs' / 'val').glob('*.json'))[0]
    ann = json.loads(src.read_text())
    res = _load(src)  # the .json itself: decodes imageData
    grey = cv2.imdecode(np.frombuffer(base64.b64decode(ann['imageData']), np.uint8),
                        cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(res['img'][..., 1], grey)
    png = cv2.imread(str(src.with_suffix('.png')), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(res['img'][..., 0], png)


def test_npy_stack_row_rgb_to_bgr_and_pannuke_annotations(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, size=(2, 8, 9, 3))  # PanNuke stores float RGB
    masks = np.zeros((2, 8, 9, 6))
    masks[1, 1:3, 1:4, 0] = 7  # neoplastic instance 7
    masks[1, 5:8, 0:2, 4] = 7  # epithelial instance with the same id in another channel
    masks[1, 5:6, 6:9, 4] = 3
    np.save(tmp_path / 'images.npy', images)
    np.save(tmp_path / 'masks.npy', masks)
    results = dict(img_path=str(tmp_path / 'images.npy'), npy_index=1,
                   mask_stack_path=str(tmp_path / 'masks.npy'))
    results = TRANSFORMS.build(dict(type='LoadMicroscopyImage')).transform(results)
    np.testing.assert_array_equal(results['img'],
                                  np.rint(images[1][..., ::-1]).astype(np.uint8))
    results = TRANSFORMS.build(dict(type='LoadPanNukeAnnotations', with_bbox=True,
                                    with_mask=True)).transform(results)
    assert results['gt_bboxes_labels'].tolist() == [0, 4, 4]
    np.testing.assert_array_equal(results['gt_bboxes'].numpy(),
                                  [[1, 1, 4, 3], [6, 5, 9, 6], [0, 5, 2, 8]])
    np.testing.assert_array_equal(results['gt_masks'].masks[0], masks[1, ..., 0] == 7)
    np.testing.assert_array_equal(results['gt_masks'].masks[2],
                                  (masks[1, ..., 4] == 7))
    with pytest.raises(ValueError, match='poly2mask'):
        TRANSFORMS.build(dict(type='LoadPanNukeAnnotations', poly2mask=False))
