"""Train and evaluate several configs under one equal budget and write one comparison table.

Each config runs in its own subprocesses (``tools/train.py`` then ``tools/test.py``) from a copy of
the config with the budget applied: an iteration loop of ``--budget-iters`` iterations, or a
wall-clock limit of ``--budget-minutes`` enforced by ``a2bis_mm.engine.hooks.BenchmarkHook``; the
same short linear warm-up and then each model's own optimiser at its base learning rate. The hook also records
training s/iter, inference images/s and peak memory inside those processes. Parameters and FLOPs
are counted here on the first validation image. Finished entries are stored in
``WORK_DIR/results.json`` and skipped on a rerun, so an interrupted benchmark resumes.

Example (the table in docs/benchmarks.md)::

    .venv/bin/python tools/benchmark.py --data consep256 --budget-minutes 25 --seed 0 \
        --configs configs/a2bis/a2bis-t_a2b_50e_consep-256.py \
                  configs/baselines/mask-rcnn_r50_fpn_50e_consep-256.py \
                  configs/baselines/solov2_r50_fpn_50e_consep-256.py
"""
import argparse
import csv
import json
import os
import os.path as osp
import platform
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import torch
from mmdet.registry import DATASETS, MODELS
from mmengine.config import Config, DictAction
from mmengine.dataset import pseudo_collate
from mmengine.registry import DefaultScope, init_default_scope
from mmengine.utils import import_modules_from_strings

from a2bis_mm.utils.complexity import count_flops
from a2bis_mm.utils.markdown import replace_doc_section

REPO_ROOT = Path(__file__).resolve().parents[1]
DOC_SECTION = '## A2B-IS vs mmdet baselines, equal training budget (tools/benchmark.py)'
# column -> metric key written by the evaluators (a2bis_mm.evaluation.metrics)
METRIC_KEYS = {
    'mask_AP50': 'ap50/mask_mAP50',
    'rbox_AP50': 'ap50/rbox_mAP50',
    'mPQ': 'pq/mPQ',
    'bPQ': 'pq/bPQ',
}
NEVER = 10**9  # an interval that is never reached: no validation/checkpoint during the budget


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--configs', nargs='+', required=True, help='config files to compare')
    budget = parser.add_mutually_exclusive_group(required=True)
    budget.add_argument('--budget-iters', type=int, help='training iterations per config')
    budget.add_argument('--budget-minutes', type=float, help='training wall-clock minutes per config')
    parser.add_argument('--data', required=True,
                        help='data set name, e.g. consep256; every config must train on it')
    parser.add_argument('--work-dir', default='work_dirs/benchmark')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--warmup-iters', type=int, default=50,
                        help='linear LR warm-up (at most a fifth of --budget-iters)')
    parser.add_argument('--doc', default=str(REPO_ROOT / 'docs' / 'benchmarks.md'),
                        help='markdown file whose benchmark section is replaced ("" to skip)')
    parser.add_argument('--smoke', action='store_true',
                        help='tool check only: 4 training images, 2 test images, batch 1')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='key=value overrides applied to every config before the budget')
    args = parser.parse_args(argv)
    for value, name in ((args.budget_iters, '--budget-iters'), (args.budget_minutes,
                                                                  '--budget-minutes')):
        if value is not None and value <= 0:
            parser.error(f'{name} must be positive, got {value}')
    for path in args.configs:
        if not osp.isfile(path):
            parser.error(f"config file '{path}' does not exist")
    return args


def budget_label(args: argparse.Namespace) -> str:
    if args.budget_iters is not None:
        return f'{args.budget_iters} iters'
    return f'{args.budget_minutes:g} min'


def run_key(args: argparse.Namespace, config: str) -> str:
    """The identity of one entry: a rerun skips entries whose key is already done."""
    return '|'.join([osp.normpath(config), args.data, budget_label(args), f'seed {args.seed}',
                     'smoke' if args.smoke else 'full'])


def benchmark_config(args: argparse.Namespace, config: str, work_dir: str) -> Config:
    """Load ``config`` and apply the budget, hooks, seed (and smoke limits)."""
    cfg = Config.fromfile(config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    data_root = str(cfg.train_dataloader.dataset.get('data_root', ''))
    if args.data not in data_root:
        raise ValueError(f"config '{config}' trains on '{data_root}', not on --data {args.data}")
    iters = args.budget_iters or NEVER
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=iters, val_interval=NEVER)
    warmup = args.warmup_iters if args.budget_iters is None else min(
        args.warmup_iters, max(1, args.budget_iters // 5))
    cfg.param_scheduler = [
        dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=warmup)
    ]
    # no validation inside the budget (IterBasedTrainLoop validates at its last iteration);
    # tools/test.py evaluates with the test_* settings afterwards
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', by_epoch=False, interval=NEVER,
                                        save_last=True, max_keep_ckpts=1)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=1 if args.smoke else 20)
    cfg.log_processor = dict(type='LogProcessor', window_size=10, by_epoch=False)
    cfg.custom_hooks = list(cfg.get('custom_hooks', [])) + [
        dict(type='BenchmarkHook', max_minutes=args.budget_minutes)
    ]
    cfg.randomness = dict(seed=args.seed)
    cfg.work_dir = work_dir
    if args.smoke:
        for key, n in (('train_dataloader', 4), ('test_dataloader', 2)):
            loader = cfg[key]
            loader.update(batch_size=1, num_workers=0, persistent_workers=False)
            loader.dataset.indices = n
    return cfg


def count_complexity(cfg: Config) -> Dict[str, float]:
    """Parameters (count, MB = float32 bytes / 2^20) and GFLOPs on the first validation image.

    GFLOPs: :func:`a2bis_mm.utils.complexity.count_flops` (2 x multiply-adds of convs and matrix
    products, the convention of tools/analysis_tools/get_flops.py).
    """
    imports = list(cfg.custom_imports.imports)
    import_modules_from_strings(imports, allow_failed_imports=False)
    if DefaultScope.get_current_instance() is None:
        init_default_scope(cfg.get('default_scope', 'mmdet'))
    model = MODELS.build(cfg.model).eval()
    num_params = sum(p.numel() for p in model.parameters())
    dataset_cfg = cfg.test_dataloader.dataset.copy()
    dataset_cfg.indices = 1
    data = model.data_preprocessor(pseudo_collate([DATASETS.build(dataset_cfg)[0]]), False)
    inputs = data['inputs']
    flops = count_flops(model, inputs, data['data_samples'])['']
    return dict(params_M=num_params / 1e6, params_MB=num_params * 4 / 2**20,
                gflops=flops / 1e9, input_shape='x'.join(map(str, inputs.shape[-2:])))


def run_logged(cmd: List[str], log_file: str) -> None:
    """Run ``cmd`` from the repo root, output to ``log_file``; raise with its tail on failure."""
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join([str(REPO_ROOT), env.get('PYTHONPATH', '')])
    with open(log_file, 'w') as log:
        proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    if proc.returncode:
        with open(log_file) as log:
            tail = log.read()[-2000:]
        raise RuntimeError(f'{" ".join(cmd[1:3])} failed (exit {proc.returncode}), '
                           f'log {log_file}:\n{tail}')


def run_entry(args: argparse.Namespace, config: str, work_dir: str) -> Dict:
    """Train, test and measure one config; returns the results row."""
    os.makedirs(work_dir, exist_ok=True)
    cfg = benchmark_config(args, config, work_dir)
    bench_cfg = osp.join(work_dir, 'benchmark_config.py')
    cfg.dump(bench_cfg)
    run_logged([sys.executable, 'tools/train.py', bench_cfg, '--work-dir', work_dir],
               osp.join(work_dir, 'train.log'))
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        checkpoint = f.read().strip()
    run_logged([sys.executable, 'tools/test.py', bench_cfg, checkpoint, '--work-dir', work_dir],
               osp.join(work_dir, 'test.log'))
    row = dict(config=osp.normpath(config), name=Path(config).stem, status='done')
    for name in ('bench_train.json', 'bench_test.json'):
        with open(osp.join(work_dir, name)) as f:
            row.update(json.load(f))
    missing = [key for key in METRIC_KEYS.values() if key not in row['metrics']]
    if missing:
        raise KeyError(f'{config}: the test evaluators did not report {missing} '
                       f'(got {sorted(row["metrics"])})')
    row.update({col: row['metrics'][key] for col, key in METRIC_KEYS.items()})
    row.update(count_complexity(cfg))
    return row


def machine_info() -> Dict[str, str]:
    cpu = platform.processor() or 'unknown CPU'
    if osp.isfile('/proc/cpuinfo'):
        with open('/proc/cpuinfo') as f:
            found = re.search(r'model name\s*:\s*(.+)', f.read())
        cpu = found.group(1).strip() if found else cpu
    info = dict(cpu=cpu, cores=str(os.cpu_count()), torch_threads=str(torch.get_num_threads()),
                torch=torch.__version__, python=platform.python_version())
    if torch.cuda.is_available():
        info['gpu'] = torch.cuda.get_device_name(0)
    return info


COLUMNS = [('name', 'config', '{}'), ('iters', 'iters', '{}'),
           ('mask_AP50', 'mask AP50', '{:.3f}'), ('rbox_AP50', 'rbox AP50', '{:.3f}'),
           ('mPQ', 'mPQ', '{:.3f}'), ('bPQ', 'bPQ', '{:.3f}'),
           ('params_MB', 'params (MB)', '{:.1f}'), ('gflops', 'GFLOPs', '{:.1f}'),
           ('train_s_per_iter', 'train s/iter', '{:.2f}'),
           ('infer_img_per_s', 'infer img/s', '{:.2f}'),
           ('train_peak_mem_mib', 'train peak MiB', '{:.0f}'),
           ('test_peak_mem_mib', 'test peak MiB', '{:.0f}')]


def render_table(rows: List[Dict], header: Dict) -> str:
    """The markdown section: settings, then one row per config."""
    mem = 'CUDA max_memory_allocated' if 'gpu' in header['machine'] else 'peak RSS of the process'
    lines = [
        DOC_SECTION, '',
        f'Command: `{header["command"]}`', '',
        f'Data: {header["data"]} (train split for training, val split for the metrics'
        f'{"; SMOKE RUN: 4 train / 2 val images, not a result" if header["smoke"] else ""}). '
        f'Budget per config: {header["budget"]}, batch size of each config, seed {header["seed"]}, '
        f'linear warm-up then each model\'s own optimiser at a constant LR. '
        f'Machine: {", ".join(f"{k} {v}" for k, v in header["machine"].items())}.', '',
        'Metrics: mask and rotated-box AP50 (`InstanceAP50Metric`; the baselines\' rotated boxes '
        'are the min-area rectangles of their masks), mPQ and bPQ (`PanopticQualityMetric`). '
        'Params: float32 bytes / 2^20. GFLOPs: 2 x multiply-accumulates of conv/linear/matmul '
        'layers (mmengine `FlopAnalyzer`, mmdet tensor-mode forward on the first val image: '
        'two-stage models run the box head on 1000 proposals and the mask head on 100; '
        'post-processing not counted). train s/iter: median over '
        f'iterations after the first two; infer img/s: batch 1, median; memory: {mem}.', '',
        '| ' + ' | '.join(title for _, title, _ in COLUMNS) + ' |',
        '|' + '---|' * len(COLUMNS),
    ]
    for row in rows:
        cells = []
        for key, _, fmt in COLUMNS:
            value = row.get(key)
            cells.append('–' if value is None else fmt.format(value))
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines) + '\n'


def write_outputs(args: argparse.Namespace, store: Dict, keys: List[str]) -> str:
    """Write results.json (every entry ever run), results.csv and the doc section (this run)."""
    with open(osp.join(args.work_dir, 'results.json'), 'w') as f:
        json.dump(store, f, indent=1)
    rows = [store['entries'][k] for k in keys if k in store['entries']]
    fields = ['config', 'name', 'status', 'iters', *METRIC_KEYS, 'params_M', 'params_MB',
              'gflops', 'input_shape', 'train_s_per_iter', 'train_minutes', 'infer_img_per_s',
              'train_peak_mem_mib', 'test_peak_mem_mib']
    with open(osp.join(args.work_dir, 'results.csv'), 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=fields, extrasaction='ignore')
        writer.writeheader()
        writer.writerows(rows)
    table = render_table(rows, store['header'])
    if args.doc:
        replace_doc_section(args.doc, table)
    return table


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    os.makedirs(args.work_dir, exist_ok=True)
    results_file = osp.join(args.work_dir, 'results.json')
    store = dict(entries={})
    if osp.isfile(results_file):
        with open(results_file) as f:
            store = json.load(f)
    store['header'] = dict(
        command=' '.join(['python', 'tools/benchmark.py', *(argv or sys.argv[1:])]),
        data=args.data, budget=budget_label(args), seed=args.seed, smoke=args.smoke,
        machine=machine_info())
    keys = [run_key(args, c) for c in args.configs]
    start, durations = time.time(), []
    for i, (config, key) in enumerate(zip(args.configs, keys)):
        if store['entries'].get(key, {}).get('status') == 'done':
            print(f'[{i + 1}/{len(keys)}] {config}: done in an earlier run, skipped', flush=True)
            continue
        remaining = len(keys) - i
        eta = statistics.mean(durations) * remaining if durations else (
            args.budget_minutes * 60 * remaining if args.budget_minutes else None)
        print(f'[{i + 1}/{len(keys)}] {config}: elapsed {(time.time() - start) / 60:.1f} min'
              + (f', ETA {eta / 60:.1f} min' if eta is not None else ''), flush=True)
        tic = time.time()
        work_dir = osp.join(args.work_dir, Path(config).stem + ('_smoke' if args.smoke else ''))
        store['entries'][key] = run_entry(args, config, work_dir)
        durations.append(time.time() - tic)
        write_outputs(args, store, keys)  # after every entry, so an interruption loses one
    print(write_outputs(args, store, keys))
    return 0


if __name__ == '__main__':
    sys.exit(main())
