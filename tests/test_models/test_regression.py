"""A checkpoint saved before the issue-17 refactor loads and gives the same losses, predictions
and metrics as it did then.

The fixture (tests/fixtures/a2bis_tiny_regression/) holds the weights of the tiny synthetic config
trained 120 iterations on main at 3164539 (fp16; the expected outputs were computed with the
fp16-rounded weights), two crops of synthetic validation images with their GT masks (one crop
resized x1.5 so that the rescale path runs, odd sizes so that the batch padding runs), and the
losses, predictions and metrics that code produced. The checkpoint still has the old state-dict
keys (``skeleton_head.*``, ``seg_head.*``, ``bbox_head.*``).
"""
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from mmdet.registry import MODELS
from mmdet.structures.mask import BitmapMasks
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import init_default_scope
from mmengine.runner import load_checkpoint

import a2bis_mm  # noqa: F401  registers the model and the transforms
from a2bis_mm.datasets.transforms import GenerateA2BTargets, PackA2BInputs
from a2bis_mm.evaluation.metrics import InstanceAP50Metric, PanopticQualityMetric

FIXTURE = Path(__file__).resolve().parents[1] / 'fixtures' / 'a2bis_tiny_regression'
TINY = Path(__file__).resolve().parents[2] / 'configs' / 'a2bis' / \
    'a2bis-tiny_a2b_300i_synthetic.py'
SCALES = (None, 1.5)  # the second crop was resized x1.5 before the model


@pytest.fixture(scope='module')
def expected():
    init_default_scope('mmdet')
    with np.load(FIXTURE / 'expected.npz') as data:
        return {k: data[k] for k in data.files}


def _gt(expected, i):
    img = expected[f'img{i}']
    masks = np.unpackbits(expected[f'gt_masks{i}'], axis=-1)[..., :img.shape[1]]
    return img, masks.astype(np.uint8), expected[f'gt_labels{i}']


def _packed(expected, i, train):
    """Crop ``i`` through the transforms, as when the fixture was made."""
    img, masks, labels = _gt(expected, i)
    h, w = img.shape[:2]
    res = dict(img=img, img_shape=(h, w), ori_shape=(h, w), img_id=i, img_path=f'crop{i}.png',
               gt_masks=BitmapMasks(masks, h, w), gt_bboxes_labels=labels.copy(),
               gt_ignore_flags=np.zeros(len(labels), bool), scale_factor=(1.0, 1.0))
    if SCALES[i] is not None:
        nh, nw = int(round(h * SCALES[i])), int(round(w * SCALES[i]))
        res.update(img=cv2.resize(img, (nw, nh), interpolation=cv2.INTER_LINEAR),
                   img_shape=(nh, nw), scale_factor=(nw / w, nh / h),
                   gt_masks=res['gt_masks'].resize((nh, nw)))
    if train:
        res = GenerateA2BTargets(stride=2)(res)
    return PackA2BInputs(meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                                    'scale_factor'))(res)


def _model(decoder='paper'):
    # the expected predictions were made by the paper decoder (the default before issue 13)
    cfg = Config.fromfile(str(TINY)).model
    cfg.test_cfg.decoder = decoder
    cfg.mask_head.fullres = None  # the checkpoint is the paper's architecture
    model = MODELS.build(cfg)
    load_checkpoint(model, str(FIXTURE / 'weights.pth'), map_location='cpu', strict=True)
    return model.eval()


def _check_predictions(model, expected):
    preds = []
    with torch.no_grad():
        for i in range(2):
            data = model.data_preprocessor(pseudo_collate([_packed(expected, i, False)]), False)
            pred = model(**data, mode='predict')[0].pred_instances
            masks = np.packbits(pred.masks.numpy(), axis=-1)
            assert len(pred) == len(expected[f'pred_scores{i}']) > 0
            np.testing.assert_array_equal(pred.labels.numpy(), expected[f'pred_labels{i}'])
            np.testing.assert_array_equal(masks, expected[f'pred_masks{i}'])
            np.testing.assert_allclose(pred.scores.numpy(), expected[f'pred_scores{i}'],
                                       rtol=1e-6, atol=1e-7)
            np.testing.assert_allclose(pred.bboxes.tensor.numpy(), expected[f'pred_bboxes{i}'],
                                       rtol=1e-6, atol=1e-5)
            preds.append(pred)
    return preds


def test_old_checkpoint_gives_the_same_losses(expected):
    model = _model()
    with torch.no_grad():
        data = model.data_preprocessor(
            pseudo_collate([_packed(expected, 0, True), _packed(expected, 1, True)]), True)
        losses = model(**data, mode='loss')
    assert sorted(losses) == list(expected['loss_names'])
    for name, value in zip(expected['loss_names'], expected['loss_values']):
        assert losses[name].item() == pytest.approx(value, rel=1e-6, abs=1e-7), name


def test_old_checkpoint_gives_the_same_predictions_and_metrics(expected):
    preds = _check_predictions(_model(), expected)
    metrics = {}
    classes = [str(c) for c in expected['classes']]
    for metric in (PanopticQualityMetric(score_thr=0.3), InstanceAP50Metric()):
        metric.dataset_meta = dict(classes=classes)
        samples = []
        for i, pred in enumerate(preds):
            img, masks, labels = _gt(expected, i)
            samples.append(dict(
                img_path=f'crop{i}.png',
                gt_instances=dict(masks=BitmapMasks(masks, *img.shape[:2]),
                                  labels=torch.from_numpy(labels)),
                pred_instances=dict(bboxes=pred.bboxes, scores=pred.scores, labels=pred.labels,
                                    masks=pred.masks)))
        metric.process(None, samples)
        metrics.update({f'{metric.default_prefix}/{k}': v
                        for k, v in metric.compute_metrics(metric.results).items()})
    assert sorted(metrics) == list(expected['metric_names'])
    for name, value in zip(expected['metric_names'], expected['metric_values']):
        np.testing.assert_equal(metrics[name], value, err_msg=name)


def test_old_checkpoint_loads_into_the_ssl_wrapper(expected):
    """``A2BISSemi`` loads a plain A2BIS checkpoint into student and teacher (old keys too)."""
    detector = Config.fromfile(str(TINY)).model
    detector.test_cfg.decoder = 'paper'
    detector.mask_head.fullres = None
    model = MODELS.build(dict(
        type='A2BISSemi', detector=detector,
        data_preprocessor=dict(type='MultiBranchDataPreprocessor',
                               data_preprocessor=detector.data_preprocessor)))
    load_checkpoint(model, str(FIXTURE / 'weights.pth'), map_location='cpu', strict=True)
    for name, param in model.student.state_dict().items():
        assert torch.equal(param, model.teacher.state_dict()[name]), name
    _check_predictions(model.teacher.eval(), expected)
