# RTMDet-Ins-S (CSPNeXt backbone) on consep-256 (4 classes, 256x256), trained from scratch
# (backbone init_cfg=None; its ImageNet weights load as described in the base).
_base_ = ['./_base_/consep-256_mmdet.py']
# The model (and optimiser) of mmdet 3.3's own config (shipped in the wheel), read with get_config: see
# the base for why it is not listed in _base_ (mmengine drops the `__` names from the config).
from mmengine.hub import get_config  # noqa: E402  (after _base_: mmengine's lazy-import check)

__mmdet = get_config('mmdet::rtmdet/rtmdet-ins_s_8xb32-300e_coco.py')
model = __mmdet.model
model.backbone.init_cfg = None
model.bbox_head.num_classes = _base_.num_classes
model.test_cfg.max_per_img = _base_.max_per_img
optim_wrapper = __mmdet.optim_wrapper
optim_wrapper.optimizer.lr *= _base_.batch_size / (8 * 32)  # mmdet trains it on 8 GPUs x 32 images
