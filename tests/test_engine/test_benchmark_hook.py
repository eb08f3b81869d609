"""BenchmarkHook: the wall-clock budget stops training through the loop's public flag."""
import json
import os.path as osp

import torch
import torch.nn as nn
from mmengine.model import BaseModel
from mmengine.runner import Runner

from a2bis_mm.engine.hooks.benchmark_hook import BenchmarkHook


class ToyModel(BaseModel):
    """y = w * x, trained towards 0."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.ones(1))

    def forward(self, inputs, data_samples=None, mode='tensor'):
        out = self.w * inputs
        return dict(loss=out.pow(2).mean()) if mode == 'loss' else out


def test_budget_stops_training_and_saves_the_last_iteration(tmp_path):
    runner = Runner(
        model=ToyModel(),
        work_dir=str(tmp_path),
        train_dataloader=dict(dataset=[torch.ones(1)] * 8, batch_size=1,
                              sampler=dict(type='InfiniteSampler'),
                              collate_fn=dict(type='pseudo_collate')),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        train_cfg=dict(by_epoch=False, max_iters=10**6),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=10**6,
                                           by_epoch=False)),
        custom_hooks=[BenchmarkHook(max_minutes=0.05 / 60)],  # 50 ms
        default_scope='mmengine')
    runner.train()
    iters = runner.iter
    assert 1 <= iters < 10**6
    with open(osp.join(str(tmp_path), 'last_checkpoint')) as f:
        last = f.read().strip()
    assert last == osp.join(str(tmp_path), f'iter_{iters}.pth') and osp.isfile(last)
    assert torch.load(last, map_location='cpu', weights_only=False)['meta']['iter'] == iters
    with open(osp.join(str(tmp_path), 'bench_train.json')) as f:
        assert json.load(f)['iters'] == iters
