from .ap import (
    REC_THRS,
    accumulate_ap,
    ap_from_matches,
    coco_mask_ap,
    match_rboxes_single,
    match_single_image,
    rbox_ap,
)
from .errors import FN_CAUSES, FP_CAUSES, instance_errors
from .pq import (
    PQStat,
    bpq_mpq,
    get_fast_pq,
    instance_pq,
    mask_pairwise_iou,
    match_instances,
    multi_class_pq,
    paint_instances,
    pairwise_iou,
    per_image_instance_pq,
    per_image_pq,
)

__all__ = [
    'REC_THRS', 'accumulate_ap', 'ap_from_matches', 'coco_mask_ap', 'match_rboxes_single',
    'match_single_image', 'rbox_ap', 'PQStat', 'bpq_mpq', 'get_fast_pq', 'multi_class_pq',
    'paint_instances', 'pairwise_iou', 'per_image_pq', 'instance_pq', 'mask_pairwise_iou',
    'per_image_instance_pq', 'match_instances', 'FN_CAUSES', 'FP_CAUSES', 'instance_errors'
]
