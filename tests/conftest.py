"""Shared pytest fixtures: the real data in ../shared/data and small helpers."""
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from mmengine.logging import MMLogger

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get('A2BIS_SHARED_DATA', REPO_ROOT.parent / 'shared' / 'data'))

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(scope='session')
def shared_data() -> Path:
    """Root of the real annotated data sets; skips the test (with the reason) when absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f'real data folder {SHARED_DATA} is absent (set A2BIS_SHARED_DATA to point at it)')
    return SHARED_DATA


@pytest.fixture(scope='session')
def repo_root() -> Path:
    """The repository root (configs/, tools/ live here)."""
    return REPO_ROOT


@pytest.fixture(autouse=True)
def _forget_mmloggers():
    """Drop the MMLoggers a test created.

    Their handlers write to that test's captured (then closed) streams, and a Runner built later in
    the same second would reuse them by name and fail on every line it logs.
    """
    before = set(MMLogger._instance_dict)
    yield
    for name in set(MMLogger._instance_dict) - before:
        for handler in MMLogger._instance_dict.pop(name).handlers:
            handler.close()


@pytest.fixture
def mm_caplog(caplog):
    """caplog for mmengine's logger, which has no parent logger and so never reaches caplog."""
    logger = MMLogger.get_current_instance()
    logger.addHandler(caplog.handler)
    yield caplog
    logger.removeHandler(caplog.handler)


# A fake PanNuke fold built from three real consep256 patches (PanNuke itself is not in ../shared/data).
PANNUKE_NAMES = ('test_11_003', 'test_11_006', 'test_12_001')
PANNUKE_TISSUES = ('Colon', 'Breast', 'Colon')
# consep class -> PanNuke channel: other -> dead, inflammatory, epithelial, spindle -> connective
CONSEP_TO_PANNUKE_CHANNEL = {1: 3, 2: 1, 3: 4, 4: 2}


@pytest.fixture(scope='session')
def pannuke_arrays(shared_data) -> dict:
    """The fold's arrays: ``images`` (float RGB), ``masks`` (N, H, W, 6), ``types``, plus the consep
    ``inst`` and ``cls`` maps they were made from."""
    labels = shared_data / 'consep256' / 'labels'
    rgb = np.stack([cv2.imread(str(shared_data / 'consep256' / 'images' / f'{n}.jpg'))[..., ::-1]
                    for n in PANNUKE_NAMES]).astype(np.float64)  # PanNuke: float RGB
    inst = np.stack([cv2.imread(str(labels / f'{n}_inst.png'), -1) for n in PANNUKE_NAMES])
    cls = np.stack([cv2.imread(str(labels / f'{n}_class.png'), -1) for n in PANNUKE_NAMES])
    masks = np.zeros(inst.shape + (6, ))
    for value, channel in CONSEP_TO_PANNUKE_CHANNEL.items():
        masks[..., channel] = np.where(cls == value, inst, 0)
    masks[..., 5] = inst == 0
    return dict(images=rgb, masks=masks, types=np.array(PANNUKE_TISSUES), inst=inst, cls=cls)


def write_pannuke_fold(fold_dir: Path, arrays: dict, nested: bool = True) -> None:
    """Save ``arrays`` as one PanNuke fold: the official nested layout
    (``images/fold1/{images,types}.npy``, ``masks/fold1/masks.npy``) or a flat folder."""
    files = dict(images='images/fold1', types='images/fold1', masks='masks/fold1')
    for name, sub in files.items():
        folder = fold_dir / sub if nested else fold_dir
        folder.mkdir(parents=True, exist_ok=True)
        np.save(folder / f'{name}.npy', arrays[name])
