# A2B-IS-T on CoNSeP 256 patches for 12 epochs (4,932 image-steps): the equal-budget comparison with the
# mmdet baselines (docs/benchmarks.md) and the consep256 weights of the model zoo (models/README.md).
# The LR schedule has the shape of the baselines' 1x schedule: linear warm-up over the first 400 images
# (200 iterations of 2), x0.1 after epochs 8 and 11. Adam at 3e-4: of 1e-4, 3e-4 and 1e-3, each run for
# 70 iterations from the same seed, 3e-4 had the lowest training loss (docs/benchmarks.md).
_base_ = ['./a2bis-t_a2b_50e_consep-256.py']

max_epochs = 12
train_cfg = dict(max_epochs=max_epochs, val_interval=2)
optim_wrapper = dict(optimizer=dict(lr=3e-4))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=200),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[8, 11], gamma=0.1),
]
# every validated epoch is kept: the learning curves are re-scored from them
default_hooks = dict(checkpoint=dict(interval=2, max_keep_ckpts=-1))
