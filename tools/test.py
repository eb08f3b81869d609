"""Test (and evaluate) a trained detector, as mmdet's tools/test.py does.

Example:
    python tools/test.py configs/a2bis/a2bis-tiny_a2b_300i_synthetic.py work_dirs/x/epoch_1.pth

A checkpoint that does not fit the config's model (another number of classes, another architecture)
is refused with one line naming the first mismatched keys; bad input ends with one ``error:`` line
and exit status 2.
"""
import argparse
from typing import List, Optional

from mmdet.engine.hooks.utils import trigger_visualization_hook
from mmdet.evaluation import DumpDetResults
from mmengine.runner import Runner

from a2bis_mm.utils import cli
from a2bis_mm.utils.checkpoint import CheckpointError, load_checkpoint_strict, load_state_dict_strict


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test (and evaluate) a detector')
    parser.add_argument('config', help='test config file path (or mmdet::path/to/config.py)')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--out', help='dump predictions to a pickle file for offline evaluation')
    parser.add_argument('--show', action='store_true', help='show prediction results')
    parser.add_argument('--show-dir', help='save painted images under work_dir/<timestamp>/DIR')
    parser.add_argument('--wait-time', type=float, default=2, help='the interval of show (s)')
    cli.add_common_args(parser)
    return parser.parse_args(argv)


def build_runner(argv: Optional[List[str]] = None) -> Runner:
    """Parse the command line, check the inputs, build the Runner and load the checkpoint strictly.

    Raises:
        ToolInputError: Bad input (also a checkpoint that does not fit the model), one line.
    """
    args = parse_args(argv)
    if args.out is not None and not args.out.endswith(('.pkl', '.pickle')):
        raise cli.ToolInputError(f"--out must name a .pkl file, got '{args.out}'")
    cfg = cli.setup_config(args)
    checkpoint = cli.check_checkpoint(args.checkpoint)
    cli.check_data_paths(cfg, ('test_dataloader', 'test_evaluator'))
    cfg.load_from = args.checkpoint
    if args.show or args.show_dir:
        cfg = trigger_visualization_hook(cfg, args)

    runner = cli.build_runner_from_cfg(cfg)
    try:
        # mmengine's own load (in runner.test) is not strict: it would test partly random weights
        if checkpoint is None:  # a URL
            load_checkpoint_strict(runner.model, args.checkpoint)
        else:
            load_state_dict_strict(runner.model, checkpoint, args.checkpoint)
    except CheckpointError as err:
        raise cli.ToolInputError(str(err)) from None
    if args.out is not None:
        runner.test_evaluator.metrics.append(DumpDetResults(out_file_path=args.out))
    return runner


def main(argv: Optional[List[str]] = None) -> None:
    build_runner(argv).test()


if __name__ == '__main__':
    cli.run_tool(main)
