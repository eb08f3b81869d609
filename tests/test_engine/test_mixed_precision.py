"""MixedPrecisionOptimWrapper: bf16 autocast on CPU, fp32 islands, fallback, state dicts."""
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn as nn
from mmdet.registry import MODELS
from mmdet.structures.mask import BitmapMasks
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.optim import OptimWrapper, build_optim_wrapper
from mmengine.registry import init_default_scope

import a2bis_mm  # noqa: F401  registers the wrapper and the model
from a2bis_mm.datasets.transforms import GenerateA2BTargets, PackA2BInputs
from a2bis_mm.engine.optimizers import (
    MixedPrecisionOptimWrapper,
    cpu_supports_bf16,
    install_fp32_islands,
    mixed_precision,
    resolve_dtype,
)
from a2bis_mm.engine.optimizers import mixed_precision_optim_wrapper as mp_module

REPO = Path(__file__).resolve().parents[2]
TINY = str(REPO / 'configs' / 'a2bis' / 'a2bis-tiny_a2b_300i_synthetic.py')


@pytest.fixture(scope='module', autouse=True)
def _scope():
    init_default_scope('mmdet')


@pytest.fixture
def bf16_cpu(monkeypatch):
    """Pretend the CPU has native bf16, so the bf16 path is tested on any x86 CPU."""
    monkeypatch.setattr(mp_module, 'cpu_supports_bf16', lambda: True)


class _ToyHead(nn.Module):
    """A module named like a head: its outputs become float32."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 2, 3, padding=1)
        self.conv_out = nn.Conv2d(4, 2, 1)  # path '*.conv_out': float32, autocast off

    def forward(self, x):
        return self.conv(x), [self.conv(x), self.conv_out(x)]


class _ToyLoss(nn.Module):
    """A module named like a loss: it records the dtypes of its inputs."""

    seen = []

    def forward(self, pred, target=None):
        self.seen.append((pred.dtype, target.dtype if target is not None else None))
        return pred.float().mean()


class _Toy(nn.Module):

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.head = _ToyHead()
        self.loss = _ToyLoss()

    def forward(self, x):
        feat = self.stem(x)
        out, outs = self.head(feat)
        return feat, out, outs, self.loss(feat, target=feat)


def _wrapper(model, **kwargs):
    cfg = dict(type='MixedPrecisionOptimWrapper', optimizer=dict(type='Adam', lr=1e-3), **kwargs)
    return build_optim_wrapper(model, cfg)


def test_cpu_supports_bf16_and_resolve_dtype(monkeypatch):
    assert isinstance(cpu_supports_bf16(), bool)
    assert resolve_dtype('float32', 'cpu') is None and resolve_dtype(None, 'cpu') is None
    assert resolve_dtype('float16', 'cpu') is None  # CPU autocast: bf16 only
    monkeypatch.setattr(mp_module, 'cpu_supports_bf16', lambda: True)
    assert resolve_dtype('bfloat16', 'cpu') is torch.bfloat16
    assert resolve_dtype(torch.bfloat16, 'cpu') is torch.bfloat16
    monkeypatch.setattr(mp_module, 'cpu_supports_bf16', lambda: False)
    assert resolve_dtype('bfloat16', 'cpu') is None
    with pytest.raises(ValueError, match='dtype'):
        resolve_dtype('int8', 'cpu')


@pytest.mark.skipif(torch.cuda.is_available(), reason='checks the CPU path')
def test_bf16_autocast_islands_and_channels_last(bf16_cpu):
    torch.manual_seed(0)
    model = _Toy()
    wrapper = _wrapper(model, dtype='bfloat16', channels_last=True)
    assert isinstance(wrapper, MixedPrecisionOptimWrapper) and wrapper.loss_scaler is None
    _ToyLoss.seen.clear()
    with wrapper.optim_context(model):
        feat, out, outs, loss = model(torch.rand(2, 3, 8, 8))
        assert torch.is_autocast_enabled('cpu')  # conv_out's hook restored it
    assert feat.dtype == torch.bfloat16  # the convolution ran in bf16
    assert out.dtype == torch.float32 and outs[0].dtype == torch.float32  # head outputs
    # conv_out ran in float32 (not a bf16 result cast up)
    with torch.no_grad():
        expected = model.head.conv_out(feat.float())
    torch.testing.assert_close(outs[1], expected)
    assert _ToyLoss.seen == [(torch.float32, torch.float32)]  # loss inputs, kwargs included
    assert model.stem.weight.dtype == torch.float32  # master weights stay float32
    assert model.stem.weight.is_contiguous(memory_format=torch.channels_last)
    wrapper.update_params(loss + out.mean())
    assert torch.isfinite(model.stem.weight.grad if model.stem.weight.grad is not None
                          else model.stem.weight).all()
    assert install_fp32_islands(model) == 0  # idempotent: hooked once


def test_fallback_to_float32_logs_one_line(monkeypatch, mm_caplog):
    monkeypatch.setattr(mp_module, 'cpu_supports_bf16', lambda: False)
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    model = _Toy()
    wrapper = _wrapper(model, dtype='bfloat16')
    assert wrapper.cast_dtype is None
    assert 'no native bf16' in mm_caplog.text and 'float32' in mm_caplog.text
    with wrapper.optim_context(model):
        feat, *_ = model(torch.rand(1, 3, 8, 8))
    assert feat.dtype == torch.float32


def test_state_dict_interchangeable_with_optim_wrapper(monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    model = _Toy()
    plain = OptimWrapper(torch.optim.Adam(model.parameters(), lr=1e-3))
    plain.update_params(model(torch.rand(1, 3, 8, 8))[1].mean())
    state = plain.state_dict()
    wrapper = _wrapper(model, dtype='bfloat16')
    # a checkpoint saved by AmpOptimWrapper on a GPU carries a loss-scaler entry
    wrapper.load_state_dict(dict(state, loss_scaler={'scale': 1024.0}))
    assert 'loss_scaler' not in wrapper.state_dict()
    assert wrapper.state_dict()['state'].keys() == state['state'].keys()


def test_mixed_precision_context_for_inference(bf16_cpu):
    model = _Toy().eval()
    with torch.no_grad(), mixed_precision(model, 'bfloat16') as dtype:
        feat, out, _, _ = model(torch.rand(1, 3, 8, 8))
    if torch.cuda.is_available():
        return
    assert dtype is torch.bfloat16 and feat.dtype == torch.bfloat16 and out.dtype == torch.float32
    with mixed_precision(model, 'float32') as dtype:
        assert dtype is None and model(torch.rand(1, 3, 8, 8))[0].dtype == torch.float32


def _packed(seed: int) -> dict:
    """One 64x64 image with three ellipses through the real target/packing transforms."""
    rng = np.random.default_rng(seed)
    img = rng.integers(180, 220, (64, 64, 3), dtype=np.uint8)
    masks = []
    for centre, axes, angle in (((20, 22), (12, 5), 30), ((42, 40), (9, 8), 0)):
        mask = np.zeros((64, 64), np.uint8)
        cv2.ellipse(mask, centre, axes, angle, 0, 360, 1, -1)
        masks.append(mask)
        img[mask.astype(bool)] = 90
    results = dict(img=img, img_shape=(64, 64), ori_shape=(64, 64), scale_factor=(1., 1.),
                   img_id=seed, img_path=f'synthetic_{seed}.png',
                   gt_masks=BitmapMasks(np.stack(masks), 64, 64),
                   gt_bboxes_labels=np.array([0, 1]), gt_ignore_flags=np.zeros(2, bool))
    results = GenerateA2BTargets(num_classes=3, stride=2)(results)
    return PackA2BInputs(meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                                    'scale_factor'))(results)


@pytest.mark.skipif(torch.cuda.is_available(), reason='checks the CPU path')
def test_a2bis_train_step_in_bf16_matches_float32(bf16_cpu):
    """The tiny A2B-IS: bf16 + channels_last losses are float32 and close to float32's."""
    cfg = Config.fromfile(TINY)
    cfg.model.mask_head.num_classes = 3
    batch = pseudo_collate([_packed(0), _packed(1)])
    losses = {}
    for dtype in ('float32', 'bfloat16'):
        torch.manual_seed(0)
        model = MODELS.build(cfg.model)
        model.init_weights()
        wrapper = _wrapper(model, dtype=dtype, channels_last=dtype == 'bfloat16')
        out = model.train_step(batch, wrapper)
        assert all(v.dtype == torch.float32 and torch.isfinite(v) for v in out.values())
        assert all(p.dtype == torch.float32 for p in model.parameters())
        losses[dtype] = out
    for key, value in losses['float32'].items():
        assert losses['bfloat16'][key].item() == pytest.approx(value.item(), rel=0.05), key


def test_a2bnet_channels_last_same_output_and_layout():
    """The backbone keeps an NHWC layout end to end (no NCHW copies) and computes the same map."""
    from a2bis_mm.models.backbones.a2bnet import A2BNet, spatial_softmax
    torch.manual_seed(0)
    net = A2BNet(arch='T').eval()
    net.init_weights()
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        ref = net(x)[0]
        net.to(memory_format=torch.channels_last)
        out = net(x.contiguous(memory_format=torch.channels_last))[0]
    assert out.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-4)
    scores = torch.randn(2, 5, 7, 6)
    nhwc = spatial_softmax(scores.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(nhwc, spatial_softmax(scores))
    torch.testing.assert_close(nhwc.sum(dim=(2, 3)), torch.ones(2, 5))
