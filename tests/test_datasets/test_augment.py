"""RandomRot90 (exactness, box/mask consistency, homography) and JetColormap."""
from unittest import mock

import cv2
import numpy as np
import pytest
import torch
from mmdet.structures.bbox import HorizontalBoxes
from mmdet.structures.mask import BitmapMasks, PolygonMasks
from mmrotate.structures import RotatedBoxes

from a2bis_mm.datasets.transforms import GenerateA2BTargets, JetColormap, RandomRot90, augment
from a2bis_mm.structures import masks_to_rboxes

H, W = 48, 64  # non-square on purpose


def _sample(rng: np.random.Generator) -> dict:
    masks = np.zeros((2, H, W), np.uint8)
    cv2.fillPoly(masks[0], [np.round(cv2.boxPoints(((30, 20), (40, 10), 25))).astype(np.int32)], 1)
    masks[1, 30:44, 5:12] = 1
    bitmaps = BitmapMasks(masks, H, W)
    results = dict(img=rng.integers(0, 255, (H, W, 3), dtype=np.uint8), img_shape=(H, W),
                   gt_masks=bitmaps, gt_bboxes_labels=np.array([0, 0]),
                   gt_bboxes=masks_to_rboxes(bitmaps))
    return GenerateA2BTargets()(results)


def _corners(boxes: RotatedBoxes) -> np.ndarray:
    return boxes.convert_to('qbox').tensor.numpy().reshape(-1, 4, 2)


def _same_corner_sets(a: np.ndarray, b: np.ndarray) -> bool:
    key = lambda c: c[np.lexsort((c[:, 1].round(3), c[:, 0].round(3)))]  # noqa: E731
    return all(np.allclose(key(x), key(y), atol=1e-4) for x, y in zip(a, b))


def test_k1_then_k3_is_identity():
    rng = np.random.default_rng(0)
    original = _sample(rng)
    results = {key: (value.copy() if isinstance(value, np.ndarray) else value)
               for key, value in original.items()}
    results['gt_bboxes'] = original['gt_bboxes'].clone()
    results = RandomRot90(k_choices=[1])(results)
    assert results['img'].shape == (W, H, 3) and results['img_shape'] == (W, H)
    assert results['gt_skeleton'].shape == (W // 2, H // 2)
    results = RandomRot90(k_choices=[3])(results)
    for key in ('img', 'gt_seg_map', 'gt_skeleton', 'gt_skeleton_inst'):
        np.testing.assert_array_equal(results[key], original[key])
    np.testing.assert_array_equal(results['gt_masks'].masks, original['gt_masks'].masks)
    # Boxes up to float32 rounding of W - (W - x); angles are never touched.
    torch.testing.assert_close(results['gt_bboxes'].tensor, original['gt_bboxes'].tensor,
                               rtol=0, atol=1e-5)
    assert torch.equal(results['gt_bboxes'].tensor[:, 4], original['gt_bboxes'].tensor[:, 4])
    np.testing.assert_array_equal(results['homography_matrix'], np.eye(3))


def test_pixel_goes_counter_clockwise():
    img = np.zeros((H, W), np.uint8)
    img[2, 5] = 255  # (x, y) = (5.5, 2.5) -> (2.5, W - 5.5)
    results = RandomRot90(k_choices=[1])(dict(img=img, img_shape=(H, W)))
    assert np.argwhere(results['img']).tolist() == [[W - 1 - 5, 2]]
    np.testing.assert_allclose(results['homography_matrix'] @ [5.5, 2.5, 1], [2.5, W - 5.5, 1])


@pytest.mark.parametrize('k', [1, 2, 3])
def test_boxes_follow_the_rotated_masks(k):
    results = _sample(np.random.default_rng(k))
    rotated = RandomRot90(k_choices=[k])(results)
    # Rotated boxes: the same rectangles as the min-area boxes of the rotated masks.
    assert _same_corner_sets(_corners(rotated['gt_bboxes']),
                             _corners(masks_to_rboxes(rotated['gt_masks'])))
    # Horizontal boxes are projected exactly.
    before = _sample(np.random.default_rng(k))['gt_masks'].get_bboxes('hbox')
    hboxes = RandomRot90(k_choices=[k])(
        dict(img=np.zeros((H, W), np.uint8), gt_bboxes=before))['gt_bboxes']
    assert isinstance(hboxes, HorizontalBoxes)
    torch.testing.assert_close(hboxes.tensor, rotated['gt_masks'].get_bboxes('hbox').tensor)
    # Targets generated after the rotation equal the rotated targets (exact permutation).
    again = GenerateA2BTargets()(dict(gt_masks=rotated['gt_masks'],
                                      gt_bboxes_labels=np.array([0, 0])))
    np.testing.assert_array_equal(again['gt_seg_map'], rotated['gt_seg_map'])


def test_polygons_rotate_with_the_homography():
    poly = np.array([4, 6, 20, 6, 20, 10, 4, 10], dtype=np.float64)
    results = RandomRot90(k_choices=[1])(dict(
        img=np.zeros((H, W), np.uint8), gt_masks=PolygonMasks([[poly]], H, W)))
    masks = results['gt_masks']
    assert (masks.height, masks.width) == (W, H)
    # (x, y) -> (y, W - x)
    np.testing.assert_allclose(masks.masks[0][0], [6, 60, 6, 44, 10, 44, 10, 60])
    np.testing.assert_allclose(masks.areas, [64.0])


def test_prob_zero_keeps_everything():
    results = _sample(np.random.default_rng(3))
    img = results['img'].copy()
    out = RandomRot90(prob=0.0)(results)
    assert out['rot90_k'] == 0 and np.array_equal(out['img'], img)
    with pytest.raises(ValueError, match='prob'):
        RandomRot90(prob=1.5)


def test_jet_colormap():
    grey = np.array([[0, 128, 255]], np.uint8)
    lut = cv2.applyColorMap(np.arange(256, dtype=np.uint8)[None], cv2.COLORMAP_JET)[0]
    expected = lut[[0, 128, 255]][None]
    np.testing.assert_array_equal(JetColormap()(dict(img=grey.copy()))['img'], expected)
    np.testing.assert_array_equal(JetColormap()(dict(img=grey[..., None].copy()))['img'], expected)
    bgr = np.repeat(grey[..., None], 3, axis=2)
    out = JetColormap()(dict(img=bgr))['img']
    np.testing.assert_array_equal(out, expected)
    assert out.dtype == np.uint8 and out.shape == (1, 3, 3)
    assert expected[0, 0].tolist() == [128, 0, 0] and expected[0, 2].tolist() == [0, 0, 128]
    # Colour input goes through BGR2GRAY first.
    colour = np.array([[[255, 0, 0], [0, 0, 255]]], np.uint8)
    gray = cv2.cvtColor(colour, cv2.COLOR_BGR2GRAY)
    np.testing.assert_array_equal(JetColormap()(dict(img=colour))['img'][0], lut[gray[0]])


def test_jet_colormap_16bit_and_errors():
    transform = JetColormap()
    img16 = np.array([[0, 2048, 4095]], np.uint16)
    with mock.patch.object(augment, 'print_log') as log:
        out = transform(dict(img=img16.copy()))['img']
        transform(dict(img=img16.copy()))
    assert log.call_count == 1 and '16-bit' in log.call_args[0][0]
    lut = cv2.applyColorMap(np.arange(256, dtype=np.uint8)[None], cv2.COLORMAP_JET)[0]
    np.testing.assert_array_equal(out[0], lut[[0, 128, 255]])
    with pytest.raises(TypeError, match='float32'):
        transform(dict(img=np.zeros((4, 4), np.float32)))
    with pytest.raises(ValueError, match='shape'):
        transform(dict(img=np.zeros((4, 4, 2), np.uint8)))
