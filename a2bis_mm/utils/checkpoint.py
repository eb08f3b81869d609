"""Checkpoint loading that works with torch >= 2.6.

torch 2.6 changed ``torch.load``'s default to ``weights_only=True``. mmengine 0.10.7 passes nothing, so
resuming or ``load_from`` a full mmengine checkpoint (message hub, numpy scalars, dataset meta) fails with
``Unsupported global: numpy._core.multiarray.scalar``. We re-register mmengine's local-file checkpoint
scheme (the one every ``load_from``/``--resume``/``load_checkpoint`` of a local path goes through) with a
loader that first tries the safe ``weights_only=True`` load and only falls back to a full unpickle for a
file the user explicitly asked to load, as torch < 2.6 did. Installed packages are left untouched.
"""
import os.path as osp
import pickle
from typing import Any, Optional

import torch
from mmengine.logging import MMLogger
from mmengine.runner.checkpoint import CheckpointLoader


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
