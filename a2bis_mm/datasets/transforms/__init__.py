from .augment import JetColormap, RandomRot90
from .formatting import PackA2BInputs
from .loading import LoadMicroscopyImage, LoadPanNukeAnnotations  # noqa: F401
from .perturb import A2BPhotometricPerturb  # noqa: F401
from .targets import GenerateA2BTargets
