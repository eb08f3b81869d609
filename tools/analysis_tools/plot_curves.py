"""Plot the validation metrics of several training runs against image-steps, in one PNG.

Image-steps (images seen in training) are the budget unit of docs/benchmarks.md: models trained with
different batch sizes are compared at equal numbers of training images, not iterations or wall-clock.
For an epoch-based run a validation after epoch ``e`` sits at ``e x len(train set)`` (the set as the
run's own config builds it, after ``filter_cfg``); for an iteration-based run after iteration ``i`` at
``i x batch_size``. Every ``vis_data/scalars.json`` under a work directory is read (a resumed run
writes one per start; a later entry for the same step replaces an earlier one).

Example (the learning curves of docs/benchmarks.md)::

    python tools/analysis_tools/plot_curves.py work_dirs/equal_budget/a2bis-t_a2b_50e_consep-256 \\
        work_dirs/equal_budget/mask-rcnn_r50_fpn_50e_consep-256 \\
        work_dirs/equal_budget/solov2_r50_fpn_50e_consep-256 \\
        --metrics pq/bPQ pq/mPQ --out docs/images/equal_budget_consep256.png
"""
import argparse
import glob
import json
import math
import os.path as osp
import sys
from typing import Dict, List, Optional, Sequence, Tuple

from mmengine.config import Config

from a2bis_mm.utils.cli import ToolInputError

Curve = List[Tuple[int, float]]


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('work_dirs', nargs='+', help='work directories of tools/train.py runs')
    parser.add_argument('--metrics', nargs='+', default=['pq/bPQ', 'pq/mPQ'],
                        help='validation metric keys, one panel each')
    parser.add_argument('--labels', nargs='+', default=None,
                        help='legend names (default: the work directories\' names)')
    parser.add_argument('--out', required=True, help='PNG to write')
    parser.add_argument('--title', default=None, help='figure title')
    return parser.parse_args(argv)


def find_config(work_dir: str) -> str:
    """Return the config that tools/train.py dumped into ``work_dir``."""
    configs = sorted(glob.glob(osp.join(work_dir, '*.py')))
    if len(configs) != 1:
        raise ToolInputError(f'{work_dir}: expected exactly one dumped config (*.py), found '
                             f'{len(configs)}')
    return configs[0]


def images_per_step(cfg: Config) -> Tuple[int, str]:
    """Training images per validation step unit and the unit's name ('epoch' or 'iter').

    Args:
        cfg (Config): The run's config.

    Returns:
        tuple[int, str]: images per epoch (epoch-based loops) or per iteration.
    """
    loop = cfg.train_cfg.get('type', 'EpochBasedTrainLoop')
    batch_size = int(cfg.train_dataloader.batch_size)
    if 'Iter' in loop or not cfg.train_cfg.get('by_epoch', True):
        return batch_size, 'iter'
    from mmdet.registry import DATASETS
    from mmengine.registry import init_default_scope
    from mmengine.utils import import_modules_from_strings
    import_modules_from_strings(cfg.get('custom_imports', {}).get('imports', []))
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    # the loader's last batch may be short; drop_last would leave len % batch_size images out
    if cfg.train_dataloader.get('drop_last', False):
        return len(dataset) // batch_size * batch_size, 'epoch'
    return len(dataset), 'epoch'


def read_curves(work_dir: str, metrics: Sequence[str]) -> Dict[str, Dict[int, float]]:
    """Read ``metric -> {step: value}`` of the validation entries of every start of a run."""
    files = sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')))
    if not files:
        raise ToolInputError(f'{work_dir}: no */vis_data/scalars.json (has the run validated yet?)')
    curves: Dict[str, Dict[int, float]] = {m: {} for m in metrics}
    for path in files:  # timestamped folders sort chronologically
        with open(path) as f:
            for line in f:
                entry = json.loads(line)
                for m in metrics:
                    value = entry.get(m)
                    if value is not None and math.isfinite(value):
                        curves[m][int(entry['step'])] = float(value)
    return curves


def collect(work_dirs: Sequence[str], metrics: Sequence[str]) -> List[Dict[str, Curve]]:
    """Return, per work directory, ``metric -> [(image_steps, value), ...]`` sorted by steps."""
    runs = []
    for work_dir in work_dirs:
        if not osp.isdir(work_dir):
            raise ToolInputError(f'work directory not found: {work_dir}')
        per_step, _ = images_per_step(Config.fromfile(find_config(work_dir)))
        curves = read_curves(work_dir, metrics)
        runs.append({m: sorted((s * per_step, v) for s, v in c.items()) for m, c in curves.items()})
    return runs


def plot(runs: List[Dict[str, Curve]], labels: Sequence[str], metrics: Sequence[str], out: str,
         title: Optional[str] = None) -> None:
    """Draw one panel per metric, one line per run, x in image-steps."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 3.8), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        for run, label in zip(runs, labels):
            points = run[metric]
            if points:
                xs, ys = zip(*points)
                ax.plot(xs, ys, marker='o', label=label)
        ax.set_xlabel('training images seen (image-steps)')
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.set_ylim(bottom=0)
    axes[0][0].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = parse_args(argv)
    labels = args.labels or [osp.basename(osp.normpath(d)) for d in args.work_dirs]
    if len(labels) != len(args.work_dirs):
        raise ToolInputError(f'--labels has {len(labels)} names for {len(args.work_dirs)} runs')
    runs = collect(args.work_dirs, args.metrics)
    for run, label in zip(runs, labels):
        for metric in args.metrics:
            print(f'{label} {metric}: ' + ', '.join(f'{s}:{v:.3f}' for s, v in run[metric]))
    plot(runs, labels, args.metrics, args.out, args.title)
    print(f'wrote {args.out}')


if __name__ == '__main__':
    try:
        main()
    except ToolInputError as err:
        sys.exit(f'error: {err}')
