from .synthetic import SyntheticMicroscopyGenerator, generate_synthetic_coco  # noqa: F401
from .transforms import *  # noqa: F401,F403
