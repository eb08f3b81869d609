"""Inference for users: large images and slides (tiling, pixel size), exports and overlays."""
from .exporters import draw_overlay, to_coco_dict, to_geojson_dict, write_json_atomic, write_png_atomic
from .inference import build_inference_pipeline, inference_a2bis, init_a2bis_model, list_images, read_image
from .tiling import CompactInstances, iter_tiles

__all__ = [
    'CompactInstances', 'build_inference_pipeline', 'draw_overlay', 'inference_a2bis',
    'init_a2bis_model', 'iter_tiles', 'list_images', 'read_image', 'to_coco_dict',
    'to_geojson_dict', 'write_json_atomic', 'write_png_atomic'
]
