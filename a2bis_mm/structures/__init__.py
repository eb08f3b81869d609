from .rbox import mask_to_rbox, masks_to_rboxes
from .rbox_geometry import (
                            ANCHOR_HALF_SIZE,
                            points_in_rboxes,
                            rbox_aabb,
                            rbox_candidate_pairs,
                            rbox_iou_aligned,
                            rbox_iou_upper_bound,
                            rescale_rboxes,
                            square_intersects_rbox,
)

__all__ = [
    'mask_to_rbox', 'masks_to_rboxes', 'ANCHOR_HALF_SIZE', 'points_in_rboxes', 'rbox_aabb',
    'rbox_candidate_pairs', 'rbox_iou_aligned', 'rbox_iou_upper_bound', 'rescale_rboxes',
    'square_intersects_rbox'
]
