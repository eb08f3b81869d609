"""A2B-IS heads: losses against the spec formulas, padding, anchors, decoding and assignment."""
import math

import pytest
import torch
import torch.nn.functional as F
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmengine.config import ConfigDict
from mmengine.structures import InstanceData, PixelData
from mmrotate.structures import RotatedBoxes

import a2bis_mm  # noqa: F401  registers the heads


def _sample(sem: torch.Tensor, heat: torch.Tensor, boxes=(), inst=None) -> DetDataSample:
    """A data sample with (h, w) class map / heatmap, GT boxes and the owner map."""
    sample = DetDataSample(metainfo=dict(img_shape=(2 * sem.shape[0], 2 * sem.shape[1])))
    sample.gt_instances = InstanceData(
        bboxes=RotatedBoxes(torch.tensor(boxes, dtype=torch.float32).view(-1, 5)),
        labels=torch.zeros(len(boxes), dtype=torch.long))
    sample.gt_sem_seg = PixelData(sem_seg=sem[None].to(torch.uint8))
    if inst is None:
        inst = torch.full(sem.shape, -1, dtype=torch.long)
    sample.gt_skeleton = PixelData(heatmap=heat[None].float(), inst=inst[None])
    return sample


def _random_maps(gen, h=6, w=6, num_classes=2):
    sem = torch.randint(0, num_classes + 2, (h, w), generator=gen)
    heat = torch.rand(h, w, generator=gen) * 0.9
    heat[2, 1:4] = 1.
    return sem, heat


def test_skeleton_head_shapes_init_and_spec_loss():
    head = MODELS.build(dict(type='A2BSkeletonHead', in_channels=4, feat_channels=8))
    head.init_weights()
    x = torch.randn(2, 4, 8, 8)
    logits = head(x)
    assert logits.shape == (2, 1, 8, 8)
    assert torch.equal(logits, torch.zeros_like(logits))  # zero-init, bias-free output conv
    assert head.conv_out.bias is None

    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 1, 8, 8, generator=gen)
    samples = [_sample(*_random_maps(gen)) for _ in range(2)]  # 6x6 targets, padded to 8x8
    p = logits.sigmoid()
    y = torch.zeros(2, 1, 8, 8)
    for i, s in enumerate(samples):
        y[i, :, :6, :6] = s.gt_skeleton.heatmap
    pos = y == 1
    spec = -(((1 - p) ** 2 * torch.log(p))[pos].sum()
             + ((1 - y) ** 4 * p ** 2 * torch.log(1 - p))[~pos].sum()) / pos.sum()
    loss = head.loss(logits, samples)['loss_skeleton']
    assert loss.item() == pytest.approx(spec.item(), rel=1e-5)

    # no skeleton pixel at all: only negative terms, normalised by 1, finite
    empty = [_sample(torch.zeros(6, 6), torch.zeros(6, 6))]
    loss = head.loss(logits[:1], empty)['loss_skeleton']
    assert torch.isfinite(loss) and loss.item() == pytest.approx(
        -(p[0] ** 2 * torch.log(1 - p[0])).sum().item(), rel=1e-5)


def _seg_head(**kwargs):
    return MODELS.build(dict(type='A2BSegHead', in_channels=3, num_classes=2, feat_channels=8,
                             **kwargs))


def test_seg_head_ce_and_dice_match_spec():
    head = _seg_head()
    x = torch.randn(1, 4, 6, 6)  # in_channels + 1 skeleton channel
    assert head(x).shape == (1, 4, 6, 6) and head.conv_out.bias is None

    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 4, 6, 6, generator=gen)
    samples = [_sample(*_random_maps(gen)) for _ in range(2)]
    labels = torch.stack([s.gt_sem_seg.sem_seg[0].long() for s in samples])
    y = torch.stack([s.gt_skeleton.heatmap[0] for s in samples])
    losses = head.loss(logits, samples)

    ce = F.cross_entropy(logits, labels)
    assert losses['loss_ce'].item() == pytest.approx(2.0 * (1 + y.mean().item()) * ce.item(),
                                                      rel=1e-5)
    probs = logits.softmax(1)
    onehot = F.one_hot(labels, 4).permute(0, 3, 1, 2).float()
    g, p = onehot[:, 1:], probs[:, 1:]  # overlap channel (3) kept, background dropped
    dice = (2 * (g * p).sum((0, 2, 3)) + 1e-5) / (g.sum((0, 2, 3)) + p.sum((0, 2, 3)) + 1e-5)
    assert losses['loss_dice'].item() == pytest.approx(4.0 * (1 - dice.mean().item()), rel=1e-5)

    pixel = _seg_head(ce_pixel_skeleton_weight=True).loss(logits, samples)['loss_ce']
    ce_map = F.cross_entropy(logits, labels, reduction='none')
    assert pixel.item() == pytest.approx(2.0 * (ce_map * (1 + y)).mean().item(), rel=1e-5)

    log_cosh = _seg_head(dice_log_cosh=True).loss(logits, samples)['loss_dice']
    expected = 4.0 * math.log(math.cosh(1 - dice.mean().item()))
    assert log_cosh.item() == pytest.approx(expected, rel=1e-4)


def test_seg_head_ignores_padding_and_rejects_bad_labels():
    head = _seg_head()
    gen = torch.Generator().manual_seed(2)
    logits = torch.randn(2, 4, 8, 9, generator=gen)
    samples = [_sample(*_random_maps(gen)) for _ in range(2)]
    padded = head.loss(logits, samples)
    cropped = head.loss(logits[..., :6, :6], samples)
    for key in ('loss_ce', 'loss_dice'):
        assert padded[key].item() == pytest.approx(cropped[key].item(), rel=1e-6)

    bad = _sample(torch.full((6, 6), 4), torch.zeros(6, 6))
    with pytest.raises(ValueError, match='overlap label 3'):
        head.loss(logits[:1], [bad])
    with pytest.raises(ValueError, match='larger than the prediction'):
        head.loss(logits[:1, :, :4, :4], samples[:1])


def _rot_head(**train_cfg):
    return MODELS.build(
        dict(type='A2BRotatedHead', in_channels=3, num_classes=2, feat_channels=8,
             train_cfg=train_cfg or None))


def test_rotated_head_anchors_and_decoding():
    head = _rot_head()
    assert head(torch.randn(1, 4, 5, 5)).abs().sum() == 0  # zero-init: boxes == anchors
    anchors = head.get_anchors((2, 3), torch.device('cpu'))
    expected = torch.tensor([[0., 0.], [2., 0.], [4., 0.], [0., 2.], [2., 2.], [4., 2.]])
    assert torch.equal(anchors[:, :2], expected)  # (s*c, s*r), row-major
    assert torch.equal(anchors[:, 2:], torch.tensor([3., 3., 0.]).expand(6, 3))

    deltas = torch.tensor([[0.5, -1., math.log(4.), -math.log(2.), 0.3]]).expand(6, 5)
    boxes = head.decode(anchors, deltas)
    assert isinstance(boxes, torch.Tensor)
    manual = torch.stack([anchors[:, 0] + 1.5, anchors[:, 1] - 3., torch.full((6, ), 12.),
                          torch.full((6, ), 1.5), torch.full((6, ), 0.3)], 1)
    torch.testing.assert_close(boxes, manual)
    # no clamping in the working range: a 1000 px box decodes exactly
    big = head.decode(anchors[:1], torch.tensor([[0., 0., math.log(1000 / 3), 0., 4.]]))
    assert big[0, 2].item() == pytest.approx(1000., rel=1e-5) and big[0, 4].item() == 4.


def _two_box_case():
    """A 30x30 box A and a 10x6 box B inside it, on a 16x16 feature map (stride 2)."""
    boxes = [[20., 20., 30., 30., 0.], [20., 20., 10., 6., 0.]]
    sem = torch.zeros(16, 16, dtype=torch.long)
    sem[3:13, 3:13] = 1
    heat = torch.zeros(16, 16)
    heat[10, 10] = 1.   # input (20, 20): inside A and B
    heat[10, 14] = 0.5  # input (28, 20): inside A only
    heat[1, 1] = 1.     # input (2, 2): outside both -> IoU 0, ignored
    heat[5, 5] = 0.1    # below anchor_thr
    heat[6, 6] = 1.
    sem[6, 6] = 3       # overlap class: excluded
    inst = torch.full((16, 16), -1, dtype=torch.long)
    inst[10, 10], inst[10, 14], inst[1, 1] = 0, 0, 1
    return _sample(sem, heat, boxes, inst)


def test_rotated_head_max_iou_assignment_and_weights():
    head = _rot_head()
    sample = _two_box_case()
    anchors = head.get_anchors((16, 16), torch.device('cpu'))
    inds, gt, weights = head._get_targets_single(
        anchors, sample.gt_instances, sample.gt_sem_seg, sample.gt_skeleton, (16, 16))
    assert inds.tolist() == [10 * 16 + 10, 10 * 16 + 14]
    # the smaller enclosing box B wins at (20, 20): IoU 9/60 > 9/900
    assert gt.tolist() == [[20., 20., 10., 6., 0.], [20., 20., 30., 30., 0.]]
    iou_ab = 60 / 900
    torch.testing.assert_close(weights, torch.tensor([10 / 6 + iou_ab, 1 + iou_ab]))

    unweighted = _rot_head(use_anchor_weight=False)._get_targets_single(
        anchors, sample.gt_instances, sample.gt_sem_seg, sample.gt_skeleton, (16, 16))[2]
    assert torch.equal(unweighted, torch.ones(2))

    # the loss is the weighted mean of the KLD terms of the decoded (here: anchor) boxes
    preds = torch.zeros(1, 5, 16, 16, requires_grad=True)
    loss = head.loss(preds, [sample])['loss_bbox']
    per_anchor = MODELS.build(dict(type='A2BKLDLoss', reduction='none'))(anchors[inds], gt)
    assert loss.item() == pytest.approx(2.0 * (weights * per_anchor).mean().item(), rel=1e-6)
    loss.backward()
    assert preds.grad[0, :, 10, 10].abs().sum() > 0 and preds.grad[0, :, 1, 1].abs().sum() == 0


def test_rotated_head_instance_assignment():
    head = _rot_head(assign_mode='instance')
    sample = _two_box_case()
    anchors = head.get_anchors((16, 16), torch.device('cpu'))
    inds, gt, _ = head._get_targets_single(
        anchors, sample.gt_instances, sample.gt_sem_seg, sample.gt_skeleton, (16, 16))
    # owner map decides: A for both selected pixels, B for the one outside both boxes
    assert inds.tolist() == [1 * 16 + 1, 10 * 16 + 10, 10 * 16 + 14]
    assert gt[:, 2].tolist() == [10., 30., 30.]
    with pytest.raises(ValueError, match="assign_mode must be 'max_iou' or 'instance'"):
        _rot_head(assign_mode='nearest')
    with pytest.raises(ValueError, match=r"unknown train_cfg keys \['anchor_threshold'\]"):
        _rot_head(anchor_threshold=0.2)


def test_rotated_head_empty_gt_and_bad_targets():
    head = _rot_head()
    preds = torch.randn(2, 5, 16, 16, requires_grad=True)
    empty = _sample(torch.zeros(16, 16), torch.zeros(16, 16))
    no_anchor = _two_box_case()
    no_anchor.gt_skeleton.heatmap.zero_()
    loss = head.loss(preds, [empty, no_anchor])['loss_bbox']
    assert loss.item() == 0
    loss.backward()
    assert torch.equal(preds.grad, torch.zeros_like(preds))
    with pytest.raises(ValueError, match='must be equal and fit the feature map'):
        head.loss(preds[:1, :, :8, :8], [no_anchor])


def test_rotated_head_predict_by_feat_blank():
    head = _rot_head()
    cfg = ConfigDict(score_thr=0.01, nms=dict(type='nms_rotated', iou_threshold=0.25),
                     nms_pre=2000, max_per_img=300, box_grow=2.0, mask_thr=0.5,
                     mask_postprocess=True, skeleton_gate=None)
    seg = torch.zeros(1, 4, 8, 8)
    seg[:, 0] = 1  # all background
    meta = dict(img_shape=(16, 16), ori_shape=(16, 16), scale_factor=(1., 1.))
    results = head.predict_by_feat(torch.zeros(1, 5, 8, 8), seg, torch.full((1, 1, 8, 8), 0.5),
                                   [meta], cfg=cfg, rescale=True)
    assert len(results) == 1 and len(results[0]) == 0
    assert results[0].masks.shape[1:] == (16, 16)
    with pytest.raises(ValueError, match='needs a test_cfg'):
        head.predict_by_feat(torch.zeros(1, 5, 8, 8), seg, seg[:, :1], [meta])


def test_head_parameter_counts_match_spec():
    """Spec §2: C4 = 512, C = 26 -> skeleton 1,772,288, seg 1,832,192, box 1,783,808."""
    counts = [
        sum(p.numel() for p in MODELS.build(cfg).parameters()) for cfg in (
            dict(type='A2BSkeletonHead', in_channels=512),
            dict(type='A2BSegHead', in_channels=512, num_classes=24),
            dict(type='A2BRotatedHead', in_channels=512, num_classes=24))
    ]
    assert counts == [1772288, 1832192, 1783808]
