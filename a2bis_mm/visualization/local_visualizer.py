"""The project's visualizer for ``tools/test.py --show-dir`` and the training hooks."""
from typing import List, Optional, Sequence, Union

import numpy as np
import torch
from mmdet.registry import VISUALIZERS
from mmdet.structures.bbox import BaseBoxes, get_box_tensor
from mmdet.structures.mask import BitmapMasks, PolygonMasks
from mmdet.visualization.palette import get_palette
from mmengine.structures import InstanceData
from mmrotate.visualization import RotLocalVisualizer

from .overlay import draw_instances, microscopy_palette


@VISUALIZERS.register_module()
class A2BISLocalVisualizer(RotLocalVisualizer):
    """mmrotate's visualizer with the instances drawn by :func:`draw_instances`.

    Everything else (``add_datasample``: ground truth left, prediction right, ``pred_score_thr``,
    saving to ``--show-dir``) is mmdet's. The drawing is the one of ``tools/infer.py``'s overlays:
    semi-transparent masks with contours at the image's own size, labels ``class: score`` with
    scores in [0, 1], a legend strip below the image, optional boxes (rotated or not).

    Args:
        name: Instance name (mmengine's ``Visualizer.get_instance``).
        alpha: Opacity of one mask fill.
        show_bboxes: Draw the boxes too.
        max_labels: Most instances per image that get a text label.
        legend: Add the legend strip.
        palette: ``'microscopy'`` (:data:`MICROSCOPY_PALETTE`, as ``tools/infer.py``),
            ``'dataset'`` (the data set's ``palette``, mmdet's behaviour) or RGB colours per class.
        **kwargs: ``DetLocalVisualizer``'s arguments (``name``, ``vis_backends``, ``save_dir``...).
    """

    def __init__(self, name: str = 'visualizer', alpha: float = 0.4, show_bboxes: bool = False,
                 max_labels: int = 50, legend: bool = True,
                 palette: Union[str, Sequence[tuple]] = 'microscopy', **kwargs) -> None:
        # mmengine's ManagerMixin needs ``name`` in the signature itself
        super().__init__(name=name, alpha=alpha, **kwargs)
        self.palette = palette
        self.show_bboxes = show_bboxes
        self.max_labels = max_labels
        self.legend = legend

    def _draw_instances(self, image: np.ndarray, instances: InstanceData,
                        classes: Optional[List[str]],
                        palette: Optional[List[tuple]]) -> np.ndarray:
        """Draw the ground-truth or predicted instances of one image (RGB in, RGB out)."""
        from ..apis.tiling import masks_to_crops  # here: a2bis_mm.apis imports this package
        labels = instances.labels.cpu().numpy() if 'labels' in instances else np.zeros(0, int)
        num_classes = max(len(classes or ()), int(labels.max()) + 1 if len(labels) else 0)
        if not classes or len(classes) < num_classes:
            classes = [f'class {k}' for k in range(num_classes)]
        if self.palette == 'microscopy':
            colors = microscopy_palette(num_classes)
        else:
            chosen = palette if self.palette == 'dataset' else self.palette
            colors = get_palette(chosen if chosen is not None else 'random', num_classes)
        if 'masks' in instances:
            masks = instances.masks
            if isinstance(masks, (BitmapMasks, PolygonMasks)):
                masks = masks.to_ndarray()
            elif isinstance(masks, torch.Tensor):
                masks = masks.cpu().numpy()
            offsets, crops, index = masks_to_crops(np.asarray(masks, dtype=bool))
        else:  # a box-only model or data set: its boxes are all there is to draw
            index = np.arange(len(labels))
            offsets, crops = np.zeros((len(labels), 2), np.int64), [np.zeros((0, 0), bool)] * len(labels)
        show_bboxes = self.show_bboxes or 'masks' not in instances
        scores = instances.scores.cpu().numpy()[index] if 'scores' in instances else None
        bboxes = None
        if 'bboxes' in instances and show_bboxes:
            boxes = instances.bboxes
            boxes = get_box_tensor(boxes) if isinstance(boxes, BaseBoxes) else boxes
            bboxes = boxes.cpu().numpy()[index]
        # no set_image here: add_datasample sets the final (GT | prediction) picture once
        return draw_instances(
            image, offsets, crops, labels[index], classes, colors, scores=scores, bboxes=bboxes,
            alpha=self.alpha, show_bboxes=show_bboxes, max_labels=self.max_labels,
            legend=self.legend)
