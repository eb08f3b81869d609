"""Exact rotated IoU (``rbox_overlaps``) against shapely, on random and degenerate boxes."""
import math

import numpy as np
import pytest
import torch
from mmcv.ops import box_iou_rotated
from mmrotate.structures import RotatedBoxes
from shapely.geometry import Polygon

from a2bis_mm.structures import rbox_iou
from a2bis_mm.structures.rbox_iou import rbox_aabb_candidates, rbox_corners, rbox_overlaps


def _polygon(box) -> Polygon:
    return Polygon(rbox_corners(torch.as_tensor(np.asarray(box, dtype=np.float64)[None]))[0].numpy())


def _shapely_iou(boxes1, boxes2, aligned: bool = False, mode: str = 'iou') -> np.ndarray:
    """Reference IoU / IoF from shapely's polygon intersection (GEOS, float64)."""
    pairs = zip(boxes1, boxes2) if aligned else ((a, b) for a in boxes1 for b in boxes2)
    out = []
    for a, b in pairs:
        pa, pb = _polygon(a), _polygon(b)
        inter = pa.intersection(pb).area
        denom = pa.area if mode == 'iof' else pa.area + pb.area - inter
        out.append(inter / denom if denom > 0 else 0.0)
    out = np.array(out)
    return out if aligned else out.reshape(len(boxes1), len(boxes2))


def _random_boxes(rng: np.random.Generator, n: int, span: float = 60.0, offset: float = 0.0,
                  max_side: float = 30.0) -> np.ndarray:
    return np.concatenate([rng.uniform(offset, offset + span, (n, 2)),
                           rng.uniform(0.5, max_side, (n, 2)),
                           rng.uniform(-4, 4, (n, 1))], axis=1)


def test_corners_are_the_rotated_boxes_qbox_corners():
    """Same geometry as mmrotate's RotatedBoxes (the w side along (cos t, sin t))."""
    boxes = torch.tensor(_random_boxes(np.random.default_rng(0), 20), dtype=torch.float64)
    ours = rbox_corners(boxes)
    theirs = RotatedBoxes(boxes).convert_to('qbox').tensor.reshape(-1, 4, 2)
    for a, b in zip(ours, theirs):  # same corner set; the start corner differs
        dist = torch.cdist(a, b)
        assert dist.min(dim=1).values.max() < 1e-9
    # counter-clockwise in (x, y) axes: positive shoelace area = w * h
    nxt = ours.roll(-1, dims=1)
    area = 0.5 * (ours[..., 0] * nxt[..., 1] - ours[..., 1] * nxt[..., 0]).sum(1)
    torch.testing.assert_close(area, boxes[:, 2] * boxes[:, 3])


@pytest.mark.parametrize('span, offset, max_side', [(60.0, 0.0, 30.0), (60.0, 1e4, 30.0),
                                                    (6.0, 0.0, 3.0)])
def test_random_pairs_match_shapely(span, offset, max_side):
    rng = np.random.default_rng(1)
    b1 = _random_boxes(rng, 50, span=span, offset=offset, max_side=max_side)
    b2 = _random_boxes(rng, 40, span=span, offset=offset, max_side=max_side)
    expected = _shapely_iou(b1, b2)
    assert (expected > 0).sum() > 20  # the test also covers overlapping pairs
    ious = rbox_overlaps(torch.tensor(b1), torch.tensor(b2))
    assert ious.dtype == torch.float64 and ious.shape == (50, 40)
    np.testing.assert_allclose(ious.numpy(), expected, atol=1e-9)
    np.testing.assert_allclose(
        rbox_overlaps(torch.tensor(b1[:40]), torch.tensor(b2), aligned=True).numpy(),
        np.diag(expected[:40]), atol=1e-9)
    np.testing.assert_allclose(
        rbox_overlaps(torch.tensor(b1), torch.tensor(b2), mode='iof').numpy(),
        _shapely_iou(b1, b2, mode='iof'), atol=1e-9)


def test_agrees_with_mmcv_in_general_position():
    """Where mmcv's kernel is right (no collinear edges) both agree to float32 precision."""
    rng = np.random.default_rng(2)
    b1 = torch.tensor(_random_boxes(rng, 30), dtype=torch.float32)
    b2 = torch.tensor(_random_boxes(rng, 30), dtype=torch.float32)
    ours = rbox_overlaps(b1, b2)
    assert ours.dtype == torch.float32
    torch.testing.assert_close(ours, box_iou_rotated(b1, b2), atol=1e-5, rtol=0)


def test_collinear_edges_where_mmcv_errs():
    """A box against a copy with h + 1e-6 (or w + 1e-6) is an IoU of ~1 (mmcv#2621)."""
    rng = np.random.default_rng(3)
    boxes = torch.tensor(_random_boxes(rng, 2000, span=256, max_side=60), dtype=torch.float32)
    for col in (2, 3):
        grown = boxes.clone()
        grown[:, col] += 1e-6
        ious = rbox_overlaps(boxes, grown, aligned=True)
        assert ious.min() > 1 - 1e-5
        assert (box_iou_rotated(boxes, grown, aligned=True) < 0.9).any()  # the bug we avoid
    # the same box, a box turned by pi with w/h swapped by pi/2: identical squares of points
    b = torch.tensor([[10.0, 20.0, 30.0, 5.0, 0.3]], dtype=torch.float64)
    same = torch.cat([b, b + torch.tensor([[0, 0, 0, 0, math.pi]], dtype=torch.float64),
                      torch.tensor([[10.0, 20.0, 5.0, 30.0, 0.3 + math.pi / 2]], dtype=torch.float64)])
    torch.testing.assert_close(rbox_overlaps(b.expand(3, 5), same, aligned=True),
                               torch.ones(3, dtype=torch.float64))


@pytest.mark.parametrize('box2, expected', [
    ([2.0, 0.0, 2.0, 2.0, 0.0], 0.0),          # touching along a whole edge
    ([2.0, 2.0, 2.0, 2.0, 0.0], 0.0),          # touching at a corner
    ([1.0, 0.0, 2.0, 2.0, 0.0], 1 / 3),        # half shifted along an edge (collinear edges)
    ([0.0, 0.0, 1.0, 1.0, 0.0], 0.25),         # contained, edges parallel
    ([0.0, 0.0, 1.0, 2.0, 0.0], 0.5),          # contained, two edges shared
    ([0.0, 0.0, 2.0, 2.0, math.pi / 2], 1.0),  # same square turned by 90 degrees
    ([0.0, 0.0, 0.0, 2.0, 0.0], 0.0),          # zero width
    ([0.0, 0.0, 0.0, 0.0, 0.0], 0.0),          # zero size
])
def test_degenerate_pairs(box2, expected):
    box1 = torch.tensor([[0.0, 0.0, 2.0, 2.0, 0.0]], dtype=torch.float64)
    box2 = torch.tensor([box2], dtype=torch.float64)
    assert rbox_overlaps(box1, box2).item() == pytest.approx(expected, abs=1e-12)
    assert rbox_overlaps(box2, box1).item() == pytest.approx(expected, abs=1e-12)
    assert _shapely_iou(box1.numpy(), box2.numpy()).item() == pytest.approx(expected, abs=1e-12)


def test_touching_rotated_edges_and_nested_rotations():
    rng = np.random.default_rng(4)
    rows = []
    for t in rng.uniform(-3, 3, 50):
        u = np.array([math.cos(t), math.sin(t)])
        w, h = rng.uniform(1, 20, 2)
        c = rng.uniform(0, 50, 2)
        rows.append(([*c, w, h, t], [*(c + u * w), w, h, t]))            # side by side: 0
        rows.append(([*c, w, h, t], [*(c + u * w / 2), w, h, t]))        # half overlap: 1/3
        rows.append(([*c, w, h, t], [*c, w / 2, h, t]))                  # shared edges: 1/2
    b1 = np.array([r[0] for r in rows])
    b2 = np.array([r[1] for r in rows])
    ious = rbox_overlaps(torch.tensor(b1), torch.tensor(b2), aligned=True).numpy()
    np.testing.assert_allclose(ious, np.tile([0.0, 1 / 3, 0.5], 50), atol=1e-9)
    np.testing.assert_allclose(ious, _shapely_iou(b1, b2, aligned=True), atol=1e-9)


def test_prefilter_keeps_every_overlapping_pair():
    rng = np.random.default_rng(5)
    b1 = _random_boxes(rng, 80, span=200)
    b2 = _random_boxes(rng, 60, span=200)
    cand = rbox_aabb_candidates(torch.tensor(b1), torch.tensor(b2)).numpy()
    expected = _shapely_iou(b1, b2)
    assert not (expected > 0)[~cand].any()
    assert cand.mean() < 0.5  # on spread-out boxes most pairs are skipped
    np.testing.assert_array_equal(
        rbox_aabb_candidates(torch.tensor(b1[:60]), torch.tensor(b2), aligned=True).numpy(),
        np.diag(cand[:60]))


def test_chunking_and_empty_inputs(monkeypatch):
    rng = np.random.default_rng(6)
    b1 = torch.tensor(_random_boxes(rng, 70))
    b2 = torch.tensor(_random_boxes(rng, 30))
    full = rbox_overlaps(b1, b2)
    monkeypatch.setattr(rbox_iou, '_PAIR_CHUNK', 7)
    monkeypatch.setattr(rbox_iou, '_MASK_CHUNK', 100)
    torch.testing.assert_close(rbox_overlaps(b1, b2), full)
    assert rbox_overlaps(b1[:0], b2).shape == (0, 30)
    assert rbox_overlaps(b1, b2[:0]).shape == (70, 0)
    assert rbox_overlaps(b1[:0], b2[:0], aligned=True).shape == (0, )
    with pytest.raises(ValueError, match='aligned'):
        rbox_overlaps(b1, b2, aligned=True)
    with pytest.raises(ValueError, match='mode'):
        rbox_overlaps(b1, b2, mode='giou')
    with pytest.raises(ValueError, match=r'\(n, 5\)'):
        rbox_overlaps(b1[:, :4], b2)


@pytest.mark.skipif(not torch.cuda.is_available(), reason='no CUDA device')
def test_cuda_matches_cpu():
    rng = np.random.default_rng(7)
    b1 = torch.tensor(_random_boxes(rng, 50), dtype=torch.float32)
    b2 = torch.tensor(_random_boxes(rng, 40), dtype=torch.float32)
    out = rbox_overlaps(b1.cuda(), b2.cuda())
    assert out.is_cuda
    torch.testing.assert_close(out.cpu(), rbox_overlaps(b1, b2))
