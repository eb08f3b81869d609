"""Tests of tools/analysis_tools/get_flops.py: exact parameter counts and FLOPs (docs/model.md)."""
import importlib.util
import sys
from typing import Optional

import pytest
import torch
from mmdet.registry import MODELS
from mmengine.config import Config
from mmengine.registry import init_default_scope


@pytest.fixture(scope='module')
def get_flops(repo_root):
    path = repo_root / 'tools' / 'analysis_tools' / 'get_flops.py'
    spec = importlib.util.spec_from_file_location('get_flops', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    init_default_scope('mmdet')
    return module


def a2bis_cfg(repo_root, arch: str, num_classes: Optional[int] = 24,
              dataset: str = 'chromosome-512', fullres: bool = False) -> dict:
    """``cfg.model`` of the A2B-IS-``arch`` config for ``dataset``.

    ``num_classes`` overrides the object classes (24 = the paper's chromosome types, C = 26).
    Without ``fullres`` the full-resolution branch is removed: the paper's architecture, whose
    counts the spec gives.
    """
    config = repo_root / 'configs' / 'a2bis' / f'a2bis-{arch.lower()}_a2b_100e_{dataset}.py'
    model = Config.fromfile(config).model
    if not fullres:
        model.mask_head.fullres = None
    if num_classes is not None:
        model.mask_head.num_classes = num_classes
    return model


def test_backbone_only_t(get_flops):
    rows = get_flops.model_complexity(dict(type='A2BNet', arch='T'), 512)
    assert rows['total']['params'] == 604_256
    # Every conv runs at 256^2, so MACs = conv weights x 65536; the stem has 3*49*16 weights.
    assert rows['stem']['macs'] == 3 * 49 * 16 * 256**2
    assert rows['total']['macs'] == 39_454_769_152
    assert rows['total']['gflops'] == pytest.approx(78.909538304, abs=1e-9)


@pytest.mark.parametrize('arch,num_classes,params,heads', [
    ('T', 24, 3_338_336, None),
    ('S', 24, 8_031_040, None),
    ('B', 24, 23_015_040, (1_772_288, 1_832_192, 1_783_808)),
    ('L', 24, 48_932_544, None),
    # the chromosome-pair configs as they are: 1 class, C = 3, i.e. 23 fewer 3x3x256 seg kernels
    ('T', None, 3_338_336 - 23 * 9 * 256, None),
])
def test_full_model_params_match_spec(get_flops, repo_root, arch, num_classes, params, heads):
    rows = get_flops.model_complexity(a2bis_cfg(repo_root, arch, num_classes), 64)
    assert rows['total']['params'] == params
    assert rows['total']['mib'] == params * 4 / 2**20
    if heads is not None:
        branches = ('skeleton_branch', 'seg_branch', 'bbox_branch')
        assert tuple(rows[f'mask_head.{b}']['params'] for b in branches) == heads
        assert rows['mask_head']['params'] == sum(heads)


def test_pannuke_t_params_match_spec(get_flops, repo_root):
    # PanNuke: 5 classes, C = 7 (docs/model.md, params with C = 7)
    cfg = a2bis_cfg(repo_root, 'T', num_classes=None, dataset='pannuke-256')
    assert get_flops.model_complexity(cfg, 64)['total']['params'] == 3_294_560


@pytest.mark.parametrize('arch,macs,paper', [
    ('T', 218_534_772_736, 437.4),
    ('S', 525_804_240_896, 1053.7),
    ('B', 1_507_378_331_648, 3021.4),
])
def test_gflops_at_512_match_paper(get_flops, repo_root, arch, macs, paper):
    rows = get_flops.model_complexity(a2bis_cfg(repo_root, arch, 24), 512)
    assert rows['total']['macs'] == macs
    assert rows['total']['gflops'] == pytest.approx(paper, rel=0.01)
    assert sum(rows[k]['macs'] for k in ('backbone', 'mask_head')) == macs
    assert rows['mask_head']['macs'] == sum(
        rows[f'mask_head.{b}']['macs'] for b in ('skeleton_branch', 'seg_branch', 'bbox_branch'))


def test_macs_are_conv_weights_times_output_pixels(get_flops, repo_root):
    """Cross-check the counter against the module tree: all convs run at (shape/2)^2, no bias."""
    cfg = a2bis_cfg(repo_root, 'T')
    with torch.device('meta'):
        model = MODELS.build(cfg)
    weights = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    for shape in (64, 96):
        assert get_flops.model_complexity(cfg, shape)['total']['macs'] == weights * (shape // 2)**2


def test_cli_prints_table_with_paper_difference(get_flops, repo_root, monkeypatch, capsys):
    config = repo_root / 'configs' / 'a2bis' / 'a2bis-t_a2b_100e_chromosome-512.py'
    monkeypatch.setattr(sys, 'argv', [
        'get_flops.py', str(config), '--shape', '512', '--cfg-options',
        'model.mask_head.num_classes=24', 'model.mask_head.fullres=None'])
    get_flops.main()
    out = capsys.readouterr().out
    assert '| total | 3,338,336 | 12.73 | 437.07 |' in out
    assert '| 12.4 (+2.70%) | 437.4 (-0.08%) |' in out


def test_cli_rejects_odd_shape(get_flops, repo_root, monkeypatch):
    config = repo_root / 'configs' / 'a2bis' / 'a2bis-t_a2b_100e_chromosome-512.py'
    monkeypatch.setattr(sys, 'argv', ['get_flops.py', str(config), '--shape', '511'])
    with pytest.raises(ValueError, match='--shape must be an even size >= 2.*511'):
        get_flops.main()


def test_fullres_branch_params_and_flops(get_flops, repo_root):
    """The full-resolution branch (docs/decoder.md): 19,040 parameters for T, its convs at H x W."""
    paper = get_flops.model_complexity(a2bis_cfg(repo_root, 'T', None, 'pannuke-256'), 256)
    full = get_flops.model_complexity(
        a2bis_cfg(repo_root, 'T', None, 'pannuke-256', fullres=True), 256)
    branch = full['mask_head.fullres_branch']
    assert branch['params'] == 129 * 32 + 32 + 3 * 16 * 9 + 16 + 48 * 32 * 9 + 32 + 32 * 2 * 9
    assert full['total']['params'] == paper['total']['params'] + branch['params'] == 3_313_600
    # 1x1 projection at 128^2, image conv, fusion and output conv at 256^2
    assert branch['macs'] == 129 * 32 * 128**2 + (3 * 16 + 48 * 32 + 32 * 2) * 9 * 256**2
    assert branch['macs'] / paper['total']['macs'] < 0.02
