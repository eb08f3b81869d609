"""SSL-IS in a real mmengine Runner: the EMA teacher step, the start-of-training copy and resume.

The runs use the tiny SSL config on generated 64x64 images (labelled COCO set + the same images
as the unlabeled folder), so they need no shared data and take seconds.
"""
import copy

import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.runner import Runner

from a2bis_mm.datasets import generate_synthetic_coco
from a2bis_mm.datasets.synthetic import CLASSES
from a2bis_mm.utils import load_local_checkpoint

TINY = 'configs/a2bis_ssl/a2bis-tiny_ssl_300i_chromosome-512.py'


class SnapshotHook(Hook):
    """Records the model state at ``before_train`` (before MeanTeacherHook copies) and at every
    ``before_train_iter`` (after the previous step's EMA update)."""

    priority = 'VERY_HIGH'

    def __init__(self):
        self.start = None
        self.iters = []

    def before_train(self, runner):
        self.start = copy.deepcopy(runner.model.state_dict())

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self.iters.append(copy.deepcopy(runner.model.state_dict()))


@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp('ssl_data')
    generate_synthetic_coco(str(root), num_train=3, num_val=1, size=64)
    return root


def make_cfg(repo_root, data_root, work_dir, max_iters) -> Config:
    cfg = Config.fromfile(str(repo_root / TINY))
    num_classes = len(CLASSES)
    cfg.model.detector.mask_head.num_classes = num_classes
    sup, unsup = cfg.train_dataloader.dataset.datasets
    sup.update(type='CocoDataset', data_root=str(data_root), ann_file='train.json',
               data_prefix=dict(img='images/'), metainfo=dict(classes=CLASSES))
    sup.pipeline[1] = dict(type='LoadAnnotations', with_bbox=True, with_mask=True)
    unsup.update(data_root=str(data_root / 'images'), metainfo=dict(classes=CLASSES))
    for pipeline in (sup.pipeline, unsup.pipeline):
        for t in pipeline:
            if t['type'] == 'Resize':
                t['scale'] = (64, 64)
            if t['type'] == 'GenerateA2BTargets':
                t['num_classes'] = num_classes
    cfg.train_dataloader.update(num_workers=0, persistent_workers=False)
    cfg.train_cfg.update(max_iters=max_iters, val_interval=10**6)
    for key in ('val_dataloader', 'val_cfg', 'val_evaluator', 'test_dataloader', 'test_cfg',
                'test_evaluator'):
        cfg[key] = None
    cfg.default_hooks.checkpoint.update(interval=1, max_keep_ckpts=5)
    cfg.default_hooks.logger.interval = 1
    cfg.default_hooks.visualization.draw = False
    cfg.work_dir = str(work_dir)
    return cfg


def split(state, prefix):
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def test_teacher_is_copied_then_ema_updated(repo_root, data_root, tmp_path):
    runner = Runner.from_cfg(make_cfg(repo_root, data_root, tmp_path, max_iters=2))
    snap = SnapshotHook()
    runner.register_hook(snap)
    runner.train()

    teacher0, student0 = split(snap.start, 'teacher.'), split(snap.start, 'student.')
    # the teacher starts from its own random init, so the copy at train start matters
    assert any(not torch.equal(teacher0[k], student0[k]) for k in student0)
    states = snap.iters + [runner.model.state_dict()]  # before step 1, before step 2, end
    for k in student0:
        assert torch.equal(states[0]['teacher.' + k], student0[k])  # copied before step 1
    for prev, cur in zip(states[:-1], states[1:]):
        student_prev, student_cur = split(prev, 'student.'), split(cur, 'student.')
        assert any(not torch.equal(student_prev[k], student_cur[k]) for k in student_cur)
        for k, v in student_cur.items():
            expected = 0.99 * prev['teacher.' + k] + 0.01 * v
            torch.testing.assert_close(cur['teacher.' + k], expected, rtol=0, atol=1e-6)
    # the second step moves every layer (the first only the zero-initialised output convs)
    assert all(not torch.equal(states[1][k], states[2][k]) for k in states[2]
               if k.startswith('student.') and k.endswith('weight'))
    # no gradient ever reached the frozen teacher
    assert all(p.grad is None for p in runner.model.teacher.parameters())


def test_resume_keeps_teacher_and_student(repo_root, data_root, tmp_path):
    Runner.from_cfg(make_cfg(repo_root, data_root, tmp_path, max_iters=2)).train()
    ckpt_path = tmp_path / 'iter_2.pth'
    saved = load_local_checkpoint(str(ckpt_path))['state_dict']
    assert any(not torch.equal(saved['teacher.' + k], v)
               for k, v in split(saved, 'student.').items())

    cfg = make_cfg(repo_root, data_root, tmp_path, max_iters=3)
    cfg.resume, cfg.load_from = True, str(ckpt_path)
    runner = Runner.from_cfg(cfg)
    snap = SnapshotHook()
    runner.register_hook(snap)
    runner.train()
    assert runner.iter == 3
    resumed = snap.iters[0]  # after resume and MeanTeacherHook.before_train
    assert resumed.keys() == saved.keys()
    for key, value in saved.items():
        assert torch.equal(resumed[key], value), key
    # and training went on from there with the EMA rule
    final = runner.model.state_dict()
    for k, v in split(final, 'student.').items():
        torch.testing.assert_close(final['teacher.' + k], 0.99 * saved['teacher.' + k] + 0.01 * v,
                                   rtol=0, atol=1e-6)
