"""Input checks shared by the command-line tools: each failure is one clear line, not a traceback."""
import argparse
import os
import os.path as osp
import tempfile
from typing import Optional

from mmengine.config import Config, DictAction

from .checkpoint import CheckpointError, load_local_checkpoint

PACKAGE_PREFIXES = ('mmdet::', 'mmrotate::')


class ToolInputError(ValueError):
    """A user-facing input problem; the tools print ``error: <message>`` and exit with status 2."""


def resolve_config_path(path: str) -> str:
    """Return the file behind ``path``, which may be ``mmdet::mask_rcnn/...py`` or a local file.

    Raises:
        ToolInputError: The file does not exist.
    """
    if path.startswith(PACKAGE_PREFIXES):
        from mmengine.config.utils import _get_package_and_cfg_path
        from mmengine.utils import get_installed_path
        package, rel_path = _get_package_and_cfg_path(path)
        resolved = osp.join(get_installed_path(package), '.mim', 'configs', rel_path)
    else:
        resolved = path
    if not osp.isfile(resolved):
        raise ToolInputError(f"config file '{path}' does not exist")
    return resolved


def load_config(path: str) -> Config:
    """Load a config file (see :func:`resolve_config_path`) with a one-line error on failure."""
    resolved = resolve_config_path(path)
    try:
        return Config.fromfile(resolved)
    except Exception as err:  # noqa: BLE001 - config files can raise anything
        raise ToolInputError(f"config file '{path}' cannot be read: {type(err).__name__}: {err}") \
            from None


def check_work_dir(work_dir: str) -> None:
    """Create ``work_dir`` if needed and make sure files can be written in it."""
    try:
        os.makedirs(work_dir, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=work_dir):
            pass
    except OSError as err:
        raise ToolInputError(f"work dir '{work_dir}' cannot be written: {err.strerror or err}") \
            from None


def check_checkpoint(path: Optional[str]) -> None:
    """Make sure ``path`` (if given and local) is a readable PyTorch checkpoint."""
    if path is None or '://' in path:
        return
    try:
        load_local_checkpoint(path, map_location='cpu')
    except FileNotFoundError:
        raise ToolInputError(f"checkpoint '{path}' does not exist") from None
    except CheckpointError as err:
        raise ToolInputError(str(err)) from None


def add_common_args(parser: argparse.ArgumentParser) -> None:
    """Arguments every mmdet-style tool takes: ``--work-dir``, ``--cfg-options``, ``--launcher``."""
    parser.add_argument('--work-dir', help='the dir to save logs, checkpoints and metrics')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override settings of the config, e.g. train_cfg.max_iters=100 '
        'train_dataloader.batch_size=4 (key=value pairs, no spaces)')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none',
                        help='job launcher (torchrun: --launcher pytorch)')
    # torch.distributed launchers pass --local-rank.
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def setup_config(args: argparse.Namespace) -> Config:
    """Load ``args.config``, apply ``--cfg-options``/``--launcher``/``--work-dir`` and check the work dir.

    Mirrors mmdet's tools: the work dir is CLI > config > ``./work_dirs/<config name>``.
    """
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    cfg = load_config(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    check_work_dir(cfg.work_dir)
    return cfg
