"""The paper decoder (``a2b_postprocess``), NMS and box geometry on hand-made dense maps."""
import importlib.util
import math

import numpy as np
import pytest
import torch
from mmcv.ops import box_iou_rotated, nms_rotated
from mmengine.config import ConfigDict
from mmrotate.structures import RotatedBoxes
from scipy import ndimage

from a2bis_mm.models.task_modules import build_decoder, rotated_nms
from a2bis_mm.models.task_modules.paper_decoder import _fill_holes, a2b_postprocess
from a2bis_mm.structures import rescale_rboxes, square_intersects_rbox

H = W = 64  # feature map; input 128 x 128 at stride 2
NUM_CLASSES = 2  # channels: 0 background, 1, 2, 3 overlap
OVERLAP = NUM_CLASSES + 1


def make_cfg(**kwargs) -> ConfigDict:
    cfg = dict(score_thr=0.01, nms=dict(type='nms_rotated', iou_threshold=0.25), nms_pre=2000,
               max_per_img=300, box_grow=2.0, mask_thr=0.5, mask_postprocess=False,
               skeleton_gate=None)
    cfg.update(kwargs)
    return ConfigDict(cfg)


class Maps:
    """Dense maps built by painting feature-pixel regions; background elsewhere."""

    def __init__(self) -> None:
        self.seg = torch.zeros(NUM_CLASSES + 2, H, W)
        self.seg[0] = 1
        self.skeleton = torch.zeros(1, H, W)
        rows, cols = torch.meshgrid(torch.arange(H), torch.arange(W), indexing='ij')
        self.rboxes = torch.stack([2 * cols, 2 * rows, torch.full_like(rows, 3),
                                   torch.full_like(rows, 3), torch.zeros_like(rows)], -1).float()

    def paint(self, rows: slice, cols: slice, label: int, prob: float, skeleton: float = 0.0,
              box=None) -> None:
        self.seg[:, rows, cols] = 0
        self.seg[label, rows, cols] = prob
        self.seg[0, rows, cols] = 1 - prob
        self.skeleton[0, rows, cols] = skeleton
        if box is not None:
            self.rboxes[rows, cols] = torch.tensor(box, dtype=torch.float32)

    def run(self, cfg=None, rescale=False, meta=None):
        meta = meta or dict(img_shape=(2 * H, 2 * W), ori_shape=(2 * H, 2 * W),
                            pad_shape=(2 * H, 2 * W), scale_factor=(1.0, 1.0))
        return a2b_postprocess(self.skeleton, self.seg, self.rboxes.view(-1, 5), meta,
                               cfg or make_cfg(), rescale=rescale)


def block_mask(rows: slice, cols: slice, scale: int = 2, size=(2 * H, 2 * W)) -> torch.Tensor:
    """The input-resolution block of feature pixels rows x cols (each pixel -> scale x scale)."""
    mask = torch.zeros(size, dtype=torch.bool)
    mask[rows.start * scale:rows.stop * scale, cols.start * scale:cols.stop * scale] = True
    return mask


# rod A: horizontal, feature rows 10-11, cols 10-29 -> input x in [20, 60], y in [20, 24]
ROD_A = (slice(10, 12), slice(10, 30))
BOX_A = (40.0, 22.0, 40.0, 4.0, 0.0)
# rod B: vertical, feature rows 30-49, cols 50-51 -> input x in [100, 104], y in [60, 100]
ROD_B = (slice(30, 50), slice(50, 52))
BOX_B = (102.0, 80.0, 40.0, 4.0, math.pi / 2)


def two_rods() -> Maps:
    maps = Maps()
    maps.paint(*ROD_A, label=1, prob=0.9, skeleton=0.3, box=BOX_A)
    maps.paint(slice(10, 11), ROD_A[1], label=1, prob=0.9, skeleton=0.7)  # its centre line
    maps.paint(*ROD_B, label=2, prob=0.8, skeleton=0.5, box=BOX_B)
    return maps


def test_two_separated_rods():
    results = two_rods().run()
    assert len(results) == 2
    assert isinstance(results.bboxes, RotatedBoxes)
    assert results.labels.tolist() == [0, 1]
    assert results.scores.tolist() == pytest.approx([0.9 * 0.7, 0.8 * 0.5])
    # boxes grown by 2 px in w and h
    torch.testing.assert_close(results.bboxes.tensor,
                               torch.tensor([[40.0, 22.0, 42.0, 6.0, 0.0],
                                             [102.0, 80.0, 42.0, 6.0, math.pi / 2]]))
    assert results.masks.dtype == torch.bool and results.masks.shape == (2, 2 * H, 2 * W)
    # each feature pixel becomes exactly its 2 x 2 input block
    assert results.masks.sum((1, 2)).tolist() == [20 * 2 * 4, 2 * 20 * 4]
    assert torch.equal(results.masks[0], block_mask(*ROD_A))
    assert torch.equal(results.masks[1], block_mask(*ROD_B))


def crossing_rods() -> Maps:
    """Horizontal rod (class 1) crossing a vertical rod (class 2); the crossing is overlap."""
    maps = Maps()
    maps.paint(slice(20, 22), slice(10, 50), label=1, prob=0.9, skeleton=0.8,
               box=(60.0, 42.0, 80.0, 4.0, 0.0))
    maps.paint(slice(10, 50), slice(30, 32), label=2, prob=0.9, skeleton=0.6,
               box=(62.0, 60.0, 80.0, 4.0, math.pi / 2))
    maps.paint(slice(20, 22), slice(30, 32), label=OVERLAP, prob=0.9, skeleton=0.9)
    return maps


def test_crossing_rods_share_overlap_and_drop_other_class():
    maps = crossing_rods()
    results = maps.run()
    assert results.labels.tolist() == [0, 1]
    cls_map = maps.seg.argmax(0)
    feat_masks = results.masks[:, ::2, ::2]  # sample at each feature pixel's block
    overlap = cls_map == OVERLAP
    for k, label in enumerate((1, 2)):
        # all own-class pixels and the overlap pixels, nothing of the other class even where
        # the other rod lies inside this (grown) box
        assert torch.equal(feat_masks[k], (cls_map == label) | overlap)
    assert overlap.sum() == 4 and bool((feat_masks[0] & feat_masks[1]).eq(overlap).all())
    # the horizontal box does reach class-2 pixels next to the crossing: they were dropped
    box = results.bboxes.tensor[0]
    assert abs(2 * 19 - box[1]) <= box[3] / 2 + 1.5  # anchor row 19 touches the box


def test_isolated_box_keeps_pixels_of_any_class():
    maps = Maps()
    maps.paint(*ROD_A, label=1, prob=0.9, skeleton=0.7, box=BOX_A)
    # class-2 pixels inside A's box with no skeleton: not candidates, no box of their own
    maps.paint(slice(10, 12), slice(15, 17), label=2, prob=0.9, skeleton=0.0)
    results = maps.run()
    assert len(results) == 1
    assert torch.equal(results.masks[0], block_mask(*ROD_A))
    # the same pixels are dropped once another kept box overlaps A
    maps.paint(slice(10, 12), slice(27, 30), label=2, prob=0.9, skeleton=0.5,
               box=(56.0, 22.0, 6.0, 4.0, 0.0))
    results = maps.run()
    assert len(results) == 2
    feat = results.masks[0, ::2, ::2]
    assert not feat[10:12, 15:17].any() and not feat[10:12, 27:30].any()
    assert feat[10:12, 10:15].all() and feat[10:12, 17:27].all()


def test_rescale_doubles_boxes_and_masks():
    meta = dict(img_shape=(2 * H, 2 * W), ori_shape=(4 * H, 4 * W), pad_shape=(2 * H, 2 * W),
                scale_factor=(0.5, 0.5))
    results = two_rods().run(rescale=True, meta=meta)
    torch.testing.assert_close(results.bboxes.tensor,
                               torch.tensor([[80.0, 44.0, 84.0, 12.0, 0.0],
                                             [204.0, 160.0, 84.0, 12.0, math.pi / 2]]))
    assert results.masks.shape == (2, 4 * H, 4 * W)
    # each feature pixel -> its 4 x 4 block of original pixels, except the rod's 4 outer corner
    # pixels, where the bilinear weight is 0.625² < 0.5
    for mask, rod in zip(results.masks, (ROD_A, ROD_B)):
        block = block_mask(*rod, scale=4, size=(4 * H, 4 * W))
        assert not (mask & ~block).any() and mask.sum() == block.sum() - 4
        ys, xs = block.nonzero(as_tuple=True)
        assert not mask[ys.min(), xs.min()] and mask[ys.min(), xs.min() + 1]


def test_rescale_crops_padding_and_anisotropic_boxes():
    # input 100 x 120 inside a 128 x 128 padded batch; original 200 x 480
    maps = two_rods()
    meta = dict(img_shape=(100, 120), ori_shape=(200, 480), pad_shape=(128, 128),
                scale_factor=(0.25, 0.5))
    results = maps.run(rescale=True, meta=meta)
    assert results.masks.shape == (2, 200, 480)
    box_a = results.bboxes.tensor[0]
    torch.testing.assert_close(box_a, torch.tensor([160.0, 44.0, 168.0, 12.0, 0.0]))
    # rod B lies at input y 60-100 and x 100-104: its rows beyond img_shape (y >= 100) are padding
    assert results.masks[1].any(dim=1).nonzero().max() == 199


def test_rescale_rboxes_maps_sides_as_vectors():
    box = torch.tensor([[10.0, 20.0, 8.0, 2.0, 0.5]])
    out = rescale_rboxes(box, (0.5, 0.25))
    torch.testing.assert_close(out[0, :2], torch.tensor([20.0, 80.0]))
    # the w side (w cos t, w sin t) maps to (w cos t / sx, w sin t / sy)
    w_side = torch.tensor([8 * math.cos(0.5) / 0.5, 8 * math.sin(0.5) / 0.25])
    torch.testing.assert_close(out[0, 2] * torch.stack([out[0, 4].cos(), out[0, 4].sin()]),
                               w_side)
    h_side = torch.tensor([-2 * math.sin(0.5) / 0.5, 2 * math.cos(0.5) / 0.25])
    torch.testing.assert_close(out[0, 3], h_side.norm())
    # isotropic: exact scaling, angle kept
    torch.testing.assert_close(rescale_rboxes(box, (0.5, 0.5)),
                               torch.tensor([[20.0, 40.0, 16.0, 4.0, 0.5]]))


@pytest.mark.parametrize('rescale', [False, True])
def test_empty_maps_give_zero_instances(rescale):
    maps = Maps()
    maps.paint(slice(5, 9), slice(5, 9), label=OVERLAP, prob=0.9, skeleton=0.9)  # not a class
    meta = dict(img_shape=(128, 128), ori_shape=(300, 200), pad_shape=(128, 128),
                scale_factor=(0.64, 128 / 300))
    results = maps.run(rescale=rescale, meta=meta)
    assert len(results) == 0
    assert results.bboxes.tensor.shape == (0, 5) and isinstance(results.bboxes, RotatedBoxes)
    assert results.scores.shape == (0, ) and results.scores.dtype == torch.float32
    assert results.labels.shape == (0, ) and results.labels.dtype == torch.long
    assert results.masks.dtype == torch.bool
    assert results.masks.shape == ((0, 300, 200) if rescale else (0, 128, 128))


def test_thresholds_gate_and_caps():
    maps = two_rods()
    assert maps.run(make_cfg(score_thr=0.5)).labels.tolist() == [0]
    assert maps.run(make_cfg(skeleton_gate=0.6)).labels.tolist() == [0]
    assert maps.run(make_cfg(max_per_img=1)).labels.tolist() == [0]
    # nms_pre keeps the best candidates: only rod A's centre line survives the cut
    assert maps.run(make_cfg(nms_pre=20)).labels.tolist() == [0]
    # candidates in the padding (beyond img_shape) are ignored
    meta = dict(img_shape=(60, 128), ori_shape=(60, 128), pad_shape=(128, 128),
                scale_factor=(1.0, 1.0))
    assert maps.run(meta=meta).labels.tolist() == [0]


def test_mask_postprocess_fills_holes_and_smooths():
    maps = Maps()
    rows, cols = slice(20, 30), slice(20, 40)
    maps.paint(rows, cols, label=1, prob=0.9, skeleton=0.7, box=(60.0, 50.0, 40.0, 20.0, 0.0))
    maps.paint(slice(24, 26), slice(28, 30), label=0, prob=0.9)  # a hole
    raw = maps.run(make_cfg(mask_postprocess=False)).masks[0]
    clean = maps.run(make_cfg(mask_postprocess=True)).masks[0]
    assert not raw[48:52, 56:60].any() and clean[48:52, 56:60].all()
    # the 3x3 close and 5x5 majority (stride 2, no resize) only round the corners off
    full = block_mask(rows, cols)
    assert clean[~full].sum() == 0
    assert full.sum() - 12 <= clean.sum() < full.sum()


def test_fill_holes_equals_scipy():
    rng = np.random.default_rng(0)
    for _ in range(20):
        mask = ndimage.binary_opening(rng.random((30, 40)) > 0.4)
        assert np.array_equal(_fill_holes(mask), ndimage.binary_fill_holes(mask))


def test_sat_hit_agrees_with_rotated_iou():
    gen = torch.Generator().manual_seed(0)
    n = 2000
    boxes = torch.rand(n, 5, generator=gen) * torch.tensor([20, 20, 14, 14, 2 * math.pi]) + \
        torch.tensor([0, 0, 1, 1, -math.pi])
    centers = torch.rand(n, 2, generator=gen) * 20
    anchors = torch.cat([centers, torch.tensor([[3.0, 3.0, 0.0]]).expand(n, 3)], dim=1)
    hit = square_intersects_rbox(centers, boxes)
    iou = box_iou_rotated(anchors, boxes, aligned=True)
    # away from tangency: the answer does not change when the square grows or shrinks by 0.2 px
    clear = square_intersects_rbox(centers, boxes, 1.7) == square_intersects_rbox(
        centers, boxes, 1.3)
    assert clear.float().mean() > 0.9
    assert 0.1 < hit[clear].float().mean() < 0.9
    assert torch.equal(hit[clear], iou[clear] > 1e-4)


def test_rotated_nms_equals_mmcv():
    gen = torch.Generator().manual_seed(1)
    # clusters of jittered boxes, like the dense candidates of neighbouring nuclei
    centers = torch.rand(40, 5, generator=gen) * torch.tensor([200, 200, 20, 10, math.pi]) + \
        torch.tensor([0, 0, 4, 2, 0])
    boxes = centers.repeat_interleave(30, 0)
    boxes += torch.randn(boxes.shape, generator=gen) * torch.tensor([2.0, 2.0, 2.0, 1.0, 0.2])
    boxes[:, 2:4] = boxes[:, 2:4].abs() + 0.5
    scores = torch.rand(len(boxes), generator=gen)  # no ties: mmcv sorts them unstably
    for thr in (0.1, 0.25, 0.5):
        _, expected = nms_rotated(boxes, scores, thr)
        assert torch.equal(rotated_nms(boxes, scores, thr, chunk=100), expected)
    assert torch.equal(rotated_nms(boxes, scores, 0.25, max_num=7),
                       nms_rotated(boxes, scores, 0.25)[1][:7])


def test_bad_inputs_raise():
    maps = two_rods()
    meta = dict(img_shape=(128, 128))
    with pytest.raises(ValueError, match='skeleton must be'):
        a2b_postprocess(maps.skeleton[:, :10], maps.seg, maps.rboxes.view(-1, 5), meta,
                        make_cfg())
    with pytest.raises(ValueError, match='rboxes must be'):
        a2b_postprocess(maps.skeleton, maps.seg, maps.rboxes, meta, make_cfg())
    with pytest.raises(ValueError, match='seg must be'):
        a2b_postprocess(maps.skeleton, maps.seg[:2], maps.rboxes.view(-1, 5), meta, make_cfg())
    with pytest.raises(KeyError, match='ori_shape'):
        a2b_postprocess(maps.skeleton, maps.seg, maps.rboxes.view(-1, 5), meta, make_cfg(),
                        rescale=True)
    # no scale_factor (no Resize in the test pipeline): rescaling is the identity
    meta_no_resize = dict(img_shape=(128, 128), ori_shape=(128, 128))
    rescaled = a2b_postprocess(maps.skeleton, maps.seg, maps.rboxes.view(-1, 5), meta_no_resize,
                               make_cfg(), rescale=True)
    plain = a2b_postprocess(maps.skeleton, maps.seg, maps.rboxes.view(-1, 5), meta_no_resize,
                            make_cfg())
    assert len(plain) == 2
    torch.testing.assert_close(rescaled.bboxes.tensor, plain.bboxes.tensor)
    assert torch.equal(rescaled.masks, plain.masks)
    with pytest.raises(ValueError, match='cfg.nms'):
        a2b_postprocess(maps.skeleton, maps.seg, maps.rboxes.view(-1, 5), meta,
                        make_cfg(nms=dict(type='nms', iou_threshold=0.5)))


@pytest.mark.parametrize('decoder', ['paper', 'vote'])
def test_real_label_map_round_trip(shared_data, repo_root, decoder):
    """Noise-free maps of a real consep256 patch give back its nuclei (benchmark builder)."""
    spec = importlib.util.spec_from_file_location(
        'benchmark_postprocess', repo_root / 'tools' / 'analysis_tools' / 'benchmark_postprocess.py')
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    inst, cls, num_classes = bench.load_label_maps(shared_data, 'consep256', 'train_18_011')
    maps = bench.build_dense_maps(inst, cls, num_classes, noise=0.0)
    size = inst.shape
    meta = dict(img_shape=size, ori_shape=size, pad_shape=size, scale_factor=(1.0, 1.0))
    results = build_decoder(dict(decoder=decoder), num_classes=num_classes).decode(
        {k: maps[k] for k in ('skeleton', 'seg', 'rboxes')}, meta)
    num_gt = len(maps['gt_bboxes'])
    assert abs(len(results) - num_gt) <= 0.1 * num_gt
    # most predicted masks match a GT nucleus at IoU > 0.5
    ids = np.unique(inst)[1:]
    gt = torch.from_numpy(inst[None] == ids[:, None, None]).flatten(1).float()
    pred = results.masks.flatten(1).float()
    inter = pred @ gt.T
    union = pred.sum(1, keepdim=True) + gt.sum(1) - inter
    best = (inter / union).max(dim=1).values
    assert (best > 0.5).float().mean() > 0.8
