"""Wall-clock training budget and speed/memory records, for equal-budget benchmarks."""
import json
import os.path as osp
import resource
import statistics
import time
from typing import Dict, List, Optional

import torch
from mmdet.registry import HOOKS
from mmengine.hooks import Hook


def peak_memory_mib() -> float:
    """Peak memory of this process: CUDA ``max_memory_allocated`` on a GPU, else peak RSS."""
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


@HOOKS.register_module()
class BenchmarkHook(Hook):
    """Stops training after a wall-clock budget and records speed and memory of train and test.

    Writes ``WORK_DIR/bench_train.json`` (iterations, median s/iter, peak memory) after training
    and ``WORK_DIR/bench_test.json`` (metrics, images/s, peak memory) after testing.

    When the budget runs out, the iteration that exceeded it is the last: the hook saves its
    checkpoint (as ``CheckpointHook(save_last=True)`` would, ``WORK_DIR/last_checkpoint`` names it)
    and stops the loop through its public ``stop_training`` flag, as mmengine's
    ``EarlyStoppingHook`` does.

    Args:
        max_minutes (float, optional): Training wall-clock budget, counted from the first
            iteration (model building and data loading set-up excluded). None: no limit.
        skip_iters (int): First iterations left out of the speed statistics (warm-up).
    """

    priority = 'NORMAL'

    def __init__(self, max_minutes: Optional[float] = None, skip_iters: int = 2) -> None:
        self.max_minutes = max_minutes
        self.skip_iters = skip_iters
        self._train_times: List[float] = []
        self._test_times: List[float] = []
        self._test_images = 0
        self._start: Optional[float] = None
        self._tic = 0.0

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        self._tic = time.perf_counter()
        if self._start is None:
            self._start = self._tic

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        toc = time.perf_counter()
        self._train_times.append(toc - self._tic)
        if self.max_minutes is not None and toc - self._start >= 60 * self.max_minutes:
            self._save_last(runner)
            runner.train_loop.stop_training = True

    @staticmethod
    def _save_last(runner) -> None:
        """Save this iteration's checkpoint and name it in ``last_checkpoint``."""
        filename = f'iter_{runner.iter + 1}.pth'
        runner.save_checkpoint(runner.work_dir, filename, by_epoch=False)
        with open(osp.join(runner.work_dir, 'last_checkpoint'), 'w') as f:
            f.write(osp.join(runner.work_dir, filename))

    def after_train(self, runner) -> None:
        self._dump(runner, 'bench_train.json', dict(
            iters=len(self._train_times),
            train_s_per_iter=self._median(self._train_times),
            train_minutes=sum(self._train_times) / 60,
            train_peak_mem_mib=peak_memory_mib()))

    def before_test_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        self._tic = time.perf_counter()

    def after_test_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        self._test_times.append(time.perf_counter() - self._tic)
        self._test_images += len(outputs)

    def after_test_epoch(self, runner, metrics: Optional[Dict[str, float]] = None) -> None:
        per_batch = self._median(self._test_times)
        batch = self._test_images / max(1, len(self._test_times))
        self._dump(runner, 'bench_test.json', dict(
            metrics={k: float(v) for k, v in (metrics or {}).items()},
            test_images=self._test_images,
            infer_img_per_s=batch / per_batch if per_batch else None,
            test_peak_mem_mib=peak_memory_mib()))

    def _median(self, times: List[float]) -> Optional[float]:
        kept = times[self.skip_iters:] if len(times) > self.skip_iters else times
        return statistics.median(kept) if kept else None

    @staticmethod
    def _dump(runner, name: str, payload: dict) -> None:
        with open(osp.join(runner.work_dir, name), 'w') as f:
            json.dump(payload, f, indent=1)
