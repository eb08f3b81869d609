# A tiny A2B-IS (a few k backbone params, 32-channel heads) trained 300 iterations on the
# synthetic set: the smoke test and the main demo, a few minutes on a CPU. Not a benchmark.
_base_ = [
    '../_base_/models/a2bis_a2bnet-t.py', '../_base_/datasets/synthetic.py',
    '../_base_/schedules/adam_exp_50e.py', '../_base_/default_runtime.py'
]
model = dict(
    backbone=dict(_delete_=True, type='A2BNet', arch=dict(channels=[8, 16, 16, 32], num_asa=[1, 1, 1, 1])),
    mask_head=dict(num_classes=_base_.num_classes, in_channels=32, feat_channels=32))

max_iters = 300
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=max_iters,
                 val_interval=max_iters)
# a tiny model from scratch in 300 steps needs a larger step than the reference's 1e-4
optim_wrapper = dict(optimizer=dict(lr=2e-3))
param_scheduler = [
    dict(type='MultiStepLR', by_epoch=False, milestones=[int(0.8 * max_iters)], gamma=0.1)
]
default_hooks = dict(
    logger=dict(interval=20),
    checkpoint=dict(by_epoch=False, interval=max_iters, max_keep_ckpts=1))
log_processor = dict(by_epoch=False)

# 128x128 training crops (4x fewer pixels than the 256x256 images) keep 300 steps in minutes on a
# CPU; the targets are generated after the crop, validation runs on the full images.
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=_base_.backend_args),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomCrop', crop_size=(128, 128), allow_negative_crop=False),
    dict(type='RandomFlip', prob=[0.25, 0.25], direction=['horizontal', 'vertical']),
    dict(type='RandomRot90', prob=0.75),
    dict(type='GenerateA2BTargets', stride=2),
    dict(type='PackA2BInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
