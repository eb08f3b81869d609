"""Train one config in bf16 (autocast + channels_last) and in float32 from the same seed, compare.

Each variant is a ``tools/train.py`` run of a derived config: ``--iters`` iterations
(``IterBasedTrainLoop``, loss logged every ``--log-interval``), one validation at the end, and
``optim_wrapper.dtype`` / ``channels_last`` as the only difference (``MixedPrecisionOptimWrapper``).
With several ``--seeds`` both precisions train from each seed, so that the bf16-vs-float32
differences can be read against the seed-to-seed spread of each precision. Writes a PNG of the
loss curves, a JSON of the numbers and, with ``--doc``, one section of docs/benchmarks.md.

Example (the section in docs/benchmarks.md)::

    python tools/analysis_tools/compare_precision.py configs/a2bis/a2bis-tiny_a2b_300i_synthetic.py \\
        --iters 300 --seeds 0 1 --work-dir work_dirs/compare_precision/tiny \\
        --png docs/images/precision_tiny_synthetic.png --doc docs/benchmarks.md
"""
import argparse
import json
import os
import os.path as osp
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from a2bis_mm.utils.markdown import replace_doc_section

REPO_ROOT = Path(__file__).resolve().parents[2]
DOC_TITLE = '## bf16 vs float32 training, same seed: {} (tools/analysis_tools/compare_precision.py)'
LOSS_KEYS = ('loss', 'loss_skeleton', 'loss_ce', 'loss_dice', 'loss_bbox')
METRIC_KEYS = ('ap50/mask_mAP50', 'ap50/rbox_mAP50', 'pq/bPQ', 'pq/mPQ')


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='config to train (its optim_wrapper becomes '
                        'MixedPrecisionOptimWrapper)')
    parser.add_argument('--iters', type=int, default=300, help='training iterations per run')
    parser.add_argument('--seeds', type=int, nargs='+', default=[0],
                        help='seeds; both precisions train from each (seed-to-seed spread)')
    parser.add_argument('--log-interval', type=int, default=10)
    parser.add_argument('--work-dir', required=True)
    parser.add_argument('--png', help='loss-curve plot to write (default: WORK_DIR/losses.png)')
    parser.add_argument('--doc', default='', help='markdown file whose section is replaced')
    parser.add_argument('--threads', type=int, default=None, help='OMP/torch threads per run')
    parser.add_argument('--cfg-options', nargs='+', default=[],
                        help='extra key=value overrides for every run (tools/train.py syntax)')
    return parser.parse_args(argv)


def derived_config(args: argparse.Namespace, dtype: str, seed: int, path: str) -> None:
    """Write the run's config: the base config, an iteration loop and the precision switch."""
    n = args.iters
    text = f"""_base_ = [{osp.abspath(args.config)!r}]
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters={n}, val_interval={n})
optim_wrapper = dict(type='MixedPrecisionOptimWrapper', dtype={dtype!r},
                     channels_last={dtype == 'bfloat16'})
default_hooks = dict(logger=dict(interval={args.log_interval}),
                     checkpoint=dict(by_epoch=False, interval={n}, max_keep_ckpts=1, save_last=True))
log_processor = dict(by_epoch=False, window_size=1)
randomness = dict(seed={seed})
"""
    Path(path).write_text(text)


def read_scalars(work_dir: str) -> Dict[str, list]:
    """Training losses per logged iteration, the final validation metrics and the step times."""
    files = sorted(Path(work_dir).glob('*/vis_data/scalars.json'))
    if not files:
        raise FileNotFoundError(f'{work_dir}: no */vis_data/scalars.json')
    out: Dict[str, list] = {k: [] for k in (*LOSS_KEYS, 'time', 'data_time')}
    metrics: Dict[str, float] = {}
    for line in files[-1].read_text().splitlines():
        entry = json.loads(line)
        if 'loss' in entry:
            for k in out:
                if k in entry:
                    out[k].append((int(entry['step']), float(entry[k])))
        for k in METRIC_KEYS:
            if k in entry:
                metrics[k] = float(entry[k])
    out['metrics'] = [metrics]
    return out


def run_variant(args: argparse.Namespace, name: str, dtype: str, seed: int) -> Dict[str, list]:
    """Train one variant with tools/train.py (skipped when its log is complete already)."""
    work_dir = osp.join(args.work_dir, name)
    os.makedirs(work_dir, exist_ok=True)
    done = Path(work_dir, f'iter_{args.iters}.pth').exists()
    if not done:
        cfg_path = osp.join(args.work_dir, f'{name}_config.py')
        derived_config(args, dtype, seed, cfg_path)
        cmd = [sys.executable, str(REPO_ROOT / 'tools' / 'train.py'), cfg_path, '--work-dir',
               work_dir]
        if args.cfg_options:
            cmd += ['--cfg-options', *args.cfg_options]
        env = dict(os.environ)
        if args.threads:
            env['OMP_NUM_THREADS'] = str(args.threads)
        print(f'[{name}] ' + ' '.join(cmd), flush=True)
        tic = time.time()
        with open(osp.join(work_dir, 'train.log'), 'w') as log:
            subprocess.run(cmd, check=True, stdout=log, stderr=subprocess.STDOUT, env=env,
                           cwd=REPO_ROOT)
        print(f'[{name}] done in {time.time() - tic:.0f} s', flush=True)
    return read_scalars(work_dir)


def plot(runs: Dict[str, Dict[str, list]], out: str, title: str) -> None:
    """One panel per loss term, one line per run."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    keys = [k for k in LOSS_KEYS if any(r[k] for r in runs.values())]
    fig, axes = plt.subplots(1, len(keys), figsize=(3.6 * len(keys), 3.2), squeeze=False)
    colours = {'bf16': 'C1', 'fp32': 'C0'}
    for ax, key in zip(axes[0], keys):
        for name, run in runs.items():
            if run[key]:
                xs, ys = zip(*run[key])
                seed_rank = list(dict.fromkeys(n.split()[-1] for n in runs)).index(name.split()[-1])
                ax.plot(xs, ys, label=name, color=colours[name.split()[0]], lw=1.2,
                        ls=('-', '--', ':', '-.')[seed_rank % 4])
        ax.set_title(key, fontsize=9)
        ax.set_xlabel('iteration', fontsize=8)
        ax.set_yscale('log')
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def tail_mean(points: List[tuple], frac: float = 0.2) -> float:
    """Mean of the last ``frac`` of a logged curve (one value per log interval)."""
    values = [v for _, v in points]
    k = max(1, int(len(values) * frac))
    return statistics.fmean(values[-k:]) if values else float('nan')


def render(args: argparse.Namespace, runs: Dict[str, Dict[str, list]], png: str,
           command: str, load: str) -> str:
    """The markdown section: command, setting, losses / metrics / step-time table."""
    keys = [k for k in LOSS_KEYS if any(r[k] for r in runs.values())]
    metrics = [k for k in METRIC_KEYS if any(k in r['metrics'][0] for r in runs.values())]
    lines = [
        DOC_TITLE.format(Path(args.config).stem), '',
        f'Command: `{command}`', '',
        f'{Path(args.config).stem}, {args.iters} iterations; both precisions start from each seed '
        f'({", ".join(map(str, args.seeds))}: same initialisation and batches); the only '
        'difference is `optim_wrapper.dtype` '
        "('bfloat16' with channels_last vs 'float32'). Losses: mean of the last 20% of the logged "
        'iterations (logged every '
        f'{args.log_interval}); metrics: one validation at the end, in float32. {load}', '',
        '| run | ' + ' | '.join(keys) + ' | ' + ' | '.join(metrics) + ' | s/iter (median) |',
        '|---|' + '---|' * (len(keys) + len(metrics) + 1),
    ]
    rows = {}
    for name, run in runs.items():
        times = [v for _, v in run['time']]
        rows[name] = ([tail_mean(run[k]) for k in keys] +
                      [run['metrics'][0].get(k, float('nan')) for k in metrics] +
                      [statistics.median(times) if times else float('nan')])
    if len(runs) > 2:  # per precision: mean over the seeds
        for prec in ('bf16', 'fp32'):
            group = [r for n, r in rows.items() if n.startswith(prec)]
            rows[f'**{prec} mean**'] = [statistics.fmean(col) for col in zip(*group)]
    for name, cells in rows.items():
        text = [f'{c:.4f}' for c in cells[:-1]] + [f'{cells[-1]:.2f}']
        lines.append(f'| {name} | ' + ' | '.join(text) + ' |')
    rel = os.path.relpath(png, start=osp.dirname(osp.abspath(args.doc)) if args.doc else '.')
    lines += ['', f'![loss curves, bf16 vs float32]({rel})', '']
    return '\n'.join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    os.makedirs(args.work_dir, exist_ok=True)
    variants = [(f'{name} seed {seed}', dtype, seed) for seed in args.seeds
                for name, dtype in (('bf16', 'bfloat16'), ('fp32', 'float32'))]
    load_before = os.getloadavg()[0]
    runs = {name: run_variant(args, name.replace(' ', '_'), dtype, seed)
            for name, dtype, seed in variants}
    load = (f'Load average {load_before:.1f} before and {os.getloadavg()[0]:.1f} after the runs '
            '(2-core machine shared with other jobs: the step times are upper bounds).')
    png = args.png or osp.join(args.work_dir, 'losses.png')
    os.makedirs(osp.dirname(osp.abspath(png)), exist_ok=True)
    plot(runs, png, f'{Path(args.config).stem}: bf16 vs float32, {args.iters} iterations')
    with open(osp.join(args.work_dir, 'results.json'), 'w') as f:
        json.dump(runs, f, indent=1)
    command = ' '.join(['python', 'tools/analysis_tools/compare_precision.py',
                        *(argv if argv is not None else sys.argv[1:])])
    section = render(args, runs, png, command, load)
    if args.doc:
        replace_doc_section(args.doc, section, DOC_TITLE.format(Path(args.config).stem))
    print(section)
    return 0


if __name__ == '__main__':
    sys.exit(main())
