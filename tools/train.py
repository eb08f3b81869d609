"""Train a detector (A2B-IS or any mmdet baseline) from a config, as mmdet's tools/train.py does.

Examples:
    python tools/train.py configs/a2bis/a2bis-tiny_a2b_300i_synthetic.py
    python tools/train.py CONFIG --resume                # continue from the last checkpoint
    torchrun --nproc_per_node 4 tools/train.py CONFIG --launcher pytorch
"""
import argparse
import sys

from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from a2bis_mm.utils.cli import ToolInputError, add_common_args, check_checkpoint, setup_config


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train a detector')
    parser.add_argument('config', help='train config file path (or mmdet::path/to/config.py)')
    parser.add_argument('--amp', action='store_true',
                        help='automatic mixed precision (fp16 on CUDA, bf16 on CPU)')
    parser.add_argument('--auto-scale-lr', action='store_true', help='scale the LR with batch size')
    parser.add_argument(
        '--resume', nargs='?', type=str, const='auto',
        help='resume from this checkpoint, or without a path from the latest checkpoint in the '
        'work dir')
    add_common_args(parser)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    cfg = setup_config(args)
    if args.amp:
        import torch
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.loss_scale = 'dynamic'
        if not torch.cuda.is_available():
            cfg.optim_wrapper.dtype = 'bfloat16'  # CPU autocast supports bf16 only
    if args.auto_scale_lr:
        if 'base_batch_size' not in cfg.get('auto_scale_lr', {}):
            raise ToolInputError('--auto-scale-lr needs auto_scale_lr.base_batch_size in the config')
        cfg.auto_scale_lr.enable = True
    if args.resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif args.resume is not None:
        cfg.resume, cfg.load_from = True, args.resume
    check_checkpoint(cfg.get('load_from'))

    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
    runner.train()


if __name__ == '__main__':
    try:
        main()
    except ToolInputError as err:
        sys.exit(f'error: {err}')
