"""The metric classes through mmengine's Evaluator give the numbers of the plain functions."""
import cv2
import numpy as np
import pytest
import torch
from mmdet.structures import DetDataSample
from mmdet.structures.mask import BitmapMasks, PolygonMasks, encode_mask_results
from mmengine.evaluator import Evaluator
from mmengine.registry import init_default_scope
from mmengine.structures import InstanceData

import a2bis_mm  # noqa: F401  registers the metrics
from a2bis_mm.evaluation.functional import (
    bpq_mpq,
    coco_mask_ap,
    paint_instances,
    per_image_pq,
    rbox_ap,
)
from a2bis_mm.structures import masks_to_rboxes

CLASSES = ('other', 'inflammatory', 'epithelial')
H, W = 64, 72


def ellipse(rng):
    canvas = np.zeros((H, W), np.uint8)
    cv2.ellipse(canvas, (int(rng.integers(8, W - 8)), int(rng.integers(8, H - 8))),
                (int(rng.integers(3, 9)), int(rng.integers(3, 9))), float(rng.uniform(0, 180)), 0,
                360, 1, -1)
    return canvas > 0


def make_samples(seed=0):
    """Four images: rotated/horizontal predicted boxes, RLE predicted masks, polygon GT masks."""
    rng = np.random.default_rng(seed)
    samples, arrays = [], []
    for i in range(4):
        gt_masks = np.stack([ellipse(rng) for _ in range(5)])
        gt_labels = rng.integers(0, len(CLASSES), 5)
        keep = rng.random(5) < 0.8
        pred_masks = np.concatenate([
            np.roll(gt_masks[keep], int(rng.integers(-2, 3)), axis=2),
            ellipse(rng)[None]  # a FP
        ])
        pred_labels = np.concatenate([gt_labels[keep], [int(rng.integers(0, len(CLASSES)))]])
        flip = rng.random(len(pred_labels)) < 0.2
        pred_labels = np.where(flip, (pred_labels + 1) % len(CLASSES), pred_labels)
        scores = rng.uniform(0.3, 1.0, len(pred_labels))  # some fall below score_thr = 0.5
        sample = DetDataSample(metainfo=dict(img_id=i, img_path=f'img{i}.png', ori_shape=(H, W),
                                             tissue=('colon', 'breast')[i % 2]))
        if i == 3:  # GT as polygons (contours of the same masks)
            polys = [[c.reshape(-1).astype(float) for c in cv2.findContours(
                m.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)[0]] for m in gt_masks]
            gt_mask_struct = PolygonMasks(polys, H, W)
            gt_masks = gt_mask_struct.to_ndarray().astype(bool)
        else:
            gt_mask_struct = BitmapMasks(gt_masks, H, W)
        gt = InstanceData(masks=gt_mask_struct, labels=torch.as_tensor(gt_labels))
        if i % 2 == 0:
            gt.bboxes = masks_to_rboxes(gt_masks)
        else:
            gt.bboxes = BitmapMasks(gt_masks, H, W).get_bboxes(dst_type='hbox')
        pred_rboxes = masks_to_rboxes(pred_masks)
        pred = InstanceData(scores=torch.as_tensor(scores, dtype=torch.float32),
                            labels=torch.as_tensor(pred_labels))
        if i == 2:
            pred.masks = encode_mask_results(pred_masks)  # mmdet's RLE-encoded results
        else:
            pred.masks = torch.as_tensor(pred_masks)
        if i == 1:  # an mmdet baseline: horizontal boxes only
            pred.bboxes = BitmapMasks(pred_masks, H, W).get_bboxes(dst_type='hbox').tensor
        else:
            pred.bboxes = pred_rboxes
        sample.gt_instances = gt
        sample.pred_instances = pred
        samples.append(sample)
        arrays.append(dict(gt_masks=gt_masks, gt_labels=gt_labels, pred_masks=pred_masks,
                           pred_labels=pred_labels, scores=scores.astype(np.float32),
                           tissue=sample.tissue))
    return samples, arrays


@pytest.fixture
def evaluator():
    init_default_scope('mmdet')
    ev = Evaluator([dict(type='PanopticQualityMetric'), dict(type='InstanceAP50Metric')])
    ev.dataset_meta = dict(classes=CLASSES)
    return ev


def test_evaluator_matches_functions(evaluator):
    samples, arrays = make_samples()
    evaluator.process(samples[:2])
    evaluator.process(samples[2:])
    metrics = evaluator.evaluate(len(samples))

    per_image = []
    for a in arrays:
        true_inst, true_cls = paint_instances(a['gt_masks'], np.zeros(len(a['gt_masks'])),
                                              a['gt_labels'])
        keep = a['scores'] >= 0.5
        pred_inst, pred_cls = paint_instances(a['pred_masks'][keep], a['scores'][keep],
                                              a['pred_labels'][keep])
        per_image.append(per_image_pq(true_inst, true_cls, pred_inst, pred_cls, len(CLASSES)))
    pq = bpq_mpq(per_image, [a['tissue'] for a in arrays])
    assert metrics['pq/bPQ'] == pytest.approx(pq['bPQ'], abs=1e-9)
    assert metrics['pq/mPQ'] == pytest.approx(pq['mPQ'], abs=1e-9)
    assert metrics['pq/mPQ+'] == pytest.approx(pq['mPQ+'], abs=1e-9)
    for name, value in zip(CLASSES, pq['class_PQ']):
        assert metrics[f'pq/PQ_{name}'] == pytest.approx(value, abs=1e-9, nan_ok=True)
    assert 0.1 < metrics['pq/mPQ'] < 0.95

    rle = [dict(height=H, width=W, masks=encode_mask_results(a['gt_masks']),
                labels=a['gt_labels']) for a in arrays]
    preds = [dict(masks=encode_mask_results(a['pred_masks']), scores=a['scores'],
                  labels=a['pred_labels']) for a in arrays]
    mask_aps, mask_map = coco_mask_ap(rle, preds, len(CLASSES))
    assert metrics['ap50/mask_mAP50'] == pytest.approx(mask_map, abs=1e-9)
    for name, value in zip(CLASSES, mask_aps):
        assert metrics[f'ap50/mask_AP50_{name}'] == pytest.approx(value, abs=1e-9)
    # every box (GT and prediction, rotated or horizontal) is the min-area box of its mask
    box_aps, box_map = rbox_ap([masks_to_rboxes(a['pred_masks']).tensor.numpy() for a in arrays],
                               [a['scores'] for a in arrays], [a['pred_labels'] for a in arrays],
                               [masks_to_rboxes(a['gt_masks']).tensor.numpy() for a in arrays],
                               [a['gt_labels'] for a in arrays], len(CLASSES))
    assert metrics['ap50/rbox_mAP50'] == pytest.approx(box_map, abs=1e-9)
    for name, value in zip(CLASSES, box_aps):
        assert metrics[f'ap50/rbox_AP50_{name}'] == pytest.approx(value, abs=1e-9)
    assert 0.1 < metrics['ap50/rbox_mAP50'] < 0.95


def test_perfect_predictions_score_one(evaluator):
    samples, _ = make_samples(seed=3)
    for s in samples:
        gt = s.gt_instances
        masks = gt.masks.to_ndarray().astype(bool)
        s.pred_instances = InstanceData(masks=torch.as_tensor(masks), labels=gt.labels,
                                        scores=torch.linspace(0.6, 0.9, len(masks)),
                                        bboxes=masks_to_rboxes(masks))
    evaluator.process(samples)
    metrics = evaluator.evaluate(len(samples))
    assert metrics['ap50/mask_mAP50'] == pytest.approx(1.0)
    assert metrics['ap50/rbox_mAP50'] == pytest.approx(1.0)
    # GT is painted in index order, predictions by ascending score: the same maps here, so PQ is 1
    # up to the official 1e-6 guards
    assert metrics['pq/bPQ'] == pytest.approx(1.0, abs=1e-5)
    assert metrics['pq/mPQ'] == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize('hbox', [False, True])
def test_no_predictions_scores_zero(evaluator, hbox):
    """An untrained model that predicts nothing scores 0, it does not crash the evaluation."""
    samples, _ = make_samples(seed=5)
    for s in samples:
        s.pred_instances = InstanceData(
            masks=torch.zeros((0, H, W), dtype=torch.bool), labels=torch.zeros(0, dtype=torch.long),
            scores=torch.zeros(0), bboxes=torch.zeros((0, 4)) if hbox else masks_to_rboxes(
                np.zeros((0, H, W), bool)))
    evaluator.process(samples)
    metrics = evaluator.evaluate(len(samples))
    assert metrics['ap50/mask_mAP50'] == 0.0 and metrics['ap50/rbox_mAP50'] == 0.0
    assert metrics['pq/bPQ'] == 0.0 and metrics['pq/mPQ'] == 0.0


def test_clear_errors():
    init_default_scope('mmdet')
    samples, _ = make_samples()
    ev = Evaluator(dict(type='PanopticQualityMetric'))
    with pytest.raises(ValueError, match="dataset_meta\\['classes'\\]"):
        ev.process(samples[:1])
    ev.dataset_meta = dict(classes=CLASSES)
    bad = samples[0]
    bad.pred_instances.masks = bad.pred_instances.masks[:, :, :W - 1]
    with pytest.raises(ValueError, match='img0.png pred_instances'):
        ev.process([bad])
    with pytest.raises(ValueError, match='rbox_ap_mode'):
        Evaluator(dict(type='InstanceAP50Metric', rbox_ap_mode='11points'))
