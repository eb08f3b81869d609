"""A killed training run resumes from its last checkpoint with the same iteration and optimizer state."""
import os
import re
import signal
import subprocess
import sys
import time

import torch

from a2bis_mm.datasets import generate_synthetic_coco
from a2bis_mm.utils import load_local_checkpoint

CONFIG = 'configs/a2bis/a2bis-tiny_a2b_300i_synthetic.py'


def _options(data_root, max_iters):
    return [
        '--cfg-options', f'train_dataloader.dataset.data_root={data_root}',
        f'val_dataloader.dataset.data_root={data_root}', f'train_cfg.max_iters={max_iters}',
        f'train_cfg.val_begin={max_iters + 1}', 'default_hooks.checkpoint.interval=3',
        'default_hooks.checkpoint.max_keep_ckpts=10', 'default_hooks.logger.interval=1',
        'default_hooks.visualization.draw=False'
    ]


def test_kill_and_resume(repo_root, tmp_path):
    data_root = tmp_path / 'data'
    generate_synthetic_coco(str(data_root), num_train=4, num_val=1, size=128)
    work_dir = tmp_path / 'work'
    env = dict(os.environ, OMP_NUM_THREADS='1')
    cmd = [sys.executable, 'tools/train.py', CONFIG, '--work-dir', str(work_dir)]

    proc = subprocess.Popen(cmd + _options(f'{data_root}/', 1000), cwd=repo_root, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    last = work_dir / 'last_checkpoint'
    deadline = time.time() + 600
    try:
        while not (last.exists() and 'iter_6.pth' in last.read_text()):
            assert proc.poll() is None, 'training died before writing its second checkpoint'
            assert time.time() < deadline, 'no checkpoint within 10 minutes'
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # a crash, not a clean stop
        proc.wait()

    resumed_from = last.read_text().strip()
    start_iter = int(re.search(r'iter_(\d+)\.pth', resumed_from).group(1))
    saved = load_local_checkpoint(resumed_from)
    assert saved['meta']['iter'] == start_iter
    saved_step = saved['optimizer']['state'][0]['step']

    result = subprocess.run(cmd + ['--resume'] + _options(f'{data_root}/', start_iter + 2), cwd=repo_root,
                            env=env, capture_output=True, text=True, timeout=600)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-3000:]
    assert f'resumed epoch: 0, iter: {start_iter}' in log

    final = load_local_checkpoint(str(work_dir / f'iter_{start_iter + 2}.pth'))
    assert final['meta']['iter'] == start_iter + 2
    # Adam kept counting from the resumed state (a fresh optimizer would be at 2 steps).
    assert float(final['optimizer']['state'][0]['step']) == float(saved_step) + 2 == start_iter + 2
    # And the weights continued from the checkpoint instead of a fresh initialisation.
    key = next(k for k in saved['state_dict'] if k.endswith('weight'))
    drift = (final['state_dict'][key] - saved['state_dict'][key]).abs().max()
    assert 0 < drift < 0.1, drift
    assert torch.isfinite(final['state_dict'][key]).all()
