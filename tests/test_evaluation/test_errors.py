"""Error breakdown: each unmatched instance gets the cause its overlaps say, on drawn and real masks."""
import numpy as np
import pytest
from mmengine.structures import InstanceData

from a2bis_mm.evaluation.functional.errors import instance_errors
from a2bis_mm.evaluation.metrics import InstanceErrorMetric


def _box(y0, y1, x0, x1, shape=(40, 60)):
    mask = np.zeros(shape, bool)
    mask[y0:y1, x0:x1] = True
    return mask


def _stack(*masks):
    return np.stack(masks) if masks else np.zeros((0, 40, 60), bool)


def test_a_prediction_over_two_nuclei_is_one_merge_and_two_merged():
    gt = _stack(_box(5, 15, 5, 15), _box(5, 15, 16, 26))
    pred = _stack(_box(5, 15, 5, 26))  # IoU 0.48 with each: no match
    counts = instance_errors(gt, pred)
    assert (counts['tp'], counts['fn_merged'], counts['fp_merge']) == (0, 2, 1)


def test_a_cut_instance_is_split_and_its_pieces_fragments():
    gt = _stack(_box(5, 10, 5, 45))
    pred = _stack(_box(5, 10, 5, 25), _box(5, 10, 25, 45))  # each IoU 0.5: not > 0.5
    counts = instance_errors(gt, pred)
    assert (counts['tp'], counts['fn_split'], counts['fp_fragment']) == (0, 1, 2)


def test_missed_background_and_poor():
    gt = _stack(_box(0, 10, 0, 10), _box(20, 30, 0, 10), _box(20, 30, 30, 40))
    pred = _stack(
        _box(0, 10, 0, 10),  # exact: TP
        _box(30, 40, 50, 60),  # on background
        _box(24, 34, 34, 44))  # shifted over GT 2: IoU 0.22, 36% of it inside
    counts = instance_errors(gt, pred)
    assert counts['tp'] == 1
    assert (counts['fn_missed'], counts['fn_poor']) == (1, 1)
    assert (counts['fp_background'], counts['fp_poor']) == (1, 1)
    assert counts['gt'] - counts['tp'] == sum(counts[f'fn_{c}'] for c in
                                              ('merged', 'split', 'missed', 'poor'))


def test_empty_sides():
    counts = instance_errors(_stack(_box(0, 5, 0, 5)), _stack())
    assert (counts['tp'], counts['fn_missed']) == (0, 1)
    counts = instance_errors(_stack(), _stack(_box(0, 5, 0, 5)))
    assert (counts['tp'], counts['fp_background']) == (0, 1)


def test_metric_on_real_crossing_chromosomes(shared_data):
    """GT as prediction: every pair found; one chromosome per image dropped: every image lacks one."""
    from mmdet.registry import DATASETS
    from mmengine.registry import init_default_scope

    import a2bis_mm  # noqa: F401  (registers the data set)
    init_default_scope('mmdet')
    dataset = DATASETS.build(dict(
        type='LabelMeDataset', data_root=str(shared_data / 'chromosome_pairs') + '/',
        data_prefix=dict(img='val/'), metainfo=dict(classes=('chromosome', )), test_mode=True,
        pipeline=[dict(type='LoadImageFromFile'),
                  dict(type='LoadAnnotations', with_bbox=True, with_mask=True)]))
    samples = []
    for i in range(len(dataset)):
        results = dataset[i]
        masks = results['gt_masks'].to_ndarray().astype(bool)
        assert len(masks) == 2
        labels = np.asarray(results['gt_bboxes_labels'])
        gt = dict(masks=masks, labels=labels)
        samples.append((gt, masks, labels))

    for drop_one in (False, True):
        metric = InstanceErrorMetric()
        for gt, masks, labels in samples:
            keep = slice(1, None) if drop_one else slice(None)
            pred = InstanceData(masks=masks[keep], labels=labels[keep],
                                scores=np.ones(len(labels[keep])))
            metric.process({}, [dict(gt_instances=gt, pred_instances=pred.to_dict())])
        out = metric.compute_metrics(metric.results)
        n = len(samples)
        assert out['gt'] == 2 * n and out['images'] == n
        if drop_one:
            assert (out['tp'], out['fn'], out['images_all_found']) == (n, n, 0)
            # the dropped chromosome touches or crosses the kept one: missed, or poorly covered
            assert out['fn_missed'] + out['fn_poor'] == n and out['fp'] == 0
        else:
            assert (out['tp'], out['fp'], out['images_all_found']) == (2 * n, 0, n)


@pytest.mark.parametrize('thr', [0.5, 0.9])
def test_metric_drops_low_scores_as_pq(thr):
    gt = dict(masks=_stack(_box(0, 10, 0, 10)), labels=np.zeros(1, int))
    pred = dict(masks=_stack(_box(0, 10, 0, 10)), labels=np.zeros(1, int), scores=np.array([0.7]))
    metric = InstanceErrorMetric(score_thr=thr)
    metric.process({}, [dict(gt_instances=gt, pred_instances=pred)])
    out = metric.compute_metrics(metric.results)
    assert out['tp'] == (1.0 if thr < 0.7 else 0.0)
