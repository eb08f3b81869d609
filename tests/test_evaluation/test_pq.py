"""PQ functions against a literal loop-over-pairs reference of the PanNuke / CoNIC definitions."""
import warnings

import cv2
import numpy as np
import pytest
from scipy import ndimage
from scipy.optimize import linear_sum_assignment

from a2bis_mm.evaluation.functional import (
    bpq_mpq,
    get_fast_pq,
    multi_class_pq,
    paint_instances,
    pairwise_iou,
    per_image_pq,
)

NUM_CLASSES = 3


# ---------------------------------------------------------------- reference (plain loops)
def ref_remap(inst):
    """Ids renumbered 1..n in increasing order of the old id (PanNuke ``remap_label``)."""
    out = np.zeros(inst.shape, np.int64)
    for new, old in enumerate([i for i in np.unique(inst) if i != 0], start=1):
        out[inst == old] = new
    return out


def ref_fast_pq(true, pred, match_iou=0.5):
    """PanNuke ``get_fast_pq`` semantics, one instance pair at a time; returns tp, fp, fn, iou_sum, pq."""
    true, pred = ref_remap(true), ref_remap(pred)
    true_ids = [i for i in np.unique(true) if i != 0]
    pred_ids = [i for i in np.unique(pred) if i != 0]
    iou = np.zeros((len(true_ids), len(pred_ids)))
    for t in true_ids:
        t_mask = (true == t).astype(np.uint8)
        for p in np.unique(pred[t_mask > 0]):
            if p == 0:
                continue
            p_mask = (pred == p).astype(np.uint8)
            total = (t_mask + p_mask).sum()
            inter = (t_mask * p_mask).sum()
            iou[t - 1, p - 1] = inter / (total - inter)
    if match_iou >= 0.5:
        paired = []
        for ti in range(len(true_ids)):
            for pi in range(len(pred_ids)):
                if iou[ti, pi] > match_iou:
                    paired.append(iou[ti, pi])
    else:
        rows, cols = linear_sum_assignment(-iou)
        paired = [iou[r, c] for r, c in zip(rows, cols) if iou[r, c] > match_iou]
    tp = len(paired)
    fp = len(pred_ids) - tp
    fn = len(true_ids) - tp
    iou_sum = float(np.sum(paired))
    dq = tp / (tp + 0.5 * fp + 0.5 * fn)
    sq = iou_sum / (tp + 1.0e-6)
    return tp, fp, fn, iou_sum, dq * sq


def ref_image(true_inst, true_cls, pred_inst, pred_cls, match_iou=0.5):
    """Per-image PanNuke numbers: bPQ (NaN without GT), class PQs (NaN if absent from GT), stats."""
    bpq = np.nan if len(np.unique(true_inst)) == 1 else ref_fast_pq(true_inst, pred_inst,
                                                                    match_iou)[4]
    class_pq, stats = [], []
    for c in range(1, NUM_CLASSES + 1):
        t = true_inst * (true_cls == c)
        p = pred_inst * (pred_cls == c)
        if len(np.unique(t)) == 1:
            class_pq.append(np.nan)
            n_pred = len([i for i in np.unique(p) if i != 0])
            stats.append([0, n_pred, 0, 0.0])  # CoNIC still counts these FPs
        else:
            tp, fp, fn, iou_sum, pq = ref_fast_pq(t, p, match_iou)
            class_pq.append(pq)
            stats.append([tp, fp, fn, iou_sum])
    return bpq, class_pq, stats


def ref_aggregate(per_image, tissues):
    """PanNuke run.py (nanmean over classes, images of a tissue, tissues) and CoNIC pooled mPQ+."""
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', RuntimeWarning)
        mpq_each = [np.nanmean(r[1]) for r in per_image]
        bpq_each = [np.nanmean([r[0]]) for r in per_image]
        tissue_m, tissue_b = [], []
        for name in sorted(set(tissues)):
            idx = [i for i, x in enumerate(tissues) if x == name]
            tissue_m.append(np.nanmean([mpq_each[i] for i in idx]))
            tissue_b.append(np.nanmean([bpq_each[i] for i in idx]))
        class_pq = [np.nanmean([r[1][c] for r in per_image]) for c in range(NUM_CLASSES)]
        mpq, bpq = np.nanmean(tissue_m), np.nanmean(tissue_b)
    total = np.sum([r[2] for r in per_image], axis=0)
    pooled = []
    for tp, fp, fn, iou_sum in total:
        dq = tp / ((tp + 0.5 * fp + 0.5 * fn) + 1.0e-6)
        sq = iou_sum / (tp + 1.0e-6)
        pooled.append(dq * sq)
    return dict(bPQ=bpq, mPQ=mpq, class_PQ=class_pq, mPQplus=np.mean(pooled))


# ---------------------------------------------------------------- generated cases
def random_gt(rng, size):
    """Non-overlapping random ellipses with random classes (ids deliberately not contiguous)."""
    inst = np.zeros((size, size), np.int32)
    cls = np.zeros((size, size), np.int32)
    allowed = rng.choice(np.arange(1, NUM_CLASSES + 1), size=rng.integers(1, NUM_CLASSES + 1),
                         replace=False)
    for k in range(int(rng.integers(0, 10))):
        canvas = np.zeros_like(inst, np.uint8)
        centre = tuple(int(v) for v in rng.integers(0, size, 2))
        axes = tuple(int(v) for v in rng.integers(2, 8, 2))
        cv2.ellipse(canvas, centre, axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
        free = (canvas > 0) & (inst == 0)
        inst[free] = 3 * k + 5
        cls[free] = rng.choice(allowed)
    return inst, cls


def perturb(rng, inst, cls):
    """Prediction from GT: erode/dilate/shift/split/merge/drop/relabel instances, add FPs."""
    pred_inst = np.zeros_like(inst)
    pred_cls = np.zeros_like(cls)
    next_id = 1000
    ids = [i for i in np.unique(inst) if i != 0]
    merge_target = None  # (id, label) that later 'merge' instances join
    for i in ids:
        mask = inst == i
        label = int(cls[mask][0])
        op = rng.choice(['keep', 'erode', 'dilate', 'shift', 'split', 'merge', 'drop', 'relabel'])
        new_id = next_id
        next_id += 7
        if op == 'drop':
            continue
        if op == 'erode':
            eroded = ndimage.binary_erosion(mask, iterations=int(rng.integers(1, 3)))
            mask = eroded if eroded.any() else mask
        elif op == 'dilate':
            mask = ndimage.binary_dilation(mask, iterations=int(rng.integers(1, 3)))
        elif op == 'shift':
            mask = np.roll(mask, tuple(int(v) for v in rng.integers(-3, 4, 2)), axis=(0, 1))
        elif op == 'relabel':
            label = int(rng.integers(1, NUM_CLASSES + 1))
        elif op == 'merge':
            if merge_target is None:
                merge_target = (new_id, label)
            new_id, label = merge_target
        elif op == 'split':
            cols = np.nonzero(mask.any(0))[0]
            cut = int(np.median(cols))
            left = mask.copy()
            left[:, cut:] = False
            pred_inst[left] = next_id
            pred_cls[left] = label
            next_id += 7
            mask = mask & ~left
        pred_inst[mask] = new_id
        pred_cls[mask] = label
    for _ in range(int(rng.integers(0, 3))):  # false positives
        r, c = (int(v) for v in rng.integers(0, inst.shape[0] - 4, 2))
        pred_inst[r:r + 4, c:c + 4] = next_id
        pred_cls[r:r + 4, c:c + 4] = int(rng.integers(1, NUM_CLASSES + 1))
        next_id += 7
    return pred_inst, pred_cls


def generated_cases(n=60, size=40, seed=0):
    rng = np.random.default_rng(seed)
    empty = np.zeros((size, size), np.int32)
    cases = []
    for _ in range(n):
        inst, cls = random_gt(rng, size)
        pred_inst, pred_cls = perturb(rng, inst, cls)
        cases.append((inst, cls, pred_inst, pred_cls))
    gt_inst, gt_cls = random_gt(np.random.default_rng(123), size)
    while len(np.unique(gt_inst)) < 3:
        gt_inst, gt_cls = random_gt(rng, size)
    cases += [
        (empty, empty, gt_inst, gt_cls),  # no GT, predictions only
        (gt_inst, gt_cls, empty, empty),  # GT, no predictions
        (empty, empty, empty, empty),  # neither
        # every prediction relabelled to a class absent from the GT
        (gt_inst, np.where(gt_cls > 0, 1, 0), gt_inst, np.where(gt_cls > 0, 2, 0)),
    ]
    return cases


def check_against_reference(cases, tissues, match_iou=0.5):
    ours, refs = [], []
    for true_inst, true_cls, pred_inst, pred_cls in cases:
        res = per_image_pq(true_inst, true_cls, pred_inst, pred_cls, NUM_CLASSES, match_iou)
        ref = ref_image(true_inst, true_cls, pred_inst, pred_cls, match_iou)
        np.testing.assert_allclose(res['bpq'], ref[0], rtol=0, atol=1e-6, equal_nan=True)
        np.testing.assert_allclose(res['class_pq'], ref[1], rtol=0, atol=1e-6, equal_nan=True)
        np.testing.assert_allclose(res['class_stats'], ref[2], rtol=0, atol=1e-6)
        ours.append(res)
        refs.append(ref)
    agg = bpq_mpq(ours, tissues)
    ref = ref_aggregate(refs, tissues if tissues is not None else [0] * len(cases))
    for key, ref_key in (('bPQ', 'bPQ'), ('mPQ', 'mPQ'), ('mPQ+', 'mPQplus'),
                         ('class_PQ', 'class_PQ')):
        np.testing.assert_allclose(agg[key], ref[ref_key], rtol=0, atol=1e-6, equal_nan=True)
    return agg, ref


def test_generated_cases_match_reference():
    cases = generated_cases()
    kinds = [(np.unique(t).size > 1, np.unique(p).size > 1) for t, _, p, _ in cases]
    assert (False, True) in kinds and (True, False) in kinds and (False, False) in kinds
    tissues = [f'tissue{i % 3}' for i in range(len(cases))]
    agg, _ = check_against_reference(cases, tissues)
    # the perturbations must leave the scores well inside (0, 1), or nothing was compared
    assert 0.2 < agg['mPQ'] < 0.95 and 0.2 < agg['bPQ'] < 0.95 and 0.2 < agg['mPQ+'] < 0.95
    # without tissues: one group, i.e. plain nanmean over images
    agg_flat, _ = check_against_reference(cases, None)
    assert agg_flat['mPQ'] != pytest.approx(agg['mPQ'], abs=1e-9)


def test_hungarian_matching_below_half_matches_reference():
    cases = generated_cases(n=20, seed=5)
    check_against_reference(cases, None, match_iou=0.3)


def test_real_consep_maps_match_reference(shared_data):
    label_dir = shared_data / 'consep256' / 'labels'
    names = sorted(p.name[:-len('_inst.png')] for p in label_dir.glob('test_*_inst.png'))[:8]
    if not names:
        pytest.skip(f'no consep256 label maps under {label_dir}')
    rng = np.random.default_rng(2024)
    cases = []
    for name in names:
        inst = cv2.imread(str(label_dir / f'{name}_inst.png'), cv2.IMREAD_UNCHANGED).astype(np.int32)
        cls = cv2.imread(str(label_dir / f'{name}_class.png'), cv2.IMREAD_UNCHANGED).astype(np.int32)
        cls = np.minimum(cls, NUM_CLASSES)  # fold 'spindle' into class 3 to reuse NUM_CLASSES
        cases.append((inst, cls, *perturb(rng, inst, cls)))
    agg, _ = check_against_reference(cases, [n.split('_')[1] for n in names])
    assert 0.2 < agg['bPQ'] < 0.95


def test_official_semantics_on_hand_made_case():
    """Class absent from GT but predicted: skipped by mPQ, FPs counted by mPQ+."""
    true_inst = np.zeros((10, 10), np.int32)
    true_inst[0:4, 0:4] = 1
    true_cls = (true_inst > 0).astype(np.int32)  # one class-1 nucleus
    pred_inst = true_inst.copy()
    pred_inst[6:9, 6:9] = 2
    pred_cls = np.where(pred_inst == 1, 1, np.where(pred_inst == 2, 2, 0))  # extra class-2 FP
    res = per_image_pq(true_inst, true_cls, pred_inst, pred_cls, NUM_CLASSES)
    assert res['class_pq'][0] == pytest.approx(1 / (1 + 1e-6))
    assert np.isnan(res['class_pq'][1]) and np.isnan(res['class_pq'][2])
    np.testing.assert_array_equal(res['class_stats'][1], [0, 1, 0, 0])
    assert res['bpq'] == pytest.approx((1 / 1.5) / (1 + 1e-6))
    agg = bpq_mpq([res])
    assert agg['mPQ'] == pytest.approx(1 / (1 + 1e-6))  # the class-2 FP does not count
    # mPQ+: class 1 perfect, class 2 has one FP (0), class 3 never seen (0)
    assert agg['mPQ+'] == pytest.approx((1 / (1 + 1e-6)) ** 2 / 3)


def test_pairwise_iou_and_fast_pq_values():
    true = np.zeros((4, 6), np.int32)
    true[:, :3] = 7
    pred = np.zeros((4, 6), np.int32)
    pred[:, 1:4] = 3
    np.testing.assert_allclose(pairwise_iou(true, pred), [[8 / 16]])
    # huge, sparse ids take the np.unique path and give the same IoUs
    huge = true.astype(np.int64) * 10**12
    np.testing.assert_allclose(pairwise_iou(huge, pred), [[8 / 16]])
    stat = get_fast_pq(true, pred)  # IoU 0.5 is not > 0.5
    assert (stat.tp, stat.fp, stat.fn, stat.pq) == (0, 1, 1, 0.0)
    assert np.isnan(get_fast_pq(np.zeros((3, 3)), np.zeros((3, 3))).pq)
    with pytest.raises(ValueError, match='ids >= 0'):
        pairwise_iou(-true, pred)
    with pytest.raises(ValueError, match='shape'):
        pairwise_iou(true, pred[:, :5])
    with pytest.raises(ValueError, match='outside 0..3'):
        multi_class_pq(true, true, pred, pred, NUM_CLASSES)


def test_paint_instances_best_score_wins():
    masks = np.zeros((3, 5, 5), bool)
    masks[0, :3, :3] = True  # low score, partly covered
    masks[1, 1:4, 1:4] = True  # best score
    masks[2, 2:3, 2:3] = True  # inside mask 1 with a lower score: vanishes
    inst, cls = paint_instances(masks, np.array([0.2, 0.9, 0.5]), np.array([0, 1, 2]))
    assert len(np.unique(inst)) == 3  # background + two survivors
    assert (cls[1:4, 1:4] == 2).all()  # mask 1 (label 1 -> class 2) owns its whole square
    assert (cls[:1, :3] == 1).all() and cls[1, 0] == 1
    assert not (cls == 3).any()
    assert inst[0, 0] != inst[2, 2]
    # equal scores: the later instance wins
    _, cls_tie = paint_instances(masks[:2], np.array([0.5, 0.5]), np.array([0, 1]))
    assert cls_tie[1, 1] == 2
    empty_inst, _ = paint_instances(np.zeros((0, 5, 5), bool), np.zeros(0), np.zeros(0))
    assert empty_inst.shape == (5, 5) and not empty_inst.any()
