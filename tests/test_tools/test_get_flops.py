"""Tests of tools/analysis_tools/get_flops.py: exact parameter counts and FLOPs (spec B §1.6)."""
import importlib.util
import sys

import pytest
import torch
from mmdet.registry import MODELS
from mmengine.config import Config
from mmengine.registry import init_default_scope

from a2bis_mm.models.backbones import A2BNet


@pytest.fixture(scope='module')
def get_flops(repo_root):
    path = repo_root / 'tools' / 'analysis_tools' / 'get_flops.py'
    spec = importlib.util.spec_from_file_location('get_flops', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    init_default_scope('mmdet')
    return module


def a2bis_cfg(repo_root, arch: str, num_classes: int) -> dict:
    """The A2B-IS model config with backbone ``arch`` and ``num_classes`` object classes."""
    cfg = Config.fromfile(repo_root / 'configs' / '_base_' / 'models' / 'a2bis_a2bnet-t.py').model
    c4 = A2BNet.arch_settings[arch]['channels'][-1]
    cfg.backbone.arch = arch
    for head in ('skeleton_head', 'seg_head', 'bbox_head'):
        cfg[head].in_channels = c4
    cfg.seg_head.num_classes = cfg.bbox_head.num_classes = num_classes
    return cfg


def test_backbone_only_t(get_flops):
    rows = get_flops.model_complexity(dict(type='A2BNet', arch='T'), 512)
    assert rows['total']['params'] == 604_256
    # Every conv runs at 256^2, so MACs = conv weights x 65536; the stem has 3*49*16 weights.
    assert rows['stem']['macs'] == 3 * 49 * 16 * 256**2
    assert rows['total']['macs'] == 39_454_769_152
    assert rows['total']['gflops'] == pytest.approx(78.909538304, abs=1e-9)


@pytest.mark.parametrize('arch,num_classes,params,heads', [
    ('T', 5, 3_294_560, None),
    ('T', 24, 3_338_336, None),
    ('S', 24, 8_031_040, None),
    ('B', 24, 23_015_040, (1_772_288, 1_832_192, 1_783_808)),
    ('L', 24, 48_932_544, None),
])
def test_full_model_params_match_spec(get_flops, repo_root, arch, num_classes, params, heads):
    rows = get_flops.model_complexity(a2bis_cfg(repo_root, arch, num_classes), 64)
    assert rows['total']['params'] == params
    assert rows['total']['mib'] == params * 4 / 2**20
    if heads is not None:
        assert tuple(rows[h]['params'] for h in ('skeleton_head', 'seg_head', 'bbox_head')) == heads


@pytest.mark.parametrize('arch,macs,paper', [
    ('T', 218_534_772_736, 437.4),
    ('S', 525_804_240_896, 1053.7),
    ('B', 1_507_378_331_648, 3021.4),
])
def test_gflops_at_512_match_paper(get_flops, repo_root, arch, macs, paper):
    rows = get_flops.model_complexity(a2bis_cfg(repo_root, arch, 24), 512)
    assert rows['total']['macs'] == macs
    assert rows['total']['gflops'] == pytest.approx(paper, rel=0.01)
    assert sum(rows[k]['macs'] for k in rows if k != 'total') == macs


def test_macs_are_conv_weights_times_output_pixels(get_flops, repo_root):
    """Cross-check the hooks against the module tree: all convs run at (shape/2)^2, no bias."""
    cfg = a2bis_cfg(repo_root, 'T', 5)
    with torch.device('meta'):
        model = MODELS.build(cfg)
    weights = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    for shape in (64, 96):
        assert get_flops.model_complexity(cfg, shape)['total']['macs'] == weights * (shape // 2)**2


def test_cli_prints_table_with_paper_difference(get_flops, repo_root, monkeypatch, capsys):
    config = repo_root / 'configs' / '_base_' / 'models' / 'a2bis_a2bnet-t.py'
    monkeypatch.setattr(sys, 'argv', [
        'get_flops.py', str(config), '--shape', '512', '--cfg-options',
        'model.seg_head.num_classes=24', 'model.bbox_head.num_classes=24'])
    get_flops.main()
    out = capsys.readouterr().out
    assert '| total | 3,338,336 | 12.73 | 437.07 |' in out
    assert '| 12.4 (+2.70%) | 437.4 (-0.08%) |' in out


def test_cli_rejects_odd_shape(get_flops, repo_root, monkeypatch):
    config = repo_root / 'configs' / '_base_' / 'models' / 'a2bis_a2bnet-t.py'
    monkeypatch.setattr(sys, 'argv', ['get_flops.py', str(config), '--shape', '511'])
    with pytest.raises(ValueError, match='--shape must be an even size >= 2.*511'):
        get_flops.main()
