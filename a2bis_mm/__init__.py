"""a2bis-mm: A2B-IS instance segmentation for microscopy on MMDetection 3 / MMRotate 1.

Importing the package registers every module into the mmdet registries (configs reach them through
``custom_imports=dict(imports=['a2bis_mm'], allow_failed_imports=False)``), registers mmrotate's
``RotatedBoxes`` box type, and installs the torch >= 2.6 checkpoint loader (see ``utils/checkpoint.py``).
"""
import mmrotate.structures  # noqa: F401  registers the 'rbox' box type with mmdet

from .utils import register_checkpoint_loader

register_checkpoint_loader()

from . import apis, datasets, engine, evaluation, models, structures, visualization  # noqa: E402,F401

__version__ = '0.1.0'
