"""Packing of the A2B-IS targets into ``DetDataSample``."""
import numpy as np
import torch
from mmdet.datasets.transforms import PackDetInputs
from mmdet.registry import TRANSFORMS
from mmengine.structures import PixelData


@TRANSFORMS.register_module()
class PackA2BInputs(PackDetInputs):
    """``PackDetInputs`` that also packs the skeleton targets of :class:`GenerateA2BTargets`.

    Besides the parent's output (``gt_instances`` with ``RotatedBoxes`` bboxes, ``gt_sem_seg``
    from ``gt_seg_map`` as a ``(1, h, w)`` uint8 tensor), ``gt_skeleton`` and ``gt_skeleton_inst``
    become ``data_sample.gt_skeleton = PixelData(heatmap=(1, h, w) float32, inst=(1, h, w) int64)``
    with the targets' stride (``a2b_target_stride``) in its metainfo as ``stride``, and
    ``gt_fullres`` becomes ``data_sample.gt_fullres = PixelData(sem_seg=(1, H, W) uint8)``.
    Without targets (test pipeline) only the image and the meta keys are packed.

    The stride-s maps are smaller than the image: keep ``pad_seg=False`` in the data
    preprocessor (its padding is sized for the input), the heads pad them per batch.

    Args:
        meta_keys (Sequence[str]): Meta keys packed into the data sample; the parent's default
            plus ``homography_matrix`` (recorded by ``RandomRot90`` and mmdet's geometric
            transforms).
    """

    def __init__(self,
                 meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor',
                            'flip', 'flip_direction', 'homography_matrix')) -> None:
        super().__init__(meta_keys=meta_keys)

    def transform(self, results: dict) -> dict:
        """Pack the inputs, the instances, the class map and the skeleton targets.

        Args:
            results (dict): Result dict of the pipeline.

        Returns:
            dict: ``inputs`` (uint8 ``(3, H, W)`` tensor) and ``data_samples``.
        """
        packed = super().transform(results)
        has_heat, has_inst = 'gt_skeleton' in results, 'gt_skeleton_inst' in results
        if has_heat != has_inst:
            raise KeyError('PackA2BInputs needs both gt_skeleton and gt_skeleton_inst or neither '
                           f'({results.get("img_path", "")})')
        if has_heat:
            heatmap = np.ascontiguousarray(results['gt_skeleton'], dtype=np.float32)
            inst = np.ascontiguousarray(results['gt_skeleton_inst'], dtype=np.int64)
            metainfo = {}
            if 'a2b_target_stride' in results:
                metainfo['stride'] = int(results['a2b_target_stride'])
            packed['data_samples'].gt_skeleton = PixelData(
                metainfo=metainfo, heatmap=torch.from_numpy(heatmap[None]),
                inst=torch.from_numpy(inst[None]))
        if 'gt_fullres' in results:
            cover = np.ascontiguousarray(results['gt_fullres'], dtype=np.uint8)
            packed['data_samples'].gt_fullres = PixelData(sem_seg=torch.from_numpy(cover[None]))
        return packed
