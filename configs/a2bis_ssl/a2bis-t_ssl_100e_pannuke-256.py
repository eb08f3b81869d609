# SSL-IS (docs/ssl.md) with A2BNet-T on PanNuke folds 1 + 2 (labelled) + a folder of unlabeled H&E
# tiles, 2 + 1 per batch, 256 input, mean/std normalised (docs/model.md, D9), evaluated on fold 3.
_base_ = ['../_base_/sslis_a2bnet-t.py', '../_base_/datasets/pannuke-256_ssl.py']

model = dict(detector=dict(mask_head=dict(num_classes=_base_.num_classes)))

# An epoch = len(folds 1 + 2) / 2 labelled images per step (5,179 / 2 -> 2,590 steps); 100 epochs.
epoch_iters = 2590
max_iters = 100 * epoch_iters
train_cfg = dict(max_iters=max_iters, val_interval=10 * epoch_iters)
param_scheduler = [
    dict(type='StepLR', by_epoch=False, step_size=epoch_iters, gamma=0.97, end=max_iters)
]
default_hooks = dict(checkpoint=dict(interval=10 * epoch_iters))
