"""Rotated-box helpers: OpenCV <-> mmrotate convention, pixel-square extent, le90."""
import cv2
import numpy as np
import pytest
import torch
from mmdet.structures.mask import BitmapMasks, PolygonMasks
from mmrotate.structures import RotatedBoxes

from a2bis_mm.structures import mask_to_rbox, masks_to_rboxes


def _same_corners(a: np.ndarray, b: np.ndarray, atol: float) -> bool:
    """Whether two (4, 2) corner sets are equal up to order."""
    order_a = np.lexsort((a[:, 1].round(2), a[:, 0].round(2)))
    order_b = np.lexsort((b[:, 1].round(2), b[:, 0].round(2)))
    return np.allclose(a[order_a], b[order_b], atol=atol)


def _random_rect_points(rng: np.random.Generator, angle: float, w: float, h: float) -> np.ndarray:
    corners = cv2.boxPoints(((100.0, 80.0), (w, h), angle))
    # Extra points strictly inside, so minAreaRect must pick the hull.
    inner = corners.mean(0) + (corners - corners.mean(0)) * rng.uniform(0, 0.9, (4, 1))
    return np.concatenate([corners, inner]).astype(np.float32)


def test_qbox_corners_match_cv2_box_points():
    """A box drawn with cv2.boxPoints(minAreaRect) has the corners of RotatedBoxes -> qbox."""
    rng = np.random.default_rng(0)
    angles = [0.0, 0.3, 89.7, 90.0, 90.4, 179.6, 180.0, -45.0, 30.0, 135.0]
    angles += list(rng.uniform(-180, 180, 40))
    for angle in angles:
        for w, h in [(40.0, 7.0), (7.0, 40.0), (23.0, 22.0)]:
            points = _random_rect_points(rng, angle, w, h)
            box = masks_to_rboxes(PolygonMasks([[points.reshape(-1)]], 200, 200))
            assert isinstance(box, RotatedBoxes) and box.tensor.shape == (1, 5)
            corners = box.convert_to('qbox').tensor.reshape(4, 2).numpy()
            expected = cv2.boxPoints(cv2.minAreaRect(points))
            assert _same_corners(corners, expected, atol=1e-3), (angle, w, h)
            cx, cy, bw, bh, t = box.tensor[0].tolist()
            # le90 and geometry: the w side points along (cos t, sin t) and is the long side.
            assert bw >= bh and -np.pi / 2 - 1e-6 <= t < np.pi / 2  # float32 rounding of -pi/2
            assert np.isclose(bw, max(w, h), atol=1e-3) and np.isclose(bh, min(w, h), atol=1e-3)
            rel = points - np.array([cx, cy])
            along = rel @ np.array([np.cos(t), np.sin(t)])
            across = rel @ np.array([-np.sin(t), np.cos(t)])
            assert np.abs(along).max() <= bw / 2 + 1e-3 and np.abs(across).max() <= bh / 2 + 1e-3


def test_le90_agrees_with_mmrotate_regularize():
    rng = np.random.default_rng(1)
    for angle in rng.uniform(-180, 180, 30):
        points = _random_rect_points(rng, angle, *rng.uniform(3, 50, 2))
        ours = masks_to_rboxes(PolygonMasks([[points.reshape(-1)]], 200, 200)).tensor
        (cx, cy), (w, h), deg = cv2.minAreaRect(points)
        raw = RotatedBoxes(torch.tensor([[cx, cy, w, h, np.deg2rad(deg)]], dtype=torch.float32))
        assert torch.allclose(ours, raw.regularize_boxes('le90'), atol=1e-4)


def test_axis_aligned_rectangle_known_box():
    mask = np.zeros((40, 50), np.uint8)
    mask[10:16, 12:32] = 1  # 20 wide, 6 high: the w side is horizontal, t = 0
    assert mask_to_rbox(mask) == pytest.approx((22.0, 13.0, 20.0, 6.0, 0.0), abs=1e-5)
    vertical = np.ascontiguousarray(mask.T)  # 6 wide, 20 high: the long side is vertical
    assert mask_to_rbox(vertical) == pytest.approx((13.0, 22.0, 20.0, 6.0, -np.pi / 2), abs=1e-5)


def test_single_pixel_and_split_mask():
    mask = np.zeros((10, 10), bool)
    mask[3, 7] = True
    cx, cy, w, h, _ = mask_to_rbox(mask)
    assert (cx, cy, w, h) == pytest.approx((7.5, 3.5, 1.0, 1.0))
    mask[8, 1] = True  # a second piece: one box spans both pixel squares
    cx, cy, w, h, t = mask_to_rbox(mask)
    assert (cx, cy) == pytest.approx((4.5, 6.0))  # the hull is symmetric about this point
    squares = np.array([[7, 3], [8, 3], [7, 4], [8, 4], [1, 8], [2, 8], [1, 9], [2, 9]]) - (cx, cy)
    along = squares @ np.array([np.cos(t), np.sin(t)])
    across = squares @ np.array([-np.sin(t), np.cos(t)])
    assert np.abs(along).max() == pytest.approx(w / 2, abs=1e-4)
    assert np.abs(across).max() == pytest.approx(h / 2, abs=1e-4)
    assert w * h < 6 * 7  # tighter than the axis-aligned box of both squares


def test_rotated_rectangle_at_known_angle():
    mask = np.zeros((200, 200), np.uint8)
    corners = cv2.boxPoints(((100.0, 100.0), (120.0, 24.0), 30.0))
    cv2.fillPoly(mask, [np.round(corners).astype(np.int32)], 1)
    cx, cy, w, h, t = mask_to_rbox(mask)
    assert np.rad2deg(t) == pytest.approx(30.0, abs=1.0)
    # fillPoly covers the polygon and its boundary pixels, whose squares stick out by up to
    # (cos 30 + sin 30) / 2 + 0.5 px at each end: the box is never smaller, at most ~3 px larger.
    assert 0 <= w - 120.0 <= 3.0 and 0 <= h - 24.0 <= 3.0
    assert (cx, cy) == pytest.approx((100.5, 100.5), abs=1.0)


def test_masks_to_rboxes_bitmap_matches_single_and_errors():
    masks = np.zeros((3, 30, 40), np.uint8)
    masks[0, 2:9, 3:30] = 1
    masks[1, 20:29, 5:8] = 1
    masks[2, 10:11, 10:11] = 1
    boxes = masks_to_rboxes(BitmapMasks(masks, 30, 40)).tensor.numpy()
    for mask, box in zip(masks, boxes):
        assert box == pytest.approx(mask_to_rbox(mask), abs=1e-5)
    assert masks_to_rboxes(np.zeros((0, 5, 5), np.uint8)).tensor.shape == (0, 5)
    masks[1] = 0
    with pytest.raises(ValueError, match='empty mask at index 1'):
        masks_to_rboxes(masks)
    with pytest.raises(ValueError, match='2-D'):
        mask_to_rbox(masks)
    with pytest.raises(ValueError, match='empty mask'):
        mask_to_rbox(masks[1])
