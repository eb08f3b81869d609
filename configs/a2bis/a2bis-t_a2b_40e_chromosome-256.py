# A2B-IS-T on the chromosome pairs resized to 256 (not the reference's 512: the 211x210 images gain nothing
# from a 2.4x upsampling and a 256 input costs a quarter on a CPU), 40 epochs: the equal-budget comparison
# with configs/baselines/mask-rcnn_r50_fpn_40e_chromosome-256.py (docs/benchmarks.md).
_base_ = ['./a2bis-t_a2b_100e_chromosome-512.py']

image_size = (256, 256)
train_dataloader = dict(dataset=dict(pipeline=[
    dict(t, scale=image_size) if t['type'] == 'Resize' else t for t in _base_.train_pipeline]))
val_dataloader = dict(dataset=dict(pipeline=[
    dict(t, scale=image_size) if t['type'] == 'Resize' else t for t in _base_.test_pipeline]))
test_dataloader = val_dataloader

# 40 epochs of 37 images with the LR shape of the baseline: linear warm-up over the first 100 images
# (50 iterations of 2), x0.1 after epochs 27 and 37; Adam at 3e-4 as the consep 12e config
max_epochs = 40
train_cfg = dict(max_epochs=max_epochs, val_interval=5)
optim_wrapper = dict(optimizer=dict(lr=3e-4))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=50),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[27, 37], gamma=0.1),
]
default_hooks = dict(checkpoint=dict(interval=5, max_keep_ckpts=-1))
