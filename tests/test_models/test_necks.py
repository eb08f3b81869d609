"""Tests of A2BUpsampleNeck: stride-2 output, grid alignment, top-down fusion, bad input."""
import pytest
import torch
import torch.nn.functional as F
from mmdet.registry import MODELS

import a2bis_mm  # noqa: F401  (registers the neck)
from a2bis_mm.models.necks.a2b_upsample_neck import upsample_aligned


def test_upsample_aligned_keeps_pixel_grid():
    # A ramp whose value equals the column index: output column c' must read exactly c'/f.
    for factor in (2, 4):
        ramp = torch.arange(8.).view(1, 1, 1, 8).expand(1, 1, 5, 8)
        up = upsample_aligned(ramp, factor)
        assert up.shape == (1, 1, 5 * factor, 8 * factor)
        expected = torch.arange(8 * factor) / factor
        expected = expected.clamp(max=7.)  # replicate padding beyond the last pixel
        torch.testing.assert_close(up[0, 0, 0], expected)
        # rows follow the same rule: row 2 of the input sits at row 2*factor of the output
        col = torch.arange(5.).view(1, 1, 5, 1).expand(1, 1, 5, 8)
        assert torch.equal(upsample_aligned(col, factor)[0, 0, ::factor, 0], torch.arange(5.))
    # F.interpolate's half-pixel grid does not satisfy this (the reason for the helper)
    shifted = F.interpolate(ramp, scale_factor=2, mode='bilinear', align_corners=False)
    assert not torch.allclose(shifted[0, 0, 0, :14], torch.arange(14) / 2)


@pytest.mark.parametrize('in_channels', [(64, 128, 256, 512), (18, 36, 72, 144)])
def test_neck_outputs_one_stride2_map(in_channels):
    neck = MODELS.build(dict(type='A2BUpsampleNeck', in_channels=in_channels, out_channels=32))
    neck.init_weights()
    feats = tuple(torch.randn(2, c, 64 // 2**i, 64 // 2**i) for i, c in enumerate(in_channels))
    outs = neck(feats)
    assert isinstance(outs, tuple) and len(outs) == 1
    assert outs[0].shape == (2, 32, 128, 128)  # stride 4 -> stride 2 for a 256 input
    # every level contributes: the coarsest level changes the output, and all laterals get grads
    feats2 = feats[:-1] + (feats[-1] + 1.0, )
    assert not torch.allclose(neck(feats2)[0], outs[0])
    outs[0].sum().backward()
    for conv in neck.lateral_convs:
        assert conv.conv.weight.grad is not None and conv.conv.weight.grad.abs().sum() > 0


def test_neck_with_mmdet_backbone_and_odd_size():
    backbone = MODELS.build(dict(type='ResNet', depth=18, out_indices=(0, 1, 2, 3)))
    neck = MODELS.build(dict(type='A2BUpsampleNeck', in_channels=(64, 128, 256, 512),
                             out_channels=16))
    with torch.no_grad():
        out = neck(backbone(torch.zeros(1, 3, 200, 200)))[0]
    # 200 -> stride-4 map 50 -> coarse maps 25, 13, 7 (one pixel long) -> output 100
    assert out.shape == (1, 16, 100, 100)


def test_neck_rejects_bad_configuration():
    with pytest.raises(ValueError, match='in_strides'):
        MODELS.build(dict(type='A2BUpsampleNeck', in_channels=(8, 16), in_strides=(4, 8, 16)))
    with pytest.raises(ValueError, match='integer factors'):
        MODELS.build(dict(type='A2BUpsampleNeck', in_channels=(8, 16), in_strides=(4, 6)))
    neck = MODELS.build(dict(type='A2BUpsampleNeck', in_channels=(8, 16), in_strides=(4, 8)))
    with pytest.raises(ValueError, match='expected 2 feature maps'):
        neck((torch.zeros(1, 8, 8, 8), ))


@pytest.mark.parametrize('backbone', ['r50', 'swin-t', 'hrnet-w18'])
def test_a2bis_classic_backbone_configs_give_stride2_maps(backbone, repo_root):
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    init_default_scope('mmdet')
    cfg = Config.fromfile(repo_root / f'configs/a2bis/a2bis_{backbone}_up_50e_consep-256.py')
    assert cfg.model.backbone.init_cfg is None  # trained from scratch: nothing is downloaded
    model = MODELS.build(cfg.model).eval()
    assert type(model.neck).__name__ == 'A2BUpsampleNeck'
    with torch.no_grad():
        maps = model.forward_maps(torch.zeros(1, 3, 64, 64))
    assert maps['skeleton'].shape == (1, 1, 32, 32)
    assert maps['seg'].shape == (1, 6, 32, 32)  # 4 consep classes + background + overlap
    assert maps['bbox'].shape == (1, 5, 32, 32)
