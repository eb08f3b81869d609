# QueryInst R50-FPN on consep-256 (4 classes, 256x256), trained from scratch, with 300 queries
# (mmdet's 300-proposal setting) because patches hold up to 189 nuclei.
_base_ = ['./_base_/consep-256_mmdet.py']
# The model (and optimiser) of mmdet 3.3's own config (shipped in the wheel), read with get_config: see
# the base for why it is not listed in _base_ (mmengine drops the `__` names from the config).
from mmengine.hub import get_config  # noqa: E402  (after _base_: mmengine's lazy-import check)

__mmdet = get_config('mmdet::queryinst/queryinst_r50_fpn_1x_coco.py')
model = __mmdet.model
model.backbone.update(_base_.scratch_backbone)
model.rpn_head.num_proposals = _base_.max_per_img
# Refined boxes clipped to the image (mmdet's QueryInst leaves them unclipped): on a CPU, FCNMaskHead pastes
# each mask on its own box and fails ("upper bound and lower bound inconsistent") on a box wholly outside.
model.roi_head.bbox_head = [
    dict(h, num_classes=_base_.num_classes, bbox_coder=dict(h.bbox_coder, clip_border=True))
    for h in model.roi_head.bbox_head]
model.roi_head.mask_head = [dict(h, num_classes=_base_.num_classes) for h in model.roi_head.mask_head]
model.test_cfg.rcnn.max_per_img = _base_.max_per_img
optim_wrapper = __mmdet.optim_wrapper
# The backbone is random, so it learns at the full rate (mmdet: lr_mult 0.1 for a pretrained one).
optim_wrapper.paramwise_cfg.custom_keys.backbone.lr_mult = 1.0
optim_wrapper.optimizer.lr *= _base_.batch_size / __mmdet.auto_scale_lr.base_batch_size
