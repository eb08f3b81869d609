# CondInst R50-FPN on consep-256 (4 classes, 256x256), trained from scratch.
_base_ = ['./_base_/consep-256_mmdet.py']
# The model (and optimiser) of mmdet 3.3's own config (shipped in the wheel); see the base for why it is
# read with get_config instead of being listed in _base_.
__mmdet = __import__('mmengine.hub', fromlist=['get_config']).get_config(
    'mmdet::condinst/condinst_r50_fpn_ms-poly-90k_coco_instance.py')
model = __mmdet.model
model.backbone.update(_base_.scratch_backbone)
model.bbox_head.num_classes = _base_.num_classes
model.test_cfg.max_per_img = _base_.max_per_img
optim_wrapper = __mmdet.optim_wrapper
optim_wrapper.optimizer.lr *= _base_.batch_size / __mmdet.auto_scale_lr.base_batch_size
