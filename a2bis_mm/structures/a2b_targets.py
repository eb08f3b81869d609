"""Label conventions shared by the A2B-IS target transform and the A2B-IS head.

The pipeline does not know the model's class count: ``GenerateA2BTargets`` writes the overlap
class as :data:`OVERLAP_SENTINEL` and ``A2BISHead``, which owns ``num_classes``, maps it to its
overlap channel ``num_classes + 1`` (docs/components.md, data contract).
"""

OVERLAP_SENTINEL = 254  # overlap pixels in ``gt_seg_map`` / ``gt_sem_seg`` (uint8)
IGNORE_INDEX = 255  # pixels the losses ignore (padding of a batch)
