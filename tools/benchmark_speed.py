"""Inference-only speed of A2B-IS against Mask R-CNN R50-FPN, split into backbone, heads and
post-processing, at one input size, batch 1, on the CPU (or GPU) this runs on.

Backbone (+ neck) time is measured around ``extract_feat``; post-processing around every
``predict_by_feat`` the model calls (A2B-IS: the rotated head's decoding, NMS, mask assignment and
morphology; Mask R-CNN: RPN proposals, box NMS and mask pasting); heads = total - backbone - post.
Each number is the median of ``--runs`` timed ``predict`` calls after ``--warmup`` untimed ones.
Pass trained weights with ``--checkpoints`` (one per config, ``none`` for random weights): the
post-processing cost depends on how many candidates the maps hold, and an untrained A2B-IS predicts
almost none (zero-initialised heads), so random weights understate its post-processing.

Example::

    .venv/bin/python tools/benchmark_speed.py --runs 20
"""
import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import torch
from mmdet.registry import DATASETS, MODELS
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import init_default_scope
from mmengine.runner import load_checkpoint
from mmengine.utils import import_modules_from_strings

from a2bis_mm.utils.markdown import replace_doc_section

REPO_ROOT = Path(__file__).resolve().parents[1]
DOC_SECTION = '## Inference speed: backbone / heads / post-processing (tools/benchmark_speed.py)'
DEFAULT_CONFIGS = ['configs/a2bis/a2bis-t_a2b_50e_consep-256.py',
                   'configs/baselines/mask-rcnn_r50_fpn_50e_consep-256.py']


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


def measure(config: str, runs: int, warmup: int,
            checkpoint: Optional[str] = None) -> Dict[str, float]:
    """Median backbone / heads / post-processing / total milliseconds of one config."""
    cfg = Config.fromfile(config)
    import_modules_from_strings(**cfg.get('custom_imports', dict(imports=[])))
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    model = MODELS.build(cfg.model).eval()
    if checkpoint:
        load_checkpoint(model, checkpoint, map_location='cpu')
    dataset_cfg = cfg.test_dataloader.dataset.copy()
    dataset_cfg.indices = 1
    data = model.data_preprocessor(pseudo_collate([DATASETS.build(dataset_cfg)[0]]), False)
    for sample in data['data_samples']:
        # pipelines without Resize: the image is at its own size (mmdet's heads need the key)
        if 'scale_factor' not in sample:
            sample.set_metainfo(dict(scale_factor=(1.0, 1.0)))
    timer = StageTimer()
    timer.wrap(model, 'extract_feat', 'backbone')
    post_modules = [m for m in model.modules() if hasattr(m, 'predict_by_feat')]
    if not post_modules:
        raise ValueError(f'{config}: the model has no predict_by_feat to time')
    for module in post_modules:
        timer.wrap(module, 'predict_by_feat', 'post')
    samples: List[Dict[str, float]] = []
    with torch.no_grad():
        for i in range(warmup + runs):
            timer.times = {}
            tic = time.perf_counter()
            model.predict(data['inputs'], data['data_samples'])
            total = time.perf_counter() - tic
            if i >= warmup:
                stage = dict(timer.times)
                heads = total - stage.get('backbone', 0.0) - stage.get('post', 0.0)
                samples.append(dict(backbone=stage.get('backbone', 0.0), heads=heads,
                                    post=stage.get('post', 0.0), total=total,
                                    post_fraction=stage.get('post', 0.0) / total))
    result = {k: statistics.median(s[k] for s in samples) * (1 if k == 'post_fraction' else 1e3)
              for k in samples[0]}
    result['input'] = 'x'.join(map(str, data['inputs'].shape[-2:]))
    return result


def render(rows: Dict[str, Dict[str, float]], runs: int, warmup: int, command: str) -> str:
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'CPU'
    lines = [
        DOC_SECTION, '',
        f'Command: `{command}`', '',
        f'Batch 1, first consep256 val image, {device}, {torch.get_num_threads()} torch threads, '
        f'torch {torch.__version__}; median of {runs} runs after {warmup} warm-up runs. '
        'Post-processing = every predict_by_feat; with random weights an A2B-IS predicts almost '
        'no candidates, so its post-processing share is a lower bound until trained weights '
        'are passed with --checkpoints.', '',
        '| config | input | backbone ms | heads ms | post-processing ms | total ms | post / total |',
        '|---|---|---|---|---|---|---|',
    ]
    for name, r in rows.items():
        lines.append(f'| {name} | {r["input"]} | {r["backbone"]:.1f} | {r["heads"]:.1f} | '
                     f'{r["post"]:.1f} | {r["total"]:.1f} | {100 * r["post_fraction"]:.1f}% |')
    return '\n'.join(lines) + '\n'


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--configs', nargs='+', default=DEFAULT_CONFIGS)
    parser.add_argument('--checkpoints', nargs='+',
                        help='weights for each config, in order ("none": random weights)')
    parser.add_argument('--runs', type=int, default=20)
    parser.add_argument('--warmup', type=int, default=3)
    parser.add_argument('--threads', type=int, help='torch CPU threads (default: torch\'s own)')
    parser.add_argument('--doc', default=str(REPO_ROOT / 'docs' / 'benchmarks.md'),
                        help='markdown file whose speed section is replaced ("" to skip)')
    args = parser.parse_args(argv)
    if args.runs < 1 or args.warmup < 0:
        parser.error(f'--runs must be >= 1 and --warmup >= 0, got {args.runs} and {args.warmup}')
    checkpoints = args.checkpoints or ['none'] * len(args.configs)
    if len(checkpoints) != len(args.configs):
        parser.error(f'{len(checkpoints)} --checkpoints for {len(args.configs)} --configs')
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = {}
    for config, ckpt in zip(args.configs, checkpoints):
        print(f'timing {config} ...', flush=True)
        weights = None if ckpt == 'none' else ckpt
        rows[Path(config).stem + ('' if weights else ' (random weights)')] = measure(
            config, args.runs, args.warmup, weights)
    command = ' '.join(['python', 'tools/benchmark_speed.py', *(argv or sys.argv[1:])])
    table = render(rows, args.runs, args.warmup, command)
    if args.doc:
        replace_doc_section(args.doc, table, DOC_SECTION)
    print(table)
    return 0


if __name__ == '__main__':
    sys.exit(main())
