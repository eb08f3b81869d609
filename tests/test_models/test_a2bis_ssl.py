"""Tests of SSL-IS: the A2BISSemi wrapper, its unlabeled losses and the view perturbation."""
import copy

import numpy as np
import pytest
import torch
from mmdet.registry import MODELS
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import DATASETS, init_default_scope
from mmengine.runner.checkpoint import load_state_dict

import a2bis_mm  # noqa: F401  (registers the modules)
from a2bis_mm.datasets.transforms import A2BPhotometricPerturb
from a2bis_mm.models.detectors.a2bis_ssl import A2BISSemi, masked_mse, stack_maps

TINY = 'configs/a2bis_ssl/a2bis-tiny_ssl_300i_chromosome-512.py'


@pytest.fixture(scope='module')
def tiny_cfg(repo_root):
    init_default_scope('mmdet')  # the wrapper builds its data preprocessor by name
    return Config.fromfile(str(repo_root / TINY))


def build(cfg, **semi_train_cfg) -> A2BISSemi:
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.semi_train_cfg.update(semi_train_cfg)
    model = MODELS.build(model_cfg)
    model.init_weights()
    return model


def maps(b=1, c=3, h=16, w=16, skeleton=0.5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return dict(skeleton=torch.full((b, 1, h, w), skeleton),
                seg=torch.rand(b, c, h, w, generator=g).softmax(1),
                bbox=torch.randn(b, 5, h, w, generator=g))


# ---------------------------------------------------------------- perturbation

def test_perturb_formula_uint8():
    img = np.array([[[10, 100, 200], [30, 120, 250]]], dtype=np.uint8)  # (1, 2, 3)
    t = A2BPhotometricPerturb(brightness_deltas=[0.08], contrast_factors=[1.6],
                              brightness_scale=255)
    out = t(dict(img=img.copy()))
    x = img.astype(np.float32) + 0.08 * 255
    mean = x.reshape(-1, 3).mean(0)
    expected = np.round(np.clip((x - mean) * 1.6 + mean, 0, 255)).astype(np.uint8)
    assert out['img'].dtype == np.uint8
    np.testing.assert_array_equal(out['img'], expected)
    assert out['img'][0, 1, 2] == 255  # clipped
    assert out['perturb_brightness'] == pytest.approx(0.08 * 255)


def test_perturb_reference_brightness_is_tiny_and_float_kept():
    img = np.full((4, 4, 3), 100.0, dtype=np.float32)
    out = A2BPhotometricPerturb(brightness_deltas=[0.08], contrast_factors=[1.0])(dict(img=img))
    assert out['img'].dtype == np.float32
    np.testing.assert_allclose(out['img'], 100.08, rtol=0, atol=1e-4)


def test_perturb_draws_from_the_spec_sets():
    np.random.seed(0)
    t = A2BPhotometricPerturb()
    draws = [t(dict(img=np.zeros((2, 2, 3), np.uint8))) for _ in range(300)]
    assert {d['perturb_contrast'] for d in draws} == {1.0, 1.2, 1.4, 1.6}
    assert {round(d['perturb_brightness'], 6) for d in draws} == {0, 0.02, 0.04, 0.06, 0.08}
    # the sets' repeated entries make 'no change' more likely: P(f = 1) = 1/2
    assert 0.4 < np.mean([d['perturb_contrast'] == 1.0 for d in draws]) < 0.6


def test_perturb_bad_input():
    with pytest.raises(TypeError, match='int32'):
        A2BPhotometricPerturb()(dict(img=np.zeros((2, 2), np.int32), img_path='x.png'))
    with pytest.raises(ValueError, match='non-empty'):
        A2BPhotometricPerturb(contrast_factors=[])


# ---------------------------------------------------------------- unlabeled loss

def test_masked_mse_zero_when_agreeing_and_below_min_pixels():
    s = maps()
    stacked = stack_maps(s)
    assert stacked.shape[1] == 1 + 3 + 5
    mask = s['skeleton'][:, 0] > 0.05
    assert masked_mse(stacked, stacked.clone(), mask, 100) == 0
    other = stack_maps(maps(seed=1))
    assert masked_mse(stacked, other, mask, 100) > 0
    few = torch.zeros_like(mask)
    few.view(-1)[:99] = True
    assert masked_mse(stacked, other, few, 100) == 0
    few.view(-1)[99] = True
    assert masked_mse(stacked, other, few, 100) > 0


def test_masked_mse_value_full_and_reference_channels():
    s, t = maps(), maps()
    t['seg'] = s['seg'].clone()
    t['bbox'] = s['bbox'].clone()
    t['bbox'][:, 3] += 2.0  # dh differs by 2 everywhere
    mask = torch.zeros(1, 16, 16, dtype=torch.bool)
    mask[0, :10, :12] = True  # 120 pixels
    full = masked_mse(stack_maps(s), stack_maps(t), mask, 100)
    assert full.item() == pytest.approx(4.0 / 9)  # one channel of 1 + 3 + 5 differs by 2
    # the reference compares [S, P_0, dx] only: the dh difference is invisible
    assert masked_mse(stack_maps(s, True), stack_maps(t, True), mask, 100) == 0
    t['bbox'][:, 0] += 1.0
    ref = masked_mse(stack_maps(s, True), stack_maps(t, True), mask, 100)
    assert ref.item() == pytest.approx(1.0 / 3)


def test_masked_mse_shape_error():
    with pytest.raises(ValueError, match='shapes differ'):
        masked_mse(torch.zeros(1, 9, 4, 4), torch.zeros(1, 8, 4, 4), torch.ones(1, 4, 4).bool(), 1)


# ---------------------------------------------------------------- wrapper

def test_bad_semi_cfg(tiny_cfg):
    with pytest.raises(ValueError, match="variant must be one of .* got 'pseudo'"):
        build(tiny_cfg, variant='pseudo')
    with pytest.raises(ValueError, match=r"unknown semi_train_cfg keys \['treshold'\]"):
        build(tiny_cfg, treshold=0.1)


def test_teacher_gets_no_gradient_and_loss_runs(tiny_cfg):
    model = build(tiny_cfg, min_pixels=1)
    x_t = torch.rand(2, 3, 48, 48) * 255
    x_s = x_t + torch.randn_like(x_t) * 20
    losses = model.loss_unsup(x_t, x_s)
    assert set(losses) == {'loss_mse'}
    # the zero-initialised last head convs make both models start at S=0.5, P=1/C, deltas=0
    assert losses['loss_mse'].item() == 0
    # move the student away from the teacher: the loss becomes positive and only it gets grads
    with torch.no_grad():
        for p in model.student.mask_head.bbox_branch.parameters():
            p.add_(0.05)
    loss = model.loss_unsup(x_t, x_s)['loss_mse']
    assert loss.item() > 0
    loss.backward()
    assert all(p.grad is None and not p.requires_grad for p in model.teacher.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.student.parameters())


def test_plain_a2bis_checkpoint_loads_into_student_and_teacher(tiny_cfg):
    model = build(tiny_cfg)
    plain = MODELS.build(copy.deepcopy(tiny_cfg.model.detector))
    plain.init_weights()
    state = plain.state_dict()
    assert not any(k.startswith(('student.', 'teacher.')) for k in state)
    load_state_dict(model, copy.copy(state), strict=True)  # the runner's load_from path
    for key, value in state.items():
        assert torch.equal(model.state_dict()['student.' + key], value)
        assert torch.equal(model.state_dict()['teacher.' + key], value)


def test_variants(tiny_cfg):
    x_t = torch.rand(1, 3, 40, 40) * 255
    x_s = x_t * 0.8

    fixmatch = build(tiny_cfg, variant='fixmatch', min_pixels=1)
    assert fixmatch.teacher is fixmatch.student  # shared weights
    assert all(p.requires_grad for p in fixmatch.student.parameters())
    out = fixmatch.loss_unsup(x_t, x_s)
    assert set(out) == {'loss_ce', 'loss_mse'}
    # zero-init heads: P = 1/3 everywhere, never > 0.5, so no pseudo-label
    assert out['loss_ce'].item() == 0

    cps_cfg = copy.deepcopy(tiny_cfg.model)
    cps_cfg.semi_train_cfg.variant = 'cps'
    cps_cfg.semi_test_cfg = None
    cps = MODELS.build(cps_cfg)
    cps.init_weights()
    assert cps.semi_test_cfg.predict_on == 'student'
    a = cps.student.backbone.state_dict()
    b = cps.teacher.backbone.state_dict()
    assert any(not torch.equal(a[k], b[k]) for k in a)  # differently initialised
    with torch.no_grad():
        for p in cps.teacher.mask_head.bbox_branch.conv_out.parameters():
            p.add_(0.1)
    out = cps.loss_unsup(x_t, x_s)
    assert set(out) == {'loss_mse', 'loss_mse_peer'}
    (out['loss_mse'] + out['loss_mse_peer']).backward()
    for m in (cps.student, cps.teacher):  # both models learn from each other
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in m.parameters())

    mt = build(tiny_cfg, variant='meanteacher', min_pixels=1)
    assert mt.semi_test_cfg.predict_on == 'teacher'
    out = mt.loss_unsup(x_t, x_t, sup_inputs=x_s)
    assert set(out) == {'loss_mse', 'loss_mse_sup'}
    with pytest.raises(ValueError, match='labelled inputs'):
        mt.loss_unsup(x_t, x_t)


def test_unsup_weight_zero_is_the_supervised_twin(tiny_cfg, shared_data, repo_root, monkeypatch):
    """On a real multi-branch batch: the twin returns the same supervised losses, no unsup terms."""
    monkeypatch.chdir(repo_root)
    ds_cfg = copy.deepcopy(tiny_cfg.train_dataloader.dataset)
    dataset = DATASETS.build(ds_cfg)
    n_sup = len(dataset.datasets[0])
    np.random.seed(0)
    data = pseudo_collate([dataset[0], dataset[n_sup]])  # one labelled + one unlabeled
    model = build(tiny_cfg)
    twin = build(tiny_cfg, unsup_weight=0)
    twin.load_state_dict(model.state_dict())
    batch = model.data_preprocessor(copy.deepcopy(data), True)
    assert set(batch['inputs']) == {'sup', 'unsup_teacher', 'unsup_student'}
    assert batch['inputs']['unsup_teacher'].shape == batch['inputs']['unsup_student'].shape
    losses = model.loss(batch['inputs'], batch['data_samples'])
    twin_losses = twin.loss(*twin.data_preprocessor(copy.deepcopy(data), True).values())
    assert 'unsup_loss_mse' in losses and not any(k.startswith('unsup') for k in twin_losses)
    for key, value in twin_losses.items():
        assert torch.equal(value, losses[key]), key


def test_unlabeled_views_share_geometry_and_differ_in_photometry(tiny_cfg, shared_data, repo_root,
                                                                 monkeypatch):
    monkeypatch.chdir(repo_root)
    dataset = DATASETS.build(copy.deepcopy(tiny_cfg.train_dataloader.dataset.datasets[1]))
    np.random.seed(3)
    differ = 0
    for _ in range(6):
        item = dataset[0]
        t, s = item['data_samples']['unsup_teacher'], item['data_samples']['unsup_student']
        assert item['data_samples']['sup'] is None
        np.testing.assert_array_equal(t.homography_matrix, s.homography_matrix)
        assert t.img_shape == s.img_shape == (512, 512)
        differ += not torch.equal(item['inputs']['unsup_teacher'], item['inputs']['unsup_student'])
    # two independent draws agree (f = 1 and delta = 0 rounds away) about a quarter of the time
    assert differ >= 3


def test_fixmatch_losses_values(tiny_cfg):
    model = build(tiny_cfg, variant='fixmatch', min_pixels=100)
    weak, strong = maps(seed=0), maps(seed=1)
    weak['seg'] = torch.full_like(weak['seg'], 0.1)
    weak['seg'][:, 2, :8] = 0.8  # 8 x 16 = 128 confident pixels of class 2
    strong['skeleton'][:, :, 4:] = 0.0  # student skeleton mask: 4 x 16 = 64 px < 100
    out = model._fixmatch_losses(strong, weak)
    expected = -strong['seg'][0, 2, :8].log().mean()
    assert out['loss_ce'].item() == pytest.approx(expected.item(), rel=1e-5)
    assert out['loss_mse'] == 0
    weak['seg'][:, 2, 7] = 0.45  # 112 -> still >= 100 confident pixels
    assert model._fixmatch_losses(strong, weak)['loss_ce'] > 0
    weak['seg'][:, 2, 6] = 0.45  # 96 < 100
    assert model._fixmatch_losses(strong, weak)['loss_ce'] == 0
    strong['skeleton'][:] = 0.5
    # MSE on [S, deltas]: S agrees (0.5), the deltas are two independent N(0, 1) draws
    mse = model._fixmatch_losses(strong, weak)['loss_mse']
    manual = (strong['bbox'] - weak['bbox']).pow(2).sum() / (6 * 16 * 16)
    assert mse.item() == pytest.approx(manual.item(), rel=1e-5)
