# A tiny A2B-IS (the synthetic smoke model: 8-32 channel backbone, 32-channel heads) trained
# with SSL-IS for 300 iterations on chromosome_pairs + the metaphase folder: the CPU-sized run of
# tools/compare_ssl.py (and the model of the memory table in docs/ssl.md). Not a benchmark.
_base_ = './a2bis-t_ssl_100e_chromosome-512.py'

model = dict(
    detector=dict(
        backbone=dict(
            _delete_=True, type='A2BNet',
            arch=dict(channels=[8, 16, 16, 32], num_asa=[1, 1, 1, 1])),
        mask_head=dict(in_channels=32, feat_channels=32)))

max_iters = 300
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
# a tiny model from scratch in 300 steps needs a larger step than the reference's 1e-4
optim_wrapper = dict(optimizer=dict(lr=2e-3))
param_scheduler = [
    dict(type='MultiStepLR', by_epoch=False, milestones=[int(0.8 * max_iters)], gamma=0.1)
]
default_hooks = dict(
    logger=dict(interval=20),
    checkpoint=dict(interval=max_iters, max_keep_ckpts=1))
