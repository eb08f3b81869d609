"""tools/train.py --amp on a CPU (the mixed-precision wrapper of a2bis_mm, not mmengine's GPU-only AMP)."""
import pytest
import torch

from a2bis_mm.engine.optimizers.mixed_precision_optim_wrapper import MixedPrecisionOptimWrapper
from tools import train as train_tool

MASK_RCNN = 'configs/baselines/mask-rcnn_r50_fpn_50e_consep-256.py'


def test_amp_uses_the_mixed_precision_wrapper(repo_root, shared_data, tmp_path, monkeypatch):
    monkeypatch.chdir(repo_root)
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    runner = train_tool.build_runner([MASK_RCNN, '--amp', '--work-dir', str(tmp_path)])
    assert runner.cfg.optim_wrapper.type == 'MixedPrecisionOptimWrapper'
    wrapper = runner.build_optim_wrapper(runner.optim_wrapper)
    assert isinstance(wrapper, MixedPrecisionOptimWrapper)  # builds on a CPU (AmpOptimWrapper asserts a GPU)
    assert wrapper.optimizer.param_groups[0]['lr'] == pytest.approx(0.02 * 4 / 16)  # the config's lr kept
