"""Pictures of instances: one drawing for tools/infer.py, tools/test.py --show-dir and the docs."""
from .local_visualizer import A2BISLocalVisualizer
from .overlay import (
    MICROSCOPY_PALETTE,
    box_corners,
    draw_instances,
    label_text,
    mask_outline,
    microscopy_palette,
)

__all__ = [
    'A2BISLocalVisualizer', 'MICROSCOPY_PALETTE', 'box_corners', 'draw_instances', 'label_text',
    'mask_outline', 'microscopy_palette'
]
