from .instance_map import InstanceMapDataset  # noqa: F401
from .labelme import LabelMeDataset  # noqa: F401
from .pannuke import PANNUKE_CLASSES, PanNukeDataset  # noqa: F401
from .synthetic import SyntheticMicroscopyGenerator, generate_synthetic_coco  # noqa: F401
from .transforms import *  # noqa: F401,F403
from .unlabeled import UnlabeledImageFolderDataset  # noqa: F401
