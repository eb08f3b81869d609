"""AP50: mask AP against pycocotools' own stats[1], COCO matching/interpolation, rotated-box AP."""
import contextlib
import io

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_util
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from a2bis_mm.evaluation.functional import (
    accumulate_ap,
    coco_mask_ap,
    match_single_image,
    rbox_ap,
)

NUM_CLASSES = 3
SIZE = 48


def rle(mask):
    return mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))


def random_dataset(seed=0, n_images=8):
    """GT ellipses (overlaps allowed) and predictions: jittered/dilated GT, wrong labels, FPs."""
    rng = np.random.default_rng(seed)
    gts, preds = [], []
    for _ in range(n_images):
        gt_masks, gt_labels = [], []
        for _ in range(int(rng.integers(0, 7))):
            canvas = np.zeros((SIZE, SIZE), np.uint8)
            cv2.ellipse(canvas, tuple(int(v) for v in rng.integers(4, SIZE - 4, 2)),
                        tuple(int(v) for v in rng.integers(2, 9, 2)), float(rng.uniform(0, 180)),
                        0, 360, 1, -1)
            gt_masks.append(canvas > 0)
            gt_labels.append(int(rng.integers(0, NUM_CLASSES - 1)))  # last class never in GT
        p_masks, p_labels = [], []
        for m, label in zip(gt_masks, gt_labels):
            for _ in range(int(rng.integers(0, 3))):  # duplicates become FPs
                shifted = np.roll(m, tuple(int(v) for v in rng.integers(-3, 4, 2)), (0, 1))
                if rng.random() < 0.3:
                    shifted = cv2.dilate(shifted.astype(np.uint8), np.ones((3, 3))) > 0
                p_masks.append(shifted)
                p_labels.append(label if rng.random() < 0.8 else int(rng.integers(0, NUM_CLASSES)))
        for _ in range(int(rng.integers(0, 3))):
            fp = np.zeros((SIZE, SIZE), bool)
            r, c = (int(v) for v in rng.integers(0, SIZE - 6, 2))
            fp[r:r + 6, c:c + 6] = True
            p_masks.append(fp)
            p_labels.append(int(rng.integers(0, NUM_CLASSES)))
        gts.append(dict(height=SIZE, width=SIZE, masks=[rle(m) for m in gt_masks],
                        labels=np.array(gt_labels, np.int64), bitmaps=gt_masks))
        preds.append(dict(masks=[rle(m) for m in p_masks], scores=rng.random(len(p_masks)),
                          labels=np.array(p_labels, np.int64), bitmaps=p_masks))
    return gts, preds


def pycocotools_segm(gts, preds):
    """Plain pycocotools run with its default parameters: (stats[1], per-class AP at IoU 0.5)."""
    images, anns, dets = [], [], []
    for i, (gt, pred) in enumerate(zip(gts, preds), start=1):
        images.append(dict(id=i, height=SIZE, width=SIZE))
        for m, label in zip(gt['masks'], gt['labels']):
            anns.append(dict(id=len(anns) + 1, image_id=i, category_id=int(label) + 1,
                             segmentation=m, area=float(mask_util.area(m)), iscrowd=0))
        for m, s, label in zip(pred['masks'], pred['scores'], pred['labels']):
            dets.append(dict(image_id=i, category_id=int(label) + 1, segmentation=m,
                             score=float(s)))
    coco = COCO()
    coco.dataset = dict(images=images, annotations=anns,
                        categories=[dict(id=c + 1, name=str(c)) for c in range(NUM_CLASSES)])
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
        ev = COCOeval(coco, coco.loadRes(dets), 'segm')
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    prec = ev.eval['precision'][0, :, :, 0, -1]
    per_class = [prec[:, c][prec[:, c] > -1].mean() if (prec[:, c] > -1).any() else np.nan
                 for c in range(NUM_CLASSES)]
    return ev.stats[1], np.array(per_class)


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_mask_ap50_equals_pycocotools(seed):
    gts, preds = random_dataset(seed)
    ref_map, ref_class = pycocotools_segm(gts, preds)
    assert 0.1 < ref_map < 0.95  # a non-trivial case
    aps, mean = coco_mask_ap(gts, preds, NUM_CLASSES, max_dets=100)
    assert mean == pytest.approx(ref_map, abs=1e-6)
    np.testing.assert_allclose(aps, ref_class, rtol=0, atol=1e-6, equal_nan=True)
    assert np.isnan(aps[-1])  # no GT of the last class: skipped, as COCO does

    # our COCO matching + 101-point interpolation (used for rotated boxes) on the same mask IoUs
    own = []
    for c in range(NUM_CLASSES):
        matches, num_gt = [], 0
        for gt, pred in zip(gts, preds):
            g = [m for m, label in zip(gt['masks'], gt['labels']) if label == c]
            keep = pred['labels'] == c
            d = [m for m, k in zip(pred['masks'], keep) if k]
            ious = mask_util.iou(d, g, [0] * len(g)) if d and g else np.zeros((len(d), len(g)))
            matches.append(match_single_image(ious, pred['scores'][keep], 0.5, 100))
            num_gt += len(g)
        own.append(accumulate_ap(matches, num_gt))
    np.testing.assert_allclose(own, ref_class, rtol=0, atol=1e-6, equal_nan=True)


def test_mask_ap_without_predictions():
    gts, preds = random_dataset(0)
    empty = [dict(masks=[], scores=np.zeros(0), labels=np.zeros(0, np.int64)) for _ in preds]
    aps, mean = coco_mask_ap(gts, empty, NUM_CLASSES)
    assert mean == 0.0 and aps[0] == 0.0 and np.isnan(aps[-1])


def test_accumulate_ap_hand_computed():
    # 2 GTs; detections by score: TP, FP, TP -> recall .5 .5 1, precision 1 .5 .667
    matches = [(np.array([0.9, 0.7]), np.array([True, True])), (np.array([0.8]), np.array([False]))]
    expected_101 = (51 * 1.0 + 50 * (2 / 3)) / 101
    assert accumulate_ap(matches, 2) == pytest.approx(expected_101, abs=1e-9)
    # mmdet's average_precision works in float32
    assert accumulate_ap(matches, 2, mode='area') == pytest.approx(0.5 + 0.5 * 2 / 3, abs=1e-6)
    assert np.isnan(accumulate_ap(matches, 0))
    assert accumulate_ap([], 3) == 0.0
    with pytest.raises(ValueError, match='AP mode'):
        accumulate_ap(matches, 2, mode='11points')


def test_match_single_image_greedy_one_match_per_gt():
    ious = np.array([[0.6, 0.7], [0.9, 0.0], [0.55, 0.0]])
    scores, tp = match_single_image(ious, np.array([0.9, 0.8, 0.1]), 0.5)
    # best-scored det takes GT 1 (its highest IoU); det 2 takes GT 0; det 3 finds no free GT
    np.testing.assert_array_equal(tp, [True, True, False])
    np.testing.assert_allclose(scores, [0.9, 0.8, 0.1])
    _, tp_cap = match_single_image(ious, np.array([0.9, 0.8, 0.1]), 0.5, max_dets=1)
    np.testing.assert_array_equal(tp_cap, [True])


def test_rbox_ap_perfect_and_half_box_shift():
    gt = [np.array([[20., 20., 16., 6., 0.4], [40., 30., 10., 4., -1.0]], np.float32),
          np.array([[12., 40., 8., 8., 0.0]], np.float32)]
    labels = [np.array([0, 1]), np.array([0])]
    scores = [np.array([0.9, 0.8]), np.array([0.7])]
    aps, mean = rbox_ap(gt, scores, labels, gt, labels, num_classes=3)
    # precision is TP / (TP + FP + eps) as in pycocotools, hence 1 - 1e-16
    assert mean == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(aps[:2], [1.0, 1.0], rtol=0, atol=1e-12)
    assert np.isnan(aps[2])
    # shift every box by half its width along its own w axis: IoU 1/3 < 0.5
    shifted = []
    for boxes in gt:
        b = boxes.copy()
        b[:, 0] += 0.5 * b[:, 2] * np.cos(b[:, 4])
        b[:, 1] += 0.5 * b[:, 2] * np.sin(b[:, 4])
        shifted.append(b)
    aps, mean = rbox_ap(shifted, scores, labels, gt, labels, num_classes=3)
    assert mean == 0.0
    # a quarter-width shift along the rotated w axis keeps IoU 0.75 / 1.25 = 0.6 >= 0.5
    quarter = [b.copy() for b in gt]
    for q, b in zip(quarter, gt):
        q[:, 0] = b[:, 0] + 0.25 * b[:, 2] * np.cos(b[:, 4])
        q[:, 1] = b[:, 1] + 0.25 * b[:, 2] * np.sin(b[:, 4])
    assert rbox_ap(quarter, scores, labels, gt, labels, num_classes=3)[1] == pytest.approx(1.0)
