"""Checkpoint loading: torch >= 2.6, strict loading for testing/inference, and ``--resume`` fallback.

torch 2.6 changed ``torch.load``'s default to ``weights_only=True``. mmengine 0.10.7 passes nothing, so
resuming or ``load_from`` a full mmengine checkpoint (message hub, numpy scalars, dataset meta) fails with
``Unsupported global: numpy._core.multiarray.scalar``. We re-register mmengine's local-file checkpoint
scheme (the one every ``load_from``/``--resume``/``load_checkpoint`` of a local path goes through) with a
loader that first tries the safe ``weights_only=True`` load and only falls back to a full unpickle for a
file the user explicitly asked to load, as torch < 2.6 did. Installed packages are left untouched.

mmengine loads weights with ``strict=False``: a checkpoint of another configuration loads with a warning
and the model runs on partly random weights. :func:`load_checkpoint_strict` (``tools/test.py``,
``tools/infer.py``, the inference API) refuses it with one line naming the first mismatched keys.
:func:`find_resume_checkpoint` (``tools/train.py --resume``) skips an unreadable newest checkpoint.
"""
import logging
import os
import os.path as osp
import pickle
import re
from collections import OrderedDict
from typing import Any, Mapping, Optional, Sequence

import torch
from mmengine.logging import MMLogger, print_log
from mmengine.model import is_model_wrapper
from mmengine.runner.checkpoint import CheckpointLoader
from torch import nn


class CheckpointError(RuntimeError):
    """Raised when a file the user named cannot be read as a PyTorch checkpoint."""


def load_local_checkpoint(filename: str, map_location: Optional[Any] = None) -> Any:
    """Load a local checkpoint file, full mmengine checkpoints included.

    Args:
        filename: Path of the checkpoint.
        map_location: Same as :func:`torch.load`.

    Returns:
        The loaded object (a state dict or an mmengine checkpoint dict).

    Raises:
        FileNotFoundError: The file does not exist.
        CheckpointError: The file exists but is not a PyTorch checkpoint.
    """
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    try:
        return torch.load(filename, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as safe_err:
        if 'Weights only load failed' not in str(safe_err):
            raise CheckpointError(f'{filename} is not a PyTorch checkpoint ({safe_err})') from None
        MMLogger.get_current_instance().debug(
            f'{filename}: full checkpoint (not weights only); loading it with weights_only=False')
    except Exception as err:  # noqa: BLE001 - torch raises many types for a non-checkpoint file
        raise CheckpointError(f'{filename} is not a PyTorch checkpoint ({err})') from None
    try:
        return torch.load(filename, map_location=map_location, weights_only=False)
    except Exception as err:  # noqa: BLE001 - any unpickling failure means "not a checkpoint"
        raise CheckpointError(f'{filename} is not a PyTorch checkpoint ({err})') from None


def register_checkpoint_loader() -> None:
    """Make :func:`load_local_checkpoint` mmengine's loader for local paths (idempotent)."""
    CheckpointLoader.register_scheme(prefixes='', loader=load_local_checkpoint, force=True)


class CheckpointMismatchError(CheckpointError):
    """Raised when a checkpoint's weights do not fit the model (missing, unexpected or resized keys)."""


def _first(keys: Sequence[str], limit: int) -> str:
    more = f' and {len(keys) - limit} more' if len(keys) > limit else ''
    return ', '.join(keys[:limit]) + more


def _state_dict_of(checkpoint: Mapping) -> 'OrderedDict[str, torch.Tensor]':
    """The weights of an mmengine checkpoint (or a bare state dict), ``module.`` prefixes removed."""
    state_dict = checkpoint.get('state_dict', checkpoint)
    metadata = getattr(state_dict, '_metadata', None)
    state_dict = OrderedDict((re.sub(r'^module\.', '', k), v) for k, v in state_dict.items())
    if metadata is not None:
        state_dict._metadata = metadata
    return state_dict


def load_state_dict_strict(model: nn.Module, checkpoint: Mapping, source: str, limit: int = 3) -> None:
    """Load the weights of ``checkpoint`` into ``model``, refusing any that do not fit it.

    Loading goes through the modules' own ``_load_from_state_dict``, so a module that renames the keys
    of older checkpoints still loads them. On a mismatch the model may be partly loaded.

    Args:
        model: The model (an mmengine model wrapper is unwrapped).
        checkpoint: An mmengine checkpoint dict (weights under ``state_dict``) or a bare state dict.
        source: The checkpoint's name for the message (its path).
        limit: How many keys of each kind the message names.

    Raises:
        CheckpointError: ``checkpoint`` is not a dict.
        CheckpointMismatchError: One line naming the first missing, unexpected and resized keys.
    """
    if not isinstance(checkpoint, Mapping):
        raise CheckpointError(f'{source} is not a PyTorch checkpoint (it holds a '
                              f'{type(checkpoint).__name__}, not a dict of weights)')
    model = model.module if is_model_wrapper(model) else model
    state_dict = _state_dict_of(checkpoint)
    own = model.state_dict()
    resized = [f'{k} (checkpoint {list(v.shape)}, model {list(own[k].shape)})'
               for k, v in state_dict.items()
               if k in own and hasattr(v, 'shape') and v.shape != own[k].shape]
    problems = [f'size mismatch for {_first(resized, limit)}'] if resized else []
    if not resized:
        try:
            result = model.load_state_dict(state_dict, strict=False)
        except RuntimeError as err:  # a resized key that a module renamed while loading
            found = re.findall(r'size mismatch for ([^:]+):', str(err))
            problems.append(f'size mismatch for {_first(found, limit)}' if found else
                            str(err).splitlines()[0])
        else:
            if result.missing_keys:
                problems.append(f'missing keys {_first(result.missing_keys, limit)}')
            if result.unexpected_keys:
                problems.append(f'unexpected keys {_first(result.unexpected_keys, limit)}')
    if problems:
        raise CheckpointMismatchError(
            f'checkpoint {source} does not fit the model ({type(model).__name__}): '
            + '; '.join(problems))


def load_checkpoint_strict(model: nn.Module, filename: str, map_location: Optional[Any] = 'cpu') -> dict:
    """Load a checkpoint file into ``model`` and refuse one that does not fit it.

    For ``tools/test.py``, ``tools/infer.py`` and the inference API: a checkpoint of another
    configuration (e.g. another number of classes) must not run on partly random weights.

    Args:
        model: The model to load into.
        filename: A local path or any URL mmengine's checkpoint loader reads.
        map_location: Same as :func:`torch.load`.

    Returns:
        The loaded checkpoint (``meta`` holds e.g. ``dataset_meta``).

    Raises:
        FileNotFoundError: The local file does not exist.
        CheckpointError: The file is not a PyTorch checkpoint.
        CheckpointMismatchError: The weights do not fit the model (one line naming the first keys).
    """
    checkpoint = CheckpointLoader.load_checkpoint(filename, map_location=map_location)
    load_state_dict_strict(model, checkpoint, filename)
    return checkpoint


_CHECKPOINT_NAME = re.compile(r'^(?:epoch|iter)_(\d+)\.pth$')


def find_resume_checkpoint(work_dir: str) -> Optional[str]:
    """The newest readable checkpoint of ``work_dir``, for ``--resume`` without a path.

    Tried in order: the file named in ``work_dir/last_checkpoint``, then ``epoch_N.pth`` / ``iter_N.pth``
    from the highest ``N`` down. A file that cannot be read (e.g. a run killed while saving it) is
    skipped with a warning naming it and the checkpoint used instead.

    Returns:
        The path to resume from, or None when ``work_dir`` holds no checkpoint.

    Raises:
        CheckpointError: Checkpoints exist but none can be read.
    """
    candidates = []
    last = osp.join(work_dir, 'last_checkpoint')
    if osp.isfile(last):
        with open(last, encoding='utf-8') as f:
            candidates.append(f.read().strip())
    numbered = [(int(m.group(1)), name) for name in os.listdir(work_dir)
                if (m := _CHECKPOINT_NAME.match(name))] if osp.isdir(work_dir) else []
    candidates += [osp.join(work_dir, name) for _, name in sorted(numbered, reverse=True)]
    seen, unreadable = set(), []
    for path in candidates:
        if not path or osp.realpath(path) in seen:
            continue
        seen.add(osp.realpath(path))
        try:
            checkpoint = load_local_checkpoint(path, map_location='cpu')
            if not isinstance(checkpoint, Mapping) or 'state_dict' not in checkpoint:
                raise CheckpointError(f'{path} is not an mmengine training checkpoint (no state_dict)')
        except (FileNotFoundError, CheckpointError) as err:
            unreadable.append(f'{path}: {err}')
            continue
        for problem in unreadable:
            print_log(f'--resume: skipping the unreadable checkpoint {problem}', logger='current',
                      level=logging.WARNING)
        if unreadable:
            print_log(f'--resume: resuming from {path} instead', logger='current',
                      level=logging.WARNING)
        return path
    if unreadable:
        raise CheckpointError(f'no checkpoint in {work_dir} can be read ({"; ".join(unreadable)})')
    return None
