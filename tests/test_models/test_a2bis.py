"""A2BIS detector: parameter counts, losses on packed samples, gradients, maps and predict."""
import subprocess
import sys
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
from mmrotate.structures import RotatedBoxes

import a2bis_mm  # noqa: F401  registers the model and the transforms
from a2bis_mm.datasets.transforms import GenerateA2BTargets, PackA2BInputs

CONFIGS = Path(__file__).resolve().parents[2] / 'configs' / 'a2bis'
TINY = str(CONFIGS / 'a2bis-tiny_a2b_300i_synthetic.py')
SIZE = 64


@pytest.fixture(scope='module', autouse=True)
def _scope():
    init_default_scope('mmdet')


def _packed(with_objects: bool, seed: int = 0) -> dict:
    """One 64x64 image through the real target/packing transforms (3 synthetic classes)."""
    rng = np.random.default_rng(seed)
    img = rng.integers(180, 220, (SIZE, SIZE, 3), dtype=np.uint8)
    masks = []
    if with_objects:
        for centre, axes, angle in (((20, 22), (12, 5), 30), ((42, 40), (9, 8), 0),
                                    ((30, 30), (16, 3), 120)):
            mask = np.zeros((SIZE, SIZE), np.uint8)
            cv2.ellipse(mask, centre, axes, angle, 0, 360, 1, -1)
            masks.append(mask)
            img[mask.astype(bool)] = 90
    masks = np.stack(masks) if masks else np.zeros((0, SIZE, SIZE), np.uint8)
    results = dict(img=img, img_shape=(SIZE, SIZE), ori_shape=(SIZE, SIZE), scale_factor=(1., 1.),
                   img_id=seed, img_path=f'synthetic_{seed}.png',
                   gt_masks=BitmapMasks(masks, SIZE, SIZE),
                   gt_bboxes_labels=np.arange(len(masks), dtype=np.int64) % 3,
                   gt_ignore_flags=np.zeros(len(masks), bool))
    results = GenerateA2BTargets(stride=2)(results)
    return PackA2BInputs(meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                                    'scale_factor'))(results)


def _tiny_model():
    model = MODELS.build(Config.fromfile(TINY).model)
    model.init_weights()
    return model


def _batch(model, with_objects, training=True):
    return model.data_preprocessor(
        pseudo_collate([_packed(with_objects, 0), _packed(with_objects, 1)]), training)


@pytest.mark.parametrize('arch,expected', [('t', 3294560), ('s', 7987264), ('b', 22971264),
                                           ('l', 48888768)])
def test_pannuke_configs_match_spec_parameter_totals(arch, expected):
    """docs/model.md (parameters), C = 7: the PanNuke configs of every size (built on the meta device)."""
    cfg = Config.fromfile(str(CONFIGS / f'a2bis-{arch}_a2b_100e_pannuke-256.py'))
    cfg.model.mask_head.fullres = None  # the paper's architecture
    with torch.device('meta'):
        model = MODELS.build(cfg.model)
    assert sum(p.numel() for p in model.parameters()) == expected


def test_b_with_26_classes_matches_spec_total():
    """docs/model.md (parameters): A2B-IS-B with C = 26 (24 chromosome classes) has 23,015,040 parameters."""
    cfg = Config.fromfile(str(CONFIGS / 'a2bis-b_a2b_100e_chromosome-512.py')).model
    cfg.mask_head.num_classes = 24
    cfg.mask_head.fullres = None  # the paper's architecture
    model = MODELS.build(cfg)
    assert sum(p.numel() for p in model.parameters()) == 23015040


def test_initial_maps_and_tensor_mode():
    model = _tiny_model()
    data = _batch(model, True)
    maps = model.forward_maps(data['inputs'])
    assert maps['skeleton'].shape == (2, 1, 32, 32) and maps['bbox'].shape == (2, 5, 32, 32)
    assert maps['seg'].shape == (2, 5, 32, 32)  # 3 classes + background + overlap
    assert torch.allclose(maps['skeleton'], torch.full_like(maps['skeleton'], 0.5))
    assert torch.allclose(maps['seg'], torch.full_like(maps['seg'], 0.2))
    assert torch.equal(maps['bbox'], torch.zeros_like(maps['bbox']))
    assert maps['fg'].shape == maps['overlap'].shape == (2, 1, 64, 64)  # input resolution
    assert torch.allclose(maps['fg'], torch.full_like(maps['fg'], 0.5))
    raw = model(data['inputs'], mode='tensor')
    assert [t.shape[1] for t in raw] == [1, 5, 5, 2] and torch.equal(raw[0], torch.zeros(2, 1, 32, 32))


def test_loss_with_and_without_objects():
    model = _tiny_model()
    data = _batch(model, True)
    losses = model(**data, mode='loss')
    assert set(losses) == {'loss_skeleton', 'loss_ce', 'loss_dice', 'loss_bbox',
                           'loss_fullres_bce', 'loss_fullres_dice'}
    for name, value in losses.items():
        assert torch.isfinite(value) and value.item() > 0, name

    data = _batch(model, False)
    losses = model(**data, mode='loss')
    assert all(torch.isfinite(v) for v in losses.values())
    assert losses['loss_bbox'].item() == 0
    # only negative/background terms remain, each still penalising the initial guess
    assert losses['loss_skeleton'].item() > 0 and losses['loss_ce'].item() > 0


def test_gradients_reach_every_parameter():
    model = _tiny_model()
    # the zero-initialised output convs block gradients to the layers below on the very first
    # step only; give them small weights, as after one optimiser step
    gen = torch.Generator().manual_seed(0)
    head = model.mask_head
    for branch in (head.skeleton_branch, head.seg_branch, head.bbox_branch, head.fullres_branch):
        branch.conv_out.weight.data = torch.randn(branch.conv_out.weight.shape,
                                                  generator=gen) * 1e-2
    data = _batch(model, True)
    losses = model(**data, mode='loss')
    sum(losses.values()).backward()
    missing = [n for n, p in model.named_parameters()
               if p.grad is None or not torch.isfinite(p.grad).all() or p.grad.abs().sum() == 0]
    assert missing == []
    # the skeleton map enters seg/box heads with gradient: the box loss alone reaches it
    model.zero_grad()
    model(**data, mode='loss')['loss_bbox'].backward()
    assert model.mask_head.skeleton_branch.conv_out.weight.grad.abs().sum() > 0


def test_predict_blank_image_returns_no_instances():
    model = _tiny_model().eval()
    packed = _packed(False)
    packed['inputs'][:] = 200
    data = model.data_preprocessor(pseudo_collate([packed]), False)
    with torch.no_grad():
        results = model(**data, mode='predict')
    pred = results[0].pred_instances
    assert len(pred) == 0 and isinstance(pred.bboxes, RotatedBoxes)
    assert pred.masks.shape == (0, SIZE, SIZE) and pred.scores.shape == (0, )


def test_predict_returns_instances_at_original_size():
    model = _tiny_model().eval()
    packed = _packed(True)
    packed['data_samples'].set_metainfo(dict(ori_shape=(2 * SIZE, 2 * SIZE),
                                             scale_factor=(0.5, 0.5)))
    data = model.data_preprocessor(pseudo_collate([packed]), False)
    skeleton_logits, seg_logits, bbox_preds, fullres_logits = model(data['inputs'], mode='tensor')
    fg = torch.full_like(seg_logits, -100.)
    fg[:, 2] = 100.  # foreground class 1 everywhere; skeleton 0.5 from the zero-init head
    results = model.mask_head.predict_by_feat(
        skeleton_logits, fg, bbox_preds, fullres_logits,
        batch_img_metas=[data['data_samples'][0].metainfo], rescale=True)
    pred = results[0]
    assert len(pred) >= 1 and pred.labels.eq(1).all()
    assert pred.masks.shape[1:] == (2 * SIZE, 2 * SIZE)
    assert torch.allclose(pred.scores, torch.full_like(pred.scores, 0.5))


@pytest.mark.slow
def test_overfit_two_real_images(shared_data, repo_root, tmp_path):
    """tools/overfit_check.py: mask AP50 >= 0.9 on the two annotated images it trains on."""
    out = subprocess.run(
        [sys.executable, str(repo_root / 'tools/overfit_check.py'), '--data-root',
         str(shared_data), '--steps', '150', '--min-ap50', '0.9'],
        capture_output=True, text=True, cwd=repo_root, timeout=3600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert 'mask AP50' in out.stdout
