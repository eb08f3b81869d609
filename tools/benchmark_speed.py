"""Training and inference speed of A2B-IS against Mask R-CNN R50-FPN, in one run, on this machine.

One run measures, one after the other in this process:

* the machine's limit: a 2048x2048 matmul in float32 and in bf16 (GFLOP/s), so that every model's
  throughput is read against the peak of the same cores at the same moment;
* per config, training: median seconds per image of ``--train-steps`` optimiser steps on real
  training batches (``--train-batch`` images, the config's own train pipeline: loading,
  augmentation and targets are done before the timing), in float32 and in bf16 (autocast +
  channels_last through ``MixedPrecisionOptimWrapper``), from the same seed; training FLOPs are
  3 x the forward FLOPs (forward + two backward products per layer) of
  ``a2bis_mm.utils.complexity.count_flops`` on the first validation image;
* per config, inference: ``predict`` of the first ``--predict-batch`` validation images (default 1),
  float32 and bf16, split
  into backbone (``extract_feat``), heads and post-processing (every ``predict_by_feat``); pass
  trained weights with ``--checkpoints`` (an untrained A2B-IS predicts almost no candidates, so
  random weights understate its post-processing);
* wall time and the process's CPU time, and the load average before and after: on a machine shared
  with other jobs, CPU seconds (and the matmul peak per CPU second) are the fairer basis.

Speeds are also given as ratios against the first ``--reference`` config (Mask R-CNN) of the same
run. ``--profile`` adds a torch.profiler breakdown of one bf16 A2B-IS training step (what limits it).

Example (the section in docs/benchmarks.md)::

    .venv/bin/python tools/benchmark_speed.py --threads 2 --profile
"""
import argparse
import json
import os
import platform
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from mmdet.registry import DATASETS, MODELS
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from mmengine.runner import load_checkpoint
from mmengine.utils import import_modules_from_strings

from a2bis_mm.engine.optimizers import cpu_supports_bf16, mixed_precision
from a2bis_mm.utils.complexity import count_flops
from a2bis_mm.utils.markdown import replace_doc_section

REPO_ROOT = Path(__file__).resolve().parents[1]
DOC_SECTION = '## Training and inference speed, bf16 and float32 (tools/benchmark_speed.py)'
DEFAULT_CONFIGS = ['configs/a2bis/a2bis-t_a2b_50e_consep-256.py',
                   'configs/baselines/mask-rcnn_r50_fpn_50e_consep-256.py']
PRECISIONS = {'fp32': 'float32', 'bf16': 'bfloat16'}
# Targets of issue 14 on this CPU: A2B-IS-T train >= 70% of the bf16 matmul throughput; predict
# <= 0.25 x Mask R-CNN's time.
TRAIN_PEAK_TARGET = 0.70
PREDICT_RATIO_TARGET = 0.25


def _sync() -> None:
    """Wait for queued CUDA work, so that wall times cover it."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


class Clock:
    """Wall and process-CPU seconds of a block (CUDA work included)."""

    def __enter__(self) -> 'Clock':
        _sync()
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc) -> None:
        _sync()
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu


def matmul_peak(device: str, size: int = 2048, reps: int = 8) -> Dict[str, Dict[str, float]]:
    """GFLOP/s of a ``size`` x ``size`` matmul per precision: wall and per CPU second."""
    out = {}
    for name, dtype in (('fp32', torch.float32), ('bf16', torch.bfloat16)):
        a = torch.randn(size, size, dtype=dtype, device=device)
        b = torch.randn(size, size, dtype=dtype, device=device)
        for _ in range(2):
            a @ b
        samples = []
        for _ in range(reps):
            with Clock() as c:
                a @ b
            samples.append(c)
        flop = 2 * size**3
        out[name] = dict(wall=flop / statistics.median(c.wall for c in samples) / 1e9,
                         cpu=flop / statistics.median(c.cpu for c in samples) / 1e9)
    return out


def load_cfg(config: str) -> Config:
    cfg = Config.fromfile(config)
    import_modules_from_strings(**cfg.get('custom_imports', dict(imports=[])))
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    return cfg


def build_model(cfg: Config, checkpoint: Optional[str] = None, seed: int = 0,
                device: str = 'cpu') -> torch.nn.Module:
    torch.manual_seed(seed)
    model = MODELS.build(cfg.model)
    model.init_weights()
    if checkpoint:
        load_checkpoint(model, checkpoint, map_location='cpu')
    return model.to(device)


def val_batch(cfg: Config, model: torch.nn.Module, batch: int = 1) -> dict:
    """The first ``batch`` validation images, preprocessed (on the model's device)."""
    dataset_cfg = cfg.test_dataloader.dataset.copy()
    dataset_cfg.indices = batch
    dataset = DATASETS.build(dataset_cfg)
    data = model.data_preprocessor(pseudo_collate([dataset[i] for i in range(batch)]), False)
    for sample in data['data_samples']:
        # pipelines without Resize: the image is at its own size (mmdet's heads need the key)
        if 'scale_factor' not in sample:
            sample.set_metainfo(dict(scale_factor=(1.0, 1.0)))
    return data


def train_batches(cfg: Config, batch_size: int, count: int, seed: int = 0) -> List[dict]:
    """``count`` collated batches of the first training images (augmented with a fixed seed)."""
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    if len(dataset) < batch_size * count:
        raise ValueError(f'{len(dataset)} training images, {batch_size * count} needed')
    return [pseudo_collate([dataset[i * batch_size + j] for j in range(batch_size)])
            for i in range(count)]


def time_train(cfg: Config, precision: str, batches: List[dict], warmup: int,
               device: str = 'cpu') -> Dict[str, float]:
    """Median wall / CPU seconds per image of ``train_step`` (the first ``warmup`` untimed)."""
    model = build_model(cfg, device=device)
    model.train()
    optim_cfg = dict(type='MixedPrecisionOptimWrapper', optimizer=cfg.optim_wrapper.optimizer,
                     dtype=PRECISIONS[precision], channels_last=precision == 'bf16')
    if 'clip_grad' in cfg.optim_wrapper:
        optim_cfg['clip_grad'] = cfg.optim_wrapper.clip_grad
    wrapper = build_optim_wrapper(model, optim_cfg)
    samples = []
    for i, batch in enumerate(batches):
        with Clock() as c:
            losses = model.train_step(batch, wrapper)
        if i >= warmup:
            samples.append(c)
    if not all(torch.isfinite(v).all() for v in losses.values()):
        raise RuntimeError(f'non-finite losses in {precision} training: {losses}')
    n = len(batches[0]['inputs'])
    return dict(wall=statistics.median(c.wall for c in samples) / n,
                cpu=statistics.median(c.cpu for c in samples) / n,
                step=statistics.median(c.wall for c in samples),
                active=precision == 'fp32' or wrapper.cast_dtype is not None)


class StageTimer:
    """Wraps methods of a model's modules and sums their wall time per stage for one call.

    Nested calls of the same stage (a ``predict_by_feat`` calling another) count once.
    """

    def __init__(self) -> None:
        self.times: Dict[str, float] = {}
        self._depth: Dict[str, int] = {}

    def wrap(self, module: torch.nn.Module, method: str, stage: str) -> None:
        original: Callable = getattr(module, method)

        def timed(*args, **kwargs):
            self._depth[stage] = self._depth.get(stage, 0) + 1
            tic = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self._depth[stage] -= 1
                if self._depth[stage] == 0:
                    self.times[stage] = self.times.get(stage, 0.0) + time.perf_counter() - tic

        setattr(module, method, timed)  # instance attribute: shadows the class method


def time_predict(cfg: Config, precision: str, checkpoint: Optional[str], runs: int,
                 warmup: int, batch: int = 1, device: str = 'cpu') -> Dict[str, float]:
    """Median backbone / heads / post-processing / total seconds per image of ``predict``."""
    model = build_model(cfg, checkpoint, device=device).eval()
    data = val_batch(cfg, model, batch)
    timer = StageTimer()
    timer.wrap(model, 'extract_feat', 'backbone')
    post_modules = [m for m in model.modules() if hasattr(m, 'predict_by_feat')]
    if not post_modules:
        raise ValueError('the model has no predict_by_feat to time')
    for module in post_modules:
        timer.wrap(module, 'predict_by_feat', 'post')
    samples: List[Dict[str, float]] = []
    with torch.no_grad(), mixed_precision(model, PRECISIONS[precision],
                                          channels_last=precision == 'bf16'):
        for i in range(warmup + runs):
            timer.times = {}
            with Clock() as c:
                results = model.predict(data['inputs'], data['data_samples'])
            if i >= warmup:
                stage = dict(timer.times)
                backbone, post = stage.get('backbone', 0.0), stage.get('post', 0.0)
                samples.append(dict(backbone=backbone, heads=c.wall - backbone - post, post=post,
                                    total=c.wall, cpu=c.cpu))
    result = {k: statistics.median(s[k] for s in samples) / batch for k in samples[0]}
    result['batch_total'] = result['total'] * batch
    result['instances'] = len(results[0].pred_instances)
    result['input'] = 'x'.join(map(str, data['inputs'].shape[-2:]))
    return result


def train_gflop(cfg: Config) -> float:
    """Training GFLOP per image: 3 x the forward FLOPs on the first validation image."""
    model = build_model(cfg).eval()
    data = val_batch(cfg, model)
    return 3 * count_flops(model, data['inputs'], data['data_samples'])[''] / 1e9


def profile_step(cfg: Config, batches: List[dict], top: int = 12,
                 device: str = 'cpu') -> List[Tuple[str, float]]:
    """Self-CPU share of the operator groups in one bf16 training step (after one warm-up)."""
    from torch.profiler import ProfilerActivity, profile
    model = build_model(cfg, device=device)
    model.train()
    wrapper = build_optim_wrapper(model, dict(type='MixedPrecisionOptimWrapper',
                                              optimizer=cfg.optim_wrapper.optimizer,
                                              dtype='bfloat16', channels_last=True))
    model.train_step(batches[0], wrapper)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        model.train_step(batches[1], wrapper)
    groups: Dict[str, float] = {}
    for event in prof.key_averages():
        name = 'convolution (forward + backward)' if 'convolution' in event.key else event.key
        groups[name] = groups.get(name, 0.0) + event.self_cpu_time_total
    total = sum(groups.values())
    return [(k, v / total) for k, v in sorted(groups.items(), key=lambda kv: -kv[1])[:top]]


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open('/proc/cpuinfo') as f:
            cpu = next(line.split(':', 1)[1].strip() for line in f if line.startswith('model name'))
    except (OSError, StopIteration):
        pass
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU'
    return (f'{cpu}, {os.cpu_count()} cores, native bf16: {cpu_supports_bf16()}, {device}; '
            f'torch {torch.__version__}, {torch.get_num_threads()} threads')


def render(res: Dict, args: argparse.Namespace, command: str) -> str:
    """The markdown section."""
    peak, ref = res['peak'], res['reference']
    lines = [
        DOC_SECTION, '',
        f'Command: `{command}`', '',
        f'Machine: {res["machine"]}. Load average (1 min) {res["load"][0]:.1f} before and '
        f'{res["load"][1]:.1f} after the run{res["load_note"]}', '',
        f'Peak of the same cores in the same run (2048x2048 matmul): float32 '
        f'**{peak["fp32"]["wall"]:.0f} GFLOP/s**, bf16 **{peak["bf16"]["wall"]:.0f} GFLOP/s** '
        f'(per CPU second: {peak["fp32"]["cpu"]:.0f} and {peak["bf16"]["cpu"]:.0f}).', '',
        f'### Training (batch {args.train_batch}, {args.device}, real consep256 training batches, '
        f'median of {args.train_steps - args.warmup} steps after {args.warmup} warm-up)', '',
        'GFLOP/img: 3 x forward FLOPs (2 x multiply-adds of convs and matrix products, '
        '`a2bis_mm.utils.complexity`); % of peak: achieved GFLOP/s over the matmul peak of the same '
        'precision (wall; in brackets on CPU seconds); vs reference: its s/img over this s/img '
        '(> 1: faster).', '',
        '| config | precision | ms/step | s/img | CPU s/img | GFLOP/img | GFLOP/s | % of peak | vs '
        f'{ref} |',
        '|---|---|---|---|---|---|---|---|---|',
    ]
    for name, row in res['train'].items():
        for prec, r in row['times'].items():
            gflops = row['gflop'] / r['wall']
            pct = 100 * gflops / peak[prec]['wall']
            pct_cpu = 100 * row['gflop'] / r['cpu'] / peak[prec]['cpu']
            speedup = res['train'][ref]['times'][prec]['wall'] / r['wall']
            label = prec if r['active'] else f'{prec} (unavailable: float32)'
            lines.append(f'| {name} | {label} | {1e3 * r["step"]:.0f} | {r["wall"]:.3f} | '
                         f'{r["cpu"]:.3f} | '
                         f'{row["gflop"]:.0f} | {gflops:.0f} | {pct:.0f}% ({pct_cpu:.0f}%) | '
                         f'{speedup:.2f}x |')
    lines += [
        '', f'### Inference (batch {args.predict_batch}, {args.device}, first consep256 val '
        f'images, per image, median of {args.runs} runs after {args.warmup} warm-up)', '',
        'Post-processing = every `predict_by_feat` (A2B-IS: decoding, NMS, mask assignment and '
        'clean-up; Mask R-CNN: proposals, NMS, mask pasting); heads = total - backbone - post. '
        'vs reference: this total over the reference\'s total in the same precision (target for '
        f'A2B-IS: <= {PREDICT_RATIO_TARGET}).', '',
        f'| config | weights | precision | backbone ms | heads ms | post ms | total ms | CPU ms | '
        f'ms/batch | post / total | instances | vs {ref} |',
        '|---|---|---|---|---|---|---|---|---|---|---|---|',
    ]
    for name, row in res['predict'].items():
        for prec, r in row['times'].items():
            ratio = r['total'] / res['predict'][ref]['times'][prec]['total']
            lines.append(f'| {name} | {row["weights"]} | {prec} | {1e3 * r["backbone"]:.0f} | '
                         f'{1e3 * r["heads"]:.0f} | {1e3 * r["post"]:.0f} | '
                         f'{1e3 * r["total"]:.0f} | {1e3 * r["cpu"]:.0f} | '
                         f'{1e3 * r["batch_total"]:.0f} | {100 * r["post"] / r["total"]:.1f}% | '
                         f'{r["instances"]} | {ratio:.2f} |')
    if res.get('profile'):
        lines += ['', '### Where a bf16 A2B-IS training step goes (torch.profiler, self CPU time)',
                  '', '| operator | share |', '|---|---|']
        lines += [f'| {k} | {100 * v:.1f}% |' for k, v in res['profile']]
    return '\n'.join(lines) + '\n'


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--configs', nargs='+', default=DEFAULT_CONFIGS,
                        help='configs to time; the last one is the reference unless --reference')
    parser.add_argument('--reference', default=None,
                        help='config whose times the ratios divide (default: the last config)')
    parser.add_argument('--checkpoints', nargs='+',
                        help='weights for each config, in order ("none": random weights)')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--train-batch', type=int, default=2)
    parser.add_argument('--predict-batch', type=int, default=1)
    parser.add_argument('--json', help='also write the raw numbers to this JSON file')
    parser.add_argument('--train-steps', type=int, default=4, help='steps per precision, '
                        'the first --warmup untimed')
    parser.add_argument('--runs', type=int, default=5, help='timed predict calls')
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--precisions', nargs='+', default=['fp32', 'bf16'],
                        choices=sorted(PRECISIONS))
    parser.add_argument('--threads', type=int, help='torch CPU threads (default: torch\'s own)')
    parser.add_argument('--profile', action='store_true',
                        help='profile one bf16 training step of the first config')
    parser.add_argument('--doc', default=str(REPO_ROOT / 'docs' / 'benchmarks.md'),
                        help='markdown file whose section is replaced ("" to skip)')
    args = parser.parse_args(argv)
    if args.runs < 1 or args.warmup < 0 or args.train_steps <= args.warmup:
        parser.error('need --runs >= 1, --warmup >= 0 and --train-steps > --warmup')
    args.checkpoints = args.checkpoints or ['none'] * len(args.configs)
    if len(args.checkpoints) != len(args.configs):
        parser.error(f'{len(args.checkpoints)} --checkpoints for {len(args.configs)} --configs')
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]
    res: Dict = dict(machine=machine(), train={}, predict={})
    print('matmul peak ...', flush=True)
    res['peak'] = matmul_peak(args.device)
    names = []
    for config, ckpt in zip(args.configs, args.checkpoints):
        name = Path(config).stem
        names.append(name)
        weights = None if ckpt == 'none' else ckpt
        cfg = load_cfg(config)
        batches = train_batches(cfg, args.train_batch, args.train_steps)
        res['train'][name] = dict(gflop=train_gflop(cfg), times={})
        res['predict'][name] = dict(weights=Path(weights).name if weights else 'random weights',
                                    times={})
        for prec in args.precisions:
            print(f'{name}: train {prec} ...', flush=True)
            res['train'][name]['times'][prec] = time_train(cfg, prec, batches, args.warmup,
                                                           args.device)
            print(f'{name}: predict {prec} ...', flush=True)
            res['predict'][name]['times'][prec] = time_predict(
                cfg, prec, weights, args.runs, args.warmup, args.predict_batch, args.device)
        if args.profile and len(names) == 1:
            print(f'{name}: profile ...', flush=True)
            res['profile'] = profile_step(cfg, batches, device=args.device)
    res['reference'] = Path(args.reference).stem if args.reference else names[-1]
    load_after = os.getloadavg()[0]
    res['load'] = (load_before, load_after)
    quiet = max(load_before, load_after) < 1.5
    res['load_note'] = ('.' if quiet else ': the machine was shared with other jobs, so wall '
                        'times are upper bounds and the CPU-time columns are the fairer basis.')
    command = ' '.join(['python', 'tools/benchmark_speed.py',
                        *(argv if argv is not None else sys.argv[1:])])
    section = render(res, args, command)
    if args.doc:
        replace_doc_section(args.doc, section, DOC_SECTION)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(res, f, indent=1, default=str)
    print(section)
    return 0


if __name__ == '__main__':
    sys.exit(main())
