"""Compare an SSL-IS run with its supervised twin, or measure the peak memory of SSL variants.

The supervised twin is the same config with ``model.semi_train_cfg.unsup_weight=0``: the same
labelled images in the same order with the same augmentations, the same initialisation and the
same number of steps; only the unlabeled loss (and its forward passes) is left out. Both runs are
trained with ``tools/train.py`` in subprocesses, one after the other, then evaluated on the
config's validation split with the EMA teacher and with the student.

Examples:
    python tools/compare_ssl.py configs/a2bis_ssl/a2bis-tiny_ssl_300i_chromosome-512.py \\
        --iters 200 --input-size 256 --work-dir work_dirs/compare_ssl
    python tools/compare_ssl.py configs/a2bis_ssl/a2bis-t_ssl_100e_chromosome-512.py --iters 100 \
        --input-size 256 --load-from models/a2bis-t_chromosome-256.pth --work-dir work_dirs/compare_ssl_t
    python tools/compare_ssl.py --memory configs/a2bis_ssl/a2bis-t_*_chromosome-512.py \\
        --detector-from configs/a2bis_ssl/a2bis-tiny_ssl_300i_chromosome-512.py --iters 3
"""
import argparse
import copy
import os
import os.path as osp
import subprocess
import sys
import time
from typing import Dict, List, Optional

from mmengine.config import Config

from a2bis_mm.utils.cli import ToolInputError, check_work_dir, load_config

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))

METRICS = ('pq/bPQ', 'ap50/mask_mAP50', 'ap50/rbox_mAP50', 'err/images_all_found')


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('configs', nargs='+', help='an A2BISSemi config (several with --memory)')
    parser.add_argument('--memory', action='store_true',
                        help='measure the peak RSS of a few training steps of each config')
    parser.add_argument('--iters', type=int, default=None,
                        help='training steps of each run (default: the config\'s; 3 with --memory)')
    parser.add_argument('--input-size', type=int, default=None,
                        help='square side given to every Resize of the pipelines')
    parser.add_argument('--detector-from', default=None,
                        help='take model.detector from this config (e.g. the tiny model)')
    parser.add_argument('--load-from', default=None,
                        help='start both runs from these supervised A2B-IS weights (student and teacher)')
    parser.add_argument('--seed', type=int, default=0, help='seed of both runs')
    parser.add_argument('--work-dir', default='work_dirs/compare_ssl')
    return parser.parse_args()


def set_resize(node, size: int) -> None:
    """Set ``scale=(size, size)`` in every ``Resize`` found in a (nested) config."""
    if isinstance(node, dict):
        if node.get('type') == 'Resize':
            node['scale'] = (size, size)
        for value in node.values():
            set_resize(value, size)
    elif isinstance(node, (list, tuple)):
        for value in node:
            set_resize(value, size)


def prepare(path: str, args: argparse.Namespace, iters: Optional[int]) -> Config:
    """Load ``path`` and apply the shared overrides of this tool."""
    cfg = load_config(path)
    if cfg.model.get('type') != 'A2BISSemi':
        raise ToolInputError(f"{path}: model.type must be 'A2BISSemi', got "
                             f"'{cfg.model.get('type')}'")
    if args.detector_from:
        cfg.model.detector = copy.deepcopy(load_config(args.detector_from).model.detector)
    if args.input_size:
        for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
            set_resize(cfg.get(key), args.input_size)
    if args.load_from:
        if not osp.isfile(args.load_from):
            raise ToolInputError(f'--load-from {args.load_from}: no such file')
        cfg.load_from = args.load_from
    if iters is not None:
        cfg.train_cfg.max_iters = iters
    # no validation inside training (the loop would run one at the last step): done here after
    cfg.train_cfg.val_begin = cfg.train_cfg.max_iters + 1
    cfg.default_hooks.checkpoint.update(interval=cfg.train_cfg.max_iters, max_keep_ckpts=1)
    cfg.default_hooks.visualization.draw = False
    cfg.randomness = dict(seed=args.seed)
    cfg.train_dataloader.sampler.seed = args.seed
    return cfg


def train(cfg: Config, work_dir: str) -> Dict[str, float]:
    """Train ``cfg`` with tools/train.py in a subprocess; return its wall time and peak RSS."""
    check_work_dir(work_dir)
    cfg_path = osp.join(work_dir, 'config.py')
    cfg.dump(cfg_path)
    log_path = osp.join(work_dir, 'train.log')
    start = time.time()
    with open(log_path, 'w') as log:
        proc = subprocess.Popen(
            [sys.executable, osp.join(REPO, 'tools', 'train.py'), cfg_path, '--work-dir', work_dir],
            cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        # wait4 gives this child's own peak RSS (dataloader workers are not counted)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise ToolInputError(f'training failed (exit {proc.returncode}); see {log_path}')
    return dict(seconds=time.time() - start, peak_rss_mib=usage.ru_maxrss / 1024)


def evaluate(cfg: Config, work_dir: str) -> Dict[str, Dict[str, float]]:
    """Test the last checkpoint on the validation split with the teacher and the student."""
    from mmengine.runner import Runner
    results = {}
    for predict_on in ('teacher', 'student'):
        test_cfg = copy.deepcopy(cfg)
        test_cfg.model.semi_test_cfg = dict(predict_on=predict_on)
        test_cfg.test_dataloader = test_cfg.val_dataloader
        test_cfg.test_evaluator = test_cfg.val_evaluator
        test_cfg.test_dataloader.update(num_workers=0, persistent_workers=False)
        test_cfg.load_from = osp.join(work_dir, f'iter_{cfg.train_cfg.max_iters}.pth')
        test_cfg.work_dir = osp.join(work_dir, f'test_{predict_on}')
        results[predict_on] = Runner.from_cfg(test_cfg).test()
    return results


def compare(args: argparse.Namespace) -> List[str]:
    if len(args.configs) != 1:
        raise ToolInputError(f'compare one config at a time, got {len(args.configs)}')
    base = prepare(args.configs[0], args, args.iters)
    rows = ['| run | model | ' + ' | '.join(METRICS) + ' | train s |',
            '|---|---|' + '---|' * (len(METRICS) + 1)]
    for name, unsup_weight in (('ssl', base.model.semi_train_cfg.get('unsup_weight', 1.0)),
                               ('supervised twin', 0.0)):
        cfg = copy.deepcopy(base)
        cfg.model.semi_train_cfg.unsup_weight = unsup_weight
        work_dir = osp.join(args.work_dir, name.replace(' ', '_'))
        stats = train(cfg, work_dir)
        for predict_on, metrics in evaluate(cfg, work_dir).items():
            values = ' | '.join(f'{metrics.get(m, float("nan")):.4f}' for m in METRICS)
            rows.append(f'| {name} | {predict_on} | {values} | {stats["seconds"]:.0f} |')
    return rows


def memory(args: argparse.Namespace) -> List[str]:
    rows = ['| config | variant | steps | peak RSS MiB | s |', '|---|---|---|---|---|']
    for path in args.configs:
        cfg = prepare(path, args, args.iters or 3)
        cfg.train_dataloader.update(num_workers=0, persistent_workers=False)
        stats = train(cfg, osp.join(args.work_dir, osp.splitext(osp.basename(path))[0]))
        rows.append(f'| {osp.basename(path)} | {cfg.model.semi_train_cfg.variant} | '
                    f'{cfg.train_cfg.max_iters} | {stats["peak_rss_mib"]:.0f} | '
                    f'{stats["seconds"]:.0f} |')
    return rows


def main() -> None:
    args = parse_args()
    if args.iters is not None and args.iters < 1:
        raise ToolInputError(f'--iters must be >= 1, got {args.iters}')
    rows = memory(args) if args.memory else compare(args)
    print('\n'.join(rows))


if __name__ == '__main__':
    try:
        main()
    except ToolInputError as err:
        sys.exit(f'error: {err}')
