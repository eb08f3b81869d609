"""Overlap-aware PQ (instance masks that may overlap) against a literal brute-force reference."""
import itertools

import cv2
import numpy as np
import pytest
import torch
from mmdet.structures import DetDataSample
from mmdet.structures.mask import BitmapMasks
from mmengine.evaluator import Evaluator
from mmengine.registry import init_default_scope
from mmengine.structures import InstanceData

import a2bis_mm  # noqa: F401  registers the metrics
from a2bis_mm.evaluation.functional import (
    bpq_mpq,
    instance_pq,
    mask_pairwise_iou,
    paint_instances,
    per_image_instance_pq,
    per_image_pq,
)

NUM_CLASSES = 2
SIZE = 32


def ref_iou(a, b):
    inter = np.logical_and(a, b).sum()
    union = np.logical_or(a, b).sum()
    return inter / union if union else 0.0


def ref_pq(true_masks, pred_masks, match_iou=0.5):
    """Every one-to-one matching tried: most pairs with IoU > match_iou, then largest IoU sum."""
    n, m = len(true_masks), len(pred_masks)
    iou = np.array([[ref_iou(t, p) for p in pred_masks] for t in true_masks]).reshape(n, m)
    best = (0, 0.0)
    for k in range(min(n, m), 0, -1):
        for rows in itertools.combinations(range(n), k):
            for cols in itertools.permutations(range(m), k):
                vals = [iou[r, c] for r, c in zip(rows, cols)]
                if all(v > match_iou for v in vals) and (k, sum(vals)) > best:
                    best = (k, sum(vals))
        if best[0]:
            break
    tp, iou_sum = best
    fp, fn = m - tp, n - tp
    if tp + fp + fn == 0:
        return np.nan
    return tp / (tp + 0.5 * fp + 0.5 * fn) * iou_sum / (tp + 1e-6)


def rod(rng):
    """A thin rotated rectangle (crossing rods overlap)."""
    canvas = np.zeros((SIZE, SIZE), np.uint8)
    centre = tuple(float(v) for v in rng.uniform(8, SIZE - 8, 2))
    size = (float(rng.uniform(12, 26)), float(rng.uniform(3, 6)))
    box = cv2.boxPoints((centre, size, float(rng.uniform(0, 180))))
    cv2.fillPoly(canvas, [np.round(box).astype(np.int32)], 1)
    return canvas > 0


def random_case(rng):
    gt = np.stack([rod(rng) for _ in range(int(rng.integers(1, 4)))])
    preds = []
    for mask in gt:
        op = rng.choice(['keep', 'shift', 'dilate', 'drop', 'twice'])
        if op == 'drop':
            continue
        if op == 'shift':
            mask = np.roll(mask, tuple(int(v) for v in rng.integers(-2, 3, 2)), axis=(0, 1))
        if op == 'dilate':
            mask = cv2.dilate(mask.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
        preds.append(mask)
        if op == 'twice':  # a duplicate that overlaps the first copy almost entirely
            preds.append(np.roll(mask, 1, axis=1))
    if rng.random() < 0.5:
        preds.append(rod(rng))
    pred = np.stack(preds) if preds else np.zeros((0, SIZE, SIZE), bool)
    return gt, pred


def test_matches_brute_force_reference():
    rng = np.random.default_rng(0)
    values = []
    for _ in range(60):
        gt, pred = random_case(rng)
        ours = instance_pq(mask_pairwise_iou(gt, pred)).pq
        ref = ref_pq(gt, pred)
        np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-9, equal_nan=True)
        values.append(ours)
    assert 0.3 < np.nanmean(values) < 0.95  # the cases are neither trivial nor hopeless


def test_pairwise_iou_counts_overlapping_pixels_in_both():
    a = np.zeros((1, 10, 10), bool)
    a[0, 2:6, 2:6] = True  # 16 px
    b = np.zeros((2, 10, 10), bool)
    b[0, 4:8, 4:8] = True  # 16 px, 4 shared with a
    b[1] = a[0]
    np.testing.assert_allclose(mask_pairwise_iou(a, b), [[4 / 28, 1.0]])


def test_ground_truth_as_prediction_scores_one_with_overlaps():
    rng = np.random.default_rng(1)
    crossing = 0
    for _ in range(20):
        gt = np.stack([rod(rng) for _ in range(3)])
        crossing += int((gt.sum(0) > 1).any())
        labels = rng.integers(0, NUM_CLASSES, len(gt))
        res = per_image_instance_pq(gt, labels, gt, labels, NUM_CLASSES)
        assert res['bpq'] == pytest.approx(1.0, abs=1e-5)
        assert np.nanmin(res['class_pq']) == pytest.approx(1.0, abs=1e-5)
    assert crossing > 5  # the cases do overlap


def test_equals_painted_mode_without_overlaps():
    rng = np.random.default_rng(2)
    results_inst, results_paint = [], []
    for _ in range(30):
        gt, pred = random_case(rng)
        # make both sides non-overlapping: each pixel keeps its first mask only
        for masks in (gt, pred):
            taken = np.zeros((SIZE, SIZE), bool)
            for m in masks:
                m &= ~taken
                taken |= m
        gt = gt[gt.any(axis=(1, 2))]
        pred = pred[pred.any(axis=(1, 2))]
        gl = rng.integers(0, NUM_CLASSES, len(gt))
        pl = rng.integers(0, NUM_CLASSES, len(pred))
        results_inst.append(per_image_instance_pq(gt, gl, pred, pl, NUM_CLASSES))
        ti, tc = paint_instances(gt, np.zeros(len(gt)), gl)
        pi, pc = paint_instances(pred, -np.arange(len(pred), dtype=float), pl)
        results_paint.append(per_image_pq(ti, tc, pi, pc, NUM_CLASSES))
    for a, b in zip(results_inst, results_paint):
        np.testing.assert_allclose(a['bpq'], b['bpq'], atol=1e-9, equal_nan=True)
        np.testing.assert_allclose(a['class_pq'], b['class_pq'], atol=1e-9, equal_nan=True)
        np.testing.assert_allclose(a['class_stats'], b['class_stats'], atol=1e-9)
    agg = bpq_mpq(results_inst)
    assert agg['bPQ'] == pytest.approx(bpq_mpq(results_paint)['bPQ'])


def test_metric_overlap_aware_on_crossing_pair():
    """Two crossing rods predicted exactly: 1.0 overlap-aware, below 1 when painted."""
    init_default_scope('mmdet')
    masks = np.zeros((2, 40, 40), bool)
    masks[0, 18:22, 4:36] = True
    masks[1, 4:36, 18:22] = True
    sample = DetDataSample(metainfo=dict(img_id=0, img_path='x.png', ori_shape=(40, 40)))
    sample.gt_instances = InstanceData(masks=BitmapMasks(masks, 40, 40),
                                       labels=torch.zeros(2, dtype=torch.long))
    sample.pred_instances = InstanceData(masks=torch.as_tensor(masks),
                                         labels=torch.zeros(2, dtype=torch.long),
                                         scores=torch.tensor([0.9, 0.8]))
    out = {}
    for aware in (False, True):
        ev = Evaluator([dict(type='PanopticQualityMetric', overlap_aware=aware)])
        ev.dataset_meta = dict(classes=('rod', ))
        ev.process([sample.clone()])
        out[aware] = ev.evaluate(1)['pq/bPQ']
    assert out[True] == pytest.approx(1.0, abs=1e-5)
    # painted: GT paints rod 1 over rod 0, predictions paint rod 0 (higher score) over rod 1
    assert out[False] < 0.99
