"""A2B-IS: one-stage skeleton-guided instance segmentation (docs/model.md)."""
from typing import Dict, List, Tuple

from mmdet.models.detectors.single_stage_instance_seg import SingleStageInstanceSegmentor
from mmdet.registry import MODELS
from mmdet.structures import OptSampleList, SampleList
from mmdet.utils import ConfigType, InstanceList, OptConfigType, OptMultiConfig
from torch import Tensor

# state-dict prefixes of the checkpoints saved before the three heads became one A2BISHead
_OLD_PREFIXES = {
    'skeleton_head.': 'mask_head.skeleton_branch.',
    'seg_head.': 'mask_head.seg_branch.',
    'bbox_head.': 'mask_head.bbox_branch.',
}


@MODELS.register_module()
class A2BIS(SingleStageInstanceSegmentor):
    """A2B-IS detector: a backbone (+ optional neck) and one ``A2BISHead``.

    The head runs on the first feature map of the backbone (or neck) and owns the class count,
    the overlap label and the stride (docs/model.md). ``predict`` keeps ``RotatedBoxes`` in
    ``pred_instances`` (mmdet's ``add_pred_to_datasample`` would turn them into tensors).
    Checkpoints saved before the head refactor (``skeleton_head.*``, ``seg_head.*``,
    ``bbox_head.*``) load unchanged.

    Args:
        backbone (dict): Backbone config; its first output map is used.
        mask_head (dict): ``A2BISHead`` config; gets ``train_cfg`` and ``test_cfg``.
        neck (dict, optional): Neck config; if it returns several maps the first is used.
        train_cfg (dict, optional): Anchor selection/assignment of the head.
        test_cfg (dict, optional): Decoder config of the head.
        data_preprocessor (dict, optional): Data preprocessor config.
        init_cfg (dict or list[dict], optional): Initialisation config.
    """

    def __init__(self,
                 backbone: ConfigType,
                 mask_head: ConfigType = None,
                 neck: OptConfigType = None,
                 train_cfg: OptConfigType = None,
                 test_cfg: OptConfigType = None,
                 data_preprocessor: OptConfigType = None,
                 init_cfg: OptMultiConfig = None,
                 **kwargs) -> None:
        old = sorted(set(kwargs) & {'skeleton_head', 'seg_head', 'bbox_head'})
        if old:
            raise TypeError(f'A2BIS got {old}: the three heads are one mask_head=dict('
                            "type='A2BISHead', num_classes=..., ...) since the head refactor "
                            '(docs/model.md)')
        if kwargs:
            raise TypeError(f'A2BIS got unexpected arguments {sorted(kwargs)}')
        if mask_head is None:
            raise TypeError("A2BIS needs mask_head=dict(type='A2BISHead', ...)")
        super().__init__(
            backbone=backbone, neck=neck, mask_head=mask_head, train_cfg=train_cfg,
            test_cfg=test_cfg, data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self._check_strides(data_preprocessor)

    def _check_strides(self, data_preprocessor: OptConfigType) -> None:
        """Raise if the neck or the batch padding disagree with the head's stride."""
        stride = self.mask_head.stride
        out_stride = getattr(self.neck, 'out_stride', None)
        if out_stride is not None and out_stride != stride:
            raise ValueError(f'the neck outputs stride {out_stride} but mask_head.stride is '
                             f'{stride}')
        divisor = (data_preprocessor or {}).get('pad_size_divisor', 1)
        if divisor % stride:
            raise ValueError(f'data_preprocessor.pad_size_divisor={divisor} must be a multiple '
                             f'of mask_head.stride={stride} so that the targets of every image '
                             'line up with the padded feature map')

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args, **kwargs) -> None:
        """Rename the keys of checkpoints saved before the head refactor, then load."""
        for key in list(state_dict):
            for old, new in _OLD_PREFIXES.items():
                if key.startswith(prefix + old):
                    state_dict[prefix + new + key[len(prefix + old):]] = state_dict.pop(key)
                    break
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extract_feat(self, batch_inputs: Tensor) -> Tuple[Tensor, Tensor]:
        """The head's two levels: the stride-s feature map F (B, C4, h, w) and the normalised
        image (B, 3, H, W) itself (stride 1), which a full-resolution branch of the head may use.
        """
        x = self.backbone(batch_inputs)
        if self.with_neck:
            x = self.neck(x)
        return (x[0] if isinstance(x, (list, tuple)) else x, batch_inputs)

    def _forward(self,
                 batch_inputs: Tensor,
                 batch_data_samples: OptSampleList = None) -> Tuple[Tensor, Tensor, Tensor]:
        """The raw maps: skeleton logits (B, 1, h, w), class logits (B, C, h, w) and box
        deltas (B, 5, h, w)."""
        return self.mask_head(self.extract_feat(batch_inputs))

    def forward_maps(self, batch_inputs: Tensor) -> Dict[str, Tensor]:
        """The dense maps compared by SSL-IS (docs/ssl.md).

        Returns:
            dict[str, Tensor]: ``skeleton`` (B, 1, h, w) and ``seg`` (B, C, h, w)
            probabilities, ``bbox`` (B, 5, h, w) deltas.
        """
        return self.mask_head.get_maps(*self._forward(batch_inputs))

    def add_pred_to_datasample(self, data_samples: SampleList,
                               results_list: InstanceList) -> List:
        """Attach ``pred_instances``, keeping ``RotatedBoxes`` (docs/model.md, D8)."""
        for data_sample, pred_instances in zip(data_samples, results_list):
            data_sample.pred_instances = pred_instances
        return data_samples
