"""Input checks shared by the command-line tools: each failure is one clear line, not a traceback.

A tool wraps its ``main`` in :func:`run_tool`: a :class:`ToolInputError` (bad arguments, missing files,
data that cannot be used, a checkpoint that does not fit) is printed as ``error: <message>`` on stderr
and the tool exits with status 2 (:data:`EXIT_USAGE`, as argparse does for bad arguments). Anything
else is a bug and keeps its traceback (status 1).
"""
import argparse
import difflib
import os
import os.path as osp
import sys
import tempfile
from typing import TYPE_CHECKING, Any, Callable, Iterator, List, Optional, Sequence, Tuple

from mmengine.config import Config, DictAction

from .checkpoint import CheckpointError, load_local_checkpoint
from .errors import EXIT_USAGE, ToolInputError

if TYPE_CHECKING:
    from mmengine.runner import Runner

PACKAGE_PREFIXES = ('mmdet::', 'mmrotate::')
# how close (difflib ratio) a new --cfg-options name must be to an existing one to be taken for a typo
OPTION_CUTOFF = 0.8
__all__ = ['EXIT_USAGE', 'ToolInputError', 'run_tool', 'resolve_config_path', 'load_config',
           'check_work_dir', 'check_checkpoint', 'check_cfg_options', 'check_data_paths', 'check_device',
           'add_common_args', 'build_runner_from_cfg', 'setup_config']


def run_tool(main: Callable[[], object]) -> None:
    """Run a tool's ``main``; a :class:`ToolInputError` ends it with one line and status 2."""
    try:
        main()
    except ToolInputError as err:
        print(f'error: {err}', file=sys.stderr)
        sys.exit(EXIT_USAGE)


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


def check_checkpoint(path: Optional[str]) -> Optional[Any]:
    """Make sure ``path`` (if given and local) is a readable PyTorch checkpoint.

    Returns:
        The loaded checkpoint (on the CPU), or None for no path or a URL (read later by mmengine).
    """
    if path is None or '://' in path:
        return None
    try:
        return load_local_checkpoint(path, map_location='cpu')
    except FileNotFoundError:
        raise ToolInputError(f"checkpoint '{path}' does not exist") from None
    except CheckpointError as err:
        raise ToolInputError(str(err)) from None


def check_device(device: str) -> str:
    """Return ``device`` if this machine has it, e.g. ``cpu``, ``cuda``, ``cuda:1``, ``mps``.

    Raises:
        ToolInputError: Unknown device name, or a CUDA / MPS device this machine does not have.
    """
    import torch
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise ToolInputError(f"--device '{device}' is not a device name (e.g. cpu, cuda, cuda:0)") \
            from None
    if dev.type == 'cuda':
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ToolInputError(f"--device {device}: no CUDA GPU is available here (use --device cpu)")
        if dev.index is not None and dev.index >= count:
            raise ToolInputError(f'--device {device}: this machine has {count} CUDA GPU(s), '
                                 f'cuda:0..cuda:{count - 1}')
    elif dev.type == 'mps' and not torch.backends.mps.is_available():
        raise ToolInputError(f'--device {device}: MPS is not available here (use --device cpu)')
    return device


def _option_problem(cfg: Config, key: str) -> Optional[str]:
    """Why ``key`` (dotted, list items by index) looks like a typo in ``cfg``; None if it does not.

    A key may name existing entries or add new ones (``train_cfg.val_begin``, ``model.backbone.init_cfg.
    type`` when there is no ``init_cfg``), but a new name that is one typo away from an existing one
    (``train_cfg.max_epoch``, ``train_dataloder``) is refused, as is a list index out of range.
    """
    node, parts = cfg._cfg_dict if isinstance(cfg, Config) else cfg, key.split('.')
    for depth, part in enumerate(parts):
        parent = '.'.join(parts[:depth])
        if isinstance(node, (list, tuple)):
            if not part.isdigit() or int(part) >= len(node):
                return f"'{key}': {parent or 'the config'} is a list of {len(node)} entries"
            node = node[int(part)]
            continue
        if not isinstance(node, dict):
            return None  # below a value that the option replaces by a new dict
        if part in node or part == '_delete_':
            node = node.get(part)
            continue
        close = difflib.get_close_matches(part, [str(k) for k in node], n=1, cutoff=OPTION_CUTOFF)
        if not close:
            return None  # a new entry
        near = '.'.join([*parts[:depth], close[0]])
        return (f"'{key}' matches nothing in the config: there is no '{parent + '.' if parent else ''}"
                f"{part}'; did you mean '{near}'? (to add it as a new key, write +{key}=...)")
    return None


def check_cfg_options(cfg: Config, options: Optional[dict]) -> dict:
    """Refuse ``--cfg-options`` keys that look like typos (mmengine would silently add them).

    Keys written with a leading ``+`` are taken as new keys without the check.

    Returns:
        ``options`` with the ``+`` prefixes removed, ready for ``cfg.merge_from_dict``.

    Raises:
        ToolInputError: Naming the key and the nearest existing one.
    """
    checked = {}
    for key, value in (options or {}).items():
        if key.startswith('+'):
            key = key[1:]
        else:
            problem = _option_problem(cfg, key)
            if problem:
                raise ToolInputError(f'--cfg-options {problem}')
        checked[key] = value
    return checked


def _datasets(node: object, key: str) -> Iterator[Tuple[str, dict]]:
    """(dotted key, dataset config) of a dataset config and the datasets it wraps."""
    if not isinstance(node, dict):
        return
    yield key, node
    if isinstance(node.get('dataset'), dict):
        yield from _datasets(node['dataset'], f'{key}.dataset')
    for i, sub in enumerate(node.get('datasets') or []):
        yield from _datasets(sub, f'{key}.datasets.{i}')


def _is_local(path: object) -> bool:
    return isinstance(path, str) and bool(path) and '://' not in path


def check_data_paths(cfg: Config, parts: Sequence[str]) -> None:
    """Make sure the data roots and annotation files that ``parts`` of ``cfg`` read exist.

    Args:
        cfg: The tool's config (after ``--cfg-options``).
        parts: Dataloaders and evaluators the tool uses, e.g. ``('train_dataloader', 'val_dataloader',
            'val_evaluator')``; missing or None ones are ignored.

    Raises:
        ToolInputError: Naming the config key, the missing path and how to override it.
    """
    problems: List[Tuple[str, str, str]] = []
    for part in parts:
        node = cfg.get(part)
        if part.endswith('_dataloader') and isinstance(node, dict):
            for key, ds in _datasets(node.get('dataset'), f'{part}.dataset'):
                root = ds.get('data_root')
                if _is_local(root) and not osp.isdir(root):
                    problems.append((f'{key}.data_root', 'folder', root))
                    continue
                ann = ds.get('ann_file')
                if _is_local(ann):
                    ann = osp.join(root, ann) if _is_local(root) and not osp.isabs(ann) else ann
                    if not osp.isfile(ann):
                        problems.append((f'{key}.ann_file', 'file', ann))
        elif part.endswith('_evaluator') and node:
            for i, metric in enumerate(node if isinstance(node, (list, tuple)) else [node]):
                ann = metric.get('ann_file') if isinstance(metric, dict) else None
                if _is_local(ann) and not osp.isfile(ann):
                    key = f'{part}.{i}' if isinstance(node, (list, tuple)) else part
                    problems.append((f'{key}.ann_file', 'file', ann))
    if problems:
        key, kind, path = problems[0]
        more = f' ({len(problems) - 1} more missing path(s))' if len(problems) > 1 else ''
        raise ToolInputError(f"{key}: {kind} '{path}' does not exist{more}; point it at your data with "
                             f'--cfg-options {key}=PATH (docs/datasets.md)')


def build_runner_from_cfg(cfg: Config) -> 'Runner':
    """Build the Runner as mmdet's tools do: ``runner_type`` from the config, else mmengine's Runner."""
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner
    return Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)


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
        cfg.merge_from_dict(check_cfg_options(cfg, args.cfg_options))
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    check_work_dir(cfg.work_dir)
    return cfg
