"""Train a detector (A2B-IS or any mmdet baseline) from a config, as mmdet's tools/train.py does.

Examples:
    python tools/train.py configs/a2bis/a2bis-tiny_a2b_300i_synthetic.py
    python tools/train.py CONFIG --resume                # continue from the last checkpoint
    torchrun --nproc_per_node 4 tools/train.py CONFIG --launcher pytorch

Bad input (a missing config, data folder or checkpoint, a misspelt ``--cfg-options`` key, ...) ends
with one ``error:`` line and exit status 2 (README.md, "Errors").
"""
import argparse
from typing import List, Optional

from mmengine.config import Config
from mmengine.runner import Runner

from a2bis_mm.utils import cli
from a2bis_mm.utils.checkpoint import CheckpointError, find_resume_checkpoint


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train a detector')
    parser.add_argument('config', help='train config file path (or mmdet::path/to/config.py)')
    parser.add_argument('--amp', action='store_true',
                        help='mixed precision (MixedPrecisionOptimWrapper: AMP on CUDA, bf16 on a CPU)')
    parser.add_argument('--auto-scale-lr', action='store_true', help='scale the LR with batch size')
    parser.add_argument(
        '--resume', nargs='?', type=str, const='auto',
        help='resume from this checkpoint, or without a path from the latest readable checkpoint in '
        'the work dir')
    cli.add_common_args(parser)
    return parser.parse_args(argv)


def build_runner(argv: Optional[List[str]] = None) -> Runner:
    """Parse the command line, check the inputs and build the Runner, without training.

    Raises:
        ToolInputError: Bad input, with a one-line message.
    """
    args = parse_args(argv)
    cfg = cli.setup_config(args)
    if args.amp:
        # AMP on CUDA, bf16 autocast on a CPU (float32 where the CPU lacks bf16); the A2B-IS schedule
        # already uses it, --amp turns it on for the baselines (docs/benchmarks.md)
        cfg.optim_wrapper.type = 'MixedPrecisionOptimWrapper'
    if args.auto_scale_lr:
        if 'base_batch_size' not in cfg.get('auto_scale_lr', {}):
            raise cli.ToolInputError('--auto-scale-lr needs auto_scale_lr.base_batch_size in the config')
        cfg.auto_scale_lr.enable = True
    set_resume(cfg, args.resume)
    cli.check_checkpoint(cfg.get('load_from'))
    validates = all(cfg.get(k) is not None for k in ('val_dataloader', 'val_cfg', 'val_evaluator'))
    cli.check_data_paths(cfg, ('train_dataloader', 'val_dataloader', 'val_evaluator') if validates
                         else ('train_dataloader', ))
    return cli.build_runner_from_cfg(cfg)


def set_resume(cfg: Config, resume: Optional[str]) -> None:
    """Apply ``--resume [PATH]``: without a path, the newest readable checkpoint of the work dir."""
    if resume is None:
        return
    if resume != 'auto':
        cfg.resume, cfg.load_from = True, resume
        return
    try:
        latest = find_resume_checkpoint(cfg.work_dir)
    except CheckpointError as err:
        raise cli.ToolInputError(f'--resume: {err}') from None
    # None: nothing saved yet, mmengine starts from scratch (and says so)
    cfg.resume, cfg.load_from = True, latest


def main(argv: Optional[List[str]] = None) -> None:
    build_runner(argv).train()


if __name__ == '__main__':
    cli.run_tool(main)
