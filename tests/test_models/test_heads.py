"""A2BISHead: losses against the formulas of docs/model.md, padding, anchors, decoding, assignment."""
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
from a2bis_mm.structures.a2b_targets import OVERLAP_SENTINEL

NUM_CLASSES = 2


def _head(**kwargs):
    """A small A2BISHead: 3 feature channels, 2 classes (4 seg channels), 8 hidden channels."""
    cfg = dict(type='A2BISHead', num_classes=NUM_CLASSES, in_channels=3, feat_channels=8)
    cfg.update(kwargs)
    return MODELS.build(cfg)


def _sample(sem: torch.Tensor, heat: torch.Tensor, boxes=(), inst=None,
            num_classes: int = NUM_CLASSES) -> DetDataSample:
    """A data sample with (h, w) class map (overlap = num_classes + 1) / heatmap, GT boxes and
    the owner map, packed as the pipeline packs them (overlap written as the sentinel)."""
    sample = DetDataSample(metainfo=dict(img_shape=(2 * sem.shape[0], 2 * sem.shape[1])))
    sample.gt_instances = InstanceData(
        bboxes=RotatedBoxes(torch.tensor(boxes, dtype=torch.float32).view(-1, 5)),
        labels=torch.zeros(len(boxes), dtype=torch.long))
    packed = sem.clone().long()
    packed[packed == num_classes + 1] = OVERLAP_SENTINEL
    sample.gt_sem_seg = PixelData(sem_seg=packed[None].to(torch.uint8))
    if inst is None:
        inst = torch.full(sem.shape, -1, dtype=torch.long)
    sample.gt_skeleton = PixelData(metainfo=dict(stride=2), heatmap=heat[None].float(),
                                   inst=inst[None])
    return sample


def _losses(head, samples, skeleton=None, seg=None, bbox=None, size=None):
    """``head.loss_by_feat`` with zero maps where none are given."""
    given = next(t for t in (skeleton, seg, bbox) if t is not None)
    b, h, w = given.shape[0], *(size or given.shape[-2:])
    skeleton = torch.zeros(b, 1, h, w) if skeleton is None else skeleton
    seg = torch.zeros(b, head.num_classes + 2, h, w) if seg is None else seg
    bbox = torch.zeros(b, 5, h, w) if bbox is None else bbox
    return head.loss_by_feat(
        skeleton, seg, bbox, batch_gt_instances=[s.gt_instances for s in samples],
        batch_gt_sem_seg=[s.gt_sem_seg for s in samples],
        batch_gt_skeleton=[s.gt_skeleton for s in samples],
        batch_img_metas=[s.metainfo for s in samples])


def _random_maps(gen, h=6, w=6, num_classes=2):
    sem = torch.randint(0, num_classes + 2, (h, w), generator=gen)
    heat = torch.rand(h, w, generator=gen) * 0.9
    heat[2, 1:4] = 1.
    return sem, heat


def test_head_shapes_and_init():
    head = _head()
    head.init_weights()
    skeleton, seg, bbox = head((torch.randn(2, 3, 8, 8), ))
    assert skeleton.shape == (2, 1, 8, 8) and seg.shape == (2, 4, 8, 8)
    assert bbox.shape == (2, 5, 8, 8)
    for out in (skeleton, seg, bbox):  # zero-init, bias-free output convs
        assert torch.equal(out, torch.zeros_like(out))
    for branch in (head.skeleton_branch, head.seg_branch, head.bbox_branch):
        assert branch.conv_out.bias is None
    assert head.seg_branch.convs[0].in_channels == 4  # features + skeleton map
    with pytest.raises(ValueError, match='num_classes is not set'):
        _head(num_classes=None)


def test_skeleton_loss_matches_formula():
    head = _head()

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
    loss = _losses(head, samples, skeleton=logits)['loss_skeleton']
    assert loss.item() == pytest.approx(spec.item(), rel=1e-5)

    # no skeleton pixel at all: only negative terms, normalised by 1, finite
    empty = [_sample(torch.zeros(6, 6), torch.zeros(6, 6))]
    loss = _losses(head, empty, skeleton=logits[:1])['loss_skeleton']
    assert torch.isfinite(loss) and loss.item() == pytest.approx(
        -(p[0] ** 2 * torch.log(1 - p[0])).sum().item(), rel=1e-5)


def test_ce_and_dice_match_formula():
    head = _head()
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 4, 6, 6, generator=gen)
    samples = [_sample(*_random_maps(gen)) for _ in range(2)]
    labels = torch.stack([head.class_map(s.gt_sem_seg) for s in samples])
    assert labels.max() == NUM_CLASSES + 1  # the sentinel became the overlap channel
    y = torch.stack([s.gt_skeleton.heatmap[0] for s in samples])
    losses = _losses(head, samples, seg=logits)

    ce = F.cross_entropy(logits, labels)
    assert losses['loss_ce'].item() == pytest.approx(2.0 * (1 + y.mean().item()) * ce.item(),
                                                      rel=1e-5)
    probs = logits.softmax(1)
    onehot = F.one_hot(labels, 4).permute(0, 3, 1, 2).float()
    g, p = onehot[:, 1:], probs[:, 1:]  # overlap channel (3) kept, background dropped
    dice = (2 * (g * p).sum((0, 2, 3)) + 1e-5) / (g.sum((0, 2, 3)) + p.sum((0, 2, 3)) + 1e-5)
    assert losses['loss_dice'].item() == pytest.approx(4.0 * (1 - dice.mean().item()), rel=1e-5)

    pixel = _losses(_head(ce_pixel_skeleton_weight=True), samples, seg=logits)['loss_ce']
    ce_map = F.cross_entropy(logits, labels, reduction='none')
    assert pixel.item() == pytest.approx(2.0 * (ce_map * (1 + y)).mean().item(), rel=1e-5)

    log_cosh = _losses(_head(dice_log_cosh=True), samples, seg=logits)['loss_dice']
    expected = 4.0 * math.log(math.cosh(1 - dice.mean().item()))
    assert log_cosh.item() == pytest.approx(expected, rel=1e-4)


def test_seg_loss_ignores_padding_and_rejects_bad_labels():
    head = _head()
    gen = torch.Generator().manual_seed(2)
    logits = torch.randn(2, 4, 8, 9, generator=gen)
    samples = [_sample(*_random_maps(gen)) for _ in range(2)]
    padded = _losses(head, samples, seg=logits)
    cropped = _losses(head, samples, seg=logits[..., :6, :6])
    for key in ('loss_ce', 'loss_dice'):
        assert padded[key].item() == pytest.approx(cropped[key].item(), rel=1e-6)

    # label 3 = class index 2 of a 3-class data set: more classes than the head has
    bad = _sample(torch.full((6, 6), 3), torch.zeros(6, 6), num_classes=3)
    with pytest.raises(ValueError, match='label 3 > num_classes=2'):
        _losses(head, [bad], seg=logits[:1])
    with pytest.raises(ValueError, match='larger than the prediction'):
        _losses(head, samples[:1], seg=logits[:1, :, :4, :4])
    other_stride = _sample(*_random_maps(gen))
    other_stride.gt_skeleton.set_metainfo(dict(stride=4))
    with pytest.raises(ValueError, match='generated at stride 4'):
        _losses(head, [other_stride], seg=logits[:1])


def _rot_head(**train_cfg):
    return _head(train_cfg=train_cfg or None)


def test_anchors_and_decoding():
    head = _rot_head()
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


def _bbox_targets(head, sample, anchors):
    return head._get_bbox_targets_single(anchors, sample.gt_instances,
                                         head.class_map(sample.gt_sem_seg), sample.gt_skeleton,
                                         (16, 16))


def test_max_iou_assignment_and_weights():
    head = _rot_head()
    sample = _two_box_case()
    anchors = head.get_anchors((16, 16), torch.device('cpu'))
    inds, gt, weights = _bbox_targets(head, sample, anchors)
    assert inds.tolist() == [10 * 16 + 10, 10 * 16 + 14]
    # the smaller enclosing box B wins at (20, 20): IoU 9/60 > 9/900
    assert gt.tolist() == [[20., 20., 10., 6., 0.], [20., 20., 30., 30., 0.]]
    iou_ab = 60 / 900
    torch.testing.assert_close(weights, torch.tensor([10 / 6 + iou_ab, 1 + iou_ab]))

    unweighted = _bbox_targets(_rot_head(use_anchor_weight=False), sample, anchors)[2]
    assert torch.equal(unweighted, torch.ones(2))

    # the loss is the weighted mean of the KLD terms of the decoded (here: anchor) boxes
    preds = torch.zeros(1, 5, 16, 16, requires_grad=True)
    loss = _losses(head, [sample], bbox=preds)['loss_bbox']
    per_anchor = MODELS.build(dict(type='A2BKLDLoss', reduction='none'))(anchors[inds], gt)
    assert loss.item() == pytest.approx(2.0 * (weights * per_anchor).mean().item(), rel=1e-6)
    loss.backward()
    assert preds.grad[0, :, 10, 10].abs().sum() > 0 and preds.grad[0, :, 1, 1].abs().sum() == 0


def test_instance_assignment():
    head = _rot_head(assign_mode='instance')
    sample = _two_box_case()
    anchors = head.get_anchors((16, 16), torch.device('cpu'))
    inds, gt, _ = _bbox_targets(head, sample, anchors)
    # owner map decides: A for both selected pixels, B for the one outside both boxes
    assert inds.tolist() == [1 * 16 + 1, 10 * 16 + 10, 10 * 16 + 14]
    assert gt[:, 2].tolist() == [10., 30., 30.]
    with pytest.raises(ValueError, match="assign_mode must be 'max_iou' or 'instance'"):
        _rot_head(assign_mode='nearest')
    with pytest.raises(ValueError, match=r"unknown train_cfg keys \['anchor_threshold'\]"):
        _rot_head(anchor_threshold=0.2)


def test_box_loss_empty_gt_and_bad_targets():
    head = _rot_head()
    preds = torch.randn(2, 5, 16, 16, requires_grad=True)
    empty = _sample(torch.zeros(16, 16), torch.zeros(16, 16))
    no_anchor = _two_box_case()
    no_anchor.gt_skeleton.heatmap.zero_()
    loss = _losses(head, [empty, no_anchor], bbox=preds)['loss_bbox']
    assert loss.item() == 0
    loss.backward()
    assert torch.equal(preds.grad, torch.zeros_like(preds))
    with pytest.raises(ValueError, match='larger than the prediction'):
        _losses(head, [no_anchor], bbox=preds[:1, :, :8, :8])


def test_predict_by_feat_blank():
    cfg = ConfigDict(score_thr=0.01, nms=dict(type='nms_rotated', iou_threshold=0.25),
                     nms_pre=2000, max_per_img=300, box_grow=2.0, mask_thr=0.5,
                     mask_postprocess=True, skeleton_gate=None)
    head = _head(test_cfg=cfg)
    seg = torch.full((1, 4, 8, 8), -100.)
    seg[:, 0] = 100.  # all background
    meta = dict(img_shape=(16, 16), ori_shape=(16, 16), scale_factor=(1., 1.))
    results = head.predict_by_feat(torch.zeros(1, 1, 8, 8), seg, torch.zeros(1, 5, 8, 8),
                                   batch_img_metas=[meta], rescale=True)
    assert len(results) == 1 and len(results[0]) == 0
    assert results[0].masks.shape[1:] == (16, 16)
    with pytest.raises(ValueError, match='needs a test_cfg'):
        _head().predict_by_feat(torch.zeros(1, 1, 8, 8), seg, torch.zeros(1, 5, 8, 8),
                                batch_img_metas=[meta])


def test_branch_parameter_counts_match_the_paper():
    """docs/model.md: C4 = 512, C = 26 -> skeleton 1,772,288, seg 1,832,192, box 1,783,808."""
    head = MODELS.build(dict(type='A2BISHead', num_classes=24, in_channels=512))
    counts = [sum(p.numel() for p in branch.parameters())
              for branch in (head.skeleton_branch, head.seg_branch, head.bbox_branch)]
    assert counts == [1772288, 1832192, 1783808]
    assert sum(p.numel() for p in head.parameters()) == sum(counts)
