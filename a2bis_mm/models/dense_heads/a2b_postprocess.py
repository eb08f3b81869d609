"""Compatibility imports: the post-processing moved to ``a2bis_mm.models.task_modules``
(decoders) and ``a2bis_mm.structures.rbox_geometry`` (box geometry)."""
from a2bis_mm.structures.rbox_geometry import rescale_rboxes, square_intersects_rbox

from ..task_modules.nms import rotated_nms
from ..task_modules.paper_decoder import _fill_holes, a2b_postprocess

__all__ = [
    'a2b_postprocess', 'rescale_rboxes', 'rotated_nms', 'square_intersects_rbox', '_fill_holes'
]
