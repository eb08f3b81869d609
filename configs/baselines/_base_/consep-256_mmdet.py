# Everything the mmdet baselines on consep-256 share: data (same images, classes, 256x256 input,
# augmentation and evaluators as the A2B-IS configs, but mmdet pipelines with PackDetInputs), the 50-epoch
# schedule and the a2bis-mm runtime. Each baseline takes only `model` (and its optimiser) from mmdet's own
# config: mmengine forbids two `_base_` files that both define the data keys, so a baseline cannot list
# both an `mmdet::` config and this file.
_base_ = ['../../_base_/datasets/consep-256.py', '../../_base_/default_runtime.py']

batch_size = 4
image_size = (256, 256)

# The A2B-IS augmentation (flips + exact 90-degree rotations; RandomRot90 projects horizontal boxes
# and masks too) with mmdet's loading and packing. The Resize to 256 changes no pixel but records
# the `scale_factor` that mmdet's heads read when rescaling predictions.
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=_base_.backend_args),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=image_size, keep_ratio=True),
    dict(type='RandomFlip', prob=[0.25, 0.25], direction=['horizontal', 'vertical']),
    dict(type='RandomRot90', prob=0.75),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=_base_.backend_args),
    dict(type='Resize', scale=image_size, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs', meta_keys=_base_.test_meta_keys),
]
train_dataloader = dict(
    batch_size=batch_size,
    batch_sampler=dict(type='AspectRatioBatchSampler'),
    dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

# The A2B-IS evaluators (they accept horizontal boxes + masks and derive rotated boxes from the
# masks) plus COCO segm AP with up to 1000 detections per image (patches hold up to 189 nuclei).
val_evaluator = [
    *_base_.val_evaluator,
    dict(type='CocoMetric', ann_file=_base_.data_root + 'val.json', metric='segm',
         proposal_nums=(100, 300, 1000), backend_args=_base_.backend_args),
]
test_evaluator = val_evaluator

max_epochs = 50
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=10)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[40, 47],
         gamma=0.1),
]
default_hooks = dict(checkpoint=dict(interval=10))

# Train from scratch (no downloadable weights here): mmdet's default init, all stages trainable,
# BN statistics updated. With ImageNet weights, add to the command line
#   --cfg-options model.backbone.init_cfg._delete_=True model.backbone.init_cfg.type=Pretrained \
#       model.backbone.init_cfg.checkpoint=PATH model.backbone.frozen_stages=1 model.backbone.norm_eval=True
# (`_delete_` because init_cfg is None here); a whole COCO-trained detector loads with `load_from=PATH`.
scratch_backbone = dict(init_cfg=None, frozen_stages=-1, norm_eval=False)
# Nuclei are 5-50 px: RPN anchors of scale 2 give 8 px squares at stride 4 instead of mmdet's 32 px.
rpn_anchor_scales = [2]
# Up to 189 nuclei per 256x256 patch; mmdet's COCO default keeps 100 detections.
max_per_img = 300
