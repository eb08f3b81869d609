"""Shared pytest fixtures: the real data in ../shared/data and small helpers."""
import os
from pathlib import Path

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


@pytest.fixture
def mm_caplog(caplog):
    """caplog for mmengine's logger, which has no parent logger and so never reaches caplog."""
    logger = MMLogger.get_current_instance()
    logger.addHandler(caplog.handler)
    yield caplog
    logger.removeHandler(caplog.handler)
