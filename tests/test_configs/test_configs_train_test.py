"""Every shipped config trains and tests with the tools, as a user runs them.

For each config file found under ``configs/`` (``_base_`` folders excepted, so a new config is covered
without editing this file): ``tools/train.py CONFIG`` runs one training iteration and validates one
image, then ``tools/test.py CONFIG <the checkpoint it saved>`` tests one image. Both are the real
command-line tools in a subprocess; the only ``--cfg-options`` are sizes (iterations, images, images per
batch, the longest input side, the checkpoint interval) and the data locations the test provides:
``../shared/data`` (or ``$A2BIS_SHARED_DATA``) for the real sets, and small generated sets in the
PanNuke fold format, the unlabeled-folder format and the synthetic COCO format for the configs whose
data is not shipped.

The configs run ``JOBS`` at a time (one torch thread each) in the background, in the order of the
selected tests, so the single-threaded start-up of one tool overlaps the work of another; each test
waits for its own config.
"""
import os
import re
import subprocess
import sys
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Tuple

import cv2
import numpy as np
import pytest
from conftest import REPO_ROOT, write_pannuke_fold
from mmengine.config import Config

from a2bis_mm.datasets import generate_synthetic_coco

CONFIGS = sorted(
    str(p.relative_to(REPO_ROOT)) for p in (REPO_ROOT / 'configs').rglob('*.py')
    if '_base_' not in p.relative_to(REPO_ROOT / 'configs').parts)
LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')
SHARED_PREFIX = '../shared/data/'
# the longest image side fed to the models: Resize scales and crop sizes above it are reduced
MAX_SIDE = 64
JOBS = max(1, min(4, os.cpu_count() or 1))
THREADS = max(1, (os.cpu_count() or 1) // JOBS)
TIMEOUT_S = 1800


@pytest.fixture(scope='module')
def generated_data(tmp_path_factory, pannuke_arrays) -> Dict[str, Path]:
    """The configs' data roots that ``../shared/data`` lacks -> small generated stand-ins."""
    root = tmp_path_factory.mktemp('generated')
    # PanNuke format at MAX_SIDE x MAX_SIDE (real folds are 256 x 256)
    fold = {k: v[:, :MAX_SIDE, :MAX_SIDE] if v.ndim > 1 else v for k, v in pannuke_arrays.items()}
    assert all(m[..., :5].any() for m in fold['masks']), 'a generated PanNuke image has no nucleus'
    for name in ('Fold 1', 'Fold 2', 'Fold 3'):
        write_pannuke_fold(root / 'pannuke' / name, fold)
    unlabeled = root / 'pannuke_unlabeled'
    unlabeled.mkdir()
    for i, rgb in enumerate(fold['images']):
        cv2.imwrite(str(unlabeled / f'tile{i}.png'), rgb[..., ::-1].astype(np.uint8))
    generate_synthetic_coco(str(root / 'synthetic'), num_train=2, num_val=1, size=MAX_SIDE)
    return {'data/pannuke/': root / 'pannuke', 'data/pannuke_unlabeled/': unlabeled,
            'data/synthetic/': root / 'synthetic'}


def _walk(node, key: str = '') -> Iterator[Tuple[str, object]]:
    """Yield (dotted key, value) of every entry below ``node`` (list items by index)."""
    items = node.items() if isinstance(node, dict) else enumerate(node)
    for k, v in items:
        path = f'{key}.{k}' if key else str(k)
        yield path, v
        if isinstance(v, (dict, list, tuple)):
            yield from _walk(v, path)


def _location(path: str, shared_data: Path, generated: Dict[str, Path]) -> str:
    """Where the test keeps the data a config names as ``path`` (relative to the repository root)."""
    for name, folder in generated.items():
        if path.startswith(name):
            return str(folder / path[len(name):])
    if path.startswith(SHARED_PREFIX):
        return str(shared_data / path[len(SHARED_PREFIX):])
    return path


def data_options(cfg: Config, shared_data: Path, generated: Dict[str, Path]) -> List[str]:
    """``--cfg-options`` moving every data root / annotation file of the config to the test's data."""
    options = []
    for top in (*LOADERS, 'val_evaluator', 'test_evaluator'):
        for key, value in _walk(cfg.get(top) or {}, top):
            if key.rsplit('.', 1)[-1] in ('data_root', 'ann_file') and isinstance(value, str):
                moved = _location(value, shared_data, generated)
                if Path(moved).resolve() != (REPO_ROOT / value).resolve():
                    options.append(f'{key}={moved}')
    return options


def size_options(cfg: Config, loader: str) -> List[str]:
    """``--cfg-options`` for one batch of one image (per source) of at most ``MAX_SIDE`` pixels."""
    dataset = cfg[loader].dataset
    if 'datasets' in dataset:  # multi-source SSL loader: one image per source and batch
        sources = len(dataset.datasets)
        options = [f'{loader}.dataset.datasets.{i}.indices=1' for i in range(sources)]
        options += [f'{loader}.batch_size={sources}', f'{loader}.sampler.batch_size={sources}',
                    f"{loader}.sampler.source_ratio=[{','.join(['1'] * sources)}]"]
    else:
        options = [f'{loader}.dataset.indices=1', f'{loader}.batch_size=1']
    for key, step in _walk(dataset, f'{loader}.dataset'):
        if isinstance(step, dict) and step.get('type') in ('Resize', 'RandomCrop'):
            for arg in ('scale', 'crop_size'):
                if isinstance(step.get(arg), (list, tuple)) and max(step[arg]) > MAX_SIDE:
                    options.append(f'{key}.{arg}=({MAX_SIDE},{MAX_SIDE})')
    return options


def train_options(cfg: Config) -> List[str]:
    """One training iteration, a validation right after it and a checkpoint of it."""
    if cfg.train_cfg.get('type') == 'IterBasedTrainLoop':
        loop = ['train_cfg.max_iters=1']
    else:
        loop = ['train_cfg.max_epochs=1']  # one epoch = one batch of one image
    return [*loop, 'train_cfg.val_interval=1', 'default_hooks.checkpoint.interval=1',
            *size_options(cfg, 'train_dataloader'), *size_options(cfg, 'val_dataloader')]


@dataclass
class ConfigRun:
    """What the two tools did for one config."""
    train_code: int
    train_log: str
    test_code: int = -1
    test_log: str = ''


class ToolRunner:
    """Runs the tools as subprocesses (one torch thread each) and can stop them all."""

    def __init__(self) -> None:
        self.procs: List[subprocess.Popen] = []
        self.lock = threading.Lock()
        self.stopped = False

    def run(self, *args: str) -> Tuple[int, str]:
        env = dict(os.environ, PYTHONWARNINGS='ignore', OMP_NUM_THREADS=str(THREADS),
                   MKL_NUM_THREADS=str(THREADS))
        with self.lock:
            if self.stopped:
                return -1, 'not run: the test session stopped'
            proc = subprocess.Popen([sys.executable, *args], cwd=REPO_ROOT, env=env, text=True,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            self.procs.append(proc)
        try:
            log, _ = proc.communicate(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            log = proc.communicate()[0] + f'\nkilled after {TIMEOUT_S} s'
        return proc.returncode, log

    def stop(self) -> None:
        with self.lock:
            self.stopped = True
            for proc in self.procs:
                if proc.poll() is None:
                    proc.kill()


def train_and_test(runner: ToolRunner, config: str, work_dir: Path, data: List[str]) -> ConfigRun:
    """``tools/train.py`` (one iteration, one validation image), then ``tools/test.py`` on its checkpoint."""
    cfg = Config.fromfile(REPO_ROOT / config, import_custom_modules=False)
    code, log = runner.run('tools/train.py', config, '--work-dir', str(work_dir),
                           '--cfg-options', *train_options(cfg), *data)
    run = ConfigRun(code, log)
    last = work_dir / 'last_checkpoint'
    if code == 0 and last.is_file():
        run.test_code, run.test_log = runner.run(
            'tools/test.py', config, last.read_text().strip(), '--work-dir', str(work_dir),
            '--cfg-options', *size_options(cfg, 'test_dataloader'), *data)
    for checkpoint in work_dir.glob('*.pth'):  # up to 600 MB each; the logs stay
        checkpoint.unlink()
    return run


@pytest.fixture(scope='module')
def config_runs(request, shared_data, generated_data, tmp_path_factory) -> Dict[str, Future]:
    """The runs of the selected configs, started ``JOBS`` at a time in test order."""
    selected = [item.callspec.params['config'] for item in request.session.items
                if getattr(item, 'originalname', None) == 'test_config_trains_and_tests']
    runner, pool = ToolRunner(), ThreadPoolExecutor(JOBS)
    futures = {}
    for config in selected:
        cfg = Config.fromfile(REPO_ROOT / config, import_custom_modules=False)
        work_dir = tmp_path_factory.mktemp(Path(config).stem)
        futures[config] = pool.submit(train_and_test, runner, config, work_dir,
                                      data_options(cfg, shared_data, generated_data))
    yield futures
    runner.stop()  # a session stopped early (-x, Ctrl-C) leaves no tool running
    pool.shutdown(wait=True, cancel_futures=True)


@pytest.mark.parametrize('config', CONFIGS)
def test_config_trains_and_tests(config, config_runs):
    run = config_runs[config].result()
    assert run.train_code == 0, f'tools/train.py failed:\n{run.train_log[-4000:]}'
    assert re.search(r'\(val\) \[1[]/]', run.train_log), \
        f'no validation after one iteration:\n{run.train_log[-4000:]}'
    assert run.test_code == 0, f'tools/test.py failed:\n{run.test_log[-4000:]}'
    assert re.search(r'\(test\) \[1/1\]\s+\S+: ', run.test_log), run.test_log[-4000:]
