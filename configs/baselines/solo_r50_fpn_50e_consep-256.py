# SOLO R50-FPN on consep-256 (4 classes, 256x256), trained from scratch. mmdet's scale ranges are kept:
# every nucleus falls on the finest level (stride 8, 40x40 grid).
_base_ = ['./_base_/consep-256_mmdet.py']
# The model (and optimiser) of mmdet 3.3's own config (shipped in the wheel), read with get_config: see
# the base for why it is not listed in _base_ (mmengine drops the `__` names from the config).
from mmengine.hub import get_config  # noqa: E402  (after _base_: mmengine's lazy-import check)

__mmdet = get_config('mmdet::solo/solo_r50_fpn_1x_coco.py')
model = __mmdet.model
model.backbone.update(_base_.scratch_backbone)
model.mask_head.num_classes = _base_.num_classes
model.test_cfg.max_per_img = _base_.max_per_img
optim_wrapper = __mmdet.optim_wrapper
optim_wrapper.optimizer.lr *= _base_.batch_size / __mmdet.auto_scale_lr.base_batch_size
